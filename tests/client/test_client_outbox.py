"""Results in the background: bounded queue, batches, one key per result, refusals surfaced."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from ab_testing_client import ABTestingClient, Refusal
from tests.client.fake_service import FakeService

RESULTS = "/api/v1/experiments/record-results"
EXPOSURES = "/api/v1/experiments/exposures"


def client_for(fake: FakeService, **options: Any) -> ABTestingClient:
    return ABTestingClient(
        "http://fake", background=False, transport=fake, sleep=lambda s: None, **options
    )


def sent_keys(fake: FakeService) -> list[list[str]]:
    return [
        [r["idempotency_key"] for r in body["results"]]
        for _, path, body, _ in fake.calls
        if path == RESULTS
    ]


def test_a_batch_whose_answer_was_lost_is_resent_with_the_same_keys_and_counts_once() -> None:
    # Given a service that commits a batch and then loses the answer
    fake = FakeService()
    fake.fail(RESULTS, "lost")
    client = client_for(fake)
    for user in range(3):
        client.record("Prompt Test", "resolution_rate", 1.0, user_id=user)

    # When flushed
    assert client.flush() is True

    # Then the resend carried the very same keys, and each result counted once
    first, second = sent_keys(fake)
    assert first == second and len(set(first)) == 3
    assert all(count == 1 for count in fake.counted.values())
    assert client.stats.results_sent == 3 and client.stats.queued == 0


def test_the_queue_is_bounded_and_what_is_dropped_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeService()
    client = client_for(fake, max_queue=5)
    with caplog.at_level(logging.WARNING, logger="ab_testing_client"):
        for user in range(8):
            client.record("Prompt Test", "resolution_rate", 1.0, user_id=user)
    assert client.stats.dropped == 3 and client.stats.queued == 5
    assert "queue full" in caplog.text
    client.flush()
    assert len(fake.counted) == 5


def test_batches_hold_at_most_100_results() -> None:
    fake = FakeService()
    client = client_for(fake)
    for user in range(250):
        client.record("Prompt Test", "resolution_rate", 1.0, user_id=user)
    client.flush()
    assert [len(keys) for keys in sent_keys(fake)] == [100, 100, 50]


def test_refused_items_reach_the_callback_and_the_log(caplog: pytest.LogCaptureFixture) -> None:
    # Given a service that refuses one metric
    fake = FakeService()
    fake.refuse_metrics.add("made_up")
    refusals: list[Refusal] = []
    client = client_for(fake, on_refusal=refusals.append)
    client.record("Prompt Test", "made_up", 1.0, user_id=1)
    client.record("Prompt Test", "resolution_rate", 1.0, user_id=1)

    # When flushed
    with caplog.at_level(logging.WARNING, logger="ab_testing_client"):
        client.flush()

    # Then the refusal says which item and why; the other counted
    assert [(r.kind, r.status, r.reason, r.item["metric_name"]) for r in refusals] == [
        ("result", 400, "validation_error", "made_up")
    ]
    assert "not declared" in caplog.text
    assert client.stats.refused == 1 and client.stats.results_sent == 1


def test_an_item_the_service_failed_on_is_sent_again_with_its_key() -> None:
    fake = FakeService()
    client = client_for(fake)
    client.record("Prompt Test", "resolution_rate", 1.0, user_id=1, idempotency_key="k-1")
    fake.failing_keys.add("k-1")
    assert client.flush() is False  # the item stays queued for the next round
    assert client.flush() is True
    assert sent_keys(fake) == [["k-1"], ["k-1"]] and fake.counted["k-1"] == 1


def test_results_wait_while_the_service_is_away_and_go_later() -> None:
    fake = FakeService()
    client = client_for(fake, attempts=2)
    client.record("Prompt Test", "resolution_rate", 1.0, user_id=1)
    fake.fail(RESULTS, OSError("down"), OSError("down"))
    assert client.flush() is False and client.stats.queued == 1
    assert client.flush() is True and client.stats.queued == 0


def test_exposures_are_sent_before_results() -> None:
    # Given a unit assigned locally and a result for it, queued together
    fake = FakeService()
    client = client_for(fake)
    client.get_variant("Prompt Test", user_id=1)
    client.record("Prompt Test", "resolution_rate", 1.0, user_id=1)

    # When flushed, Then the exposure went first
    client.flush()
    posted = [p for p in fake.paths() if p in (EXPOSURES, RESULTS)]
    assert posted == [EXPOSURES, RESULTS]


def test_close_sends_what_is_queued_and_the_context_manager_closes() -> None:
    fake = FakeService()
    with client_for(fake) as client:
        client.record("Prompt Test", "resolution_rate", 1.0, user_id=1)
    assert len(fake.counted) == 1 and client.stats.queued == 0


def test_the_background_thread_sends_a_full_batch_without_flush() -> None:
    # Given a client with its background thread, a batch size of 10 and a long timer
    fake = FakeService()
    arrived = threading.Event()
    fake.after[RESULTS] = arrived.set
    client = ABTestingClient("http://fake", transport=fake, batch_size=10, flush_interval=60)

    # When ten results are recorded
    for user in range(10):
        client.record("Prompt Test", "resolution_rate", 1.0, user_id=user)

    # Then the size trigger sent them, before any flush or close
    assert arrived.wait(timeout=30)
    assert sent_keys(fake) and len(sent_keys(fake)[0]) == 10
    client.close()
    assert len(fake.counted) == 10


def test_a_burst_of_25000_with_the_defaults_is_carried_without_loss() -> None:
    # Given the default queue, and a service that is slow to take batches
    fake = FakeService()
    slow = fake.send

    def slow_send(*args: Any) -> Any:
        time.sleep(0.01)  # 100 results a batch: at most 10,000 a second
        return slow(*args)

    client = ABTestingClient("http://fake", transport=slow_send_transport(slow_send))
    # When 25,000 results are recorded as fast as possible
    for n in range(25_000):
        client.record("Prompt Test", "resolution_rate", 1.0, user_id=n % 700)
    # Then flush says everything was taken, and all 25,000 were counted once
    assert client.flush() is True
    assert client.stats.dropped == 0
    assert len(fake.counted) == 25_000 and set(fake.counted.values()) == {1}
    client.close()


class slow_send_transport:  # noqa: N801 - a tiny Transport around a function
    def __init__(self, send: Any) -> None:
        self.send = send


def test_a_full_queue_drops_whole_requests_and_flush_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a queue of 10 results and requests of three metrics each (a run)
    fake = FakeService()
    client = client_for(fake, max_queue=10)
    with caplog.at_level(logging.WARNING, logger="ab_testing_client"):
        for user in range(5):
            with client.run("Prompt Test", user_id=user, timing_metric="latency_ms") as run:
                run.record("resolution_rate", 1.0)
                run.record("cost_usd", 0.02)
    # When flushed / Then three requests went whole, two were dropped whole: never one metric
    # of a request without the others; flush says something was lost, and stats count it
    assert client.flush() is False
    assert client.stats.dropped == 6
    by_user: dict[str, set[str]] = {}
    for _, path, body, _ in fake.calls:
        if path == RESULTS:
            for item in body["results"]:
                by_user.setdefault(str(item["user_id"]), set()).add(item["metric_name"])
    assert len(by_user) == 3
    assert all(m == {"resolution_rate", "cost_usd", "latency_ms"} for m in by_user.values())
    assert "queue full (max_queue=10)" in caplog.text
    # And the next flush, with nothing dropped since, is True again
    client.record("Prompt Test", "resolution_rate", 1.0, user_id=99)
    assert client.flush() is True
