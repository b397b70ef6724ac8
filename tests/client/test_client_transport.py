"""Retries, Retry-After, degradation and strict mode, against the fake service."""

from __future__ import annotations

import logging
from email.utils import formatdate
from typing import Any

import pytest

from ab_testing_client import ABTestingClient, Unavailable
from ab_testing_client.transport import retry_after_seconds
from tests.client.fake_service import FakeService

GET_VARIANT = "/api/v1/experiments/get-variant"


def remote_client(fake: FakeService, sleeps: list[float], **options: Any) -> ABTestingClient:
    return ABTestingClient(
        "http://fake",
        local_evaluation=False,
        background=False,
        transport=fake,
        sleep=sleeps.append,
        **options,
    )


def test_network_errors_and_5xx_are_retried_with_jittered_backoff() -> None:
    # Given a service that resets the connection, then answers 503, then works
    fake, sleeps = FakeService(), []
    fake.fail(GET_VARIANT, ConnectionResetError("reset"), 503)
    client = remote_client(fake, sleeps)

    # When a variant is asked for
    variant = client.get_variant("Prompt Test", user_id=1)

    # Then the third attempt answers, after two backoffs within 0.1 s and 0.2 s
    assert variant is not None and variant.name == "Control"
    assert fake.paths().count(GET_VARIANT) == 3
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.1 and 0 <= sleeps[1] <= 0.2


def test_retry_after_is_honoured_in_seconds_and_as_a_date() -> None:
    # Given a 429 asking for 3 s, then a 503 asking until a date 5 s ahead
    fake, sleeps = FakeService(), []
    later = formatdate(1_000_005.0, usegmt=True)
    fake.fail(GET_VARIANT, (429, {"Retry-After": "3"}), (503, {"Retry-After": later}))
    client = remote_client(fake, sleeps)
    client.api.clock = lambda: 0.0

    # When asked
    assert client.get_variant("Prompt Test", user_id=1) is not None

    # Then the client waited exactly as told
    assert sleeps[0] == 3.0
    assert retry_after_seconds(later, now=1_000_000.0) == pytest.approx(5.0)


def test_a_retry_after_beyond_the_callers_budget_degrades_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a service that asks for a minute's pause
    fake, sleeps = FakeService(), []
    fake.fail(GET_VARIANT, (503, {"Retry-After": "60"}))
    client = remote_client(fake, sleeps)

    # When asked, Then no variant, no waiting, one request, and a warning
    with caplog.at_level(logging.WARNING, logger="ab_testing_client"):
        assert client.get_variant("Prompt Test", user_id=1) is None
    assert sleeps == [] and len(fake.calls) == 1
    assert "degraded" in caplog.text


def test_an_unreachable_service_gives_the_last_known_variant_then_pauses_asking() -> None:
    # Given a unit whose variant the client has seen once
    fake, sleeps = FakeService(), []
    client = remote_client(fake, sleeps, attempts=2)
    first = client.get_variant("Prompt Test", user_id=1)

    # When the service goes away
    fake.fail(GET_VARIANT, *[ConnectionRefusedError("down")] * 2)
    again = client.get_variant("Prompt Test", user_id=1)
    calls = len(fake.calls)
    unknown = client.get_variant("Prompt Test", user_id=2)

    # Then the known unit keeps its variant, a new unit gets None, and right after the
    # failure callers are not made to wait on more attempts
    assert first is not None and again == first
    assert unknown is None and len(fake.calls) == calls


def test_strict_mode_raises_instead_of_degrading() -> None:
    fake, sleeps = FakeService(), []
    fake.fail(GET_VARIANT, *[OSError("down")] * 4)
    client = remote_client(fake, sleeps, strict=True)
    with pytest.raises(Unavailable):
        client.get_variant("Prompt Test", user_id=1)


def test_a_4xx_is_not_retried() -> None:
    fake, sleeps = FakeService(), []
    fake.fail(GET_VARIANT, 404)
    client = remote_client(fake, sleeps)
    assert client.get_variant("Prompt Test", user_id=1) is None
    assert len(fake.calls) == 1 and sleeps == []
