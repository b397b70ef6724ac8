"""Recording results: validate, then count exactly once (ab_testing.ledger does the writes).

A mixin of ExperimentService, kept apart so each module stays small; it uses the service's
experiment cache, clock, ledger and shard choice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ab_testing import assignment, records, unit_requests
from ab_testing.errors import DomainError, IdempotencyKeyReused, InvalidInput, as_unavailable
from ab_testing.ledger import BatchEntry, ResultWrite
from ab_testing.metrics import covariate_value, validate_value
from ab_testing.observability import logger

if TYPE_CHECKING:
    from ab_testing.experiment import Experiment
    from ab_testing.ledger import Ledger, Outcome
    from ab_testing.models import RecordResultIn

# Units that already have a variant keep it (and their results count) while paused.
ACCEPTS_RESULTS = ("running", "paused")
MAX_BATCH = 100


class ResultRecording:
    ledger: Ledger
    clock: Any

    def _experiment(self, name: str | None, experiment_id: int | None) -> Experiment:
        raise NotImplementedError

    def _shard(self, unit: str) -> int:
        raise NotImplementedError

    def _alias_from_session(self, experiment: Experiment, unit: str, session_id: str | None) -> Any:
        raise NotImplementedError

    def record(self, body: dict[str, Any] | RecordResultIn) -> dict[str, Any]:
        """Validates, then records exactly once. The answer says whether it counted."""
        prepared = self._prepare(body)
        if isinstance(prepared, dict):
            return prepared
        write, variant_ids = prepared.write, list(prepared.variant_ids)
        outcome = self.ledger.record(write, variant_ids, prepared.shard)
        if outcome.status == "no_assignment" and self._alias_from_session(
            prepared.experiment, write.unit, prepared.session_id
        ):
            # A user who just logged in: their session's variant is now theirs; count it.
            outcome = self.ledger.record(write, variant_ids, prepared.shard)
        return self._answer(prepared, outcome)

    def _prepare(self, body: dict[str, Any] | RecordResultIn) -> _Prepared | dict[str, Any]:
        """The result to write, or the answer when it is not to be written."""
        request = unit_requests.record_result(body)
        experiment = self._experiment(request.experiment_name, request.experiment_id)
        spec = experiment.metric_spec(request.metric_name)
        if spec is None:
            raise InvalidInput(
                f"metric {request.metric_name!r} is not declared by experiment "
                f"{experiment.id}; declared: {', '.join(experiment.declared_metrics)}",
                field="metric_name",
                declared_metrics=experiment.declared_metrics,
            )
        if spec.kind == "ratio":
            ratio = experiment.ratio(spec.name)
            parts = f"{ratio.numerator} and {ratio.denominator}" if ratio else "its parts"
            raise InvalidInput(
                f"{spec.name} is a ratio metric: record {parts}, it follows from them",
                field="metric_name",
            )
        value = validate_value(spec, request.metric_value)
        covariate = covariate_value(experiment, request.covariates)
        unit = assignment.unit_key(request.user_id, request.session_id)
        base = {"experiment_id": experiment.id, "metric_name": spec.name, "unit": unit}
        if experiment.status not in ACCEPTS_RESULTS:
            return {
                **base,
                "recorded": False,
                "reason": "experiment_not_running",
                "message": f"experiment {experiment.id} is {experiment.status}; "
                "results count only while it is running or paused",
            }
        if unit in experiment.overrides:
            return {
                **base,
                "recorded": False,
                "reason": "override",
                "message": "units pinned by overrides are left out of the analysis",
            }
        now = self.clock()
        key = request.idempotency_key
        # The key is scoped to (unit, metric): one request id can key all its metrics.
        result_id = (
            records.keyed_result_id(spec.name, unit, key)
            if key
            else records.auto_result_id(now, uuid.uuid4().hex)
        )
        occurred = request.occurred_at.isoformat() if request.occurred_at else None
        extra = {
            "recorded_at": now,
            "occurred_at": occurred,
            "idempotency_key": key,
            "write_token": uuid.uuid4().hex,
        }
        ratios = tuple(
            (
                r.name,
                r.denominator if r.numerator == spec.name else r.numerator,
                r.numerator == spec.name,
            )
            for r in experiment.ratios_of(spec.name)
        )
        write = ResultWrite(
            experiment.id, unit, spec.name, value, result_id, extra, ratios, covariate
        )
        return _Prepared(
            experiment,
            write,
            tuple(v.id for v in experiment.variants),
            self._shard(unit),
            request.session_id,
            base,
            now,
        )

    def _answer(self, prepared: _Prepared, outcome: Outcome) -> dict[str, Any]:
        base, write, now = prepared.base, prepared.write, prepared.now
        if outcome.status == "no_assignment":
            return {
                **base,
                "recorded": False,
                "reason": "no_assignment",
                "message": "this unit has no variant in the experiment (it never asked "
                "for one, or fell outside target_percentage); its results "
                "would bias the analysis, so they are not counted",
            }
        stored = outcome.item or {}
        # The ledger answers a duplicate with the variant its first result was stored under.
        assert outcome.variant_id is not None, "a recorded or duplicate outcome has a variant"
        answer = {
            **base,
            "recorded": True,
            "duplicate": outcome.status == "duplicate",
            "result_id": write.result_id,
            "variant_id": outcome.variant_id,
            "metric_value": float(stored.get("metric_value", write.value)),
            "recorded_at": stored.get("recorded_at", now),
        }
        first_value = stored.get("metric_value")
        if outcome.status == "duplicate" and first_value is not None and first_value != write.value:
            raise IdempotencyKeyReused(
                f"idempotency_key {write.item['idempotency_key']!r} was already used for this "
                f"unit and metric with metric_value {answer['metric_value']:g}; use a new key "
                "for a new value",
                field="idempotency_key",
                stored={**answer, "duplicate": True},
            )
        return answer

    def record_result(
        self,
        experiment_name: str,
        metric_name: str,
        metric_value: Any,
        user_id: int | str | None = None,
        session_id: str | None = None,
        idempotency_key: str | None = None,
        occurred_at: str | None = None,
    ) -> dict[str, Any]:
        """The guide's call."""
        return self.record(
            {
                "experiment_name": experiment_name,
                "metric_name": metric_name,
                "metric_value": metric_value,
                "user_id": user_id,
                "session_id": session_id,
                "idempotency_key": idempotency_key,
                "occurred_at": occurred_at,
            }
        )

    def record_many(self, body: Any) -> dict[str, Any]:
        """Up to MAX_BATCH results, each validated and answered on its own; the ledger writes
        them together, one transaction per (variant, metric, shard) of the batch."""
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise InvalidInput('the body must be {"results": [ ... ]}', field="results")
        items = body["results"]
        if not 1 <= len(items) <= MAX_BATCH:
            raise InvalidInput(
                f"results must hold 1 to {MAX_BATCH} items, got {len(items)}", field="results"
            )
        answers: dict[int, dict[str, Any]] = {}
        prepared: dict[int, _Prepared] = {}
        for index, item in enumerate(items):
            try:
                ready = self._prepare(item)
            except Exception as exc:  # noqa: BLE001  (answered per item)
                answers[index] = _failure(index, exc)
                continue
            if isinstance(ready, dict):
                answers[index] = {"index": index, "status": 200, **ready}
            else:
                prepared[index] = ready
        order = sorted(prepared)
        entries = [
            BatchEntry(prepared[i].write, prepared[i].variant_ids, prepared[i].shard) for i in order
        ]
        outcomes = self.ledger.record_many(entries) if entries else []
        aliased: set[tuple[int, str]] = set()
        for index, outcome in zip(order, outcomes, strict=True):
            ready = prepared[index]
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                unit = (ready.write.experiment_id, ready.write.unit)
                if outcome.status == "no_assignment" and (
                    unit in aliased
                    or self._alias_from_session(ready.experiment, unit[1], ready.session_id)
                ):
                    # A user who just logged in (in this item or an earlier one of the batch).
                    aliased.add(unit)
                    outcome = self.ledger.record(ready.write, list(ready.variant_ids), ready.shard)
                answer = self._answer(ready, outcome)
                code = 201 if answer["recorded"] and not answer.get("duplicate") else 200
                answers[index] = {"index": index, "status": code, **answer}
            except Exception as exc:  # noqa: BLE001
                answers[index] = _failure(index, exc)
        listed = [answers[i] for i in range(len(items))]
        recorded = sum(1 for a in listed if a["status"] == 201)
        failed = sum(1 for a in listed if a["status"] >= 400)
        return {
            "results": listed,
            "recorded": recorded,
            "failed": failed,
            "not_counted": len(listed) - recorded - failed,
        }


@dataclass(frozen=True)
class _Prepared:
    """A validated result, ready for the ledger, and what its answer needs."""

    experiment: Experiment
    write: ResultWrite
    variant_ids: tuple[int, ...]
    shard: int
    session_id: str | None
    base: dict[str, Any]
    now: str


def _failure(index: int, exc: Exception) -> dict[str, Any]:
    """The answer of a batch item that raised (an unexpected failure must not hide which
    items were stored)."""
    if isinstance(exc, DomainError):
        return {"index": index, "status": exc.status, **exc.body()}
    unavailable = as_unavailable(exc)
    if unavailable is not None:
        return {"index": index, "status": 503, **unavailable.body()}
    logger.exception("batch item failed", extra={"index": index}, exc_info=exc)
    return {
        "index": index,
        "status": 500,
        "error": "internal_error",
        "message": "this item failed unexpectedly; it has been logged",
    }
