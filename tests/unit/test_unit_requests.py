"""The hot path's reader of get-variant, record-result and exposure bodies reads every body as
the pydantic models do: the same fields, or the same 400 (ab_testing.unit_requests)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ab_testing import models, unit_requests
from ab_testing.errors import InvalidInput
from ab_testing.validation import parse
from tests.conftest import ROOT

MODELS = ["GetVariantIn", "RecordResultIn", "ExposureIn"]
LIMIT = 10**15 - 1

texts = st.one_of(
    st.sampled_from(
        ["", " ", "a", " a", "a ", "\ta", "a\n", "\u00a0a", "a\u2028", "\x1ca", "123", "-5",
         "5.0", "user:1", "session:x", "lead qualification", "x" * 200, "x" * 201, "é" * 256,
         "é" * 257, "\ud800", "cost_usd", "a b", "resolution_rate", "2026-01-02T03:04:05Z"]
    ),
    st.text(max_size=12),
)  # fmt: skip
numbers = st.one_of(
    st.sampled_from([0, 1, -1, LIMIT, LIMIT + 1, -LIMIT, -LIMIT - 1, 2**63, 1.0, 1.5, -0.0]),
    st.integers(-(10**16), 10**16),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
scalars = st.one_of(st.none(), texts, numbers)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(texts, scalars.filter(lambda x: isinstance(x, str))), inner, max_size=3
        ),  # noqa: E501
    ),
    max_leaves=6,
)
covariates = st.one_of(
    st.dictionaries(
        st.sampled_from(["tickets", "spend", " spend", "a b", "x" * 65]), values, max_size=3
    ),  # noqa: E501
    st.dictionaries(st.text(max_size=4), st.floats(), min_size=19, max_size=22),
    values,
)
# Each field mostly as clients send it, often not: the reader must take the first and hand
# the second to the model, and a generated body must often be valid for that to be tested.
FIELDS = {
    "experiment_name": st.one_of(st.sampled_from(["Lead Qualification Prompt Test", "x"]), texts),
    "experiment_id": st.one_of(st.integers(1, 10**6), numbers),
    "user_id": st.one_of(
        st.integers(-(10**6), 10**6), st.text(min_size=1, max_size=8), numbers, texts
    ),  # noqa: E501
    "session_id": st.one_of(st.text(min_size=1, max_size=8), texts),
    "covariates": st.one_of(
        st.dictionaries(st.sampled_from(["spend", "tickets"]), st.floats(-1e6, 1e6)), covariates
    ),  # noqa: E501
    "attributes": st.one_of(
        st.dictionaries(st.sampled_from(["plan", "app.version", "tags"]), values, max_size=3),
        values,
    ),  # noqa: E501
    "metric_name": st.one_of(st.sampled_from(["resolution_rate", "cost_usd", "x.y:z-1"]), texts),
    "metric_value": values,
    "idempotency_key": st.one_of(st.text(min_size=1, max_size=20), texts),
    "occurred_at": st.one_of(texts, numbers),
    "variant_id": st.one_of(st.integers(1, 100), numbers),
}
# As clients send them: drawn as often as all the rest together.
USUAL = {
    "experiment_name": st.sampled_from(["Lead Qualification Prompt Test", "x", "é" * 200]),
    "experiment_id": st.integers(1, 10**6),
    "user_id": st.one_of(
        st.integers(-(10**15) + 1, 10**15 - 1), st.text("ab1-:é", min_size=1, max_size=8)
    ),  # noqa: E501
    "session_id": st.text("ab1-:é", min_size=1, max_size=8),
    "covariates": st.dictionaries(st.sampled_from(["spend", "tickets"]), st.floats(-1e6, 1e6)),
    "attributes": st.dictionaries(
        st.sampled_from(["plan", "tags"]), st.sampled_from(["pro", 3, [1]])
    ),  # noqa: E501
    "metric_name": st.sampled_from(["resolution_rate", "cost_usd", "x.y:z-1"]),
    "idempotency_key": st.text("k1-", min_size=1, max_size=20),
    "variant_id": st.integers(1, 100),
}
OWN = {
    "GetVariantIn": ["covariates", "attributes"],
    "RecordResultIn": [
        "covariates",
        "metric_name",
        "metric_value",
        "idempotency_key",
        "occurred_at",
    ],  # noqa: E501
    "ExposureIn": ["covariates", "attributes", "variant_id"],
}


def bodies(model: str) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies with one way to name the experiment and the unit, the model's own fields, and
    now and then a field of another model, a second name, a None or no unit at all."""
    which = st.sampled_from(
        [{"experiment_name"}, {"experiment_id"}, {"experiment_name", "experiment_id"}, set()]
    )  # noqa: E501
    unit = st.sampled_from([{"user_id"}, {"session_id"}, {"user_id", "session_id"}, set()])
    others = st.sets(
        st.sampled_from([f for f in FIELDS if f not in OWN[model]] + ["extra"]), max_size=1
    )  # noqa: E501
    required = {"RecordResultIn": {"metric_name", "metric_value"}, "ExposureIn": {"variant_id"}}
    own = st.sets(st.sampled_from(OWN[model])).map(lambda o: o | required.get(model, set()))

    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        names = (
            draw(which)
            | draw(unit)
            | draw(own)
            | (draw(others) if draw(st.integers(0, 9)) == 0 else set())
        )  # noqa: E501
        body = {}
        for name in sorted(names):
            strategy = FIELDS.get(name, values)
            if name in USUAL and draw(st.booleans()):
                strategy = USUAL[name]
            body[name] = None if draw(st.integers(0, 19)) == 0 else draw(strategy)
        return body

    return build()


def outcome(read: Any) -> tuple[str, Any]:
    try:
        request = read()
    except InvalidInput as exc:
        return "refused", (str(exc), exc.field, exc.details)
    names = [f.name for f in dataclasses.fields(unit_requests.ExposureRequest)]
    names += ["metric_name", "metric_value", "idempotency_key", "occurred_at"]
    return "read", {n: _same(getattr(request, n, None)) for n in names}


def _same(value: Any) -> Any:
    """NaN equal to NaN, and 1 apart from True, for the comparison."""
    return json.dumps(value, sort_keys=True, default=str) + type(value).__name__


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_hot_path_reads_every_body_as_the_model_does(model: str, data: Any) -> None:
    body = data.draw(bodies(model))
    reference = outcome(lambda: parse(getattr(models, model), body))
    assert outcome(lambda: unit_requests.read(model, body)) == reference


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("GetVariantIn", {"experiment_name": "Lead Qualification Prompt Test", "user_id": 123}),
        ("GetVariantIn", {"experiment_id": 1, "session_id": "s-1", "attributes": {"plan": "pro"}}),
        ("GetVariantIn", {"experiment_name": "x", "user_id": "u-9", "covariates": {"spend": 3}}),
        (
            "RecordResultIn",
            {"experiment_name": "Lead Qualification Prompt Test", "user_id": 123,
             "metric_name": "resolution_rate", "metric_value": 1.0, "idempotency_key": "r-1"},
        ),
        ("ExposureIn", {"experiment_id": 3, "user_id": 7, "variant_id": 2}),
    ],
)  # fmt: skip
def test_the_guides_bodies_are_read_without_the_model(model: str, body: dict[str, Any]) -> None:
    # Given a body as the guide and the client send it, read in a fresh interpreter
    probe = (
        "import json, sys\n"
        "from ab_testing import unit_requests\n"
        f"request = unit_requests.read({model!r}, json.loads(sys.argv[1]))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pydantic'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(body)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "layers" / "ab_testing")},
    )
    # Then it is read without importing pydantic at all
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
