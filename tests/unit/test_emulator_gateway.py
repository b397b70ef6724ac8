"""The gateway between HTTP and handlers, with fake functions and no network."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from emulator.gateway import Gateway, Request
from emulator.lambdas import FunctionLoader
from emulator.scheduler import ScheduledRunner
from emulator.template import scheduled_functions

ECHO = """
import json

def handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"X-Function": context.function_name},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps(event),
    }
"""

BROKEN = """
def handler(event, context):
    raise RuntimeError("boom")
"""

BINARY = """
import base64

def handler(event, context):
    return {"statusCode": 201, "headers": {"Content-Type": "image/png"},
            "body": base64.b64encode(b"\\x89PNG").decode(), "isBase64Encoded": True}
"""

SCHEDULED = """
def handler(event, context):
    return {"detail_type": event["detail-type"], "analysed": 3}
"""


def make_template(with_gateway_response: bool) -> dict[str, Any]:
    def function(code: str, path: str | None, method: str = "GET") -> dict[str, Any]:
        events: dict[str, Any] = {}
        if path is not None:
            events["E"] = {"Type": "Api", "Properties": {"Path": path, "Method": method}}
        return {
            "Type": "AWS::Serverless::Function",
            "Properties": {"CodeUri": f"functions/{code}/", "Events": events},
        }

    resources: dict[str, Any] = {
        "Echo": function("echo", "/items/{id}"),
        "EchoPost": function("echo", "/items/{id}", "POST"),
        "Special": function("echo", "/items/special"),
        "Broken": function("broken", "/broken"),
        "Binary": function("binary", "/binary"),
        "Data": function("echo", "/data", "POST"),
        "Analysis": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": "functions/scheduled/",
                "Events": {"S": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 hour)"}}},
            },
        },
    }
    # The data plane: the route asks for the API key and no authorizer (as get-variant does).
    data_event = resources["Data"]["Properties"]["Events"]["E"]["Properties"]
    data_event["Auth"] = {"Authorizer": "NONE", "ApiKeyRequired": True}
    if with_gateway_response:
        resources["Api"] = {
            "Type": "AWS::Serverless::Api",
            "Properties": {
                "GatewayResponses": {
                    "MISSING_AUTHENTICATION_TOKEN": {
                        "StatusCode": "404",
                        "ResponseTemplates": {"application/json": '{"error": "not_found"}'},
                    }
                }
            },
        }
    return {"Globals": {"Function": {"Handler": "app.handler"}}, "Resources": resources}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, code in {
        "echo": ECHO,
        "broken": BROKEN,
        "binary": BINARY,
        "scheduled": SCHEDULED,
    }.items():
        directory = tmp_path / "functions" / name
        directory.mkdir(parents=True)
        (directory / "app.py").write_text(textwrap.dedent(code), encoding="utf-8")
    return tmp_path


def make_gateway(project: Path, *, gateway_response: bool = True, **kwargs: Any) -> Gateway:
    template = make_template(gateway_response)
    loader = FunctionLoader(project)
    runner = ScheduledRunner(loader, template, scheduled_functions(template))
    return Gateway(template, loader, runner, **kwargs)


def body_of(response: Any) -> Any:
    return json.loads(response.body)


def test_request_reaches_the_handler_as_a_proxy_event(project: Path) -> None:
    # Given a gateway in front of an echo function
    gateway = make_gateway(project)
    # When a GET with a query string and an encoded id is sent
    response = gateway.handle(
        Request("GET", "/items/a%20b/?x=1&x=2", headers=[("Host", "localhost")])
    )
    # Then the handler got the event API Gateway would send, and its response comes back
    assert response.status == 200
    event = body_of(response)
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/a%20b/"
    assert event["pathParameters"] == {"id": "a b"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    headers = response.headers
    assert ("X-Function", "Echo") in headers
    assert ("Set-Cookie", "a=1") in headers and ("Set-Cookie", "b=2") in headers
    assert any(name == "x-amzn-RequestId" for name, _ in headers)


def test_static_route_wins_and_bodies_pass_through(project: Path) -> None:
    # Given the gateway / When the static resource and a POST with a body are requested
    special = make_gateway(project).handle(Request("GET", "/items/special"))
    posted = make_gateway(project).handle(Request("POST", "/items/7", body=b'{"a": 1}'))
    # Then the static route answered, and the body arrived as text
    assert body_of(special)["resource"] == "/items/special"
    assert body_of(posted)["body"] == '{"a": 1}'
    assert body_of(posted)["isBase64Encoded"] is False


def test_unknown_route_uses_the_templates_gateway_response(project: Path) -> None:
    # Given a template with a MISSING_AUTHENTICATION_TOKEN response
    gateway = make_gateway(project)
    # When an unknown path and an undefined method are requested
    unknown = gateway.handle(Request("GET", "/nowhere"))
    wrong_method = gateway.handle(Request("DELETE", "/items/1"))
    # Then both get the template's status and body
    for response in (unknown, wrong_method):
        assert response.status == 404
        assert body_of(response) == {"error": "not_found"}


def test_unknown_route_without_gateway_response_is_api_gateways_403(project: Path) -> None:
    # Given a template without gateway responses / When an unknown path is requested
    response = make_gateway(project, gateway_response=False).handle(Request("GET", "/nowhere"))
    # Then API Gateway's own answer comes back
    assert response.status == 403
    assert response.body == b'{"message":"Missing Authentication Token"}'


def test_handler_exception_is_a_502(project: Path) -> None:
    # Given a function that raises / When it is called
    response = make_gateway(project).handle(Request("GET", "/broken"))
    # Then the client sees API Gateway's 502
    assert response.status == 502
    assert body_of(response) == {"message": "Internal server error"}


def test_base64_response_is_decoded(project: Path) -> None:
    # Given a function answering a base64-encoded body / When it is called
    response = make_gateway(project).handle(Request("GET", "/binary"))
    # Then the client gets the raw bytes
    assert response.status == 201
    assert response.body == base64.b64decode(base64.b64encode(b"\x89PNG"))
    assert ("Content-Type", "image/png") in response.headers


def test_without_keys_every_route_is_open(project: Path) -> None:
    # Given a gateway started without keys / When a data and an admin route are called
    gateway = make_gateway(project)
    # Then both answer
    assert gateway.handle(Request("POST", "/data")).status == 200
    assert gateway.handle(Request("GET", "/items/1")).status == 200


def keyed(gateway: Gateway, method: str, path: str, *keys: str) -> tuple[int, Any]:
    response = gateway.handle(Request(method, path, headers=[("x-api-key", k) for k in keys]))
    return response.status, body_of(response) if response.body else None


def test_data_routes_take_either_key_and_admin_routes_only_the_admin_key(project: Path) -> None:
    # Given a gateway with a data-plane key and an admin key
    gateway = make_gateway(project, gateway_response=False, admin_key="adm1n", data_key="d4ta")
    # When the data route is called with each key / Then both pass
    assert keyed(gateway, "POST", "/data", "d4ta")[0] == 200
    assert keyed(gateway, "POST", "/data", "adm1n")[0] == 200
    # And without a key or with a wrong one it is refused as API Gateway refuses a bad key
    assert keyed(gateway, "POST", "/data") == (403, {"message": "Forbidden"})
    assert keyed(gateway, "POST", "/data", "nope") == (403, {"message": "Forbidden"})
    # When an admin route is called with the admin key / Then it passes
    assert keyed(gateway, "GET", "/items/1", "adm1n")[0] == 200
    # And unsigned (no key) it is refused like an unsigned SigV4 request
    assert keyed(gateway, "GET", "/items/1") == (403, {"message": "Missing Authentication Token"})
    # And the data key, or a wrong key, is refused as access denied
    assert keyed(gateway, "GET", "/items/1", "d4ta") == (403, {"message": "Forbidden"})
    assert keyed(gateway, "GET", "/items/1", "nope")[0] == 403
    # And the local scheduled-analysis trigger is admin too
    assert keyed(gateway, "POST", "/_local/scheduled-analysis", "d4ta")[0] == 403
    assert keyed(gateway, "POST", "/_local/scheduled-analysis", "adm1n")[0] == 200


def test_whitespace_around_a_key_is_one_rule_on_both_sides(project: Path) -> None:
    # Given a gateway with keys
    gateway = make_gateway(project, gateway_response=False, admin_key="adm1n", data_key="d4ta")
    # When a key comes with spaces or tabs before or after it / Then it is the key
    for sent in (" d4ta", "d4ta ", "\td4ta\t", "  d4ta  "):
        assert keyed(gateway, "POST", "/data", sent)[0] == 200, repr(sent)
    assert keyed(gateway, "GET", "/items/1", "adm1n \t")[0] == 200
    # And whitespace inside a key, or another kind of space around it, is another key
    for sent in ("d4 ta", "d4ta\u00a0", "\nd4ta"):
        assert keyed(gateway, "POST", "/data", sent)[0] == 403, repr(sent)


def test_two_api_key_headers_are_refused_as_ambiguous(project: Path) -> None:
    # Given a gateway with keys / When a request carries two x-api-key headers, even right ones
    gateway = make_gateway(project, admin_key="adm1n", data_key="d4ta")
    status, body = keyed(gateway, "POST", "/data", "nope", "adm1n")
    # Then it is refused, whatever order they come in, and says why
    assert (status, body["error"]) == (403, "ambiguous_api_key")
    assert keyed(gateway, "POST", "/data", "adm1n", "nope")[0] == 403
    assert keyed(gateway, "POST", "/data", "adm1n", "adm1n")[0] == 403


def test_a_data_key_without_an_admin_key_is_a_configuration_error(project: Path) -> None:
    with pytest.raises(ValueError, match="admin key"):
        make_gateway(project, data_key="d4ta")


def test_head_and_options(project: Path) -> None:
    # Given the gateway / When HEAD and OPTIONS are sent to a GET+POST resource
    gateway = make_gateway(project)
    head = gateway.handle(Request("HEAD", "/items/1"))
    options = gateway.handle(Request("OPTIONS", "/items/1"))
    # Then HEAD is answered by the GET route and OPTIONS lists the methods
    assert head.status == 200
    assert options.status == 204
    assert ("Allow", "GET, POST, OPTIONS") in options.headers
    assert gateway.handle(Request("OPTIONS", "/nowhere")).status == 404


def test_internal_route_runs_the_scheduled_function(project: Path) -> None:
    # Given the gateway / When the internal scheduled-analysis route is called
    response = make_gateway(project).handle(Request("POST", "/_local/scheduled-analysis"))
    # Then the handler's return value comes back as JSON
    assert response.status == 200
    assert body_of(response) == {"detail_type": "Scheduled Event", "analysed": 3}
