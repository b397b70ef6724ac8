"""The deploy promises of the README's "Deploy" section, checked in template.yaml per resource
and per route, in both AuthMode values. cfn-lint checks that the template is valid; this checks
that it says what the README says. When a promise changes, change the README and PROMISES.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from emulator.intrinsics import Resolver
from emulator.template import DEFAULT_TEMPLATE, load_template

# What the README promises today, in one place.
PROMISES: dict[str, Any] = {
    "tables": {"ab_experiments", "ab_variants", "ab_assignments", "ab_results", "ab_insights"},
    "billing_mode": "PAY_PER_REQUEST",
    "deletion_policy": "Retain",
    "update_replace_policy": "Retain",
    "auth_modes": {"API_KEY", "IAM"},
    # The data plane takes the API key in API_KEY mode; every other route (admin) is SigV4.
    "data_plane": {
        "/get-variant",
        "/record-result",
        "/record-results",
        "/definitions",
        "/exposures",
        "/traces",  # POST /api/v1/otlp/v1/traces: OpenTelemetry exporters
    },
    "default_auth_mode": "API_KEY",
    "parameter_defaults": {
        "AnalysisSchedule": "cron(0 * * * ? *)",
        "AssignmentCacheSeconds": 5,
        "TablePrefix": "",
    },
    "parameters": {"TablePrefix", "StageName", "LogLevel", "ThrottleRateLimit"},
    "api_key_only": {"AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlan"},
    # The functions that analyse carry scipy; the hot path does not.
    "with_scipy": {"/analyze", "/stop"},
    "without_scipy": {"/get-variant", "/record-result", "/record-results"},
    "outputs": {"ApiUrl": None, "ApiKeyId": "API_KEY"},
}

FUNCTION = "AWS::Serverless::Function"
TABLE = "AWS::DynamoDB::Table"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(DEFAULT_TEMPLATE)


def resources(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == kind}


def exists(resolver: Resolver, resource: Mapping[str, Any]) -> bool:
    condition = resource.get("Condition")
    return condition is None or resolver.condition(str(condition))


def api_events(template: Mapping[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(function, method, path, event properties) of every Api event."""
    found = []
    for name, function in resources(template, FUNCTION).items():
        for event in (function.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") == "Api":
                props = event.get("Properties") or {}
                found.append((name, str(props["Method"]).upper(), str(props["Path"]), props))
    return found


def effective_auth(
    template: Mapping[str, Any], resolver: Resolver, props: Mapping[str, Any]
) -> tuple[bool, str]:
    """(API key required, authorizer) of one route: its own Auth, else its API's defaults."""
    api_id = props["RestApiId"]["Ref"]
    api_auth = resolver.resolve(template["Resources"][api_id]["Properties"].get("Auth") or {})
    route_auth = resolver.resolve(props.get("Auth") or {})
    key = route_auth.get("ApiKeyRequired", api_auth.get("ApiKeyRequired", False))
    authorizer = route_auth.get("Authorizer", api_auth.get("DefaultAuthorizer", "NONE"))
    return bool(key), str(authorizer)


# ------------------------------------------------------------------ tables


def test_every_table_of_the_guide_is_defined(template: dict[str, Any]) -> None:
    resolver = Resolver(template)
    names = {resolver.table_name(t) for t in resources(template, TABLE)}
    assert names == PROMISES["tables"]


@pytest.mark.parametrize(
    "logical_id", sorted(resources(load_template(DEFAULT_TEMPLATE), TABLE)), ids=str
)
def test_each_table_is_on_demand_recoverable_encrypted_and_retained(
    template: dict[str, Any], logical_id: str
) -> None:
    table = template["Resources"][logical_id]
    props = table["Properties"]
    # retained when the stack is deleted, and when an update would replace it
    assert table.get("DeletionPolicy") == PROMISES["deletion_policy"]
    assert table.get("UpdateReplacePolicy") == PROMISES["update_replace_policy"]
    assert "Condition" not in table
    assert props["BillingMode"] == PROMISES["billing_mode"]
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_table_names_carry_the_prefix(template: dict[str, Any]) -> None:
    resolver = Resolver(template, {"TablePrefix": "staging-"})
    names = {resolver.table_name(t) for t in resources(template, TABLE)}
    assert names == {f"staging-{n}" for n in PROMISES["tables"]}


# ------------------------------------------------------------------ auth per route


def test_auth_modes_and_default(template: dict[str, Any]) -> None:
    spec = template["Parameters"]["AuthMode"]
    assert set(spec["AllowedValues"]) == PROMISES["auth_modes"]
    assert spec["Default"] == PROMISES["default_auth_mode"]


def test_there_are_routes(template: dict[str, Any]) -> None:
    assert len(api_events(template)) >= 15


def is_data_plane(path: str) -> bool:
    return any(path.rstrip("/").endswith(suffix) for suffix in PROMISES["data_plane"])


@pytest.mark.parametrize(
    "route", api_events(load_template(DEFAULT_TEMPLATE)), ids=lambda r: f"{r[1]} {r[2]}"
)
def test_in_api_key_mode_data_routes_need_the_key_and_admin_routes_sigv4(
    template: dict[str, Any], route: tuple[str, str, str, dict[str, Any]]
) -> None:
    resolver = Resolver(template, {"AuthMode": "API_KEY"})
    key_required, authorizer = effective_auth(template, resolver, route[3])
    if is_data_plane(route[2]):
        assert (key_required, authorizer) == (True, "NONE"), f"{route[1]} {route[2]}"
    else:
        assert authorizer == "AWS_IAM", f"{route[1]} {route[2]} is not signed"


def test_the_data_plane_is_exactly_the_promised_routes(template: dict[str, Any]) -> None:
    resolver = Resolver(template, {"AuthMode": "API_KEY"})
    keyed = {r[2] for r in api_events(template) if effective_auth(template, resolver, r[3])[0]}
    assert {p.rstrip("/").rsplit("/", 1)[-1] for p in keyed} == {
        s.lstrip("/") for s in PROMISES["data_plane"]
    }


@pytest.mark.parametrize(
    "route", api_events(load_template(DEFAULT_TEMPLATE)), ids=lambda r: f"{r[1]} {r[2]}"
)
def test_in_iam_mode_every_route_requires_sigv4(
    template: dict[str, Any], route: tuple[str, str, str, dict[str, Any]]
) -> None:
    resolver = Resolver(template, {"AuthMode": "IAM"})
    key_required, authorizer = effective_auth(template, resolver, route[3])
    assert (key_required, authorizer) == (False, "AWS_IAM"), f"{route[1]} {route[2]}"


@pytest.mark.parametrize("mode", ["API_KEY", "IAM"])
def test_key_usage_plan_and_its_throttling_exist_only_in_api_key_mode(
    template: dict[str, Any], mode: str
) -> None:
    resolver = Resolver(template, {"AuthMode": mode})
    for kind in PROMISES["api_key_only"]:
        found = [r for r in resources(template, kind).values() if exists(resolver, r)]
        assert len(found) == (1 if mode == "API_KEY" else 0), kind
    if mode == "API_KEY":
        plan = next(iter(resources(template, "AWS::ApiGateway::UsagePlan").values()))
        throttle = resolver.resolve(plan["Properties"]["Throttle"])
        assert throttle == {
            "RateLimit": resolver.params["ThrottleRateLimit"],
            "BurstLimit": resolver.params["ThrottleBurstLimit"],
        }
    outputs = {name for name, spec in template["Outputs"].items() if exists(resolver, spec)}
    for name, only_in in PROMISES["outputs"].items():
        assert (name in outputs) is (only_in is None or only_in == mode), name


# ------------------------------------------------------------------ parameters and layers


def test_parameters_and_defaults(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert PROMISES["parameters"] <= set(params)
    for name, default in PROMISES["parameter_defaults"].items():
        assert params[name]["Default"] == default, name


def function_layers(template: dict[str, Any], logical_id: str) -> list[str]:
    props = template["Resources"][logical_id]["Properties"]
    layers = props.get("Layers", template["Globals"]["Function"].get("Layers", []))
    return [layer["Ref"] for layer in layers if isinstance(layer, dict) and "Ref" in layer]


def route_function(template: dict[str, Any], suffix: str) -> str:
    for name, method, path, _ in api_events(template):
        if method in ("GET", "POST") and path.rstrip("/").endswith(suffix):
            return name
    raise KeyError(suffix)


def test_only_the_functions_that_analyse_carry_scipy(template: dict[str, Any]) -> None:
    with_stats = {
        name
        for name in resources(template, FUNCTION)
        if "StatsLayer" in function_layers(template, name)
    }
    scheduled = {
        name
        for name, f in resources(template, FUNCTION).items()
        if any(e.get("Type") == "Schedule" for e in (f["Properties"].get("Events") or {}).values())
    }
    assert scheduled and scheduled <= with_stats
    for suffix in PROMISES["with_scipy"]:
        assert route_function(template, suffix) in with_stats, suffix
    for suffix in PROMISES["without_scipy"]:
        assert route_function(template, suffix) not in with_stats, suffix


def test_the_scheduled_analysis_runs_on_the_analysis_schedule(template: dict[str, Any]) -> None:
    schedules = [
        e["Properties"]["Schedule"]
        for f in resources(template, FUNCTION).values()
        for e in (f["Properties"].get("Events") or {}).values()
        if e.get("Type") == "Schedule"
    ]
    assert {"Ref": "AnalysisSchedule"} in schedules
