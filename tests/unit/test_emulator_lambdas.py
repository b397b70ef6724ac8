"""Loading handlers from their CodeUri and turning their results into HTTP responses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from emulator.lambdas import FunctionLoader, to_http_response


def write_function(root: Path, name: str, helper_value: str) -> None:
    directory = root / "functions" / name
    directory.mkdir(parents=True)
    (directory / "helper.py").write_text(f"VALUE = {helper_value!r}\n", encoding="utf-8")
    (directory / "app.py").write_text(
        "import helper\n\ndef handler(event, context):\n    return helper.VALUE\n",
        encoding="utf-8",
    )


def test_each_function_loads_once_with_its_own_sibling_modules(tmp_path: Path) -> None:
    # Given two functions, both app.py, both importing their own helper.py
    write_function(tmp_path, "one", "first")
    write_function(tmp_path, "two", "second")
    loader = FunctionLoader(tmp_path)
    # When both handlers are loaded (one of them twice)
    one = loader.handler("One", "functions/one/", "app.handler")
    two = loader.handler("Two", "functions/two", "app.handler")
    again = loader.handler("One", "functions/one/", "app.handler")
    # Then each sees its own helper, under a unique module name, loaded once
    assert one({}, None) == "first"
    assert two({}, None) == "second"
    assert again is one
    assert one.__module__ != two.__module__
    assert str(tmp_path / "functions" / "one") not in sys.path
    for name in (one.__module__, two.__module__):
        sys.modules.pop(name, None)


def test_missing_handler_attribute_is_an_error(tmp_path: Path) -> None:
    # Given a function whose module has no `handler`
    write_function(tmp_path, "odd", "x")
    # When / Then loading `app.nothing` fails clearly
    with pytest.raises(AttributeError, match="nothing"):
        FunctionLoader(tmp_path).handler("Odd", "functions/odd", "app.nothing")


@pytest.mark.parametrize(
    "result",
    [None, "text", {"statusCode": "abc"}, {"statusCode": 200, "body": {"not": "a string"}}],
)
def test_malformed_proxy_results_are_502(result: object) -> None:
    # Given a result API Gateway cannot use / When it is converted / Then it is a 502
    response = to_http_response(result)
    assert response.status == 502
    assert response.body == b'{"message": "Internal server error"}'


def test_proxy_result_defaults() -> None:
    # Given a minimal result / When it is converted
    response = to_http_response({"statusCode": 204})
    # Then the body is empty and a JSON content type is added, as API Gateway does
    assert (response.status, response.body) == (204, b"")
    assert ("Content-Type", "application/json") in response.headers
