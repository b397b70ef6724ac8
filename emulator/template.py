"""Read the SAM template: tables, environment, API routes and schedules the emulator needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.intrinsics import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    NO_VALUE,
    TABLE_TYPE,
    Resolver,
    load_yaml_template,
    parameter_values,
    to_str,
)

__all__ = [
    "ADMIN_PLANE",
    "DATA_PLANE",
    "DEFAULT_ACCOUNT",
    "DEFAULT_REGION",
    "DEFAULT_TEMPLATE",
    "NO_VALUE",
    "REPO_ROOT",
    "Resolver",
    "Route",
    "ScheduledFunction",
    "api_routes",
    "create_tables",
    "function_environment",
    "function_ids_by_code_uri",
    "function_settings",
    "layer_dirs",
    "load_template",
    "gateway_response",
    "missing_route_response",
    "parameter_values",
    "scheduled_functions",
    "table_definitions",
    "table_names",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
FUNCTION_TYPE = "AWS::Serverless::Function"

# Properties of AWS::DynamoDB::Table that CreateTable takes as they are.
_TABLE_KEYS = (
    "TableName",
    "KeySchema",
    "AttributeDefinitions",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
    "TableClass",
    "Tags",
)


def load_template(path: Path | str = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template, short tags included (`!Ref X` -> `{"Ref": "X"}`)."""
    return load_yaml_template(path)


# ------------------------------------------------------------------ tables


def _table_resources(template: Mapping[str, Any]) -> list[str]:
    resources = template.get("Resources") or {}
    return [lid for lid, res in resources.items() if res.get("Type") == TABLE_TYPE]


def table_definitions(
    template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """`create_table` keyword arguments for every AWS::DynamoDB::Table of the template."""
    resolver = Resolver(template, parameters)
    definitions = []
    for logical_id in _table_resources(template):
        props = resolver.resolve(template["Resources"][logical_id].get("Properties") or {})
        kwargs = {key: props[key] for key in _TABLE_KEYS if key in props}
        kwargs["TableName"] = resolver.table_name(logical_id)
        kwargs.setdefault("BillingMode", "PROVISIONED")
        sse = props.get("SSESpecification")
        if sse:
            kwargs["SSESpecification"] = _sse_specification(sse)
        stream = props.get("StreamSpecification")
        if stream:
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **stream}
        definitions.append(kwargs)
    return definitions


def _sse_specification(cfn: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation says SSEEnabled, the CreateTable API says Enabled."""
    spec: dict[str, Any] = {"Enabled": str(cfn.get("SSEEnabled", False)).lower() == "true"}
    for key in ("SSEType", "KMSMasterKeyId"):
        if key in cfn:
            spec[key] = cfn[key]
    return spec


def table_names(
    template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """{logical id: resolved table name} for every table of the template."""
    resolver = Resolver(template, parameters)
    return {lid: resolver.table_name(lid) for lid in _table_resources(template)}


def create_tables(
    client: Any,
    template: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Create the template's tables with a boto3 DynamoDB client; existing ones are kept."""
    template = template if template is not None else load_template()
    existing: set[str] = set()
    for page in client.get_paginator("list_tables").paginate():
        existing.update(page.get("TableNames", []))
    for kwargs in table_definitions(template, parameters):
        if kwargs["TableName"] not in existing:
            client.create_table(**kwargs)
    return table_names(template, parameters)


# ------------------------------------------------------------------ functions


# Who may call a route, from its Auth in the template (see `route_plane`).
DATA_PLANE = "data"  # an API key: what an application calls on every request
ADMIN_PLANE = "admin"  # SigV4 (or any authorizer): operators and their tools


@dataclass(frozen=True)
class Route:
    method: str  # upper case; "ANY" matches every method
    path: str  # as written in the template, e.g. /api/v1/experiments/{id}/start
    function_id: str
    code_uri: str  # as written in the template, relative to the template's directory
    handler: str  # "module.function", e.g. app.handler
    plane: str = ADMIN_PLANE

    def code_dir(self, base_dir: Path | str) -> Path:
        return (Path(base_dir) / self.code_uri).resolve()


@dataclass(frozen=True)
class ScheduledFunction:
    function_id: str
    code_uri: str
    handler: str
    schedule: str

    def code_dir(self, base_dir: Path | str) -> Path:
        return (Path(base_dir) / self.code_uri).resolve()


def _functions(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    resources = template.get("Resources") or {}
    return {lid: res for lid, res in resources.items() if res.get("Type") == FUNCTION_TYPE}


def _function_setting(template: Mapping[str, Any], props: Mapping[str, Any], key: str) -> Any:
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    return props.get(key, globals_.get(key))


def api_routes(
    template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> list[Route]:
    """One Route per `Type: Api` event of every serverless function, with its plane."""
    resolver = Resolver(template, parameters)
    routes = []
    for logical_id, resource in _functions(template).items():
        props = resource.get("Properties") or {}
        code_uri = str(_function_setting(template, props, "CodeUri") or ".")
        handler = str(_function_setting(template, props, "Handler") or "app.handler")
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "Api":
                continue
            event_props = event.get("Properties") or {}
            method = str(event_props.get("Method", "ANY")).upper()
            plane = route_plane(template, event_props, resolver)
            route = Route(method, str(event_props["Path"]), logical_id, code_uri, handler, plane)
            routes.append(route)
    return routes


def route_plane(template: Mapping[str, Any], event: Mapping[str, Any], resolver: Resolver) -> str:
    """Data plane when the route takes the API key and no authorizer; admin otherwise.

    The route's own Auth wins over its API's. This is the one place a route's plane is
    decided: a new route is admin unless its event asks for the API key, as get-variant and
    record-result do. (A route with neither key nor authorizer is admin too: locally stricter
    than AWS, never more lenient.)
    """
    api_auth = resolver.resolve(_api_auth(template, event.get("RestApiId")))
    own = resolver.resolve(event.get("Auth") or {})
    authorizer = own.get("Authorizer", api_auth.get("DefaultAuthorizer", "NONE"))
    key_required = own.get("ApiKeyRequired", api_auth.get("ApiKeyRequired", False))
    if str(authorizer) == "NONE" and str(key_required).lower() == "true":
        return DATA_PLANE
    return ADMIN_PLANE


def _api_auth(template: Mapping[str, Any], rest_api_id: Any) -> Mapping[str, Any]:
    """Auth of the AWS::Serverless::Api the event names, or of the implicit API (Globals)."""
    resources = template.get("Resources") or {}
    if isinstance(rest_api_id, Mapping) and "Ref" in rest_api_id:
        api = resources.get(str(rest_api_id["Ref"])) or {}
        return (api.get("Properties") or {}).get("Auth") or {}
    return ((template.get("Globals") or {}).get("Api") or {}).get("Auth") or {}


def scheduled_functions(
    template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> list[ScheduledFunction]:
    """Functions with a `Schedule` (or `ScheduleV2`) event."""
    resolver = Resolver(template, parameters)
    found = []
    for logical_id, resource in _functions(template).items():
        props = resource.get("Properties") or {}
        for event in (props.get("Events") or {}).values():
            if event.get("Type") not in ("Schedule", "ScheduleV2"):
                continue
            expression = resolver.resolve((event.get("Properties") or {}).get("Schedule", ""))
            found.append(
                ScheduledFunction(
                    logical_id,
                    str(_function_setting(template, props, "CodeUri") or "."),
                    str(_function_setting(template, props, "Handler") or "app.handler"),
                    str(expression),
                )
            )
            break
    return found


def function_ids_by_code_uri(template: Mapping[str, Any]) -> dict[str, str]:
    """{CodeUri without its trailing slash: function logical id}."""
    found = {}
    for logical_id, resource in _functions(template).items():
        code_uri = _function_setting(template, resource.get("Properties") or {}, "CodeUri")
        if isinstance(code_uri, str):
            found[code_uri.rstrip("/")] = logical_id
    return found


def function_settings(template: Mapping[str, Any], function_id: str) -> dict[str, Any]:
    """A function's properties over Globals.Function (MemorySize, Timeout, Handler, ...)."""
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    props = (template.get("Resources") or {})[function_id].get("Properties") or {}
    return {**globals_, **props}


def function_environment(
    template: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
    function_id: str | None = None,
) -> dict[str, str]:
    """Globals.Function.Environment.Variables resolved, then the function's own variables."""
    resolver = Resolver(template, parameters)
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    variables = dict((globals_.get("Environment") or {}).get("Variables") or {})
    if function_id is not None:
        props = (template.get("Resources") or {})[function_id].get("Properties") or {}
        variables.update((props.get("Environment") or {}).get("Variables") or {})
    resolved = resolver.resolve(variables)
    return {name: to_str(value) for name, value in resolved.items()}


def layer_dirs(template: Mapping[str, Any]) -> list[str]:
    """ContentUri of every AWS::Serverless::LayerVersion, relative to the template's directory."""
    dirs = []
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") == "AWS::Serverless::LayerVersion":
            uri = (resource.get("Properties") or {}).get("ContentUri")
            if isinstance(uri, str):
                dirs.append(uri)
    return dirs


# API Gateway's own answers when the template does not redefine them.
_DEFAULT_GATEWAY_RESPONSES = {
    "MISSING_AUTHENTICATION_TOKEN": (403, '{"message":"Missing Authentication Token"}'),
    "INVALID_API_KEY": (403, '{"message":"Forbidden"}'),
    "ACCESS_DENIED": (403, '{"message":"Forbidden"}'),
}


def gateway_response(template: Mapping[str, Any], response_type: str) -> tuple[int, str]:
    """Status and JSON body API Gateway sends for `response_type` (e.g. INVALID_API_KEY).

    From the API's GatewayResponses when present, else API Gateway's default.
    """
    default = _DEFAULT_GATEWAY_RESPONSES.get(response_type, (403, '{"message":"Forbidden"}'))
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::Serverless::Api":
            continue
        responses = (resource.get("Properties") or {}).get("GatewayResponses") or {}
        spec = responses.get(response_type)
        if not isinstance(spec, Mapping):
            continue
        status = int(spec.get("StatusCode", default[0]))
        body = (spec.get("ResponseTemplates") or {}).get("application/json", default[1])
        return status, str(body)
    return default


def missing_route_response(template: Mapping[str, Any]) -> tuple[int, str]:
    """What API Gateway sends for an unknown route (and an unsigned request to a SigV4 one)."""
    return gateway_response(template, "MISSING_AUTHENTICATION_TOKEN")
