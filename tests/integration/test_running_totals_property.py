"""Property: running totals always equal the batch computation over the distinct results."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ab_testing.errors import IdempotencyKeyReused
from ab_testing.reconcile import FIELDS
from tests.conftest import guide_experiment

USERS = 6
KEYS = ["k0", "k1", "k2", "k3"]

binary = st.tuples(st.just("resolution_rate"), st.sampled_from([0, 1]))
# satisfaction_score in [0, 5], in steps of 0.001 (as floats, the way clients send them)
continuous = st.tuples(st.just("satisfaction_score"), st.integers(0, 5000).map(lambda i: i / 1000))
result = st.tuples(
    st.integers(0, USERS - 1),
    st.one_of(binary, continuous),
    st.one_of(st.none(), st.sampled_from(KEYS)),
)


def norm(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).normalize()


@settings(max_examples=25, deadline=None)
@given(sequence=st.lists(result, min_size=1, max_size=25), shards=st.sampled_from([1, 3]))
def test_running_totals_equal_the_batch_computation(
    sequence: list[tuple[int, tuple[str, float], str | None]], shards: int
) -> None:
    from ab_testing.analysis import ExperimentAnalysis
    from ab_testing.reconcile import reconcile
    from ab_testing.service import ExperimentService
    from ab_testing.settings import Settings
    from ab_testing.stats.inputs import MetricTotals
    from ab_testing.store import Store
    from tests.conftest import local_dynamodb

    with local_dynamodb() as client:
        # Given a running experiment with two declared metrics and six assigned users
        service = ExperimentService(
            Store(Settings(totals_shards=shards), client=client), cache_ttl_seconds=60
        )
        body = guide_experiment(secondary_metrics=["satisfaction_score"])
        experiment_id = int(service.create_experiment(body)["id"])
        service.start_experiment(experiment_id)
        variant_of = {}
        for user in range(USERS):
            answer = service.get_variant({"experiment_id": experiment_id, "user_id": user})
            variant_of[f"user:{user}"] = answer["variant"]["id"]

        # When the sequence is recorded (keys drawn from a small pool, so repeats happen)
        # An idempotency key is scoped to (unit, metric): that triple identifies a repeat.
        seen: dict[tuple[int, str, str], Decimal] = {}
        expected: dict[tuple[int, str], dict[str, list[Decimal]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for user, (metric, value), key in sequence:
            body = {
                "experiment_id": experiment_id,
                "user_id": user,
                "metric_name": metric,
                "metric_value": value,
                "idempotency_key": key,
            }
            scoped = (user, metric, key) if key is not None else None
            if scoped in seen and seen[scoped] != Decimal(repr(value)):
                with pytest.raises(IdempotencyKeyReused):  # the key, with another value
                    service.record(body)
                continue
            answer = service.record(body)
            assert answer["recorded"] is True
            assert answer["duplicate"] is (scoped in seen)
            if scoped in seen:
                continue  # the first occurrence of a key wins
            if scoped is not None:
                seen[scoped] = Decimal(repr(value))
            unit = f"user:{user}"
            assert answer["variant_id"] == variant_of[unit]
            expected[(variant_of[unit], metric)][unit].append(Decimal(repr(value)))

        # Then the stored totals equal the batch computation, field by field
        _, inp, _ = ExperimentAnalysis(service).snapshot(experiment_id)
        for variant in inp.variants:
            assert set(variant.metrics) == {"resolution_rate", "satisfaction_score"}
            for metric, have in variant.metrics.items():
                want = MetricTotals.from_units(expected[(variant.variant_id, metric)].values())
                for field in FIELDS:
                    assert norm(getattr(have, field)) == norm(getattr(want, field)), (
                        variant.variant_id,
                        metric,
                        field,
                    )
        # And reconciliation agrees
        report = reconcile(service.store, experiment_id)
        assert report["clean"], report["differences"]
        assert report["results_read"] == sum(
            len(values) for units in expected.values() for values in units.values()
        )
