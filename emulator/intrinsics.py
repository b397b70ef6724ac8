"""CloudFormation short tags in YAML, and the intrinsic functions the emulator evaluates."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
TABLE_TYPE = "AWS::DynamoDB::Table"
NO_VALUE = object()  # what !Ref AWS::NoValue resolves to; removed from lists and mappings


# ------------------------------------------------------------------ YAML loader


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Tag value` into `{"Fn::Tag": value}` (and `!Ref` into `Ref`)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml_template(path: Path | str) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template, short tags included."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a CloudFormation template")
    return data


# ------------------------------------------------------------------ resolver


# Local defaults that differ from the template's: one local stack has no second stack or
# earlier creation to collide with, so its tables keep the plain names (ab_experiments ...).
LOCAL_DEFAULTS = {"TableNaming": "fixed"}


def parameter_values(
    template: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Parameter defaults as strings (as CloudFormation passes them), the local defaults,
    then the overrides."""
    values: dict[str, str] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if isinstance(spec, Mapping) and "Default" in spec:
            values[name] = to_str(LOCAL_DEFAULTS.get(name, spec["Default"]))
    for name, value in (overrides or {}).items():
        values[name] = to_str(value)
    return values


class Resolver:
    """Evaluates the intrinsic functions the emulator needs, against one template."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
        *,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
        stack_name: str = "local",
    ) -> None:
        self.template = template
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        self.params = parameter_values(template, parameters)
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self._conditions: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key[4:], arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        resource = self.resources.get(name)
        if isinstance(resource, Mapping) and resource.get("Type") == TABLE_TYPE:
            return self.table_name(name)
        if resource is not None:
            return name  # physical ids of other resources do not exist locally
        raise KeyError(f"!Ref to unknown parameter or resource: {name}")

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = self.resources.get(logical_id) or {}
        if resource.get("Type") == TABLE_TYPE:
            arn = "arn:aws:dynamodb:{}:{}:table/{}".format(
                self.pseudo["AWS::Region"],
                self.pseudo["AWS::AccountId"],
                self.table_name(logical_id),
            )
            return arn if attribute == "Arn" else f"{arn}/stream/local"
        return f"{logical_id}.{attribute}"

    def table_name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties") or {}
        if "TableName" not in props:
            return logical_id
        return str(self.resolve(props["TableName"]))

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = (self.template.get("Conditions") or {})[name]
            self._conditions[name] = bool(self.resolve(spec))
        return self._conditions[name]

    def _function(self, name: str, arg: Any) -> Any:
        if name == "Sub":
            return self._sub(arg)
        if name == "GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else self.resolve(arg)
            return self.get_att(str(parts[0]), str(parts[1]))
        if name == "If":
            cond, when_true, when_false = arg
            return self.resolve(when_true if self.condition(cond) else when_false)
        return self._plain_function(name, self.resolve(arg))

    @staticmethod
    def _plain_function(name: str, arg: Any) -> Any:
        if name == "Equals":
            return to_str(arg[0]) == to_str(arg[1])
        if name == "Not":
            return not arg[0]
        if name == "And":
            return all(arg)
        if name == "Or":
            return any(arg)
        if name == "Join":
            return str(arg[0]).join(to_str(v) for v in arg[1])
        if name == "Select":
            return arg[1][int(arg[0])]
        if name == "Split":
            return str(arg[1]).split(str(arg[0]))
        if name == "Base64":
            return base64.b64encode(str(arg).encode()).decode()
        raise NotImplementedError(f"Fn::{name} is not supported by the local emulator")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = str(arg[0]), {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = str(arg), {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return to_str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return to_str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
