"""The only module (with ab_testing.ledger) that talks to DynamoDB.

Key design (docs/data-model.md):
  ab_experiments  pk="experiment#<id>" | "name#<name>" | "counter"; GSI status-index
  (every composite key is built by records.composite: parts escaped, so keys are injective)
  ab_variants     (experiment_id, sk) with sk = "variant#<vid>" | "totals#<vid>#<metric>#<shard>"
                  | "exposure#<vid>#<shard>": one Query returns everything an analysis needs
  ab_assignments  (experiment_id, unit): the sticky variant and the unit's running sums
  ab_results      (experiment_id, result_id): raw results, result_id carries the idempotency key
  ab_insights     (experiment_id, analysed_at): analyses over time
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, get_args

from botocore.exceptions import ClientError

from ab_testing import dynamo, records
from ab_testing.errors import Conflict, NotFound, StoreUnavailable
from ab_testing.experiment import Experiment, Status

if TYPE_CHECKING:
    from ab_testing.models import ExperimentIn
from ab_testing.records import experiment_pk, exposure_sk, layer_pk
from ab_testing.settings import Settings

STATUSES: tuple[str, ...] = get_args(Status)
_COUNTER = {"pk": "counter"}
_CREATE_ATTEMPTS = 8
_ASSIGN_ATTEMPTS = 5


class Store:
    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.client = client if client is not None else dynamo.client()
        self.experiments = settings.experiments_table
        self.variants = settings.variants_table
        self.assignments = settings.assignments_table
        self.results = settings.results_table
        self.insights = settings.insights_table

    # ------------------------------------------------------------------ experiments
    def create_experiment(self, body: ExperimentIn, *, salt: str, now: str) -> Experiment:
        """Ids from one counter item and the name lock, in one transaction: all or nothing."""
        for _ in range(_CREATE_ATTEMPTS):
            counter = self.get_item(self.experiments, _COUNTER, consistent=True) or {}
            last_experiment = int(counter.get("last_experiment_id", 0))
            last_variant = int(counter.get("last_variant_id", 0))
            experiment = records.new_experiment(body, last_experiment + 1, last_variant, salt, now)
            try:
                self.client.transact_write_items(
                    TransactItems=self._create_items(experiment, counter)
                )
                return experiment
            except self.client.exceptions.TransactionCanceledException as exc:
                codes = dynamo.cancellation_codes(exc)
                if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                    raise Conflict(
                        f"an experiment named {body.name!r} already exists", field="name"
                    ) from exc
                if codes[:1] not in (["ConditionalCheckFailed"], ["TransactionConflict"]):
                    raise  # not a race for the counter: retrying would not help
                # Another create took the ids first: read the counter again.
        raise StoreUnavailable("could not allocate an experiment id, please retry")

    def _create_items(self, experiment: Experiment, counter: dict[str, Any]) -> list[dict]:
        counter_item = {
            **_COUNTER,
            "last_experiment_id": experiment.id,
            "last_variant_id": experiment.variants[-1].id,
        }
        if counter:
            guard = {
                "ConditionExpression": "last_experiment_id = :e AND last_variant_id = :v",
                "ExpressionAttributeValues": dynamo.serialize(
                    {":e": counter["last_experiment_id"], ":v": counter["last_variant_id"]}
                ),
            }
        else:
            guard = {"ConditionExpression": "attribute_not_exists(pk)"}
        not_there = {"ConditionExpression": "attribute_not_exists(pk)"}
        items: list[dict] = [
            {
                "Put": {
                    "TableName": self.experiments,
                    "Item": dynamo.serialize(counter_item),
                    **guard,
                }
            },
            {
                "Put": {
                    "TableName": self.experiments,
                    **not_there,
                    "Item": dynamo.serialize(
                        {"pk": records.name_pk(experiment.name), "experiment_id": experiment.id}
                    ),
                }
            },
            {
                "Put": {
                    "TableName": self.experiments,
                    **not_there,
                    "Item": dynamo.serialize(records.experiment_item(experiment)),
                }
            },
        ]
        for variant in experiment.variants:
            items.append(
                {
                    "Put": {
                        "TableName": self.variants,
                        "Item": dynamo.serialize(records.variant_item(experiment.id, variant)),
                    }
                }
            )
        return items

    def experiment_id_by_name(self, name: str) -> int:
        item = self.get_item(self.experiments, {"pk": records.name_pk(name)}, consistent=True)
        if item is None:
            raise NotFound(f"no experiment named {name!r}", field="experiment_name")
        return int(item["experiment_id"])

    def get_experiment(self, experiment_id: int, *, with_variants: bool = True) -> Experiment:
        """The experiment; without its variants (one GetItem, no Query) when they are not
        needed."""
        if with_variants:
            return self.experiment_with_items(experiment_id, prefix="variant#")[0]
        item = self.get_item(
            self.experiments, {"pk": experiment_pk(experiment_id)}, consistent=True
        )
        if item is None:
            raise NotFound(f"experiment {experiment_id} not found", field="id")
        return records.experiment_from_item(item, [])

    def experiment_with_items(
        self, experiment_id: int, prefix: str = ""
    ) -> tuple[Experiment, list[dict[str, Any]]]:
        """The experiment and its ab_variants items (all of them by default): one GetItem and
        one Query, which is everything an analysis reads."""
        item = self.get_item(
            self.experiments, {"pk": experiment_pk(experiment_id)}, consistent=True
        )
        if item is None:
            raise NotFound(f"experiment {experiment_id} not found", field="id")
        items = self.query_experiment_items(experiment_id, prefix=prefix)
        variants = [records.variant_from_item(i) for i in items if i["sk"].startswith("variant#")]
        return records.experiment_from_item(item, variants), items

    def list_experiments(
        self, status: str | None, experiment_type: str | None, name_prefix: str | None = None
    ) -> list[dict]:
        """Experiments by status through the sparse status index: a Query per status."""
        found: list[dict] = []
        for one in [status] if status else list(STATUSES):
            params: dict[str, Any] = {
                "TableName": self.experiments,
                "IndexName": "status-index",
                "KeyConditionExpression": "#s = :s",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":s": {"S": one}},
            }
            filters = []
            if experiment_type:
                filters.append("experiment_type = :t")
                params["ExpressionAttributeValues"][":t"] = {"S": experiment_type}
            if name_prefix:
                filters.append("begins_with(#n, :n)")
                params["ExpressionAttributeNames"]["#n"] = "name"
                params["ExpressionAttributeValues"][":n"] = {"S": name_prefix}
            if filters:
                params["FilterExpression"] = " AND ".join(filters)
            found.extend(dynamo.plain(i) for i in self.query_all(params))
        found.sort(key=lambda item: int(item["experiment_id"]))
        return found

    def update_experiment(
        self,
        experiment_id: int,
        *,
        allowed_from: tuple[str, ...],
        changes: dict[str, Any],
    ) -> None:
        """Conditional update: applies only while the status is one of allowed_from.

        A change to None removes the attribute.
        """
        try:
            self.client.update_item(**self._status_update(experiment_id, allowed_from, changes))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise self._status_conflict(experiment_id, allowed_from) from exc

    def _status_update(
        self, experiment_id: int, allowed_from: tuple[str, ...], changes: dict[str, Any]
    ) -> dict[str, Any]:
        remove = tuple(k for k, v in changes.items() if v is None)
        changes = {k: v for k, v in changes.items() if v is not None}
        names = {f"#k{i}": k for i, k in enumerate(changes)}
        values = {f":v{i}": v for i, v in enumerate(changes.values())}
        statuses = {f":from{i}": s for i, s in enumerate(allowed_from)}
        clauses = []
        if changes:
            clauses.append("SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(changes))))
        if remove:
            names.update({f"#r{i}": k for i, k in enumerate(remove)})
            clauses.append("REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove))))
        names["#status"] = "status"
        return {
            "TableName": self.experiments,
            "Key": dynamo.serialize({"pk": experiment_pk(experiment_id)}),
            "UpdateExpression": " ".join(clauses),
            "ConditionExpression": f"attribute_exists(pk) AND #status IN ({', '.join(statuses)})",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": dynamo.serialize({**values, **statuses}),
        }

    def count_unpriced_spans(self, experiment_id: int, models: dict[str, int]) -> None:
        """Adds to the experiment's counts of spans whose model had no price (one top-level
        number per model, ``unpriced#<model>``: ADD works on top-level attributes only)."""
        names = {f"#m{i}": f"unpriced#{model}" for i, model in enumerate(models)}
        values = {f":n{i}": count for i, count in enumerate(models.values())}
        self.client.update_item(
            TableName=self.experiments,
            Key=dynamo.serialize({"pk": experiment_pk(experiment_id)}),
            UpdateExpression="ADD " + ", ".join(f"#m{i} :n{i}" for i in range(len(models))),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=dynamo.serialize(values),
        )

    def layer_claims(self, layer: str) -> tuple[dict[str, dict[str, Any]], int]:
        """The claims on a layer ({experiment id: {"name", "range"}}) and their version."""
        item = self.get_item(self.experiments, {"pk": layer_pk(layer)}, consistent=True) or {}
        return dynamo.plain(item.get("claims", {})), int(item.get("version", 0))

    def update_experiment_in_layer(
        self,
        experiment_id: int,
        *,
        allowed_from: tuple[str, ...],
        changes: dict[str, Any],
        layer: str,
        claims: dict[str, dict[str, Any]],
        version: int,
    ) -> bool:
        """A status change and the layer's new claims in one transaction. The claims are
        written only over the version they were read at: False when another start or stop in
        the layer came first (read them again and decide again)."""
        layer_update = {
            "TableName": self.experiments,
            "Key": dynamo.serialize({"pk": layer_pk(layer)}),
            "UpdateExpression": "SET #claims = :claims, #version = :next",
            "ConditionExpression": "attribute_not_exists(pk) OR #version = :read",
            "ExpressionAttributeNames": {"#claims": "claims", "#version": "version"},
            "ExpressionAttributeValues": dynamo.serialize(
                {":claims": claims, ":next": version + 1, ":read": version}
            ),
        }
        status_update = self._status_update(experiment_id, allowed_from, changes)
        try:
            self.client.transact_write_items(
                TransactItems=[{"Update": status_update}, {"Update": layer_update}]
            )
        except self.client.exceptions.TransactionCanceledException as exc:
            codes = dynamo.cancellation_codes(exc)
            if codes[:1] == ["ConditionalCheckFailed"]:
                raise self._status_conflict(experiment_id, allowed_from) from exc
            if "ConditionalCheckFailed" in codes or "TransactionConflict" in codes:
                return False
            raise
        return True

    def _status_conflict(self, experiment_id: int, allowed_from: tuple[str, ...]) -> Conflict:
        """The 409 of a write refused because the experiment's status does not allow it."""
        current = self.get_experiment(experiment_id)
        return Conflict(
            f"experiment {experiment_id} is {current.status}; this needs one of: "
            f"{', '.join(allowed_from)}",
            status=current.status,
            allowed_from=list(allowed_from),
        )

    def set_acceptable_regressions(
        self,
        experiment_id: int,
        limits: dict[str, float],
        *,
        previous: dict[str, float],
        allowed_from: tuple[str, ...],
        now: str,
    ) -> None:
        """The declared trade-off rule, replaced while the status allows it; the change is
        appended to acceptable_regressions_history in the same write, so none is lost."""
        entry = {"changed_at": now, "from": previous, "to": limits}
        statuses = {f":from{i}": s for i, s in enumerate(allowed_from)}
        try:
            self.client.update_item(
                TableName=self.experiments,
                Key=dynamo.serialize({"pk": experiment_pk(experiment_id)}),
                UpdateExpression=(
                    "SET acceptable_regressions = :l, acceptable_regressions_history = "
                    "list_append(if_not_exists(acceptable_regressions_history, :none), :entry)"
                ),
                ConditionExpression=f"attribute_exists(pk) AND #status IN ({', '.join(statuses)})",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=dynamo.serialize(
                    {":l": limits, ":none": [], ":entry": [entry], **statuses}
                ),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise self._status_conflict(experiment_id, allowed_from) from exc

    def rebalance(
        self,
        experiment: Experiment,
        *,
        allowed_from: tuple[str, ...],
        now: str,
        srm_baseline: dict[str, int],
    ) -> None:
        """New allocations and target in one transaction, while the status allows it and
        nobody else has rebalanced since `experiment` was read: its ranges and changed spans
        were computed from that state, and writing them over a newer one would lose spans."""
        statuses = {f":from{i}": s for i, s in enumerate(allowed_from)}
        if experiment.rebalanced_at:
            unchanged, read = "rebalanced_at = :read", {":read": experiment.rebalanced_at}
        else:
            unchanged, read = "attribute_not_exists(rebalanced_at)", {}
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.experiments,
                    "Key": dynamo.serialize({"pk": experiment_pk(experiment.id)}),
                    "UpdateExpression": (
                        "SET target_percentage = :t, rebalanced_at = :now, srm_baseline = :b, "
                        "allocation_ranges = :r, changed_ranges = :c, max_target_percentage = :m"
                    ),
                    "ConditionExpression": f"#status IN ({', '.join(statuses)}) AND {unchanged}",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": dynamo.serialize(
                        {
                            ":t": experiment.target_percentage,
                            ":now": now,
                            ":b": srm_baseline,
                            ":r": experiment.ranges(),
                            ":c": experiment.changed_ranges,
                            ":m": experiment.max_target_percentage or experiment.target_percentage,
                            **statuses,
                            **read,
                        }
                    ),
                }
            }
        ]
        items += [
            {
                "Put": {
                    "TableName": self.variants,
                    "Item": dynamo.serialize(records.variant_item(experiment.id, v)),
                }
            }
            for v in experiment.variants
        ]
        try:
            self.client.transact_write_items(TransactItems=items)
        except self.client.exceptions.TransactionCanceledException as exc:
            if dynamo.cancellation_codes(exc)[:1] != ["ConditionalCheckFailed"]:
                raise StoreUnavailable("the rebalance could not be written, please retry") from exc
            current = self.get_experiment(experiment.id)
            if current.status in allowed_from:
                raise Conflict(
                    f"experiment {experiment.id} was rebalanced by another request at "
                    f"{current.rebalanced_at}; send this rebalance again",
                    status=current.status,
                    rebalanced_at=current.rebalanced_at,
                ) from exc
            raise Conflict(
                f"experiment {experiment.id} is {current.status}; a rebalance needs one of: "
                f"{', '.join(allowed_from)}",
                status=current.status,
            ) from exc

    # ------------------------------------------------------------------ assignments
    def get_assignment(self, experiment_id: int, unit: str) -> dict[str, Any] | None:
        return self.get_item(self.assignments, {"experiment_id": experiment_id, "unit": unit})

    def create_assignment(
        self,
        experiment_id: int,
        unit: str,
        variant_id: int,
        *,
        now: str,
        shard: int,
        source: str = "hash",
        covariate: Any = None,
        segments: dict[str, str] | None = None,
        holdout_id: int | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The first writer wins; a later writer gets the stored assignment back (sticky).
        ``holdout_id``: the layer's holdout that already holds the unit (kept as ``h``).

        A new unit raises its variant's exposure count in the same transaction. A user who
        inherits their session's variant (source "session_alias") is the same person, so it
        raises ``aliased_units`` instead and the sample-ratio check counts each person once.
        """
        counter = "units_assigned" if source != "session_alias" else "aliased_units"
        item = {
            "experiment_id": experiment_id,
            "unit": unit,
            "variant_id": variant_id,
            "assigned_at": now,
            "source": source,
            "m": {},
        }
        if covariate is not None:
            item["x"] = covariate  # CUPED: the unit's pre-experiment value, stored once
        if segments:
            item["seg"] = segments  # its segment_attributes' values (ab_testing.segments)
        if holdout_id is not None:
            item["h"] = holdout_id
        key = {"experiment_id": experiment_id, "unit": unit}
        exposure = {"experiment_id": experiment_id, "sk": exposure_sk(variant_id, shard)}
        transaction = [
            {
                "Put": {
                    "TableName": self.assignments,
                    "Item": dynamo.serialize(item),
                    "ConditionExpression": "attribute_not_exists(#u)",
                    "ExpressionAttributeNames": {"#u": "unit"},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Update": {
                    "TableName": self.variants,
                    "Key": dynamo.serialize(exposure),
                    "UpdateExpression": f"ADD {counter} :one SET variant_id = :v",
                    "ExpressionAttributeValues": dynamo.serialize({":one": 1, ":v": variant_id}),
                }
            },
        ]
        for attempt in range(_ASSIGN_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=transaction)
                return item, True
            except self.client.exceptions.TransactionCanceledException as exc:
                stored = dynamo.cancellation_item(exc, 0)
                if stored is None and "ConditionalCheckFailed" in dynamo.cancellation_codes(exc):
                    stored = self.get_item(self.assignments, key, consistent=True)
                if stored is not None:
                    return stored, False
            # A conflicting transaction on the exposure item (a busy variant): back off.
            time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise StoreUnavailable("the assignment could not be written under contention, retry")

    def mark_holdout(self, experiment_id: int, unit: str, holdout_id: int) -> None:
        """Notes on a stored unit that its layer's holdout holds it too (``h``), so that its
        later requests need not ask the holdout again (docs/assignment.md section 14)."""
        try:
            self.client.update_item(
                TableName=self.assignments,
                Key=dynamo.serialize({"experiment_id": experiment_id, "unit": unit}),
                UpdateExpression="SET #h = :h",
                ConditionExpression="attribute_exists(#u)",
                ExpressionAttributeNames={"#h": "h", "#u": "unit"},
                ExpressionAttributeValues=dynamo.serialize({":h": holdout_id}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def set_covariate(self, experiment_id: int, unit: str, covariate: Any) -> None:
        """Stores a returning unit's covariate, only while it has none and no results (its
        sums so far must not mix units with and without it)."""
        try:
            self.client.update_item(
                TableName=self.assignments,
                Key=dynamo.serialize({"experiment_id": experiment_id, "unit": unit}),
                UpdateExpression="SET #x = :x",
                ConditionExpression="attribute_exists(#m) AND attribute_not_exists(#x) "
                "AND size(#m) = :none",
                ExpressionAttributeNames={"#x": "x", "#m": "m"},
                ExpressionAttributeValues=dynamo.serialize({":x": covariate, ":none": 0}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # ------------------------------------------------------------------ reads for analysis
    def query_experiment_items(self, experiment_id: int, prefix: str = "") -> list[dict]:
        """Everything of one experiment in ab_variants (definitions, totals, exposures)."""
        params: dict[str, Any] = {
            "TableName": self.variants,
            "KeyConditionExpression": "experiment_id = :e",
            "ExpressionAttributeValues": dynamo.serialize({":e": experiment_id}),
            "ConsistentRead": True,
        }
        if prefix:
            params["KeyConditionExpression"] += " AND begins_with(sk, :p)"
            params["ExpressionAttributeValues"][":p"] = {"S": prefix}
        return list(self.query_all(params))

    # ------------------------------------------------------------------ insights
    def put_insight(self, experiment_id: int, analysed_at: str, item: dict[str, Any]) -> None:
        self.client.put_item(
            TableName=self.insights,
            Item=dynamo.serialize(
                {"experiment_id": experiment_id, "analysed_at": analysed_at, **item}
            ),
        )

    def list_insights(
        self, experiment_id: int, *, limit: int, cursor: str | None = None
    ) -> tuple[list[dict], str | None]:
        """Newest first, a page at a time; the cursor is opaque to callers."""
        params: dict[str, Any] = {
            "TableName": self.insights,
            "KeyConditionExpression": "experiment_id = :e",
            "ExpressionAttributeValues": dynamo.serialize({":e": experiment_id}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            params["ExclusiveStartKey"] = dynamo.serialize(
                {"experiment_id": experiment_id, "analysed_at": records.decode_cursor(cursor)}
            )
        page = self.client.query(**params)
        items = [dynamo.deserialize(i) for i in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        next_cursor = (
            records.encode_cursor(dynamo.deserialize(last)["analysed_at"]) if last else None
        )
        return items, next_cursor

    # ------------------------------------------------------------------ plumbing
    def get_item(self, table: str, key: dict[str, Any], consistent: bool = False) -> dict | None:
        answer = self.client.get_item(
            TableName=table, Key=dynamo.serialize(key), ConsistentRead=consistent
        )
        item = answer.get("Item")
        return dynamo.deserialize(item) if item else None

    def query_all(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            page = self.client.query(**params)
            for item in page.get("Items", []):
                yield dynamo.deserialize(item)
            if "LastEvaluatedKey" not in page:
                return
            params = {**params, "ExclusiveStartKey": page["LastEvaluatedKey"]}
