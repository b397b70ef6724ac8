"""The report function, the early-stop warnings, and the sequential tuning setting, through the
Lambda handlers on moto."""

from __future__ import annotations

import re
from typing import Any

from emulator.events import FakeLambdaContext, api_gateway_event
from tests.conftest import guide_experiment, load_handler
from tests.integration.test_guide_flow import by_id, create, get_variant


def record(user_id: int, value: float) -> None:
    from tests.conftest import invoke

    status, _ = invoke(
        "record_result",
        "POST",
        "/api/v1/experiments/record-result",
        body={
            "experiment_name": guide_experiment()["name"],
            "metric_name": "resolution_rate",
            "metric_value": value,
            "user_id": user_id,
        },
    )
    assert status == 201


def report(experiment_id: str) -> dict[str, Any]:
    event = api_gateway_event(
        "GET",
        f"/api/v1/experiments/{experiment_id}/report",
        resource="/api/v1/experiments/{id}/report",
        path_parameters={"id": experiment_id},
        body=None,
    )
    handler = load_handler("experiment_report").handler
    answer: dict[str, Any] = handler(event, FakeLambdaContext("experiment_report"))
    return answer


def test_stopping_early_warns_in_the_stop_answer_and_the_analysis(aws: Any) -> None:
    # Given a started experiment (min_duration_days 7, min_sample_size 100) with 10 users
    _, created = create(guide_experiment(min_duration_days=7))
    experiment_id = str(created["id"])
    by_id("start_experiment", "POST", experiment_id, "start")
    for user_id in range(1, 11):
        get_variant(experiment_name=guide_experiment()["name"], user_id=user_id)
        record(user_id, float(user_id % 2))
    # When analysed, then the analysis says it is an early read
    _, analysis = by_id("analyze_experiment", "GET", experiment_id, "analyze")
    assert any(w.startswith("Read early: after") for w in analysis["warnings"])
    # When stopped with a winner declared
    status, stopped = by_id(
        "stop_experiment", "POST", experiment_id, "stop", query={"declare_winner": "true"}
    )
    # Then the stop answer warns about both the duration and the units
    assert status == 200
    warnings = stopped["warnings"]
    early = r"Stopped early: after [0-9.e-]+ days, before min_duration_days"
    assert any(re.match(early, w) for w in warnings)
    assert any("fewer than the planned 100" in w for w in warnings)


def test_stop_after_the_planned_duration_and_size_has_no_early_warning(aws: Any) -> None:
    # Given an experiment with no minimum duration and a minimum of 2 units
    _, created = create(guide_experiment(min_duration_days=0, min_sample_size=2))
    experiment_id = str(created["id"])
    by_id("start_experiment", "POST", experiment_id, "start")
    for user_id in range(1, 41):
        get_variant(experiment_name=guide_experiment()["name"], user_id=user_id)
        record(user_id, float(user_id % 3 == 0))
    # When stopped, then no early-stop warning
    _, stopped = by_id("stop_experiment", "POST", experiment_id, "stop")
    assert not any("early" in w for w in stopped["warnings"])


def test_report_function_answers_a_self_contained_page(aws: Any) -> None:
    # Given a running experiment with results
    _, created = create()
    experiment_id = str(created["id"])
    by_id("start_experiment", "POST", experiment_id, "start")
    for user_id in range(1, 31):
        get_variant(experiment_name=guide_experiment()["name"], user_id=user_id)
        record(user_id, float(user_id % 2))
    # When its report is requested
    answer = report(experiment_id)
    # Then it is one HTML page with inline styles and SVG, and nothing fetched from elsewhere
    page = answer["body"]
    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "default-src 'none'" in page and "@media print" in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert page.count('class="metric"') == 3  # resolution_rate + the two secondary metrics
    # And an unknown experiment is a JSON 404, a bad id a 400
    assert report("999")["statusCode"] == 404
    assert report("abc")["statusCode"] == 400


def test_an_experiment_may_fix_its_sequential_tuning(aws: Any) -> None:
    # Given an experiment created with sequential_tuning_units
    _, created = create(guide_experiment(sequential_tuning_units=5000))
    experiment_id = str(created["id"])
    # Then the analysis uses it; a bad value is a 400 that stores nothing
    _, analysis = by_id("analyze_experiment", "GET", experiment_id, "analyze")
    assert analysis["power"]["sequential_tuning_units"] == 5000
    status, body = create(guide_experiment(name="other", sequential_tuning_units=1))
    assert status == 400 and "sequential_tuning_units" in str(body)
