"""Load each function's handler from its CodeUri and call it like the Lambda runtime does."""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from emulator import iam
from emulator.events import FakeLambdaContext
from emulator.template import Route

log = logging.getLogger("emulator.lambdas")

Handler = Callable[[dict[str, Any], Any], Any]
INTERNAL_ERROR = json.dumps({"message": "Internal server error"})


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def apply_environment(variables: Mapping[str, str]) -> None:
    """Set the functions' environment in this process (every function shares Globals)."""
    os.environ.update(variables)
    # No X-Ray daemon locally: Powertools' Tracer would only complain.
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


def add_to_sys_path(directories: Iterable[Path]) -> None:
    """Put layer directories (and their python/ subfolder, as Lambda does) on sys.path."""
    for directory in directories:
        for candidate in (directory / "python", directory):
            text = str(candidate.resolve())
            if candidate.is_dir() and text not in sys.path:
                sys.path.insert(0, text)


class FunctionLoader:
    """Imports each function's handler module once, under a unique module name."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.RLock()

    def handler(self, function_id: str, code_uri: str, handler: str) -> Handler:
        with self._lock:
            if function_id not in self._handlers:
                self._handlers[function_id] = self._load(function_id, code_uri, handler)
            return self._handlers[function_id]

    def _load(self, function_id: str, code_uri: str, handler: str) -> Handler:
        module_path, _, attribute = handler.rpartition(".")
        code_dir = (self.base_dir / code_uri).resolve()
        source = code_dir / (module_path.replace(".", "/") + ".py")
        module = _import_file(f"abtest_fn_{_safe(function_id)}", source, code_dir)
        function = getattr(module, attribute, None)
        if not callable(function):
            raise AttributeError(f"{source} has no callable {attribute!r}")
        return function


def _safe(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _import_file(module_name: str, source: Path, code_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # The function's own directory is /var/task in Lambda: its sibling modules import.
    sys.path.insert(0, str(code_dir))
    before = set(sys.modules)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        sys.path.remove(str(code_dir))
        _forget_siblings(set(sys.modules) - before, code_dir)
    return module


def _forget_siblings(names: set[str], code_dir: Path) -> None:
    """Drop the function's own helper modules from sys.modules once its handler is loaded.

    Every function may have a `utils.py`: the next function must import its own, not this one.
    """
    for name in names:
        origin = getattr(sys.modules.get(name), "__file__", None)
        if origin and Path(origin).resolve().is_relative_to(code_dir):
            del sys.modules[name]


@contextmanager
def invoked_as(function_id: str) -> Iterator[None]:
    """What a Lambda instance of `function_id` has to itself: its IAM role (every DynamoDB
    call is checked against its policy) and its own singletons, so its own experiment cache:
    one function's cached read never answers another's."""
    from ab_testing import runtime

    scope = runtime.current_function.set(function_id)
    try:
        with iam.acting_as(function_id):
            yield
    finally:
        runtime.current_function.reset(scope)


def make_context(function_id: str, settings: Mapping[str, Any]) -> FakeLambdaContext:
    return FakeLambdaContext(
        function_id,
        memory_limit_in_mb=int(settings.get("MemorySize", 128)),
        timeout_seconds=float(settings.get("Timeout", 3)),
    )


def invoke_api(
    loader: FunctionLoader,
    route: Route,
    event: dict[str, Any],
    settings: Mapping[str, Any],
) -> HttpResponse:
    """Call the route's handler; any exception (at import or in the handler) is a 502."""
    try:
        handler = loader.handler(route.function_id, route.code_uri, route.handler)
        with invoked_as(route.function_id):
            result = handler(event, make_context(route.function_id, settings))
    except Exception:
        log.exception("%s raised for %s %s", route.function_id, route.method, route.path)
        return internal_error()
    return to_http_response(result)


def to_http_response(result: Any) -> HttpResponse:
    """Turn a proxy-integration result into an HTTP response; malformed ones are a 502."""
    if not isinstance(result, Mapping):
        log.error("handler returned %s, not a proxy response dict", type(result).__name__)
        return internal_error()
    try:
        status = int(result.get("statusCode", 200))
        headers = _response_headers(result)
        body = _response_body(result)
    except (TypeError, ValueError) as exc:
        log.error("malformed proxy response: %s", exc)
        return internal_error()
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(status, headers, body)


def _response_headers(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    multi: dict[str, list[str]] = {}
    for name, value in (result.get("headers") or {}).items():
        multi[str(name)] = [str(value)]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            raise TypeError("multiValueHeaders values must be lists")
        multi.setdefault(str(name), [])
        multi[str(name)].extend(str(v) for v in values if str(v) not in multi[str(name)])
    return [(name, value) for name, values in multi.items() for value in values]


def _response_body(result: Mapping[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise TypeError("body must be a string")
    if result.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8")


def internal_error() -> HttpResponse:
    return HttpResponse(502, [("Content-Type", "application/json")], INTERNAL_ERROR.encode())
