"""The store's promises, checked at its own boundary: what it asks DynamoDB and what it raises.

Each test drives ``ab_testing.store.Store`` over moto through ``Recording``, a thin wrapper of
the moto client that keeps every call (operation and arguments) and can answer a call with an
injected error first. Request arguments that moto cannot show (a strongly consistent read,
``ReturnValuesOnConditionCheckFailure``) are asserted on the recorded calls, and each test says
why the argument matters. Errors are checked by class, exact message, ``field`` and details,
as ab_testing.http turns them into answers.
"""

from __future__ import annotations

import copy
import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ab_testing import dynamo, records
from ab_testing import store as store_module
from ab_testing.errors import Conflict, NotFound, StoreUnavailable
from ab_testing.experiment import Experiment
from ab_testing.models import ExperimentIn
from ab_testing.settings import Settings
from ab_testing.store import Store
from tests.conftest import guide_experiment

NOW = "2026-01-02T03:04:05Z"
CCF = "ConditionalCheckFailed"


# ------------------------------------------------------------------ helpers


class Recording:
    """The moto client, keeping each call; ``inject[op]`` answers the next calls of ``op``
    with its errors in turn (a ``None`` lets that call through; a callable runs first)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.exceptions = client.exceptions
        self.meta = client.meta
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.inject: dict[str, list[Any]] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, copy.deepcopy(kwargs)))
            queue = self.inject.get(name)
            if queue:
                step = queue.pop(0)
                if isinstance(step, Exception):
                    raise step
                if callable(step):
                    step()
            return method(**kwargs)

        return call

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == operation]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def cancelled(client: Any, *reasons: dict[str, Any]) -> Exception:
    """A TransactionCanceledException as DynamoDB sends it: one reason per item."""
    codes = ", ".join(r.get("Code", "None") for r in reasons)
    return client.exceptions.TransactionCanceledException(
        {
            "Error": {
                "Code": "TransactionCanceledException",
                "Message": f"Transaction cancelled, please refer cancellation reasons [{codes}]",
            },
            "CancellationReasons": list(reasons),
        },
        "TransactWriteItems",
    )


def reasons(*codes: str) -> list[dict[str, Any]]:
    return [{"Code": c} if c == "None" else {"Code": c, "Message": c} for c in codes]


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected by the test"}}, operation)


def body(name: str, allocations: tuple[float, ...] = (50.0, 50.0), **changes: Any) -> ExperimentIn:
    """The guide's experiment under another name, with one variant per allocation."""
    raw = guide_experiment(name=name, **changes)
    template = raw["variants"]
    raw["variants"] = [
        {**template[min(i, 1)], "name": f"v{i}", "is_control": i == 0, "traffic_allocation": a}
        for i, a in enumerate(allocations)
    ]
    return ExperimentIn.model_validate(raw)


@pytest.fixture
def rec(aws: Any) -> Recording:
    return Recording(aws)


@pytest.fixture
def store(rec: Recording) -> Store:
    return Store(Settings(), client=rec)


def create(store: Store, name: str, allocations: tuple[float, ...] = (50.0, 50.0)) -> Experiment:
    return store.create_experiment(body(name, allocations), salt=f"salt-{name}", now=NOW)


def raw_item(aws: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    answer = aws.get_item(TableName=table, Key=dynamo.serialize(key), ConsistentRead=True)
    item = answer.get("Item")
    return dynamo.plain(dynamo.deserialize(item)) if item else None


def counter(aws: Any) -> dict[str, Any] | None:
    return raw_item(aws, "ab_experiments", {"pk": "counter"})


def set_status(store: Store, experiment_id: int, status: str) -> None:
    store.update_experiment(
        experiment_id,
        allowed_from=("draft", "running", "paused", "stopped", "archived"),
        changes={"status": status},
    )


# ------------------------------------------------------------------ construction


def test_the_store_keeps_the_client_settings_and_table_names_it_is_given(aws: Any) -> None:
    """A given client is used as is (tests and the emulator pass theirs); tables by settings."""
    settings = Settings.from_env(
        {
            "AB_EXPERIMENTS_TABLE": "e",
            "AB_VARIANTS_TABLE": "v",
            "AB_ASSIGNMENTS_TABLE": "a",
            "AB_RESULTS_TABLE": "r",
            "AB_INSIGHTS_TABLE": "i",
        }
    )
    store = Store(settings, client=aws)
    assert store.client is aws
    assert store.settings is settings
    tables = (store.experiments, store.variants, store.assignments, store.results, store.insights)
    assert tables == ("e", "v", "a", "r", "i")


def test_without_a_client_the_store_uses_the_process_wide_dynamo_client() -> None:
    """One low-level client per process (dynamo.client), not one per Store."""
    assert Store(Settings()).client is dynamo.client()


# ------------------------------------------------------------------ create_experiment


def test_create_numbers_experiments_and_variants_from_one_counter(aws: Any, store: Store) -> None:
    """Ids follow the counter: experiment n+1, variants after the last variant id."""
    first = create(store, "first", (50.0, 25.0, 25.0))
    second = create(store, "second")
    assert (first.id, [v.id for v in first.variants]) == (1, [1, 2, 3])
    assert (second.id, [v.id for v in second.variants]) == (2, [4, 5])
    assert counter(aws) == {"pk": "counter", "last_experiment_id": 2, "last_variant_id": 5}
    lock = raw_item(aws, "ab_experiments", {"pk": records.name_pk("second")})
    assert lock == {"pk": records.name_pk("second"), "experiment_id": 2}
    stored = store.get_experiment(2)
    assert (stored.name, stored.salt, stored.created_at) == ("second", "salt-second", NOW)
    assert [(v.id, v.name, v.traffic_allocation) for v in stored.variants] == [
        (4, "v0", 50.0),
        (5, "v1", 50.0),
    ]


def test_create_reads_the_counter_strongly_consistent(rec: Recording, store: Store) -> None:
    """The counter read must see the last committed create, or every create after a busy
    moment would fail its guard once more: GetItem of pk=counter with ConsistentRead."""
    create(store, "one")
    create(store, "two")
    reads = rec.of("get_item")
    assert reads[:1] == [
        {
            "TableName": "ab_experiments",
            "Key": {"pk": {"S": "counter"}},
            "ConsistentRead": True,
        }
    ]
    assert all(r["ConsistentRead"] is True for r in reads if r["Key"] == {"pk": {"S": "counter"}})
    assert len([r for r in reads if r["Key"] == {"pk": {"S": "counter"}}]) == 2


def test_create_puts_counter_lock_experiment_and_variants_in_one_transaction(
    rec: Recording, store: Store
) -> None:
    """All or nothing: one TransactWriteItems with the guarded counter, the name lock, the
    experiment and each variant."""
    create(store, "one")
    create(store, "two", (50.0, 25.0, 25.0))
    first, second = rec.of("transact_write_items")
    items = second["TransactItems"]
    assert [next(iter(i)) for i in items] == ["Put"] * 6
    assert [i["Put"]["TableName"] for i in items] == ["ab_experiments"] * 3 + ["ab_variants"] * 3
    guard = items[0]["Put"]
    assert guard["ConditionExpression"] == "last_experiment_id = :e AND last_variant_id = :v"
    assert guard["ExpressionAttributeValues"] == {":e": {"N": "1"}, ":v": {"N": "2"}}
    assert first["TransactItems"][0]["Put"]["ConditionExpression"] == "attribute_not_exists(pk)"
    assert items[1]["Put"]["ConditionExpression"] == "attribute_not_exists(pk)"
    assert items[2]["Put"]["ConditionExpression"] == "attribute_not_exists(pk)"
    assert [i["Put"]["Item"]["sk"]["S"] for i in items[3:]] == [
        records.variant_sk(v) for v in (3, 4, 5)
    ]


def test_create_of_a_taken_name_is_a_conflict_on_name_and_stores_nothing(
    aws: Any, store: Store
) -> None:
    """A taken name is a 409 with field "name"; the counter does not move."""
    create(store, "taken")
    with pytest.raises(Conflict) as caught:
        create(store, "taken")
    assert caught.value.message == "an experiment named 'taken' already exists"
    assert caught.value.field == "name"
    assert caught.value.details == {}
    assert counter(aws) == {"pk": "counter", "last_experiment_id": 1, "last_variant_id": 2}


def test_create_retries_with_fresh_ids_when_another_create_took_them(
    aws: Any, rec: Recording, store: Store
) -> None:
    """A concurrent create between our read and our write fails our counter guard; we read
    the counter again and take the next ids."""
    create(store, "first")
    other = Store(Settings(), client=aws)
    rec.inject["transact_write_items"] = [lambda: create(other, "racer")]
    rec.calls.clear()
    mine = create(store, "mine")
    assert (mine.id, [v.id for v in mine.variants]) == (3, [5, 6])
    assert len(rec.of("transact_write_items")) == 2
    assert store.experiment_id_by_name("racer") == 2
    assert counter(aws) == {"pk": "counter", "last_experiment_id": 3, "last_variant_id": 6}


def test_the_very_first_create_retries_when_another_first_create_won(
    aws: Any, rec: Recording, store: Store
) -> None:
    """With no counter yet, the counter put is guarded by attribute_not_exists(pk)."""
    other = Store(Settings(), client=aws)
    rec.inject["transact_write_items"] = [lambda: create(other, "racer")]
    mine = create(store, "mine")
    assert (mine.id, [v.id for v in mine.variants]) == (2, [3, 4])
    assert store.experiment_id_by_name("racer") == 1


def test_create_retries_on_a_transaction_conflict_of_the_counter(
    aws: Any, rec: Recording, store: Store
) -> None:
    """TransactionConflict on the counter item (first reason) is a race: try again."""
    conflict = cancelled(aws, *reasons("TransactionConflict", "None", "None", "None", "None"))
    rec.inject["transact_write_items"] = [conflict]
    made = create(store, "after a conflict")
    assert made.id == 1
    assert len(rec.of("transact_write_items")) == 2


def test_create_does_not_retry_a_cancellation_that_is_not_a_race(
    aws: Any, rec: Recording, store: Store
) -> None:
    """Any other first reason (e.g. a validation error) would fail again: it is raised."""
    refused = cancelled(aws, *reasons("ValidationError", "None", "None", "None", "None"))
    rec.inject["transact_write_items"] = [refused]
    with pytest.raises(aws.exceptions.TransactionCanceledException) as caught:
        create(store, "refused")
    assert caught.value is refused
    assert len(rec.of("transact_write_items")) == 1


def test_create_gives_up_after_eight_contended_attempts(
    aws: Any, rec: Recording, store: Store
) -> None:
    """A counter taken on every attempt: 8 tries (each reading the counter), then a 503."""
    taken = reasons(CCF, "None", "None", "None", "None")
    rec.inject["transact_write_items"] = [cancelled(aws, *taken) for _ in range(8)]
    with pytest.raises(StoreUnavailable) as caught:
        create(store, "never")
    assert caught.value.message == "could not allocate an experiment id, please retry"
    assert len(rec.of("transact_write_items")) == 8
    assert len(rec.of("get_item")) == 8
    assert counter(aws) is None


# ------------------------------------------------------------------ reads of one experiment


def test_experiment_id_by_name_reads_the_name_lock_consistently(
    rec: Recording, store: Store
) -> None:
    """Just after a create, its name must resolve: a strongly consistent GetItem of the lock."""
    create(store, "a")
    create(store, "b")
    rec.calls.clear()
    found = store.experiment_id_by_name("b")
    assert found == 2
    assert isinstance(found, int)
    assert rec.of("get_item") == [
        {
            "TableName": "ab_experiments",
            "Key": {"pk": {"S": records.name_pk("b")}},
            "ConsistentRead": True,
        }
    ]


def test_an_unknown_name_is_not_found_on_experiment_name(store: Store) -> None:
    with pytest.raises(NotFound) as caught:
        store.experiment_id_by_name("nope")
    assert (caught.value.message, caught.value.field) == (
        "no experiment named 'nope'",
        "experiment_name",
    )


def test_an_unknown_id_is_not_found_on_id(store: Store) -> None:
    with pytest.raises(NotFound) as caught:
        store.get_experiment(42)
    assert (caught.value.message, caught.value.field) == ("experiment 42 not found", "id")
    with pytest.raises(NotFound) as again:
        store.experiment_with_items(43)
    assert (again.value.message, again.value.field) == ("experiment 43 not found", "id")


def test_get_experiment_reads_the_item_and_only_variant_definitions_consistently(
    rec: Recording, store: Store
) -> None:
    """A transition or rebalance reads what was just written: GetItem and Query are
    strongly consistent, and the Query asks for the variant# items only."""
    made = create(store, "read me")
    store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0)
    rec.calls.clear()
    got = store.get_experiment(made.id)
    assert got == made
    assert rec.names() == ["get_item", "query"]
    assert rec.of("get_item")[0] == {
        "TableName": "ab_experiments",
        "Key": {"pk": {"S": records.experiment_pk(made.id)}},
        "ConsistentRead": True,
    }
    (query,) = rec.of("query")
    assert query == {
        "TableName": "ab_variants",
        "KeyConditionExpression": "experiment_id = :e AND begins_with(sk, :p)",
        "ExpressionAttributeValues": {":e": {"N": str(made.id)}, ":p": {"S": "variant#"}},
        "ConsistentRead": True,
    }


def test_experiment_with_items_returns_every_ab_variants_item_by_default(
    rec: Recording, store: Store
) -> None:
    """An analysis reads everything of the experiment in one Query: definitions and exposures."""
    made = create(store, "analysed")
    store.create_assignment(made.id, "user:1", 2, now=NOW, shard=0)
    rec.calls.clear()
    experiment, items = store.experiment_with_items(made.id)
    assert experiment == made
    assert sorted(i["sk"] for i in items) == sorted(
        [records.exposure_sk(2, 0), records.variant_sk(1), records.variant_sk(2)]
    )
    (query,) = rec.of("query")
    assert query["KeyConditionExpression"] == "experiment_id = :e"
    assert query["ConsistentRead"] is True
    assert rec.of("get_item")[0]["ConsistentRead"] is True


def test_experiment_with_items_by_prefix_returns_only_those_items(store: Store) -> None:
    made = create(store, "prefixed")
    store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0)
    experiment, items = store.experiment_with_items(made.id, prefix="exposure#")
    assert [i["sk"] for i in items] == [records.exposure_sk(1, 0)]
    assert experiment.variants == []  # no variant# item was read


def test_query_experiment_items_is_strongly_consistent_and_filters_by_prefix(
    rec: Recording, store: Store
) -> None:
    """Totals and exposures just written must be counted: the Query is ConsistentRead."""
    made = create(store, "items")
    store.create_assignment(made.id, "user:1", 1, now=NOW, shard=3)
    rec.calls.clear()
    everything = store.query_experiment_items(made.id)
    exposures = store.query_experiment_items(made.id, prefix="exposure#")
    assert len(everything) == 3
    assert [(i["sk"], i["units_assigned"]) for i in exposures] == [(records.exposure_sk(1, 3), 1)]
    all_query, prefix_query = rec.of("query")
    assert all_query == {
        "TableName": "ab_variants",
        "KeyConditionExpression": "experiment_id = :e",
        "ExpressionAttributeValues": {":e": {"N": str(made.id)}},
        "ConsistentRead": True,
    }
    assert prefix_query["ExpressionAttributeValues"][":p"] == {"S": "exposure#"}
    assert prefix_query["ConsistentRead"] is True


# ------------------------------------------------------------------ list_experiments


@pytest.fixture
def listed(store: Store) -> Store:
    """1 running prompt "alpha one", 2 draft model "alpha two", 3 running model "beta"."""
    create(store, "alpha one")
    store.create_experiment(body("alpha two", experiment_type="model"), salt="s", now=NOW)
    store.create_experiment(body("beta", experiment_type="model"), salt="s", now=NOW)
    set_status(store, 1, "running")
    set_status(store, 3, "running")
    return store


def ids(found: list[dict[str, Any]]) -> list[int]:
    return [e["experiment_id"] for e in found]


def test_list_without_status_queries_every_status_and_sorts_by_id(
    rec: Recording, listed: Store
) -> None:
    """One Query of status-index per status; the union comes back ordered by id."""
    rec.calls.clear()
    found = listed.list_experiments(None, None)
    assert ids(found) == [1, 2, 3]
    assert all(isinstance(i, int) for i in ids(found))
    queries = rec.of("query")
    assert [q["ExpressionAttributeValues"][":s"]["S"] for q in queries] == list(
        store_module.STATUSES
    )
    assert all(q["IndexName"] == "status-index" for q in queries)
    assert all("FilterExpression" not in q for q in queries)


def test_list_by_status_makes_one_query(rec: Recording, listed: Store) -> None:
    rec.calls.clear()
    assert ids(listed.list_experiments("running", None)) == [1, 3]
    assert ids(listed.list_experiments("draft", None)) == [2]
    assert len(rec.of("query")) == 2


def test_list_filters_by_type_and_name_prefix_together(rec: Recording, listed: Store) -> None:
    """Both filters apply at once (AND), on top of the status."""
    assert ids(listed.list_experiments(None, "model")) == [2, 3]
    assert ids(listed.list_experiments(None, None, "alpha")) == [1, 2]
    rec.calls.clear()
    assert ids(listed.list_experiments(None, "model", "alpha")) == [2]
    assert ids(listed.list_experiments("running", "model", "alpha")) == []
    assert ids(listed.list_experiments("running", "prompt", "alpha")) == [1]
    query = rec.of("query")[0]
    assert query["FilterExpression"] == "experiment_type = :t AND begins_with(#n, :n)"
    assert query["ExpressionAttributeNames"] == {"#s": "status", "#n": "name"}


def test_list_follows_pages_of_the_status_index(rec: Recording, store: Store) -> None:
    """A Query answers at most 1 MB: every page is followed (LastEvaluatedKey)."""
    for n in range(3):
        create(store, f"paged {n}")
    real = rec._client.query
    rec._client = SimpleNamespace(
        query=lambda **kw: real(**{**kw, "Limit": 1}), exceptions=rec.exceptions
    )
    assert ids(store.list_experiments("draft", None)) == [1, 2, 3]


# ------------------------------------------------------------------ query_all


def test_query_all_follows_last_evaluated_key_until_the_last_page(
    rec: Recording, store: Store
) -> None:
    create(store, "pages", (25.0, 25.0, 25.0, 25.0))
    rec.calls.clear()
    params = {
        "TableName": "ab_variants",
        "KeyConditionExpression": "experiment_id = :e",
        "ExpressionAttributeValues": {":e": {"N": "1"}},
        "Limit": 3,
    }
    found = list(store.query_all(params))
    assert [i["sk"] for i in found] == [records.variant_sk(v) for v in (1, 2, 3, 4)]
    assert found[0]["variant_id"] == 1
    first, second = rec.of("query")
    assert "ExclusiveStartKey" not in first
    assert second["ExclusiveStartKey"] == {
        "experiment_id": {"N": "1"},
        "sk": {"S": records.variant_sk(3)},
    }
    assert "ExclusiveStartKey" not in params  # the caller's parameters are left alone


# ------------------------------------------------------------------ update_experiment


def test_update_sets_and_removes_attributes_in_one_request(aws: Any, store: Store) -> None:
    """A change to None removes the attribute; the others are set."""
    create(store, "updated")
    store.update_experiment(
        1,
        allowed_from=("draft",),
        changes={"status": "running", "started_at": NOW, "winner_reason": "r"},
    )
    store.update_experiment(
        1, allowed_from=("running",), changes={"winner_reason": None, "auto_stop": True}
    )
    item = raw_item(aws, "ab_experiments", {"pk": records.experiment_pk(1)})
    assert item is not None
    assert (item["status"], item["started_at"], item["auto_stop"]) == ("running", NOW, True)
    assert "winner_reason" not in item


def test_update_removes_several_attributes_at_once(aws: Any, store: Store) -> None:
    create(store, "cleared")
    store.update_experiment(
        1,
        allowed_from=("draft",),
        changes={"stop_reason": "s", "winner_reason": "w", "paused_at": NOW},
    )
    store.update_experiment(
        1,
        allowed_from=("draft",),
        changes={"stop_reason": None, "winner_reason": None, "auto_stop": True},
    )
    item = raw_item(aws, "ab_experiments", {"pk": records.experiment_pk(1)})
    assert item is not None
    assert "stop_reason" not in item
    assert "winner_reason" not in item
    assert (item["paused_at"], item["auto_stop"]) == (NOW, True)


def test_an_update_that_only_removes_sends_no_empty_set_clause(
    aws: Any, rec: Recording, store: Store
) -> None:
    """DynamoDB refuses "SET  REMOVE #r0" as a syntax error (moto lets it through), so an
    update whose every change is None sends a REMOVE clause alone."""
    create(store, "removed")
    store.update_experiment(1, allowed_from=("draft",), changes={"winner_reason": "w"})
    rec.calls.clear()
    store.update_experiment(1, allowed_from=("draft",), changes={"winner_reason": None})
    (update,) = rec.of("update_item")
    assert update["UpdateExpression"] == "REMOVE #r0"
    item = raw_item(aws, "ab_experiments", {"pk": records.experiment_pk(1)})
    assert item is not None
    assert "winner_reason" not in item


def test_update_while_the_status_is_not_allowed_is_a_conflict_naming_both(
    aws: Any, store: Store
) -> None:
    """The 409 says the current status and the allowed ones; nothing is written."""
    create(store, "drafted")
    with pytest.raises(Conflict) as caught:
        store.update_experiment(
            1, allowed_from=("running", "paused"), changes={"status": "stopped"}
        )
    error = caught.value
    assert error.message == "experiment 1 is draft; this needs one of: running, paused"
    assert error.field is None
    assert error.details == {"status": "draft", "allowed_from": ["running", "paused"]}
    assert store.get_experiment(1).status == "draft"


def test_update_of_an_unknown_experiment_is_not_found(aws: Any, store: Store) -> None:
    """attribute_exists(pk): an update never creates an experiment."""
    with pytest.raises(NotFound) as caught:
        store.update_experiment(7, allowed_from=("draft",), changes={"status": "running"})
    assert caught.value.message == "experiment 7 not found"
    assert raw_item(aws, "ab_experiments", {"pk": records.experiment_pk(7)}) is None


def test_update_raises_other_dynamodb_errors_as_they_are(rec: Recording, store: Store) -> None:
    create(store, "throttled")
    refused = client_error("ProvisionedThroughputExceededException", "UpdateItem")
    rec.inject["update_item"] = [refused]
    with pytest.raises(ClientError) as caught:
        store.update_experiment(1, allowed_from=("draft",), changes={"status": "running"})
    assert caught.value is refused


# ------------------------------------------------------------------ rebalance


def rebalanced(experiment: Experiment, allocations: tuple[float, ...], target: float) -> Any:
    variants = [
        dataclasses.replace(v, traffic_allocation=a)
        for v, a in zip(experiment.variants, allocations, strict=True)
    ]
    return experiment.replace(variants=variants, target_percentage=target)


def test_rebalance_writes_allocations_target_and_baseline(aws: Any, store: Store) -> None:
    made = create(store, "rebalanced")
    store.rebalance(
        rebalanced(made, (80.0, 20.0), 60.0),
        allowed_from=("draft",),
        now=NOW,
        srm_baseline={"1": 3, "2": 4},
    )
    item = raw_item(aws, "ab_experiments", {"pk": records.experiment_pk(made.id)})
    assert item is not None
    assert item["target_percentage"] == 60
    assert item["max_target_percentage"] == 60  # none before: the new target
    assert item["rebalanced_at"] == NOW
    assert item["srm_baseline"] == {"1": 3, "2": 4}
    assert item["allocation_ranges"] == [[0, 80, 1], [80, 100, 2]]  # from the new weights
    assert item["changed_ranges"] == []
    assert [v.traffic_allocation for v in store.get_experiment(made.id).variants] == [80, 20]


def test_rebalance_writes_the_highest_target_it_is_given(aws: Any, store: Store) -> None:
    """max_target_percentage (the highest target ever set, computed by the service) is
    written as given; the new target stands in only when there is none yet."""
    made = create(store, "kept max")
    higher = made.replace(max_target_percentage=90.0, target_percentage=30.0)
    store.rebalance(higher, allowed_from=("draft",), now=NOW, srm_baseline={})
    item = raw_item(aws, "ab_experiments", {"pk": records.experiment_pk(made.id)})
    assert item is not None
    assert (item["target_percentage"], item["max_target_percentage"]) == (30, 90)


def test_rebalance_in_a_status_not_allowed_is_a_conflict(aws: Any, store: Store) -> None:
    made = create(store, "stopped one")
    set_status(store, made.id, "stopped")
    with pytest.raises(Conflict) as caught:
        store.rebalance(
            rebalanced(made, (80.0, 20.0), 50.0),
            allowed_from=("draft", "running", "paused"),
            now=NOW,
            srm_baseline={},
        )
    error = caught.value
    assert error.message == (
        f"experiment {made.id} is stopped; a rebalance needs one of: draft, running, paused"
    )
    assert (error.field, error.details) == (None, {"status": "stopped"})
    assert [v.traffic_allocation for v in store.get_experiment(made.id).variants] == [50, 50]


def test_rebalance_cancelled_for_another_reason_is_unavailable(
    aws: Any, rec: Recording, store: Store
) -> None:
    made = create(store, "contended")
    rec.inject["transact_write_items"] = [
        cancelled(aws, *reasons("None", "TransactionConflict", "None"))
    ]
    with pytest.raises(StoreUnavailable) as caught:
        store.rebalance(made, allowed_from=("draft",), now=NOW, srm_baseline={})
    assert caught.value.message == "the rebalance could not be written, please retry"


# ------------------------------------------------------------------ assignments


def test_a_new_assignment_is_stored_and_counted_on_its_exposure_item(
    aws: Any, store: Store
) -> None:
    """A new unit: its item (source "hash" by default, empty sums) and +1 on the exposure."""
    made = create(store, "assigned")
    item, created = store.create_assignment(made.id, "user:1", 2, now=NOW, shard=4)
    expected = {
        "experiment_id": made.id,
        "unit": "user:1",
        "variant_id": 2,
        "assigned_at": NOW,
        "source": "hash",
        "m": {},
    }
    assert (item, created) == (expected, True)
    key = {"experiment_id": made.id, "unit": "user:1"}
    assert raw_item(aws, "ab_assignments", key) == expected
    assert store.get_assignment(made.id, "user:1") == expected
    exposure = raw_item(
        aws, "ab_variants", {"experiment_id": made.id, "sk": records.exposure_sk(2, 4)}
    )
    assert exposure == {
        "experiment_id": made.id,
        "sk": records.exposure_sk(2, 4),
        "variant_id": 2,
        "units_assigned": 1,
    }


def test_get_assignment_of_an_unknown_unit_is_none(store: Store) -> None:
    made = create(store, "empty")
    store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0)
    assert store.get_assignment(made.id, "user:2") is None
    assert store.get_assignment(made.id + 1, "user:1") is None


def test_a_session_alias_counts_as_an_aliased_unit_not_a_new_one(aws: Any, store: Store) -> None:
    """A user inheriting their session's variant is the same person: aliased_units."""
    made = create(store, "aliased")
    store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0)
    item, _ = store.create_assignment(
        made.id, "user:2", 1, now=NOW, shard=0, source="session_alias"
    )
    assert item["source"] == "session_alias"
    exposure = raw_item(
        aws, "ab_variants", {"experiment_id": made.id, "sk": records.exposure_sk(1, 0)}
    )
    assert exposure is not None
    assert (exposure["units_assigned"], exposure["aliased_units"]) == (1, 1)


def test_a_covariate_is_stored_with_a_new_assignment_as_x(aws: Any, store: Store) -> None:
    made = create(store, "cuped")
    item, _ = store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0, covariate=7.5)
    assert item["x"] == 7.5
    stored = raw_item(aws, "ab_assignments", {"experiment_id": made.id, "unit": "user:1"})
    assert stored is not None
    assert stored["x"] == 7.5
    no_covariate, _ = store.create_assignment(made.id, "user:2", 1, now=NOW, shard=0)
    assert "x" not in no_covariate


def test_a_later_writer_gets_the_stored_assignment_from_the_cancellation(
    aws: Any, rec: Recording, store: Store
) -> None:
    """Sticky: the first writer wins. The winner's item comes back in the cancellation reason
    (ReturnValuesOnConditionCheckFailure=ALL_OLD), so no second read is needed."""
    made = create(store, "sticky")
    first, _ = store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0)
    rec.calls.clear()
    again, created = store.create_assignment(made.id, "user:1", 2, now="later", shard=0)
    assert (again, created) == (first, False)
    assert rec.names() == ["transact_write_items"]
    put = rec.of("transact_write_items")[0]["TransactItems"][0]["Put"]
    assert put["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert put["ConditionExpression"] == "attribute_not_exists(#u)"
    assert put["ExpressionAttributeNames"] == {"#u": "unit"}
    for variant_id in (1, 2):
        exposure = raw_item(
            aws, "ab_variants", {"experiment_id": made.id, "sk": records.exposure_sk(variant_id, 0)}
        )
        assert (exposure or {}).get("units_assigned") == (1 if variant_id == 1 else None)


def test_a_lost_race_without_the_old_item_reads_it_strongly_consistent(
    aws: Any, rec: Recording, store: Store
) -> None:
    """When the reason carries no item, the winner's assignment is read with ConsistentRead
    (an eventually consistent read could miss the write that just won)."""
    made = create(store, "fallback")
    first, _ = store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0)
    rec.inject["transact_write_items"] = [cancelled(aws, *reasons(CCF, "None"))]
    rec.calls.clear()
    again, created = store.create_assignment(made.id, "user:1", 2, now="later", shard=0)
    assert (again, created) == (first, False)
    assert rec.names() == ["transact_write_items", "get_item"]
    assert rec.of("get_item")[0] == {
        "TableName": "ab_assignments",
        "Key": {"experiment_id": {"N": str(made.id)}, "unit": {"S": "user:1"}},
        "ConsistentRead": True,
    }


class Backoff:
    """Stands in for the store's ``random`` and ``time``: keeps each jitter range asked of
    uniform() (answering its upper end) and each sleep, without waiting."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, float]] = []
        self.slept: list[float] = []

    def uniform(self, low: float, high: float) -> float:
        self.asked.append((low, high))
        return high

    def sleep(self, seconds: float) -> None:
        assert isinstance(seconds, float)
        self.slept.append(seconds)


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> Backoff:
    backoff = Backoff()
    monkeypatch.setattr(store_module, "random", backoff)
    monkeypatch.setattr(store_module, "time", backoff)
    return backoff


def test_an_assignment_under_lasting_contention_gives_up_after_five_attempts(
    aws: Any, rec: Recording, store: Store, no_sleep: Backoff
) -> None:
    """A busy exposure item: 5 attempts, each followed by a jittered back-off that grows by
    5 ms per attempt, then a 503; the assignment is not stored."""
    made = create(store, "busy")
    rec.calls.clear()
    rec.inject["transact_write_items"] = [
        cancelled(aws, *reasons("None", "TransactionConflict")) for _ in range(5)
    ]
    with pytest.raises(StoreUnavailable) as caught:
        store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0)
    assert caught.value.message == "the assignment could not be written under contention, retry"
    assert len(rec.of("transact_write_items")) == 5
    assert "get_item" not in rec.names()  # no unit won: nothing to read back
    assert no_sleep.asked == [(0, pytest.approx(0.005 * n)) for n in (1, 2, 3, 4, 5)]
    assert no_sleep.slept == [pytest.approx(0.005 * n) for n in (1, 2, 3, 4, 5)]
    assert store.get_assignment(made.id, "user:1") is None


def test_an_assignment_is_written_once_the_contention_passes(
    aws: Any, rec: Recording, store: Store, no_sleep: Backoff
) -> None:
    made = create(store, "passing")
    rec.inject["transact_write_items"] = [
        cancelled(aws, *reasons("None", "TransactionConflict")) for _ in range(2)
    ]
    item, created = store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0)
    assert (item["variant_id"], created) == (1, True)
    assert len(no_sleep.slept) == 2


# ------------------------------------------------------------------ set_covariate


def assignment(aws: Any, experiment_id: int, unit: str) -> dict[str, Any]:
    item = raw_item(aws, "ab_assignments", {"experiment_id": experiment_id, "unit": unit})
    assert item is not None
    return item


def test_set_covariate_stores_x_for_a_unit_without_one_and_without_results(
    aws: Any, store: Store
) -> None:
    made = create(store, "covariate")
    store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0)
    store.set_covariate(made.id, "user:1", 3.25)
    assert assignment(aws, made.id, "user:1")["x"] == 3.25
    store.set_covariate(made.id, "user:1", 9)  # stored once: kept
    assert assignment(aws, made.id, "user:1")["x"] == 3.25


def test_set_covariate_leaves_a_unit_with_results_alone(aws: Any, store: Store) -> None:
    """Its sums so far must not mix units with and without a covariate."""
    made = create(store, "has results")
    store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0)
    aws.update_item(
        TableName="ab_assignments",
        Key=dynamo.serialize({"experiment_id": made.id, "unit": "user:1"}),
        UpdateExpression="SET m = :m",
        ExpressionAttributeValues=dynamo.serialize({":m": {"resolution_rate": [1, 1]}}),
    )
    store.set_covariate(made.id, "user:1", 3)
    assert "x" not in assignment(aws, made.id, "user:1")


def test_set_covariate_never_creates_an_assignment(aws: Any, store: Store) -> None:
    made = create(store, "no unit")
    store.set_covariate(made.id, "user:9", 3)
    assert store.get_assignment(made.id, "user:9") is None


def test_set_covariate_raises_other_dynamodb_errors(rec: Recording, store: Store) -> None:
    made = create(store, "throttled covariate")
    store.create_assignment(made.id, "user:1", 1, now=NOW, shard=0)
    refused = client_error("ThrottlingException", "UpdateItem")
    rec.inject["update_item"] = [refused]
    with pytest.raises(ClientError) as caught:
        store.set_covariate(made.id, "user:1", 3)
    assert caught.value is refused


# ------------------------------------------------------------------ insights


def stamp(n: int) -> str:
    return f"2026-01-0{n}T00:00:00Z"


def test_put_insight_stores_the_item_under_its_key(aws: Any, store: Store) -> None:
    store.put_insight(4, stamp(1), {"winner": "v1", "p_value": 0.01})
    stored = raw_item(aws, "ab_insights", {"experiment_id": 4, "analysed_at": stamp(1)})
    assert stored == {
        "experiment_id": 4,
        "analysed_at": stamp(1),
        "winner": "v1",
        "p_value": 0.01,
    }


def test_insights_come_newest_first_a_page_at_a_time(rec: Recording, store: Store) -> None:
    """Newest first (ScanIndexForward=False), `limit` per page, an opaque cursor to go on."""
    for n in (1, 2, 3):
        store.put_insight(4, stamp(n), {"n": n})
    store.put_insight(5, stamp(4), {"n": 4})
    page, cursor = store.list_insights(4, limit=2)
    assert [i["analysed_at"] for i in page] == [stamp(3), stamp(2)]
    assert page[0] == {"experiment_id": 4, "analysed_at": stamp(3), "n": 3}
    assert cursor == records.encode_cursor(stamp(2))
    rest, last = store.list_insights(4, limit=2, cursor=cursor)
    assert [i["analysed_at"] for i in rest] == [stamp(1)]
    assert last is None
    first_query, second_query = rec.of("query")
    assert (first_query["ScanIndexForward"], first_query["Limit"]) == (False, 2)
    assert "ExclusiveStartKey" not in first_query
    assert second_query["ExclusiveStartKey"] == {
        "experiment_id": {"N": "4"},
        "analysed_at": {"S": stamp(2)},
    }


def test_insights_of_an_experiment_without_any_are_an_empty_last_page(store: Store) -> None:
    assert store.list_insights(9, limit=5) == ([], None)


def test_a_figure_below_dynamodbs_range_is_stored_as_zero(service: Any) -> None:
    # Given an insight holding p-values beyond DynamoDB's smallest magnitude (1e-130)
    figures = {"p_tiny": 1e-200, "p_negative": -1e-131, "p_edge": 1e-130, "p_plain": 0.0123}

    # When it is written and read back (moto refuses such a number: "Number underflow")
    service.store.put_insight(1, "2026-12-07T10:00:00.000Z", figures)
    (stored,), _ = service.store.list_insights(1, limit=1)

    # Then the ones below the range read 0, and the others as written
    assert stored["p_tiny"] == 0 and stored["p_negative"] == 0
    assert float(stored["p_edge"]) == 1e-130 and float(stored["p_plain"]) == 0.0123
