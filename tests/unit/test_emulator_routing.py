"""Route matching, as API Gateway REST resolves resources and methods."""

from __future__ import annotations

import pytest

from emulator.routing import Router
from emulator.template import DEFAULT_TEMPLATE, Route, api_routes, load_template


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(api_routes(load_template(DEFAULT_TEMPLATE)))


def test_static_segment_beats_a_parameter(router: Router) -> None:
    # Given the real template's routes, with both /experiments/get-variant and /experiments/{id}
    # When POST /api/v1/experiments/get-variant is matched
    match = router.match("POST", "/api/v1/experiments/get-variant")
    # Then the get-variant route wins over {id}
    assert match is not None
    assert match.route.function_id == "GetVariantFunction"
    assert match.path_parameters == {}


def test_parameter_segment_captures_the_value(router: Router) -> None:
    # Given the real routes / When a start request with an id is matched
    match = router.match("POST", "/api/v1/experiments/17/start")
    # Then the id is the path parameter
    assert match is not None
    assert match.route.function_id == "StartExperimentFunction"
    assert match.path_parameters == {"id": "17"}


def test_trailing_slash_is_ignored_for_matching(router: Router) -> None:
    # Given the resource /api/v1/experiments / When it is requested with a trailing slash
    listing = router.match("GET", "/api/v1/experiments/")
    creating = router.match("post", "/api/v1/experiments/")
    # Then the same routes answer
    assert listing is not None and listing.route.function_id == "ListExperimentsFunction"
    assert creating is not None and creating.route.function_id == "CreateExperimentFunction"


def test_unknown_path_or_wrong_method_has_no_route(router: Router) -> None:
    # Given the real routes / When unknown paths or undefined methods are matched
    # Then nothing matches an unknown path (the gateway answers MISSING_AUTHENTICATION_TOKEN)
    assert router.match("GET", "/api/v1/nothing") is None
    assert router.match("GET", "/api/v1/experiments/1/start/extra") is None
    # And a method the resource lacks goes to its ANY fallback (the 405 answer), not elsewhere
    fallback = router.match("DELETE", "/api/v1/experiments/1")
    assert fallback is not None and fallback.route.method == "ANY"
    assert fallback.route.function_id == "MethodNotAllowedFunction"
    # And a GET on the static get-variant resource does not fall back to GET {id}
    static = router.match("GET", "/api/v1/experiments/get-variant")
    assert static is not None and static.route.path == "/api/v1/experiments/get-variant"
    assert static.route.function_id == "MethodNotAllowedFunction"


def test_path_parameters_are_url_decoded() -> None:
    # Given a route with a parameter / When the request path has an encoded value
    router = Router([Route("GET", "/things/{name}", "F", ".", "app.handler")])
    match = router.match("GET", "/things/a%20b%2Fc")
    # Then the parameter is decoded
    assert match is not None and match.path_parameters == {"name": "a b/c"}


def test_any_method_and_greedy_proxy() -> None:
    # Given an ANY route on a greedy path and a static one beside it
    router = Router(
        [
            Route("ANY", "/files/{proxy+}", "Proxy", ".", "app.handler"),
            Route("GET", "/files/index", "Index", ".", "app.handler"),
        ]
    )
    # When / Then the static route wins and the greedy one takes the rest, for every method
    index = router.match("GET", "/files/index")
    deep = router.match("PUT", "/files/a/b")
    assert index is not None and index.route.function_id == "Index"
    assert deep is not None and deep.path_parameters == {"proxy": "a/b"}
    assert router.match("GET", "/files") is None
    assert router.allowed_methods("/files/x") == ["ANY"]


def test_a_remembered_resource_is_the_one_matching_finds() -> None:
    # Given a fresh router over the real routes, and paths asked twice or more
    router = Router(api_routes(load_template(DEFAULT_TEMPLATE)))
    paths = [
        "/api/v1/experiments/get-variant",
        "/api/v1/experiments/17/start",
        "/api/v1/experiments/",
        "/api/v1/nothing",
        "/api/v1/experiments/1/start/extra",
    ]
    # When each is resolved before and after being remembered
    first = [router.resource_for(path) for path in paths]
    again = [router.resource_for(path) for path in paths]
    # Then the answers are the same, and the ones matching computes
    assert first == again == [router._resource_for(path) for path in paths]
    assert first[0] == "/api/v1/experiments/get-variant" and first[3] is None
