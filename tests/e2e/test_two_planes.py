"""`make run` with a data-plane key and an admin key, standing in for API key and SigV4."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.template import ADMIN_PLANE, DATA_PLANE, api_routes, load_template
from tests.conftest import guide_experiment
from tests.e2e.conftest import LocalApi

ADMIN = [("x-api-key", "admin-s3cret")]
DATA = [("x-api-key", "data-s3cret")]
WRONG = [("x-api-key", "not-a-key")]
NAME = guide_experiment()["name"]


@pytest.fixture(scope="module")
def keyed_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    state = Path(tmp_path_factory.mktemp("planes")) / "state.json"
    env = {"AB_LOCAL_ADMIN_KEY": "admin-s3cret", "AB_LOCAL_DATA_KEY": "data-s3cret"}
    api = LocalApi(state, env=env).start()
    yield api
    api.stop()


def test_the_guide_flow_works_with_the_right_key_on_each_plane(keyed_api: LocalApi) -> None:
    # Given the local API with both keys; an operator creates and starts with the admin key
    call = keyed_api.call
    assert call("POST", "/api/v1/experiments/", guide_experiment(), headers=ADMIN)[0] == 201
    assert call("POST", "/api/v1/experiments/1/start", headers=ADMIN)[0] == 200
    # When the application asks for variants and records results with the data key
    for user in range(4):
        unit = {"experiment_name": NAME, "user_id": user}
        status, answer = call("POST", "/api/v1/experiments/get-variant", unit, headers=DATA)
        assert (status, answer["reason"]) == (200, "assigned")
        result = {**unit, "metric_name": "resolution_rate", "metric_value": user % 2}
        assert call("POST", "/api/v1/experiments/record-result", result, headers=DATA)[0] == 201
    batch = {"results": [{**unit, "metric_name": "response_time", "metric_value": 1.5}]}
    status, answer = call("POST", "/api/v1/experiments/record-results", batch, headers=DATA)
    assert (status, answer["recorded"]) == (200, 1)
    # Then the operator reads the analysis and stops with the admin key
    status, analysis = call("GET", "/api/v1/experiments/1/analyze", headers=ADMIN)
    assert (status, analysis["current_sample_size"]) == (200, 4)
    assert call("GET", "/api/v1/experiments/1/summary", headers=ADMIN)[0] == 200
    # And the admin key opens the data plane too
    admin_unit = {"experiment_name": NAME, "user_id": 0}
    assert call("POST", "/api/v1/experiments/get-variant", admin_unit, headers=ADMIN)[0] == 200
    assert call("POST", "/api/v1/experiments/1/stop", headers=ADMIN)[0] == 200


def concrete_routes() -> list[tuple[str, str, str]]:
    """(plane, method, path) for every route of template.yaml, with {id} filled in."""
    return [
        (
            route.plane,
            "DELETE" if route.method == "ANY" else route.method,
            route.path.replace("{id}", "1"),
        )
        for route in api_routes(load_template())
    ]


def test_the_runtime_calls_are_data_plane_and_every_experiment_route_is_admin() -> None:
    # Given the planes read from template.yaml's per-route Auth
    planes = {(method, path): plane for plane, method, path in concrete_routes()}
    # Then what an application calls per request takes the data-plane key
    for runtime_call in ("get-variant", "record-result", "record-results", "exposures"):
        assert planes[("POST", f"/api/v1/experiments/{runtime_call}")] == DATA_PLANE
    assert planes[("GET", "/api/v1/experiments/definitions")] == DATA_PLANE  # local evaluation
    assert planes[("POST", "/api/v1/otlp/v1/traces")] == DATA_PLANE  # OpenTelemetry exporters
    # And creating, listing, and everything on one experiment (salt, lifecycle, analysis) is admin
    assert planes[("POST", "/api/v1/experiments")] == ADMIN_PLANE
    assert planes[("GET", "/api/v1/experiments")] == ADMIN_PLANE
    on_one = [
        plane for (_, path), plane in planes.items() if path.startswith("/api/v1/experiments/1")
    ]
    assert len(on_one) >= 10 and set(on_one) == {ADMIN_PLANE}


def refused(answer: tuple[int, Any]) -> bool:
    status, body = answer
    return status in (401, 403) and isinstance(body, dict) and "message" in body


@pytest.mark.parametrize(("plane", "method", "path"), concrete_routes())
def test_every_route_refuses_a_missing_or_wrong_key(
    keyed_api: LocalApi, plane: str, method: str, path: str
) -> None:
    body = {} if method in ("POST", "PATCH", "PUT") else None
    # When a route is called without a key, or with a wrong one / Then it is refused with JSON
    assert refused(keyed_api.call(method, path, body))
    assert refused(keyed_api.call(method, path, body, headers=WRONG))
    # And an admin route refuses the data-plane key: a key shipped in an app opens nothing else
    if plane == ADMIN_PLANE:
        assert refused(keyed_api.call(method, path, body, headers=DATA))


def test_two_api_key_headers_are_refused(keyed_api: LocalApi) -> None:
    # When a request carries two x-api-key headers (the right one among them)
    connection = http.client.HTTPConnection("127.0.0.1", keyed_api.port, timeout=30)
    body = json.dumps({"experiment_name": NAME, "user_id": 1}).encode()
    connection.putrequest("POST", "/api/v1/experiments/get-variant")
    for name, value in [("Content-Type", "application/json"), *DATA, *WRONG]:
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    # Then the key is ambiguous and the request is refused
    assert (response.status, answer["error"]) == (403, "ambiguous_api_key")


def test_the_local_scheduled_trigger_is_admin_plane(keyed_api: LocalApi) -> None:
    # Given the server with keys / When the scheduled trigger is posted with each key
    trigger = "/_local/scheduled-analysis"
    # Then only the admin key runs it
    assert refused(keyed_api.call("POST", trigger, headers=DATA))
    assert keyed_api.call("POST", trigger, headers=ADMIN)[0] == 200
