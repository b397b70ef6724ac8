"""ExperimentService: lifecycle, assignment and results, as the product guide calls them.

``ExperimentService(db)`` takes ``db`` as an ``ab_testing.store.Store``, a boto3 DynamoDB
client or resource, or nothing (a store built from the environment: ab_testing.settings).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple, get_args

from ab_testing import assignment, dynamo, metrics, records, targeting, unit_requests
from ab_testing.errors import Conflict, InvalidInput, StoreUnavailable
from ab_testing.experiment import (
    ALLOCATION_TOLERANCE,
    Experiment,
    ExperimentType,
    Variant,
    unit_override_key,
)
from ab_testing.ledger import Ledger
from ab_testing.records import summed_exposures
from ab_testing.results import ACCEPTS_RESULTS, ResultRecording
from ab_testing.segments import kept_values
from ab_testing.settings import Settings, get_settings
from ab_testing.store import STATUSES, Store

if TYPE_CHECKING:
    # The request models (pydantic) are imported where the control plane uses them, so that
    # get-variant and record-result never import pydantic (ab_testing.unit_requests).
    from ab_testing.models import AllocationIn, ExperimentIn, GetVariantIn, RebalanceIn
    from ab_testing.queries import ListQuery

_LAYER_ATTEMPTS = 8
_HELD_MEMORY = 100_000  # (holdout, unit) groups an instance remembers (~10 MB at most)


class Transition(NamedTuple):
    allowed_from: tuple[str, ...]
    target: str
    stamp: str | None  # the experiment attribute that records when it happened
    past: str  # for the answer: "Experiment 1 paused successfully"


# The lifecycle, in one place: draft -> running <-> paused -> stopped -> archived.
TRANSITIONS: dict[str, Transition] = {
    "start": Transition(("draft",), "running", "started_at", "started"),
    "pause": Transition(("running",), "paused", "paused_at", "paused"),
    "resume": Transition(("paused",), "running", None, "resumed"),
    "stop": Transition(("running", "paused"), "stopped", "stopped_at", "stopped"),
    "archive": Transition(("stopped",), "archived", "archived_at", "archived"),
}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def variant_answer(variant: Variant) -> dict[str, Any]:
    return {
        "id": variant.id,
        "name": variant.name,
        "config": variant.config,
        "is_control": variant.is_control,
    }


class ExperimentService(ResultRecording):
    def __init__(
        self,
        db: Any = None,
        *,
        settings: Settings | None = None,
        clock: Callable[[], str] = utc_now,
        cache_ttl_seconds: float | None = None,
    ) -> None:
        settings = settings or (db.settings if isinstance(db, Store) else get_settings())
        if db is not None and not isinstance(db, Store) and hasattr(db, "Table"):
            # A boto3 DynamoDB resource: its own client converts values itself, so take a
            # plain client for the same region and endpoint.
            meta = db.meta.client.meta
            db = dynamo.plain_client(meta.region_name, meta.endpoint_url)
        self.store = db if isinstance(db, Store) else Store(settings, client=db)
        self.ledger = Ledger(self.store)
        self.settings = settings
        self.clock = clock
        self.cache_ttl = (
            settings.cache_ttl_seconds if cache_ttl_seconds is None else cache_ttl_seconds
        )
        self._cache: dict[tuple[int | None, str | None], tuple[float, Experiment]] = {}
        self._holdouts: dict[str, tuple[float, tuple[int, list[float]] | None]] = {}
        self._held: OrderedDict[tuple[int, str], int] = OrderedDict()  # see _record_in_holdout
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def create_experiment(self, body: dict[str, Any] | ExperimentIn) -> dict[str, Any]:
        from ab_testing.models import ExperimentIn
        from ab_testing.validation import parse

        spec = body if isinstance(body, ExperimentIn) else parse(ExperimentIn, body)
        spec = spec.model_copy(update={"overrides": _normalise_overrides(spec.overrides)})
        experiment = self.store.create_experiment(
            spec, salt=assignment.new_salt(), now=self.clock()
        )
        return {
            "id": experiment.id,
            "name": experiment.name,
            "status": experiment.status,
            "message": "Experiment created successfully. Use /start endpoint to begin.",
        }

    def get_experiment(self, experiment_id: int) -> Experiment:
        return self.store.get_experiment(experiment_id)

    def list_experiments(
        self,
        status: str | None = None,
        experiment_type: str | None = None,
        name_prefix: str | None = None,
    ) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
        types = get_args(ExperimentType)
        if experiment_type is not None and experiment_type not in types:
            raise InvalidInput(
                f"experiment_type must be one of {', '.join(types)}", field="experiment_type"
            )
        found = self.store.list_experiments(status, experiment_type, name_prefix)
        return [_listed(item) for item in found]

    def list_page(self, query: ListQuery) -> dict[str, Any]:
        """One page of the list, oldest first; the cursor is the last id shown, encoded."""
        found = self.list_experiments(query.status, query.experiment_type, query.name)
        after = records.decode_list_cursor(query.cursor) if query.cursor else 0
        rest = [e for e in found if e["id"] > after]
        page = rest[: query.limit]
        more = len(rest) > len(page)
        return {
            "experiments": page,
            "count": len(page),
            "next_cursor": records.encode_list_cursor(page[-1]["id"]) if more else None,
        }

    def list_layers(self) -> dict[str, Any]:
        """Every layer with its experiments (archived ones left out), the ranges held by
        those running or paused (merged), the ranges free for a new one to start in, and its
        running or paused holdout (whose analysis is the holdout read-out)."""
        layers: dict[str, list[dict[str, Any]]] = {}
        for item in self.store.list_experiments(None, None):
            layer = item.get("layer")
            if not layer or item.get("status") == "archived":
                continue
            layers.setdefault(str(layer["name"]), []).append(
                {
                    "id": int(item["experiment_id"]),
                    "name": item["name"],
                    "status": item["status"],
                    "range": [float(x) for x in layer["range"]],
                    "holdout": bool(layer.get("holdout")),
                }
            )
        answer = []
        for name in sorted(layers):
            experiments = layers[name]
            held = assignment.merged_spans(
                [tuple(e["range"]) for e in experiments if e["status"] in ("running", "paused")]
            )
            free, start = [], 0.0
            for low, high in held:
                if low > start:
                    free.append([start, low])
                start = max(start, high)
            if start < 1.0:
                free.append([start, 1.0])
            holdout = next(
                (e for e in experiments if e["holdout"] and e["status"] in ("running", "paused")),
                None,
            )
            answer.append(
                {
                    "name": name,
                    "held": [list(span) for span in held],
                    "free": free,
                    "experiments": experiments,
                    "holdout": holdout,
                }
            )
        return {"layers": answer}

    def transition(self, experiment_id: int, action: str, **changes: Any) -> Experiment:
        """draft -> running <-> paused -> stopped -> archived; anything else is a 409."""
        step = TRANSITIONS[action]
        updates = {"status": step.target, **changes}
        if step.stamp:
            updates[step.stamp] = self.clock()
        try:
            if action in ("start", "stop"):
                self._change_in_layer(experiment_id, action, step.allowed_from, updates)
            else:
                self.store.update_experiment(
                    experiment_id, allowed_from=step.allowed_from, changes=updates
                )
        except Conflict as exc:
            if "status" not in exc.details:
                raise  # not the status: a layer's range is taken
            current = str(exc.details.get("status"))
            possible = [a for a, t in TRANSITIONS.items() if current in t.allowed_from]
            raise Conflict(
                f"cannot {action} experiment {experiment_id}: it is {current}. "
                f"Allowed from {current}: {', '.join(possible) or 'nothing'}",
                status=current,
                allowed_transitions=possible,
            ) from exc
        self._forget(experiment_id)
        return self.store.get_experiment(experiment_id)

    def _change_in_layer(
        self, experiment_id: int, action: str, allowed_from: tuple[str, ...], updates: dict
    ) -> None:
        """Start and stop of an experiment in a layer also take and give back its range: a
        start is refused (409) while a running or paused experiment of the layer holds an
        overlapping range. The claims and the status change are written together."""
        experiment = self.store.get_experiment(experiment_id, with_variants=False)
        layer = experiment.layer
        if layer is None or experiment.status not in allowed_from:
            self.store.update_experiment(experiment_id, allowed_from=allowed_from, changes=updates)
            return
        for _ in range(_LAYER_ATTEMPTS):
            claims, version = self.store.layer_claims(layer.name)
            mine = str(experiment_id)
            if action == "stop":
                claims.pop(mine, None)
            else:
                for other, held in claims.items():
                    if other != mine and layer.holdout and held.get("holdout"):
                        raise Conflict(
                            f"experiment {other} ({held['name']!r}) is the holdout of layer "
                            f"{layer.name!r}: a layer has one holdout at a time, stop it first",
                            reason="layer_holdout_taken",
                            other_experiment_id=int(other),
                            layer=layer.name,
                        )
                    if other != mine and targeting.overlap(held["range"], layer.range):
                        raise Conflict(
                            f"experiment {other} ({held['name']!r}) holds range "
                            f"[{held['range'][0]:g}, {held['range'][1]:g}) of layer "
                            f"{layer.name!r}, which overlaps [{layer.range[0]:g}, "
                            f"{layer.range[1]:g}): stop it first, or give this one another range",
                            reason="layer_range_taken",
                            other_experiment_id=int(other),
                            layer=layer.name,
                        )
                claims[mine] = {"name": experiment.name, "range": list(layer.range)}
                if layer.holdout:
                    claims[mine]["holdout"] = True
            if self.store.update_experiment_in_layer(
                experiment_id,
                allowed_from=allowed_from,
                changes=updates,
                layer=layer.name,
                claims=claims,
                version=version,
            ):
                return
        raise StoreUnavailable(f"layer {layer.name!r} is busy, please retry")

    def change_status(self, experiment_id: int, action: str) -> dict[str, Any]:
        experiment = self.transition(experiment_id, action)
        return {
            "message": f"Experiment {experiment_id} {TRANSITIONS[action].past} successfully",
            "experiment_id": experiment_id,
            "status": experiment.status,
        }

    def rebalance(self, experiment_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """New allocations and/or target_percentage; units already assigned keep their
        variant, only new units follow the new weights."""
        from ab_testing.models import RebalanceIn, check_limits_name_own_metrics
        from ab_testing.validation import parse

        request = parse(RebalanceIn, body)
        experiment = self.store.get_experiment(experiment_id)
        limits = request.acceptable_regressions
        if limits is not None:
            try:
                check_limits_name_own_metrics(
                    limits, [experiment.primary_metric, *experiment.secondary_metrics]
                )
            except ValueError as exc:
                raise InvalidInput(
                    f"acceptable_regressions: {exc}", field="acceptable_regressions"
                ) from None
        if request.variants is not None or request.target_percentage is not None:
            if experiment.is_holdout:
                raise InvalidInput(
                    f"experiment {experiment_id} is a holdout: its groups follow its layer "
                    "range, which is fixed; only acceptable_regressions can change",
                    field="variants" if request.variants is not None else "target_percentage",
                )
            self._rebalance_allocations(experiment, request)
        if limits is not None:
            self.store.set_acceptable_regressions(
                experiment_id,
                limits,
                previous=experiment.acceptable_regressions,
                allowed_from=("draft", "running", "paused"),
                now=self.clock(),
            )
        self._forget(experiment_id)
        fresh = self.store.get_experiment(experiment_id)
        answer: dict[str, Any] = {
            "message": f"Experiment {experiment_id} rebalanced",
            "experiment_id": experiment_id,
            "target_percentage": fresh.target_percentage,
            "variants": [
                {"id": v.id, "name": v.name, "traffic_allocation": v.traffic_allocation}
                for v in fresh.variants
            ],
        }
        if limits is not None:
            answer["acceptable_regressions"] = fresh.acceptable_regressions
            answer["acceptable_regressions_history"] = fresh.acceptable_regressions_history
        return answer

    def _rebalance_allocations(self, experiment: Experiment, request: RebalanceIn) -> None:
        """New allocations and/or target_percentage, written with their ranges and baseline."""
        experiment_id = experiment.id
        variants = experiment.variants
        if request.variants is not None:
            variants = _reallocate(experiment, request.variants)
        target = request.target_percentage
        updated = experiment.replace(
            variants=variants,
            target_percentage=experiment.target_percentage if target is None else target,
        )
        updated = _preserving_ranges(experiment, updated)
        # The sample-ratio check must compare later units with the new weights only.
        exposures = summed_exposures(
            self.store.query_experiment_items(experiment_id, prefix="exposure#")
        )
        baseline = {str(vid): units for vid, units in exposures.items()}
        self.store.rebalance(
            updated,
            allowed_from=("draft", "running", "paused"),
            now=self.clock(),
            srm_baseline=baseline,
        )

    def start_experiment(self, experiment_id: int) -> dict[str, Any]:
        self.transition(experiment_id, "start")
        return {"message": f"Experiment {experiment_id} started successfully"}

    # ------------------------------------------------------------------ get-variant
    def get_variant(self, body: dict[str, Any] | GetVariantIn) -> dict[str, Any]:
        """The unit's variant and why: assigned, existing_assignment, not_in_target,
        not_targeted, not_in_layer, holdout, experiment_not_running, override, winner_promoted."""
        request = unit_requests.get_variant(body)
        experiment = self._experiment(request.experiment_name, request.experiment_id)
        unit = assignment.unit_key(request.user_id, request.session_id)
        covariate = metrics.covariate_value(experiment, request.covariates)
        variant, reason = self._variant_for(
            experiment, unit, request.session_id, covariate, request.attributes
        )
        return {
            "experiment_id": experiment.id,
            "experiment_name": experiment.name,
            "unit": unit,
            "variant": variant_answer(variant) if variant else None,
            "reason": reason,
        }

    def get_variant_for_user(
        self,
        experiment_name: str,
        user_id: int | str | None = None,
        session_id: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """The guide's call: the variant (with its ``config``) or None. ``attributes``: the
        unit's, for an experiment with targeting (docs/targeting.md)."""
        body: dict[str, Any] = {
            "experiment_name": experiment_name,
            "user_id": user_id,
            "session_id": session_id,
        }
        if attributes is not None:
            body["attributes"] = attributes
        answer = self.get_variant(body)
        variant: dict[str, Any] | None = answer["variant"]
        return variant

    def _variant_for(
        self,
        experiment: Experiment,
        unit: str,
        session_id: str | None,
        covariate: Decimal | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> tuple[Variant | None, str]:
        if experiment.promoted and experiment.winner_variant_id is not None:
            # The guide's "promote winners" step: everyone gets the winner, nothing is stored;
            # but the layer's holdout still holds its units out of what was shipped.
            if self._holdout_span_holds(experiment, unit):
                return experiment.control, "holdout"
            return experiment.variant(experiment.winner_variant_id), "winner_promoted"
        if experiment.status not in ACCEPTS_RESULTS:
            return None, "experiment_not_running"
        pinned = experiment.overrides.get(unit)
        if pinned is not None:
            return next(v for v in experiment.variants if v.name == pinned), "override"
        stored = self.store.get_assignment(experiment.id, unit)
        if stored is not None:
            if covariate is not None and "x" not in stored and not stored.get("m"):
                self.store.set_covariate(experiment.id, unit, covariate)
            if experiment.layer is not None and experiment.status == "running":
                self._returning_to_holdout(experiment, unit, stored)
            return experiment.variant(int(stored["variant_id"])), "existing_assignment"
        aliased = self._alias_from_session(experiment, unit, session_id)
        if aliased is not None:
            return aliased  # the same person as an assigned session: allowed while paused too
        if experiment.status != "running":
            return None, "experiment_not_running"
        return self._new_unit(experiment, unit, session_id, covariate, attributes)

    def _new_unit(
        self,
        experiment: Experiment,
        unit: str,
        session_id: str | None,
        covariate: Decimal | None,
        attributes: dict[str, Any] | None,
    ) -> tuple[Variant | None, str]:
        """A unit the running experiment has not stored: refused, held out, or assigned."""
        entry = entry_refused(experiment, unit, attributes)
        recorded = None  # the holdout that now holds the unit, noted with its assignment
        if entry in (None, "not_in_layer") and experiment.layer and not experiment.is_holdout:
            group = self._in_holdout(experiment, unit, session_id)
            if group is not None:
                recorded, held = group
                if held:
                    return experiment.control, "holdout"
        if entry is not None:
            return None, entry
        if experiment.is_holdout:
            assert experiment.layer is not None
            position = targeting.layer_position(experiment.layer.name, unit)
            return self._store_assignment(
                experiment,
                unit,
                experiment.holdout_group(position),
                covariate=covariate,
                segments=kept_values(experiment, attributes),
            )
        cover, pick = assignment.draws(experiment.salt, unit)
        if not assignment.in_target(cover, experiment.target_percentage):
            return None, "not_in_target"
        return self._store_assignment(
            experiment,
            unit,
            assignment.variant_at(pick, experiment.ranges()),
            covariate=covariate,
            segments=kept_values(experiment, attributes),
            holdout_id=recorded,
        )

    # ------------------------------------------------------------------ holdouts
    def _in_holdout(
        self, experiment: Experiment, unit: str, session_id: str | None
    ) -> tuple[int | None, bool] | None:
        """A unit new to an experiment of a layer with a holdout (docs/assignment.md section
        14): (the holdout's id if it now holds the unit, whether the unit is held out), or
        None without a holdout. While the holdout runs it records the unit in its group: the
        control inside its range, the other elsewhere; a user keeps the group its session
        got. A paused holdout records nobody and holds out by position."""
        assert experiment.layer is not None
        found = self._layer_holdout(experiment.layer.name)
        if found is None:
            return None
        holdout_id, span = found
        holdout = self._experiment(None, holdout_id)
        if holdout.status != "running" or not holdout.is_holdout:
            inside = targeting.in_range(targeting.layer_position(experiment.layer.name, unit), span)
            return None, inside
        group = self._record_in_holdout(holdout, unit, session_id)
        return holdout_id, group == holdout.control.id

    def _record_in_holdout(self, holdout: Experiment, unit: str, session_id: str | None) -> int:
        """The unit's group in the running holdout, stored once; kept in this instance's
        memory so that a unit outside every experiment's range costs no write on its return."""
        key = (holdout.id, unit)
        with self._lock:
            group = self._held.get(key)
        if group is not None:
            return group
        assert holdout.layer is not None
        group = holdout.holdout_group(targeting.layer_position(holdout.layer.name, unit))
        source = "hash"
        if session_id is not None and unit.startswith("user:"):
            session = self.store.get_assignment(holdout.id, assignment.unit_key(None, session_id))
            if session is not None:  # the same person: the group its session has
                group, source = int(session["variant_id"]), "session_alias"
        variant, _ = self._store_assignment(holdout, unit, group, source=source)
        group = variant.id if variant is not None else group
        with self._lock:
            self._held[key] = group
            while len(self._held) > _HELD_MEMORY:
                self._held.popitem(last=False)
        return group

    def _returning_to_holdout(
        self, experiment: Experiment, unit: str, stored: dict[str, Any]
    ) -> None:
        """A unit the experiment stored before its layer's holdout started is recorded in the
        holdout on its next request, once (noted as ``h`` on its assignment)."""
        assert experiment.layer is not None
        if experiment.is_holdout:
            return
        found = self._layer_holdout(experiment.layer.name)
        if found is None or stored.get("h") == found[0]:
            return
        holdout = self._experiment(None, found[0])
        if holdout.status == "running" and holdout.is_holdout:
            self._record_in_holdout(holdout, unit, None)
            self.store.mark_holdout(experiment.id, unit, holdout.id)

    def _holdout_span_holds(self, experiment: Experiment, unit: str) -> bool:
        """Whether the unit lies in the range of its layer's running or paused holdout."""
        if experiment.layer is None or experiment.is_holdout:
            return False
        found = self._layer_holdout(experiment.layer.name)
        position = targeting.layer_position(experiment.layer.name, unit)
        return found is not None and targeting.in_range(position, found[1])

    def _layer_holdout(self, layer: str) -> tuple[int, list[float]] | None:
        """The running or paused holdout of a layer (its id and range), from this instance's
        memory for cache_ttl seconds like the experiments: read only for units outside an
        experiment's range."""
        now = time.monotonic()
        with self._lock:
            hit = self._holdouts.get(layer)
        if hit is not None and hit[0] > now:
            return hit[1]
        claims, _ = self.store.layer_claims(layer)
        found = None
        for eid, claim in claims.items():
            if claim.get("holdout"):
                found = (int(eid), [float(x) for x in claim["range"]])
        with self._lock:
            self._holdouts[layer] = (now + self.cache_ttl, found)
        return found

    def _alias_from_session(
        self, experiment: Experiment, unit: str, session_id: str | None
    ) -> tuple[Variant | None, str] | None:
        """A visitor who logs in keeps the variant their session already had (stored as the
        user's assignment on first sight); None when there is no session variant to keep."""
        if not unit.startswith("user:") or session_id is None:
            return None
        if experiment.status not in ACCEPTS_RESULTS:
            return None
        stored = self.store.get_assignment(experiment.id, assignment.unit_key(None, session_id))
        if stored is None:
            return None
        return self._store_assignment(
            experiment, unit, int(stored["variant_id"]), source="session_alias"
        )

    def _store_assignment(
        self,
        experiment: Experiment,
        unit: str,
        variant_id: int,
        source: str = "hash",
        covariate: Decimal | None = None,
        segments: dict[str, str] | None = None,
        holdout_id: int | None = None,
    ) -> tuple[Variant | None, str]:
        item, created = self.store.create_assignment(
            experiment.id,
            unit,
            variant_id,
            now=self.clock(),
            shard=self._shard(unit),
            source=source,
            covariate=covariate,
            segments=segments,
            holdout_id=holdout_id,
        )
        if created and source == "hash":
            return experiment.variant(variant_id), "assigned"
        return experiment.variant(int(item["variant_id"])), "existing_assignment"

    # ------------------------------------------------------------------ plumbing
    def _experiment(self, name: str | None, experiment_id: int | None) -> Experiment:
        """The experiment from this instance's memory, fresh for cache_ttl seconds."""
        key = (experiment_id, name)  # a tuple: no id or name can pass for another
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        if experiment_id is None:
            assert name is not None
            experiment_id = self.store.experiment_id_by_name(name)
        experiment = self.store.get_experiment(experiment_id)
        if name is not None and experiment.name != name:
            raise InvalidInput(
                f"experiment {experiment_id} is named {experiment.name!r}, not {name!r}",
                field="experiment_name",
            )
        with self._lock:
            self._cache[key] = (now + self.cache_ttl, experiment)
        return experiment

    def _forget(self, experiment_id: int) -> None:
        with self._lock:
            self._holdouts.clear()  # a start or stop may have changed a layer's holdout
            for key in [k for k, (_, e) in self._cache.items() if e.id == experiment_id]:
                del self._cache[key]

    def _shard(self, unit: str) -> int:
        shards = self.settings.totals_shards
        if shards == 1:
            return 0
        return int.from_bytes(hashlib.sha256(unit.encode()).digest()[:4], "big") % shards


def entry_refused(
    experiment: Experiment, unit: str, attributes: dict[str, Any] | None
) -> str | None:
    """Why a new unit may not enter (``not_targeted``, ``not_in_layer``), or None. Checked
    after stickiness: a stored unit keeps its variant whatever its attributes are now."""
    condition = experiment.targeting
    if condition is not None and not targeting.matches(condition, attributes or {}):
        return "not_targeted"
    layer = experiment.layer
    if layer is not None and not layer.holdout:
        if not targeting.in_range(targeting.layer_position(layer.name, unit), layer.range):
            return "not_in_layer"
    return None


def _reallocate(experiment: Experiment, wanted: list[AllocationIn]) -> list[Variant]:
    # Ids and names apart: a variant named "3" is not variant 3.
    by_key: dict[tuple[str, int | str], Variant] = {("id", v.id): v for v in experiment.variants}
    by_key.update({("name", v.name): v for v in experiment.variants})
    shares: dict[int, float] = {}
    for entry in wanted:
        wanted_key = ("id", entry.id) if entry.id is not None else ("name", entry.name or "")
        variant = by_key.get(wanted_key)
        if variant is None:
            unknown = entry.id if entry.id is not None else entry.name
            raise InvalidInput(f"unknown variant {unknown!r}", field="variants")
        if variant.id in shares:
            raise InvalidInput(f"variant {variant.name!r} is listed twice", field="variants")
        shares[variant.id] = entry.traffic_allocation
    if set(shares) != {v.id for v in experiment.variants}:
        raise InvalidInput("give a traffic_allocation for every variant", field="variants")
    if abs(math.fsum(shares.values()) - 100.0) > ALLOCATION_TOLERANCE:
        raise InvalidInput("traffic_allocation must sum to 100", field="variants")
    return [replace(v, traffic_allocation=shares[v.id]) for v in experiment.variants]


def _preserving_ranges(before: Experiment, after: Experiment) -> Experiment:
    """The new allocation as ranges that move the fewest draws (docs/assignment.md).

    Before the first start nobody is assigned, so the ranges simply follow the allocations.
    """
    shares = {v.id: v.traffic_allocation for v in after.variants}
    if before.status == "draft":
        ranges = after.replace(allocation_ranges=None).ranges()
        changed: list[tuple[float, float]] = []
        highest = after.target_percentage
    else:
        ranges, moved = assignment.rebalanced(before.ranges(), shares)
        changed = assignment.merged_spans([*before.changed_ranges, *moved])
        highest = max(
            before.max_target_percentage or before.target_percentage,
            before.target_percentage,
            after.target_percentage,
        )
    return after.replace(
        allocation_ranges=ranges, changed_ranges=changed, max_target_percentage=highest
    )


def _normalise_overrides(overrides: dict[str, str]) -> dict[str, str]:
    return {unit_override_key(k): v for k, v in overrides.items()}


def _listed(item: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "name",
        "description",
        "experiment_type",
        "status",
        "primary_metric",
        "secondary_metrics",
        "target_percentage",
        "min_sample_size",
        "confidence_level",
        "created_at",
        "started_at",
        "stopped_at",
        "winner_variant_id",
    )
    return {"id": int(item["experiment_id"]), **{k: item.get(k) for k in keep}}


__all__ = ["ExperimentService", "TRANSITIONS"]
