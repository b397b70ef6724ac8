"""The OpenAPI 3.1 document, generated from the pydantic models of ab_testing.contract.

``python -m ab_testing.openapi`` writes docs/openapi.json; ``--check`` says whether the committed
file is stale. The output is deterministic: routes sorted, keys sorted, no timestamps.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ab_testing.contract import ROUTES, Operation
from ab_testing.models import MAX_INTEGER_ID
from ab_testing.responses import ErrorBody

TITLE = "A/B testing service"
VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE")
SECURITY = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "the data plane's key (AuthMode=API_KEY); locally: abtest serve --data-key "
        "(or the admin key)",
    },
    "LocalAdminKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "`make run` only: the admin key (abtest serve --admin-key), standing in "
        "for SigV4 on every route; deployed, admin operations take SigV4 alone",
    },
    "SigV4": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "AWS Signature Version 4 (AuthMode=IAM), the admin plane when deployed",
        "x-amazon-apigateway-authtype": "awsSigv4",
    },
}


class MissingContract(LookupError):
    """A route of the template that ab_testing.contract.ROUTES does not describe."""


def build_document(routes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The document for these (method, path) routes; every one must be in ROUTES."""
    wanted = sorted(set(routes), key=lambda r: (r[1], _method_rank(r[0])))
    missing = [r for r in wanted if r not in ROUTES]
    if missing:
        names = ", ".join(f"{m} {p}" for m, p in missing)
        raise MissingContract(
            f"no models for {names}: add an Operation for each to ROUTES in "
            "layers/ab_testing/ab_testing/contract.py (its answer model in responses.py, its "
            "body and query models), then run `make openapi`"
        )
    operations = [(m, p, ROUTES[(m, p)]) for m, p in wanted]
    schemas = _component_schemas(op for _, _, op in operations)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in operations:
        paths.setdefault(path, {})[method.lower()] = _operation(op, schemas)
    _add_links(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": (
                "Experiments, sticky assignment, exactly-once results and their analysis. "
                "Data plane: get-variant and record-result(s). Admin plane: everything else. "
                "Errors are JSON: {error, message, field}."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas["defs"],
            "securitySchemes": SECURITY,
        },
    }


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The document of every route in the registry (what the API serves)."""
    return build_document(ROUTES)


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def _component_schemas(operations: Iterable[Operation]) -> dict[str, Any]:
    """Every body and answer model as a named component; refs point into components."""
    inputs: dict[type[BaseModel], None] = {}
    outputs: dict[type[BaseModel], None] = {ErrorBody: None}
    for op in operations:
        if op.body is not None:
            inputs[op.body] = None
        if op.answer is not None:
            outputs[op.answer] = None
    pairs = [(m, "validation") for m in inputs] + [(m, "serialization") for m in outputs]
    refs, top = models_json_schema(pairs, ref_template=REF)  # type: ignore[arg-type]
    return {
        "defs": dict(sorted(top.get("$defs", {}).items())),
        "refs": {(model, mode): ref for (model, mode), ref in refs.items()},
    }


def _ref(schemas: dict[str, Any], model: type[BaseModel], mode: str) -> dict[str, Any]:
    return dict(schemas["refs"][(model, mode)])


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    error = _ref(schemas, ErrorBody, "serialization")
    entry: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": list(op.tags),
        "x-plane": op.plane,
        # The data key opens the data plane only: an admin operation never lists it.
        "security": [{"ApiKey": []}, {"SigV4": []}, {"LocalAdminKey": []}]
        if op.plane == "data"
        else [{"SigV4": []}, {"LocalAdminKey": []}],
        "responses": {str(op.status): _success(op, schemas)},
    }
    parameters = _path_parameters(op) + _query_parameters(op)
    if parameters:
        entry["parameters"] = parameters
    if op.body is not None:
        body = _json(_ref(schemas, op.body, "validation"))
        if op.example is not None:
            body["content"]["application/json"]["example"] = op.example
        entry["requestBody"] = {"required": True, **body}
    for status, why in sorted(op.also.items()):
        answer = _success(op, schemas) if status < 300 else _json(error)
        entry["responses"][str(status)] = {**answer, "description": why}
    if parameters or op.body is not None:
        entry["responses"]["400"] = {"description": "invalid input", **_json(error)}
    if op.path_id or op.body is not None:
        entry["responses"]["404"] = {"description": "no such experiment", **_json(error)}
        entry["responses"]["503"] = {"description": "DynamoDB kept refusing; retry", **_json(error)}
    entry["responses"] = dict(sorted(entry["responses"].items()))
    return entry


def _success(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if op.answer is not None:
        content["application/json"] = {"schema": _ref(schemas, op.answer, "serialization")}
    for media in op.media:
        kind = "object" if media == "application/json" else "string"
        content.setdefault(media, {"schema": {"type": kind}})
    return {"description": "OK", "content": content}


def _path_parameters(op: Operation) -> list[dict[str, Any]]:
    if not op.path_id:
        return []
    return [
        {
            "name": "id",
            "in": "path",
            "required": True,
            "description": "the experiment id",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INTEGER_ID},
            "example": 1,
        }
    ]


def _query_parameters(op: Operation) -> list[dict[str, Any]]:
    if op.query is None:
        return []
    schema = op.query.model_json_schema(mode="validation", ref_template=REF)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = _not_null(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a value: the model's "or null" means "may be left out"."""
    prop = dict(prop)
    options = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        prop.update(options[0])
    elif options:
        prop["anyOf"] = options
    if prop.get("default", 0) is None:
        del prop["default"]
    return prop


# Links let a client (and schemathesis's stateful tests) follow one call with the next:
# create -> start -> get-variant -> record-result -> analyze, and every {id} route after them.
_BY_ID = {
    "createExperiment": "$response.body#/id",
    "startExperiment": "$request.path.id",
    "pauseExperiment": "$response.body#/experiment_id",
    "stopExperiment": "$response.body#/experiment_id",
    "recordResult": "$response.body#/experiment_id",
}
_BODY_LINKS = {
    "startExperiment": ("getVariant", {"experiment_id": "$request.path.id"}),
    "getVariant": (
        "recordResult",
        {
            "experiment_id": "$response.body#/experiment_id",
            "user_id": "$request.body#/user_id",
            "session_id": "$request.body#/session_id",
        },
    ),
}


def _link_name(operation_id: str) -> str:
    return operation_id[0].upper() + operation_id[1:]


def _add_links(paths: dict[str, dict[str, Any]]) -> None:
    operations = [op for item in paths.values() for op in item.values()]
    by_id = sorted(
        op["operationId"]
        for op in operations
        if any(p["in"] == "path" for p in op.get("parameters", []))
    )
    for op in operations:
        source = op["operationId"]
        status = "201" if "201" in op["responses"] else "200"
        links: dict[str, Any] = {}
        if source in _BY_ID:
            for target in by_id:
                links[_link_name(target)] = {
                    "operationId": target,
                    "parameters": {"id": _BY_ID[source]},
                }
        if source in _BODY_LINKS:
            target, body = _BODY_LINKS[source]
            links[_link_name(target)] = {"operationId": target, "requestBody": body}
        if links:
            op["responses"][status]["links"] = dict(sorted(links.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ab_testing.openapi")
    parser.add_argument("--out", default="docs/openapi.json")
    parser.add_argument("--check", action="store_true", help="fail when --out is stale")
    args = parser.parse_args(argv)
    text = render(document())
    out = Path(args.out)
    if args.check:
        if not out.exists() or out.read_text() != text:
            print(f"{out} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    print(f"wrote {out} ({len(document()['paths'])} paths)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
