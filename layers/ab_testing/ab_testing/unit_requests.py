"""get-variant, record-result and exposure bodies, read on the hot path without pydantic.

The models of ab_testing.models (GetVariantIn, RecordResultIn, ExposureIn) say what a valid
body is, and they stay the reference: this reader takes only bodies whose every field it can
read with certainty (a string with no whitespace to strip, an integer in its bounds, no
timestamp to parse...) and hands any other body to the model, imported then, which answers or
refuses it exactly as before. So the common request never imports pydantic (a cold start
costs ~100 ms less), and an unusual one gets the model's own answer and error.
tests/unit/test_unit_requests.py checks on generated bodies that both read the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ab_testing import targeting

MAX_INTEGER_ID = 10**15 - 1
MAX_UNIT_BYTES = 512
MAX_NAME_CHARS = 200
MAX_KEY_CHARS = 200
MAX_COVARIATES = 20
_METRIC_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True)
class UnitRequest:
    experiment_name: str | None = None
    experiment_id: int | None = None
    user_id: int | str | None = None
    session_id: str | None = None
    covariates: dict[str, Any] | None = None
    attributes: dict[Any, Any] | None = None


@dataclass(frozen=True)
class ResultRequest(UnitRequest):
    metric_name: str = ""
    metric_value: Any = None
    idempotency_key: str | None = None
    occurred_at: Any = None


@dataclass(frozen=True)
class ExposureRequest(UnitRequest):
    variant_id: int = 0


_UNIT = {"experiment_name", "experiment_id", "user_id", "session_id", "covariates"}
_FIELDS = {
    "GetVariantIn": _UNIT | {"attributes"},
    "RecordResultIn": _UNIT | {"metric_name", "metric_value", "idempotency_key", "occurred_at"},
    "ExposureIn": _UNIT | {"attributes", "variant_id"},
}
_KINDS = {
    "GetVariantIn": UnitRequest,
    "RecordResultIn": ResultRequest,
    "ExposureIn": ExposureRequest,
}


def get_variant(body: Any) -> Any:
    return read("GetVariantIn", body)


def record_result(body: Any) -> Any:
    return read("RecordResultIn", body)


def exposure(body: Any) -> Any:
    return read("ExposureIn", body)


def read(model: str, body: Any) -> Any:
    """The request as ``model`` reads it: from here when certain, else from the model (which
    also refuses a body that is not a JSON object). The Python API may pass a model itself."""
    if isinstance(body, dict):
        fields = _certain(model, body)
        if fields is not None:
            return _KINDS[model](**fields)
    from ab_testing import models
    from ab_testing.validation import parse

    kind = getattr(models, model)
    return body if isinstance(body, kind) else parse(kind, body)


def _certain(model: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The fields when every one is certainly valid as sent; None when the model must say."""
    if not body.keys() <= _FIELDS[model]:
        return None
    values = {k: v for k, v in body.items() if v is not None}
    checks = (
        _name(values.get("experiment_name")),
        _integer(values.get("experiment_id"), 1),
        _user(values.get("user_id")),
        _unit(values.get("session_id")),
        _covariates(values.get("covariates")),
        _attributes(values.get("attributes")),
    )
    if not all(checks):
        return None
    if "experiment_name" not in values and "experiment_id" not in values:
        return None
    if "user_id" not in values and "session_id" not in values:
        return None
    if model == "RecordResultIn" and not _certain_result(body, values):
        return None
    if model == "ExposureIn":
        if not _integer(values.get("variant_id"), 1) or "variant_id" not in values:
            return None
        if "user_id" in values and "session_id" in values:
            return None
    return values


def _certain_result(body: dict[str, Any], values: dict[str, Any]) -> bool:
    name = values.get("metric_name")
    if not (isinstance(name, str) and _METRIC_NAME.fullmatch(name)):
        return False
    if "metric_value" not in body:
        return False  # required, though any value (null too) is the metric's to judge
    key = values.get("idempotency_key")
    if key is not None and not (_plain_text(key) and len(key) <= MAX_KEY_CHARS):
        return False
    return "occurred_at" not in values  # timestamps are the model's to parse


def _plain_text(value: Any) -> bool:
    """A non-empty string with nothing for the model's whitespace stripping to change."""
    if not isinstance(value, str) or value == "" or value[0].isspace() or value[-1].isspace():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False  # a lone surrogate: the model's to refuse
    return True


def _name(value: Any) -> bool:
    return value is None or (_plain_text(value) and len(value) <= MAX_NAME_CHARS)


def _integer(value: Any, least: int) -> bool:
    return value is None or (type(value) is int and least <= value <= MAX_INTEGER_ID)


def _user(value: Any) -> bool:
    if type(value) is int:
        return -MAX_INTEGER_ID <= value <= MAX_INTEGER_ID
    return _unit(value)


def _unit(value: Any) -> bool:
    if value is None:
        return True
    return _plain_text(value) and len(value.encode("utf-8")) <= MAX_UNIT_BYTES


def _covariates(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, dict) or len(value) > MAX_COVARIATES:
        return False
    return all(isinstance(k, str) and _METRIC_NAME.fullmatch(k) for k in value)


def _attributes(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, dict):
        return False
    try:
        targeting.check_attributes(value)
    except ValueError:
        return False
    return True
