"""IAM policies as template.yaml gives them to each function, and what a DynamoDB call needs.

Statements are read from each function's `Policies` (inline statements, the DynamoDB SAM
policy templates, DynamoDB managed policies) or its `Role`, with intrinsics and parameters
resolved; a call needs one (action, resource) pair per table or index it touches, and one per
item of a transaction, as AWS evaluates them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from emulator.intrinsics import DEFAULT_ACCOUNT, DEFAULT_REGION, Resolver

log = logging.getLogger("emulator.iam")

FUNCTION_TYPE = "AWS::Serverless::Function"
ROLE_TYPE = "AWS::IAM::Role"

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


@lru_cache(maxsize=1024)
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
