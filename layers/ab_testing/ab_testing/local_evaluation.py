"""Local evaluation, server side: published definitions and exposures written to the ledger.

A client that evaluates assignments itself (clients/python) needs two things from the data
plane. ``definitions()`` publishes what the algorithm of docs/assignment.md needs for every
experiment a unit can get a variant from: salt, target, variants, the variant draw's ranges,
and the spans a client must ask get-variant about instead (``changed_ranges`` in the variant
draw; ``[target_percentage, max_target_percentage)`` in the coverage draw), because units
there may hold a variant in the ledger that the current ranges do not give.

``record_exposures()`` writes each reported unit with the same conditional put as
get-variant (first writer wins, exposure counter in the same transaction) and answers with
the variant the ledger holds. It writes the variant the client served only if the
definition gives it, or if the unit lies in a span where a client holding the previous
definition could have served it (a rebalance or a lower target that the client had not yet
fetched): the ledger then keeps what the unit was shown.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from ab_testing import assignment, metrics, targeting, unit_requests
from ab_testing.errors import Conflict, DomainError, InvalidInput
from ab_testing.experiment import Experiment
from ab_testing.records import experiment_from_item, variant_from_item
from ab_testing.results import MAX_BATCH
from ab_testing.segments import kept_values
from ab_testing.service import entry_refused

if TYPE_CHECKING:
    from ab_testing.service import ExperimentService

ALGORITHM = "sha256-53bit-ranges-v1"  # docs/assignment.md
# A document with a layer's holdout says so in its algorithm: a client that predates holdouts
# does not know it and asks the service for every unit instead of answering held-out units
# wrongly (docs/assignment.md section 14).
ALGORITHM_WITH_HOLDOUTS = ALGORITHM + "+holdouts"
PUBLISHED_STATUSES = ("running", "paused", "stopped", "archived")


class LocalEvaluation:
    def __init__(self, service: ExperimentService) -> None:
        self.service = service
        self.store = service.store
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any], str] | None = None

    # ------------------------------------------------------------------ definitions
    def definitions(self) -> tuple[dict[str, Any], str]:
        """The document and its ETag, rebuilt at most once per cache TTL per instance."""
        now = time.monotonic()
        with self._lock:
            cached = self._cached
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        published = self._published()
        holdouts = {
            e.layer.name: e
            for e in published
            if e.layer is not None and e.is_holdout and e.status in ("running", "paused")
        }
        document = {
            "algorithm": ALGORITHM_WITH_HOLDOUTS if holdouts else ALGORITHM,
            "experiments": [
                definition(e, holdouts.get(e.layer.name) if e.layer else None) for e in published
            ],
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
        with self._lock:
            self._cached = (now + self.service.cache_ttl, document, etag)
        return document, etag

    def _published(self) -> list[Experiment]:
        found: list[Experiment] = []
        for status in PUBLISHED_STATUSES:
            for item in self.store.list_experiments(status, None):
                if status in ("stopped", "archived") and not (
                    item.get("promoted") and item.get("winner_variant_id") is not None
                ):
                    continue  # nobody gets a variant from it
                experiment_id = int(item["experiment_id"])
                variants = [
                    variant_from_item(i)
                    for i in self.store.query_experiment_items(experiment_id, prefix="variant#")
                ]
                found.append(experiment_from_item(item, variants))
        found.sort(key=lambda e: e.id)
        return found

    # ------------------------------------------------------------------ exposures
    def record_exposures(self, body: Any) -> dict[str, Any]:
        """Up to MAX_BATCH exposures, each written (or refused) on its own, in order."""
        if not isinstance(body, dict) or not isinstance(body.get("exposures"), list):
            raise InvalidInput('the body must be {"exposures": [ ... ]}', field="exposures")
        items = body["exposures"]
        if not 1 <= len(items) <= MAX_BATCH:
            raise InvalidInput(
                f"exposures must hold 1 to {MAX_BATCH} items, got {len(items)}",
                field="exposures",
            )
        answers: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                answers.append({"index": index, **self._expose(unit_requests.exposure(item))})
            except DomainError as exc:
                answers.append({"index": index, "status": exc.status, **exc.body()})
        return {
            "results": answers,
            "assigned": sum(1 for a in answers if a.get("reason") == "assigned"),
            "failed": sum(1 for a in answers if a["status"] >= 400),
        }

    def _expose(self, request: unit_requests.ExposureRequest) -> dict[str, Any]:
        service = self.service
        experiment = service._experiment(request.experiment_name, request.experiment_id)
        unit = assignment.unit_key(request.user_id, request.session_id)
        claimed = experiment.variant(request.variant_id)
        if claimed is None:
            raise InvalidInput(
                f"experiment {experiment.id} has no variant {request.variant_id}",
                field="variant_id",
            )
        base = {"experiment_id": experiment.id, "unit": unit}
        if experiment.promoted and experiment.winner_variant_id is not None:
            return {
                **base,
                "status": 200,
                "variant_id": experiment.winner_variant_id,
                "reason": "winner_promoted",
            }
        if experiment.status not in ("running", "paused"):
            raise Conflict(
                f"experiment {experiment.id} is {experiment.status}: it assigns nobody",
                reason="experiment_not_running",
            )
        pinned = experiment.overrides.get(unit)
        if pinned is not None:
            variant_id = next(v.id for v in experiment.variants if v.name == pinned)
            return {**base, "status": 200, "variant_id": variant_id, "reason": "override"}
        refused = entry_refused(experiment, unit, request.attributes)
        if refused is not None:
            raise Conflict(_REFUSED[refused].format(unit=unit), reason=refused)
        expected = expected_variant(experiment, unit)
        if expected is not None and expected != claimed.id:
            raise Conflict(
                f"the published definition gives {unit} variant {expected}, "
                f"not {claimed.id}: refresh the definitions",
                reason="variant_mismatch",
                expected_variant_id=expected,
            )
        covariate = metrics.covariate_value(experiment, request.covariates)
        item, created = self.store.create_assignment(
            experiment.id,
            unit,
            claimed.id,
            now=service.clock(),
            shard=service._shard(unit),
            source="local",
            covariate=covariate,
            segments=kept_values(experiment, request.attributes),
        )
        if not created and covariate is not None and "x" not in item and not item.get("m"):
            self.store.set_covariate(experiment.id, unit, covariate)  # as get-variant does
        return {
            **base,
            "status": 201 if created else 200,
            "variant_id": int(item["variant_id"]),
            "reason": "assigned" if created else "existing_assignment",
        }


_REFUSED = {
    "not_targeted": "{unit} does not match the experiment's targeting with the attributes sent",
    "not_in_layer": "{unit} is outside the experiment's range of its layer",
}


def expected_variant(experiment: Experiment, unit: str) -> int | None:
    """The variant id the definition gives the unit; None where a unit may hold any (the
    spans a client asks the server about). Out of target and out of those spans is refused."""
    if experiment.is_holdout:
        assert experiment.layer is not None
        return experiment.holdout_group(targeting.layer_position(experiment.layer.name, unit))
    cover, pick = assignment.draws(experiment.salt, unit)
    highest = max(experiment.max_target_percentage or 0.0, experiment.target_percentage)
    if not assignment.in_target(cover, highest):
        raise Conflict(
            f"{unit} is outside target_percentage: it gets no variant",
            reason="not_in_target",
        )
    if not assignment.in_target(cover, experiment.target_percentage):
        return None
    if assignment.in_spans(pick, ask_spans(experiment)):
        return None
    return assignment.variant_at(pick, experiment.ranges())


def ask_spans(experiment: Experiment) -> list[tuple[float, float]]:
    """Spans of the variant draw whose units a client must ask the server about."""
    if experiment.allocation_ranges is None and experiment.rebalanced_at is not None:
        # Rebalanced before ranges were kept: stored units may hold any variant.
        return [(0.0, 100.0)]
    return list(experiment.changed_ranges)


def definition(experiment: Experiment, holdout: Experiment | None = None) -> dict[str, Any]:
    """One experiment as the definitions document publishes it. ``holdout``: its layer's
    running or paused holdout, which a client applies with the experiment (section 14)."""
    names = {v.name: v.id for v in experiment.variants}
    return {
        "id": experiment.id,
        "name": experiment.name,
        "status": experiment.status,
        "salt": experiment.salt,
        "target_percentage": experiment.target_percentage,
        "max_target_percentage": max(
            experiment.max_target_percentage or 0.0, experiment.target_percentage
        ),
        "variants": [
            {
                "id": v.id,
                "name": v.name,
                "is_control": v.is_control,
                "traffic_allocation": v.traffic_allocation,
                "config": v.config,
            }
            for v in experiment.variants
        ],
        "ranges": [list(r) for r in experiment.ranges()],
        "changed_ranges": [list(s) for s in ask_spans(experiment)],
        "overrides": {unit: names[name] for unit, name in experiment.overrides.items()},
        "promoted": bool(experiment.promoted and experiment.winner_variant_id is not None),
        "winner_variant_id": experiment.winner_variant_id,
        "metrics": experiment.declared_metrics,
        "targeting": experiment.targeting,
        "layer": experiment.layer.as_fields() if experiment.layer else None,
        "holdout": None
        if holdout is None or holdout.id == experiment.id or holdout.layer is None
        else {
            "experiment_id": holdout.id,
            "status": holdout.status,
            "range": list(holdout.layer.range),
            "control_variant_id": holdout.control.id,
            "other_variant_id": next(v.id for v in holdout.variants if not v.is_control),
        },
    }
