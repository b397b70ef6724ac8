"""Each function's IAM policy from template.yaml, enforced on the DynamoDB calls it makes.

Deployed, AWS checks every DynamoDB request against the role of the function that sends it.
Locally every function runs in one process and shares one client, so a context variable names
the function being invoked (`acting_as`), and a botocore `before-call.dynamodb` hook checks the
operation and every table and index it touches against that function's own statements. A call
the policy does not allow is answered the way DynamoDB answers it: a 400 AccessDeniedException,
raised by botocore as a ClientError, so the function's normal error path runs.

Calls made outside any function (test fixtures, the emulator's table setup and state file) are
not checked. The hook sits above the transport, so it holds whatever serves DynamoDB.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from emulator.iam_policy import (
    FunctionPolicy,
    Grant,
    function_policies,
    required_permissions,
    short_resource,
)
from emulator.intrinsics import DEFAULT_ACCOUNT, DEFAULT_REGION

log = logging.getLogger("emulator.iam")

__all__ = [
    "Denial",
    "Enforcer",
    "FunctionPolicy",
    "Grant",
    "acting_as",
    "active",
    "as_function",
    "current_function",
    "function_policies",
    "install",
    "required_permissions",
    "restore",
    "short_resource",
]

_CURRENT: ContextVar[str | None] = ContextVar("abtest_iam_function", default=None)


# ------------------------------------------------------------------ the enforcer


@dataclass(frozen=True)
class Denial:
    function_id: str
    operation: str
    action: str
    resource: str

    def message(self, account: str) -> str:
        """DynamoDB's wording for a call the caller's role does not allow."""
        role = f"arn:aws:sts::{account}:assumed-role/{self.function_id}Role/{self.function_id}"
        return (
            f"User: {role} is not authorized to perform: {self.action} on resource: "
            f"{self.resource} because no identity-based policy allows the {self.action} action"
        )


class Enforcer:
    """Decides each call and remembers which grants were used and which calls were refused."""

    def __init__(
        self,
        policies: Mapping[str, FunctionPolicy],
        *,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.policies = dict(policies)
        self.region = region
        self.account = account
        self.used: dict[str, set[Grant]] = {}
        self.calls: dict[str, set[tuple[str, str]]] = {}
        self.denials: list[Denial] = []
        self._lock = threading.Lock()
        # Policies do not change while the enforcer lives: decide each (function, action,
        # resource) once.
        self._decided: dict[tuple[str, str, str], tuple[Grant, ...]] = {}

    @classmethod
    def from_template(
        cls, template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
    ) -> Enforcer:
        return cls(function_policies(template, parameters))

    def table_arn(self, name: str) -> str:
        if name.startswith("arn:"):
            return name
        return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{name}"

    def check(self, function_id: str, operation: str, params: Mapping[str, Any]) -> Denial | None:
        allowed: list[Grant] = []
        for action, resource in required_permissions(operation, params, self.table_arn):
            grants = self._decide(function_id, action, resource)
            if not grants:
                denial = Denial(function_id, operation, action, resource)
                with self._lock:
                    self.denials.append(denial)
                log.warning("%s denied: %s on %s", function_id, action, resource)
                return denial
            allowed.extend(grants)
            with self._lock:
                self.calls.setdefault(function_id, set()).add((action, resource))
        with self._lock:
            self.used.setdefault(function_id, set()).update(allowed)
        return None

    def _decide(self, function_id: str, action: str, resource: str) -> tuple[Grant, ...]:
        key = (function_id, action, resource)
        if key not in self._decided:
            policy = self.policies.get(function_id) or FunctionPolicy(function_id)
            self._decided[key] = tuple(policy.decide(action, resource))
        return self._decided[key]

    def unused(self, function_id: str) -> list[Grant]:
        """Grants of the function that no checked call has needed."""
        used = self.used.get(function_id, set())
        return [g for g in self.policies[function_id].grants() if g not in used]

    def report(self) -> dict[str, dict[str, list[str]]]:
        """Per function: the permissions its calls used, and the grants never used."""
        return {
            function_id: {
                "used": sorted(
                    f"{a} on {short_resource(r)}" for a, r in self.calls.get(function_id, ())
                ),
                "unused": sorted(g.describe() for g in self.unused(function_id)),
            }
            for function_id in sorted(self.policies)
        }


# ------------------------------------------------------------------ who is calling


_ACTIVE: list[Enforcer] = []  # the installed enforcer, if any (a list: no global statement)
_HOOK_ID = "abtest-local-iam"
_installed_on_builtins = False

F = TypeVar("F", bound=Callable[..., Any])


def current_function() -> str | None:
    return _CURRENT.get()


@contextmanager
def acting_as(function_id: str) -> Iterator[None]:
    """DynamoDB calls made inside this block are checked against `function_id`'s policy."""
    token = _CURRENT.set(function_id)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def as_function(function_id: str, handler: F) -> F:
    """The handler, invoked under `function_id`'s identity."""

    @wraps(handler)
    def invoke(*args: Any, **kwargs: Any) -> Any:
        with acting_as(function_id):
            return handler(*args, **kwargs)

    return invoke  # type: ignore[return-value]


def active() -> Enforcer | None:
    return _ACTIVE[0] if _ACTIVE else None


def install(enforcer: Enforcer) -> Enforcer | None:
    """Enforce `enforcer` from now on, in every botocore client created after this call.

    Returns the enforcer it replaces (to put it back with `install` again), or None.
    """
    previous = active()
    _ACTIVE[:] = [enforcer]
    _register_hook()
    return previous


def restore(previous: Enforcer | None) -> None:
    """Put back what `install` returned (None: enforce nothing)."""
    if previous is None:
        _ACTIVE.clear()
    else:
        install(previous)


def _register_hook() -> None:
    """On botocore's built-in handlers (every new session) and boto3's default session."""
    global _installed_on_builtins  # noqa: PLW0603 - registration happens once per process
    import boto3
    import botocore.handlers

    if not _installed_on_builtins:
        botocore.handlers.BUILTIN_HANDLERS.append(("before-call.dynamodb", _before_call))
        _installed_on_builtins = True
    session = boto3.DEFAULT_SESSION
    if session is not None:
        session.events.register("before-call.dynamodb", _before_call, unique_id=_HOOK_ID)


def _before_call(model: Any, params: Mapping[str, Any], **_: Any) -> Any:
    function_id = _CURRENT.get()
    enforcer = active()
    if function_id is None or enforcer is None:
        return None
    body = params.get("body") or b"{}"
    api_params = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    denial = enforcer.check(function_id, model.name, api_params)
    if denial is None:
        return None
    return _access_denied(denial.message(enforcer.account))


def _access_denied(message: str) -> tuple[Any, dict[str, Any]]:
    """What botocore makes of DynamoDB's 400 AccessDeniedException: it raises a ClientError."""
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    headers = {
        "x-amzn-ErrorType": "AccessDeniedException",
        "content-type": "application/x-amz-json-1.0",
    }
    http = AWSResponse("https://dynamodb.local/", 400, HTTPHeaders.from_dict(headers), None)
    parsed = {
        "Error": {"Code": "AccessDeniedException", "Message": message},
        "message": message,
        "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": headers, "RetryAttempts": 0},
    }
    return http, parsed
