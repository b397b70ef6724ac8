"""The guide's Python calls, written as the guide writes them."""

from __future__ import annotations

from typing import Any

from tests.conftest import GUIDE_EXPERIMENT


def test_guide_python_calls_with_a_boto3_client_as_db(aws: Any) -> None:
    # Given the guide's experiment, created and started through the service
    from ab_testing.experiment_service import ExperimentService
    from ab_testing.statistical_analyzer import StatisticalAnalyzer

    db = aws  # a boto3 DynamoDB client: the service uses the tables named by the settings
    service = ExperimentService(db)
    experiment_id = service.create_experiment(GUIDE_EXPERIMENT)["id"]
    service.start_experiment(experiment_id)

    # When the guide's step 3 and step 4 run
    variant = service.get_variant_for_user(
        experiment_name="Lead Qualification Prompt Test",
        user_id=123,
        session_id=None,  # Or provide session_id for anonymous users
    )
    assert variant is not None
    system_prompt = variant["config"]["system_prompt"]
    include_examples = variant["config"].get("include_examples", False)
    service.record_result(
        experiment_name="Lead Qualification Prompt Test",
        metric_name="resolution_rate",
        metric_value=1.0,  # 1.0 = resolved, 0.0 = not resolved
        user_id=123,
        session_id=None,
    )
    service.record_result(
        experiment_name="Lead Qualification Prompt Test",
        metric_name="satisfaction_score",
        metric_value=4.5,  # 0-5 scale
        user_id=123,
        session_id=None,
    )

    # Then the variant is the guide's config and the analysis counts the results
    assert system_prompt.startswith("You are an AI assistant")
    assert include_examples is (not variant["is_control"])
    analysis = StatisticalAnalyzer(db).analyze_experiment(experiment_id)
    assert analysis["current_sample_size"] == 1
    assert analysis["variant_stats"][str(variant["id"])]["mean"] == 1.0
    assert analysis["metrics"]["satisfaction_score"]["kind"] == "continuous"


def test_a_unit_outside_the_experiment_gets_none(aws: Any) -> None:
    from ab_testing.experiment_service import ExperimentService

    service = ExperimentService(aws)
    body = dict(GUIDE_EXPERIMENT, name="Small", target_percentage=1.0)
    service.start_experiment(service.create_experiment(body)["id"])
    answers = [service.get_variant_for_user(experiment_name="Small", user_id=u) for u in range(50)]
    assert None in answers  # with 1% coverage most of 50 users are outside


def test_a_boto3_resource_works_as_db_too(aws: Any) -> None:
    import boto3

    from ab_testing.experiment_service import ExperimentService

    service = ExperimentService(boto3.resource("dynamodb", region_name="us-east-1"))
    service.start_experiment(service.create_experiment(GUIDE_EXPERIMENT)["id"])
    variant = service.get_variant_for_user(experiment_name=GUIDE_EXPERIMENT["name"], user_id=7)
    assert variant is not None and "config" in variant


def test_a_result_from_a_user_who_just_logged_in_counts_for_the_session_variant(aws: Any) -> None:
    # Given an anonymous session with a variant, paused afterwards
    from ab_testing.experiment_service import ExperimentService

    service = ExperimentService(aws, cache_ttl_seconds=0)
    experiment_id = service.create_experiment(GUIDE_EXPERIMENT)["id"]
    service.start_experiment(experiment_id)
    name = GUIDE_EXPERIMENT["name"]
    session_variant = service.get_variant_for_user(experiment_name=name, session_id="s-1")
    service.change_status(experiment_id, "pause")

    # When the visitor logs in and a result arrives with both ids (no get-variant in between)
    answer = service.record_result(
        experiment_name=name,
        metric_name="resolution_rate",
        metric_value=1,
        user_id="u-1",
        session_id="s-1",
    )

    # Then it counts, in the session's variant, and the user keeps that variant
    assert answer["recorded"] is True
    assert session_variant is not None and answer["variant_id"] == session_variant["id"]
    again = service.get_variant_for_user(experiment_name=name, user_id="u-1", session_id="s-1")
    assert again == session_variant
