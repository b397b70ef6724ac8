"""Match a request's method and path to the template's Api events, as API Gateway REST does."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from emulator.template import Route

ANY = "ANY"
RESOURCES_KEPT = 4096  # request paths whose resource is remembered


@dataclass(frozen=True)
class Match:
    route: Route
    path_parameters: dict[str, str]


def split_path(path: str) -> list[str]:
    """Segments of a path; a trailing slash (and empty segments) do not count."""
    return [segment for segment in path.split("/") if segment]


def _segment_rank(template_segment: str) -> int:
    """0 for a static segment, 1 for {param}, 2 for a greedy {param+}: lower wins."""
    if template_segment.startswith("{") and template_segment.endswith("+}"):
        return 2
    if template_segment.startswith("{") and template_segment.endswith("}"):
        return 1
    return 0


def _match_segments(template: list[str], actual: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for index, pattern in enumerate(template):
        rank = _segment_rank(pattern)
        if rank == 2:
            if index >= len(actual):
                return None
            params[pattern[1:-2]] = unquote("/".join(actual[index:]))
            return params
        if index >= len(actual):
            return None
        if rank == 1:
            params[pattern[1:-1]] = unquote(actual[index])
        elif pattern != actual[index]:
            return None
    return params if len(template) == len(actual) else None


class Router:
    """Static segments beat {param} segments, which beat {proxy+}, segment by segment."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        self._patterns = [(route, split_path(route.path)) for route in self.routes]
        # Request path -> its resource: the routes never change, and clients repeat paths.
        self._resources: dict[str, str | None] = {}

    def _candidates(self, path: str) -> list[tuple[tuple[int, ...], Route, dict[str, str]]]:
        actual = split_path(path)
        found = []
        for route, pattern in self._patterns:
            params = _match_segments(pattern, actual)
            if params is not None:
                rank = tuple(_segment_rank(segment) for segment in pattern)
                found.append((rank, route, params))
        return found

    def resource_for(self, path: str) -> str | None:
        """The best-matching resource path for a request path, whatever the method."""
        if path in self._resources:
            return self._resources[path]
        resource = self._resource_for(path)
        if len(self._resources) >= RESOURCES_KEPT:
            self._resources.clear()
        self._resources[path] = resource
        return resource

    def _resource_for(self, path: str) -> str | None:
        candidates = self._candidates(path)
        if not candidates:
            return None
        return min(candidates, key=lambda c: c[0])[1].path

    def allowed_methods(self, path: str) -> list[str]:
        """Methods defined on the resource the path resolves to."""
        resource = self.resource_for(path)
        methods = {route.method for route in self.routes if route.path == resource}
        return sorted(methods)

    def match(self, method: str, path: str) -> Match | None:
        """The route for this method and path, or None (API Gateway: missing auth token)."""
        resource = self.resource_for(path)
        if resource is None:
            return None
        # The resource is chosen first, then the method on it: like API Gateway, a
        # GET on /experiments/get-variant does not fall back to GET /experiments/{id}.
        on_resource = [r for r in self.routes if r.path == resource]
        route = next((r for r in on_resource if r.method == method.upper()), None)
        route = route or next((r for r in on_resource if r.method == ANY), None)
        if route is None:
            return None
        params = _match_segments(split_path(route.path), split_path(path)) or {}
        return Match(route, params)
