"""docs/openapi.json: generated from the models, valid OpenAPI 3.1, and the template's routes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from ab_testing.contract import ROUTES
from ab_testing.openapi import MissingContract, build_document, document, render
from emulator.events import FakeLambdaContext, api_gateway_event
from emulator.template import api_routes, load_template
from tests.conftest import ROOT, invoke, load_handler

COMMITTED = ROOT / "docs" / "openapi.json"
FALLBACK = "MethodNotAllowedFunction"


def template_routes() -> set[tuple[str, str]]:
    return {(r.method, r.path) for r in api_routes(load_template()) if r.method != "ANY"}


def test_the_committed_document_is_what_the_code_generates() -> None:
    # Given the models and the registry / When the document is generated
    # Then it is byte for byte the committed file
    assert COMMITTED.read_text() == render(document()), (
        "docs/openapi.json is stale: run `make openapi` and commit it"
    )


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = json.loads(COMMITTED.read_text())
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises with the offending pointer


def test_every_template_route_has_models_and_every_model_a_route() -> None:
    # Given the routes of template.yaml and the registry of models
    in_template = template_routes()
    # Then each route of the template is described, and nothing else is
    missing = sorted(in_template - set(ROUTES))
    assert not missing, (
        f"routes without models: {missing}; add an Operation for each to ROUTES in "
        "layers/ab_testing/ab_testing/contract.py, then run `make openapi`"
    )
    stale = sorted(set(ROUTES) - in_template)
    assert not stale, f"ROUTES describes routes template.yaml does not have: {stale}"
    # And the document generated from the template's list is the served one
    assert build_document(in_template) == document()


def test_a_route_without_models_is_refused_with_what_to_add() -> None:
    with pytest.raises(MissingContract, match=r"DELETE /api/v1/experiments/\{id\}.*ROUTES"):
        build_document([*ROUTES, ("DELETE", "/api/v1/experiments/{id}")])


def test_every_resource_has_the_405_fallback() -> None:
    # Given the template / Then every resource has an ANY event on the 405 function
    routes = api_routes(load_template())
    resources = {r.path for r in routes if r.method != "ANY"}
    fallbacks = {r.path for r in routes if r.method == "ANY" and r.function_id == FALLBACK}
    missing = sorted(resources - fallbacks)
    assert not missing, f"add an ANY event for each of {missing} to {FALLBACK} in template.yaml"


def test_operations_are_documented_with_their_inputs_and_errors() -> None:
    doc = document()
    listing = doc["paths"]["/api/v1/experiments"]["get"]
    names = {p["name"]: p for p in listing["parameters"]}
    # The list's filters and paging, with the default and maximum page size
    assert set(names) == {"status", "experiment_type", "name", "limit", "cursor"}
    assert names["limit"]["schema"]["default"] == 50
    assert names["limit"]["schema"]["maximum"] == 100
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                if status.startswith("4"):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == error, (method, path, status)
    created = doc["paths"]["/api/v1/experiments"]["post"]["responses"]
    assert set(created) >= {"201", "400", "409"}
    links = created["201"]["links"]
    assert links["StartExperiment"]["parameters"] == {"id": "$response.body#/id"}


def test_the_api_serves_the_document_and_the_page(aws: Any) -> None:
    # When the document and the page are requested from their handler
    status, served = invoke("api_docs", "GET", "/api/v1/openapi.json")
    # Then the document is the committed one
    assert status == 200
    assert served == json.loads(COMMITTED.read_text())
    event = api_gateway_event(
        "GET", "/api/v1/docs", resource="/api/v1/docs", path_parameters=None, body=None
    )
    page = load_handler("api_docs").handler(event, FakeLambdaContext("api_docs"))
    assert page["statusCode"] == 200
    assert page["headers"]["Content-Type"].startswith("text/html")
    assert 'fetch("openapi.json")' in page["body"]
    # And the page names no other origin: it needs nothing but this API
    assert re.findall(r"(?:src|href)=\"(?!#|data:)[^\"]*", page["body"]) == []
    assert "https://" not in page["body"] and "http://" not in page["body"]


def test_generation_is_deterministic(tmp_path: Path) -> None:
    from ab_testing.openapi import main

    out = tmp_path / "openapi.json"
    assert main(["--out", str(out)]) == 0
    assert out.read_text() == COMMITTED.read_text()
    assert main(["--out", str(out), "--check"]) == 0


def test_every_bound_is_written_in_json_schemas_words() -> None:
    # pydantic's own names for bounds (gt, ge, lt, le) mean nothing to a client generator:
    # the document says exclusiveMinimum, minimum, exclusiveMaximum and maximum everywhere.
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    found: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in {"gt", "ge", "lt", "le"} and isinstance(inner, int | float):
                    found.append(f"{where}/{key}")
                walk(inner, f"{where}/{key}")
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, f"{where}/{i}")

    walk(document, "")
    assert found == []
    create = document["components"]["schemas"]
    bounds = [
        option
        for schema in create.values()
        for name, field in (schema.get("properties") or {}).items()
        if name == "max_duration_days"
        for option in field.get("anyOf", [])
        if option.get("type") == "number" and len(option) > 1  # the request bodies' (bounded)
    ]
    assert bounds and all(b["exclusiveMinimum"] == 0 and b["maximum"] == 3650 for b in bounds)


def test_admin_operations_never_list_the_data_key() -> None:
    # The data plane's key is refused on admin routes (deployed: SigV4 only; locally: the
    # admin key), so the document must not offer it there.
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    for path, item in document["paths"].items():
        for method, operation in item.items():
            ways = [name for option in operation["security"] for name in option]
            if operation["x-plane"] == "data":
                assert ways == ["ApiKey", "SigV4", "LocalAdminKey"], (method, path)
            else:
                assert ways == ["SigV4", "LocalAdminKey"], (method, path)
