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
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from emulator.intrinsics import DEFAULT_ACCOUNT, DEFAULT_REGION, Resolver

log = logging.getLogger("emulator.iam")

FUNCTION_TYPE = "AWS::Serverless::Function"
ROLE_TYPE = "AWS::IAM::Role"
_CURRENT: ContextVar[str | None] = ContextVar("abtest_iam_function", default=None)

# The SAM policy templates a function may name, as SAM expands them (DynamoDB ones only).
_READ = ("GetItem", "Scan", "Query", "BatchGetItem", "DescribeTable")
_WRITE = ("PutItem", "UpdateItem", "BatchWriteItem")
_CRUD = (*_READ, "DeleteItem", "PutItem", "UpdateItem", "BatchWriteItem", "ConditionCheckItem")
_SAM_TEMPLATES: dict[str, tuple[tuple[str, ...], bool]] = {
    # name: (actions, also on the table's indexes)
    "DynamoDBCrudPolicy": (_CRUD, True),
    "DynamoDBReadPolicy": (_READ, True),
    "DynamoDBWritePolicy": (_WRITE, False),
}
_MANAGED: dict[str, tuple[str, ...]] = {
    "AmazonDynamoDBFullAccess": ("dynamodb:*",),
    "AmazonDynamoDBReadOnlyAccess": tuple(f"dynamodb:{a}" for a in _READ),
}
# Inside a transaction each item needs the permission of the single-item call it stands for.
_TRANSACT_WRITE = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _pattern(text: str, *, ignore_case: bool) -> re.Pattern[str]:
    """IAM wildcards: `*` any run of characters (slashes too), `?` any one character."""
    body = re.escape(text).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


@dataclass(frozen=True)
class Grant:
    """One action pattern on one resource pattern, as written in one Allow statement."""

    action: str
    resource: str

    def describe(self) -> str:
        return f"{self.action} on {short_resource(self.resource)}"


@dataclass(frozen=True)
class Statement:
    effect: str  # Allow or Deny
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditional: bool = False  # a Condition the emulator cannot evaluate

    def grants(self) -> list[Grant]:
        return [Grant(a, r) for a in self.actions for r in self.resources]

    def matching(self, action: str, resource: str) -> list[Grant]:
        return [
            grant
            for grant in self.grants()
            if _pattern(grant.action, ignore_case=True).match(action)
            and _pattern(grant.resource, ignore_case=False).match(resource)
        ]


@dataclass
class FunctionPolicy:
    function_id: str
    statements: list[Statement] = field(default_factory=list)

    def decide(self, action: str, resource: str) -> list[Grant]:
        """The Allow grants that let this call through; empty when denied.

        An explicit Deny wins; a statement with a Condition never allows (it is not evaluated).
        """
        allowed: list[Grant] = []
        for statement in self.statements:
            found = statement.matching(action, resource)
            if not found:
                continue
            if statement.effect == "Deny":
                return []
            if not statement.conditional:
                allowed.extend(found)
        return allowed

    def grants(self) -> list[Grant]:
        seen: dict[Grant, None] = {}
        for statement in self.statements:
            if statement.effect == "Allow" and not statement.conditional:
                seen.update(dict.fromkeys(statement.grants()))
        return list(seen)


def short_resource(arn: str) -> str:
    """`arn:aws:dynamodb:r:a:table/ab_variants/index/x` -> `ab_variants/index/x`."""
    _, sep, rest = arn.partition(":table/")
    return rest if sep else arn


# ------------------------------------------------------------------ policies from the template


class _PolicyReader:
    def __init__(self, template: Mapping[str, Any], resolver: Resolver) -> None:
        self.template = template
        self.resolver = resolver
        self.resources: Mapping[str, Any] = template.get("Resources") or {}

    def function(self, function_id: str) -> FunctionPolicy:
        props = self.resources[function_id].get("Properties") or {}
        policy = FunctionPolicy(function_id)
        for entry in _as_list(self.resolver.resolve(props.get("Policies"))):
            policy.statements.extend(self._entry(entry))
        role = self.resolver.resolve(props.get("Role")) if "Role" in props else None
        if role is not None:
            policy.statements.extend(self._role(str(role)))
        return policy

    def _entry(self, entry: Any) -> list[Statement]:
        if isinstance(entry, str):
            name = entry.rsplit("/", 1)[-1]
            actions = _MANAGED.get(name)
            return [Statement("Allow", actions, ("*",))] if actions else []
        if not isinstance(entry, Mapping):
            return []
        if "Statement" in entry:
            return [_statement(s) for s in _as_list(entry["Statement"])]
        statements = []
        for name, args in entry.items():
            statements.extend(self._sam_template(str(name), args))
        return statements

    def _sam_template(self, name: str, args: Any) -> list[Statement]:
        if name not in _SAM_TEMPLATES:
            log.warning("policy template %s is not checked locally: it grants nothing", name)
            return []
        actions, on_indexes = _SAM_TEMPLATES[name]
        table = (args or {}).get("TableName", "")
        arn = f"arn:aws:dynamodb:{self._region}:{self._account}:table/{table}"
        resources = (arn, f"{arn}/index/*") if on_indexes else (arn,)
        return [Statement("Allow", tuple(f"dynamodb:{a}" for a in actions), resources)]

    def _role(self, role: str) -> list[Statement]:
        """Role: !GetAtt SomeRole.Arn resolves to `SomeRole.Arn` locally: read its policies."""
        logical_id = role.split(".", 1)[0]
        resource = self.resources.get(logical_id) or {}
        if resource.get("Type") != ROLE_TYPE:
            return []
        props = self.resolver.resolve(resource.get("Properties") or {})
        statements: list[Statement] = []
        for policy in _as_list(props.get("Policies")):
            document = (policy or {}).get("PolicyDocument") or {}
            statements.extend(_statement(s) for s in _as_list(document.get("Statement")))
        for arn in _as_list(props.get("ManagedPolicyArns")):
            statements.extend(self._entry(str(arn)))
        return statements

    @property
    def _region(self) -> str:
        return str(self.resolver.pseudo["AWS::Region"])

    @property
    def _account(self) -> str:
        return str(self.resolver.pseudo["AWS::AccountId"])


def _statement(raw: Mapping[str, Any]) -> Statement:
    return Statement(
        effect=str(raw.get("Effect", "Allow")),
        actions=tuple(str(a) for a in _as_list(raw.get("Action"))),
        resources=tuple(str(r) for r in _as_list(raw.get("Resource"))),
        conditional="Condition" in raw,
    )


def function_policies(
    template: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
    *,
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT,
) -> dict[str, FunctionPolicy]:
    """{function logical id: its statements}, intrinsics and parameters resolved."""
    resolver = Resolver(template, parameters, region=region, account=account)
    reader = _PolicyReader(template, resolver)
    resources = template.get("Resources") or {}
    return {
        logical_id: reader.function(logical_id)
        for logical_id, resource in resources.items()
        if resource.get("Type") == FUNCTION_TYPE
    }


# ------------------------------------------------------------------ what a call needs


def required_permissions(
    operation: str, params: Mapping[str, Any], table_arn: Callable[[str], str]
) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) pairs that one DynamoDB API call needs."""
    if operation == "TransactWriteItems":
        needed = []
        for item in params.get("TransactItems") or []:
            for kind, spec in item.items():
                action = _TRANSACT_WRITE.get(kind, kind)
                needed.append((f"dynamodb:{action}", table_arn(spec.get("TableName", ""))))
        return needed
    if operation == "TransactGetItems":
        return [
            ("dynamodb:GetItem", table_arn((item.get("Get") or {}).get("TableName", "")))
            for item in params.get("TransactItems") or []
        ]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        tables = (params.get("RequestItems") or {}).keys()
        return [(f"dynamodb:{operation}", table_arn(name)) for name in tables]
    name = params.get("TableName")
    if name is None:
        return [(f"dynamodb:{operation}", "*")]
    arn = table_arn(str(name))
    if params.get("IndexName"):
        arn = f"{arn}/index/{params['IndexName']}"
    return [(f"dynamodb:{operation}", arn)]


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
        policy = self.policies.get(function_id) or FunctionPolicy(function_id)
        allowed: list[Grant] = []
        for action, resource in required_permissions(operation, params, self.table_arn):
            grants = policy.decide(action, resource)
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
