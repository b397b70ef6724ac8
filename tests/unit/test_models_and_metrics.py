"""Pure logic: request models, the metric catalogue, value validation, the HTTP glue."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest

from ab_testing import metrics
from ab_testing.errors import InvalidInput
from ab_testing.http import ApiRequest, api, json_safe
from ab_testing.models import ExperimentIn, GetVariantIn, RecordResultIn
from ab_testing.queries import StopQuery
from ab_testing.validation import parse
from tests.conftest import guide_experiment


def test_the_guides_create_body_is_valid_and_defaults_are_sensible() -> None:
    body = parse(ExperimentIn, guide_experiment())
    assert body.analysis_method == "fixed_horizon"
    assert body.minimum_detectable_effect == 0.10
    assert (body.auto_stop, body.min_duration_days, body.max_duration_days) == (False, 7.0, None)
    minimal = parse(
        ExperimentIn,
        {
            k: v
            for k, v in guide_experiment().items()
            if k in ("name", "experiment_type", "primary_metric", "variants")
        },
    )
    assert (minimal.target_percentage, minimal.min_sample_size, minimal.confidence_level) == (
        100.0,
        100,
        0.95,
    )


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"variants": []}, "variants", "at least two"),
        ({"secondary_metrics": ["resolution_rate"]}, "secondary_metrics", "primary"),
        ({"guardrail_metrics": ["token_usage"]}, "guardrail_metrics", "secondary"),
        ({"overrides": {"7": "Nobody"}}, "overrides", "unknown variant"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_create_errors_name_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(ExperimentIn, guide_experiment(**changes))
    assert caught.value.field == field
    assert words in caught.value.message


def test_a_declared_metric_joins_the_catalogue_for_that_experiment_only() -> None:
    body = guide_experiment(
        metrics=[{"name": "response_quality", "lower": 0, "upper": 10}],
        secondary_metrics=["response_quality"],
    )
    assert parse(ExperimentIn, body).metrics[0].spec().upper == 10
    assert metrics.resolve("response_quality") is None


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("resolution_rate", 0.5, "0 or 1"),
        ("satisfaction_score", 5.01, "<= 5"),
        ("response_time", -0.1, ">= 0"),
        ("token_usage", 10.5, "whole number"),
        ("satisfaction_score", float("nan"), "finite"),
        ("satisfaction_score", float("inf"), "finite"),
        ("satisfaction_score", "4", "must be a number"),
        ("satisfaction_score", True, "must be a number"),
        ("token_usage", 10**30, "within"),
    ],
)
def test_bad_values_are_refused_with_the_reason(name: str, value: Any, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        metrics.validate_value(metrics.CATALOGUE[name], value)
    assert problem in caught.value.message


def test_good_values_become_exact_decimals_at_six_places() -> None:
    spec = metrics.CATALOGUE["satisfaction_score"]
    assert metrics.validate_value(spec, 4.5) == Decimal("4.5")
    assert metrics.validate_value(spec, 0.1) == Decimal("0.1")
    assert metrics.validate_value(spec, 4.1234567) == Decimal("4.123457")
    assert metrics.validate_value(metrics.CATALOGUE["resolution_rate"], 1) == 1


def test_direction_of_the_guides_metrics() -> None:
    lower = {n for n, s in metrics.CATALOGUE.items() if s.direction == "lower"}
    assert lower == {
        "escalation_rate",
        "response_time",
        "token_usage",
        # the LLM metrics: costs, tokens and latencies are better lower
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "latency_ms",
        "time_to_first_token_ms",
        "error_rate",  # a model call that failed (from traces: docs/otlp.md)
    }


def test_unit_requests_need_a_unit_and_an_experiment() -> None:
    assert parse(GetVariantIn, {"experiment_name": "x", "user_id": 123}).user_id == 123
    assert parse(GetVariantIn, {"experiment_name": "x", "user_id": "abc"}).user_id == "abc"
    for body in (
        {"experiment_name": "x"},
        {"user_id": 1},
        {"experiment_name": "x", "user_id": 1.0},
    ):
        with pytest.raises(InvalidInput):
            parse(GetVariantIn, body)
    with pytest.raises(InvalidInput) as caught:
        parse(
            RecordResultIn,
            {
                "experiment_name": "x",
                "user_id": 1,
                "metric_name": "m",
                "metric_value": 1,
                "occurred_at": "2025-01-15T10:30:00",
            },
        )
    assert caught.value.field == "occurred_at"


@pytest.mark.parametrize("field", ["user_id", "session_id"])
def test_unit_ids_are_stripped_and_at_most_512_bytes_of_utf8(field: str) -> None:
    # Given ids at the limit as docs/assignment.md states it: bytes in UTF-8, not characters
    at_limit = "\u00e9" * 256  # 256 characters, 512 bytes
    parsed = parse(GetVariantIn, {"experiment_name": "x", field: f"  {at_limit}  "})
    assert getattr(parsed, field) == at_limit  # whitespace stripped before the key is formed
    # When one byte more is sent, then it is refused and the error names the field
    with pytest.raises(InvalidInput) as caught:
        parse(GetVariantIn, {"experiment_name": "x", field: at_limit + "a"})
    assert caught.value.field == field
    assert "512 bytes" in str(caught.value)


def event(**parts: Any) -> dict[str, Any]:
    return {"httpMethod": "POST", "path": "/p", **parts}


def test_api_request_parses_ids_query_strings_and_bodies() -> None:
    request = ApiRequest(
        event(
            pathParameters={"id": "12"},
            queryStringParameters={"a": "true"},
            body=base64.b64encode(b'{"k": 1}').decode(),
            isBase64Encoded=True,
        )
    )
    assert request.path_id() == 12
    # Query strings by their model: a bare flag is true, a missing one false, others named
    flags = ApiRequest(event(queryStringParameters={"declare_winner": ""})).params(StopQuery)
    assert (flags.declare_winner, flags.promote) == (True, False)
    for query in ({"declare_winner": "maybe"}, {"declare_winer": "true"}):
        with pytest.raises(InvalidInput) as refused:
            ApiRequest(event(queryStringParameters=query)).params(StopQuery)
        assert refused.value.field == next(iter(query))
    assert request.json() == {"k": 1}
    for raw in ("x", "-1", "0", "1" * 16, "1.5"):
        with pytest.raises(InvalidInput):
            ApiRequest(event(pathParameters={"id": raw})).path_id()


def test_api_turns_domain_errors_into_statuses_and_crashes_into_a_logged_500() -> None:
    @api
    def refuses(request: ApiRequest) -> dict[str, Any]:
        raise InvalidInput("bad thing", field="thing")

    @api
    def crashes(request: ApiRequest) -> dict[str, Any]:
        raise RuntimeError("boom")

    answer = refuses(event(), None)
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"]) == {
        "error": "validation_error",
        "message": "bad thing",
        "field": "thing",
    }
    crashed = crashes(event(), None)
    assert crashed["statusCode"] == 500
    assert "boom" not in crashed["body"]


def test_json_safe_never_emits_nan() -> None:
    safe = json_safe({"a": float("nan"), "b": [float("inf"), Decimal("2.5"), Decimal("3")]})
    assert safe == {"a": None, "b": [None, 2.5, 3]}
    json.dumps(safe, allow_nan=False)
