"""The whole lifecycle with each function held to its own IAM policy from template.yaml.

Given the five tables on moto and an enforcer built from the template, when every endpoint and
the scheduled jobs run as a user would drive them, then no DynamoDB call is denied, and every
permission a function is granted is either used or explained by a comment next to the grant.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from ab_testing import assignment
from emulator import iam
from emulator.events import FakeLambdaContext, api_gateway_event
from emulator.template import DEFAULT_TEMPLATE, api_routes, load_template
from tests.conftest import guide_experiment, invoke, load_event, load_handler

BASE = "/api/v1/experiments"
NAME = "Lead Qualification Prompt Test"
RESULT = {"experiment_name": NAME, "metric_name": "resolution_rate", "metric_value": 1}


@pytest.fixture
def enforcer(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[iam.Enforcer]:
    """A fresh enforcer over template.yaml; no warm cache hides a function's reads."""
    from ab_testing import runtime

    monkeypatch.setenv("AB_CACHE_TTL_SECONDS", "0")
    runtime.reset()
    yield from _enforcing(load_template())
    runtime.reset()


def _enforcing(template: dict[str, Any]) -> Iterator[iam.Enforcer]:
    fresh = iam.Enforcer.from_template(template)
    previous = iam.install(fresh)
    try:
        yield fresh
    finally:
        iam.restore(previous)


def by_id(function_dir: str, method: str, action: str = "", **kw: Any) -> tuple[int, Any]:
    suffix = f"/{action}" if action else ""
    return invoke(
        function_dir,
        method,
        f"{BASE}/1{suffix}",
        resource=f"{BASE}/{{id}}{suffix}",
        path_parameters={"id": "1"},
        **kw,
    )


def post(function_dir: str, path: str, body: Any) -> tuple[int, Any]:
    return invoke(function_dir, "POST", f"{BASE}/{path}", body=body)


def post_traces() -> tuple[int, Any]:
    """The OTLP endpoint with its event's body (a judge's late score), for a replayed user."""
    text = load_event("otlp_traces")["body"].replace('"123"', '"u-1"')
    return invoke("otlp_traces", "POST", "/api/v1/otlp/v1/traces", body=json.loads(text))


def scheduled(event: dict[str, Any]) -> Any:
    handler = load_handler("scheduled_analysis").handler
    return handler(event, FakeLambdaContext("scheduled_analysis"))


def replay_holdout() -> list[tuple[str, int]]:
    """A layer whose holdout starts after its experiment has units: a returning unit (joins
    the holdout, marked once), a held-out unit and a new one, through get-variant."""
    steps: list[tuple[str, int]] = []
    layered = guide_experiment(name="layered", layer={"name": "bot", "range": [0.0, 0.9]})
    holdout = guide_experiment(
        name="bot holdout",
        layer={"name": "bot", "range": [0.9, 1.0], "holdout": True},
        variants=[
            {"name": "held out", "is_control": True, "traffic_allocation": 10},
            {"name": "shipped", "traffic_allocation": 90},
        ],
    )
    for body in (layered, holdout):
        status, created = invoke("create_experiment", "POST", BASE, body=body)
        steps.append(("create", status))
        path = f"{BASE}/{created['id']}/start"
        started = invoke(
            "start_experiment", "POST", path, resource=f"{BASE}/{{id}}/start",
            path_parameters={"id": str(created["id"])},
        )  # fmt: skip
        steps.append(("start", started[0]))
        if body is layered:  # units it stores before the holdout starts
            for user in ("h-0", "h-1", "h-2"):
                answer = post(
                    "get_variant", "get-variant", {"experiment_name": "layered", "user_id": user}
                )  # noqa: E501
                steps.append(("get-variant layered", answer[0]))
    for user in ("h-0", "h-1", "h-2", "h-3", "h-4", "h-10", "h-12", "h-10"):  # h-1x: held out
        answer = post("get_variant", "get-variant", {"experiment_name": "layered", "user_id": user})
        steps.append(("get-variant with a holdout", answer[0]))
    return steps


def replay_lifecycle() -> list[tuple[str, int]]:
    """Every endpoint and both scheduled jobs, in a user's order; (step, status) per call."""
    steps: list[tuple[str, int]] = []

    def step(name: str, answer: tuple[int, Any]) -> Any:
        steps.append((name, answer[0]))
        return answer[1]

    body = guide_experiment(segment_attributes=["plan"])
    step("create", invoke("create_experiment", "POST", BASE, body=body))
    step("get", by_id("get_experiment", "GET"))
    step("list", invoke("list_experiments", "GET", BASE, query={"status": "draft"}))
    step("start", by_id("start_experiment", "POST", "start"))
    step("start again", by_id("start_experiment", "POST", "start"))
    for unit in range(6):
        step("get-variant session", post("get_variant", "get-variant", _unit(session=unit)))
        step("get-variant user", post("get_variant", "get-variant", _unit(user=unit)))
    # A visitor logs in: the user inherits the session's variant (the alias path).
    step("login alias", post("get_variant", "get-variant", _unit(user="login-0", session=0)))
    # A client evaluating locally: the definitions, then an exposure its ranges give.
    published = step("definitions", invoke("experiment_definitions", "GET", f"{BASE}/definitions"))
    answer = step("exposures", post("record_exposures", "exposures", _exposure(published)))
    steps.extend(("exposure item", item["status"]) for item in answer["results"])
    step("result session", post("record_result", "record-result", {**RESULT, **_unit(session=1)}))
    step("result user", post("record_result", "record-result", {**RESULT, **_unit(user=1)}))
    # A user's first call is a result, with the session that already has a variant.
    aliased = {**RESULT, **_unit(user="login-2", session=2), "idempotency_key": "r-2"}
    step("result aliased first", post("record_result", "record-result", aliased))
    step("result repeated", post("record_result", "record-result", aliased))
    batch = [
        {**RESULT, **_unit(user=3), "idempotency_key": "b-3"},
        {**RESULT, **_unit(user="login-4", session=4), "metric_value": 0},
        {**RESULT, **_unit(session=5), "metric_name": "satisfaction_score", "metric_value": 4},
    ]
    answer = step("batch results", post("record_results", "record-results", {"results": batch}))
    steps.extend(("batch item", item["status"]) for item in answer["results"])
    step("analyze", by_id("analyze_experiment", "GET", "analyze"))
    step("summary", by_id("experiment_summary", "GET", "summary"))
    steps.append(("scheduled analysis", 200 if scheduled({})["failed"] == 0 else 500))
    report = scheduled({"reconcile": True})
    steps.append(("scheduled reconciliation", 200 if report["with_differences"] == 0 else 500))
    step("insights", by_id("experiment_insights", "GET", "insights"))
    step("reconciliation", by_id("reconcile_experiment", "GET", "reconciliation"))
    step("traces", post_traces())
    step("segments", by_id("experiment_segments", "GET", "segments", query={"attribute": "plan"}))
    steps.extend(replay_holdout())
    step("layers", invoke("list_layers", "GET", "/api/v1/layers"))
    step("report", _status(load_handler("experiment_report"), "report"))
    step("export results", by_id("export_results", "GET", "results"))
    step("export assignments", by_id("export_assignments", "GET", "assignments"))
    steps.extend(("other route", status) for status in call_every_other_route())
    step("pause", by_id("pause_experiment", "POST", "pause"))
    allocations = {"variants": [{"name": "Control", "traffic_allocation": 30.0}]}
    allocations["variants"].append(
        {"name": "Treatment - Few Shot Examples", "traffic_allocation": 70.0}
    )
    step("rebalance", by_id("rebalance_experiment", "PATCH", body=allocations))
    step("resume", by_id("resume_experiment", "POST", "resume"))
    winner = {"declare_winner": "true", "promote": "true"}
    step("stop with a winner", by_id("stop_experiment", "POST", "stop", query=winner))
    step("archive", by_id("archive_experiment", "POST", "archive"))
    return steps


def _exposure(published: dict[str, Any]) -> dict[str, Any]:
    definition = published["experiments"][0]
    _, pick = assignment.draws(definition["salt"], "user:u-local")
    ranges = [(a, b, int(v)) for a, b, v in definition["ranges"]]
    variant_id = assignment.variant_at(pick, ranges)
    return {"exposures": [{"experiment_id": 1, "user_id": "u-local", "variant_id": variant_id}]}


def _status(module: Any, action: str) -> tuple[int, Any]:
    """A handler whose answer is not JSON (the report page): its status only."""
    from emulator.events import api_gateway_event

    event = api_gateway_event(
        "GET",
        f"{BASE}/1/{action}",
        resource=f"{BASE}/{{id}}/{action}",
        path_parameters={"id": "1"},
        body=None,
    )
    return module.handler(event, FakeLambdaContext(action))["statusCode"], None


CALLED = {
    "create_experiment",
    "get_experiment",
    "list_experiments",
    "start_experiment",
    "get_variant",
    "record_result",
    "record_results",
    "analyze_experiment",
    "experiment_summary",
    "scheduled_analysis",
    "experiment_insights",
    "reconcile_experiment",
    "pause_experiment",
    "rebalance_experiment",
    "resume_experiment",
    "stop_experiment",
    "archive_experiment",
    "experiment_report",
    "export_results",
    "export_assignments",
    "experiment_definitions",
    "record_exposures",
}


def call_every_other_route() -> list[int]:
    """Routes added after this replay was written, called as they are (no body) on experiment 1.

    A read route is exercised this way; one that needs a body answers 400 without touching
    DynamoDB, and its grants then show up as unused until it gets its own step above.
    """
    statuses = []
    for route in api_routes(load_template()):
        function_dir = route.code_uri.rstrip("/").rsplit("/", 1)[-1]
        if function_dir in CALLED:
            continue
        method = "DELETE" if route.method == "ANY" else route.method
        path = route.path.replace("{id}", "1")
        params = {"id": "1"} if "{id}" in route.path else None
        event = api_gateway_event(
            method, path, resource=route.path, path_parameters=params, body=None
        )
        answer = load_handler(function_dir).handler(event, FakeLambdaContext(function_dir))
        statuses.append(int(answer["statusCode"]))  # the body may be CSV, HTML...
    return statuses


def _unit(*, user: Any = None, session: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"experiment_name": NAME}
    if user is not None:
        body["user_id"] = f"u-{user}"
    if session is not None:
        body["session_id"] = f"s-{session}"
    return body


EXPECTED = {
    "create": 201,
    "start again": 409,
    "result session": 201,
    "result user": 201,
    "result aliased first": 201,
    "batch item": 201,
    "exposure item": 201,
}


def test_lifecycle_passes_with_each_function_held_to_its_template_policy(
    enforcer: iam.Enforcer,
) -> None:
    # When the whole lifecycle runs with IAM enforced
    steps = replay_lifecycle()

    # Then every step answers as a user expects, and no call was denied
    listed = [(name, status) for name, status in steps if name != "other route"]
    assert [(name, EXPECTED.get(name, 200)) for name, _ in listed] == listed
    assert [status for name, status in steps if name == "other route" and status >= 500] == []
    assert enforcer.denials == []
    # And every function that holds a grant was exercised, so its grants were measured
    report = enforcer.report()
    print_report(report)
    granted = [f for f, policy in enforcer.policies.items() if policy.grants()]
    assert [f for f in granted if not report[f]["used"]] == []
    # And a grant that nothing used carries a comment saying why it is there
    assert unexplained_grants(enforcer) == [], (
        "explain each grant the replay does not use with a comment in the function's Policies: "
        "# dynamodb:<Action> on <TableLogicalId>: why"
    )


def print_report(report: dict[str, dict[str, list[str]]]) -> None:
    for function_id, lists in report.items():
        print(f"{function_id}\n  used:   {', '.join(lists['used'])}")
        print(f"  unused: {', '.join(lists['unused']) or '-'}")


def unexplained_grants(enforcer: iam.Enforcer) -> list[str]:
    """Unused grants with no `# <action> on <table>: why` comment in the function's block."""
    text = DEFAULT_TEMPLATE.read_text()
    tables = {v: k for k, v in _table_logical_ids().items()}
    missing = []
    for function_id in enforcer.policies:
        comments = _comments_in_block(text, function_id)
        for grant in enforcer.unused(function_id):
            table = iam.short_resource(grant.resource).split("/")[0]
            names = {table, tables.get(table, table)}
            if not any(grant.action in c and any(n in c for n in names) for c in comments):
                missing.append(f"{function_id}: {grant.describe()}")
    return missing


def _table_logical_ids() -> dict[str, str]:
    from emulator.template import table_names

    return table_names(load_template())


def _comments_in_block(text: str, logical_id: str) -> list[str]:
    match = re.search(rf"^  {logical_id}:\n((?:    .*\n|\s*\n)*)", text, re.MULTILINE)
    block = match.group(1) if match else ""
    return [line.split("#", 1)[1] for line in block.splitlines() if "#" in line]


# ------------------------------------------------------------------ removing a permission


def without(template: dict[str, Any], function_id: str, action: str, table: str) -> dict[str, Any]:
    """A copy of the template where `function_id` loses `action` on `table` (a logical id)."""
    changed = copy.deepcopy(template)
    policies = changed["Resources"][function_id]["Properties"]["Policies"]
    removed = False
    for policy in policies:
        for statement in policy.get("Statement", []):
            resources = statement["Resource"]
            resources = resources if isinstance(resources, list) else [resources]
            if action in statement["Action"] and any(table in str(r) for r in resources):
                kept = [r for r in resources if table not in str(r)]
                split = {**statement, "Resource": [r for r in resources if table in str(r)]}
                split["Action"] = [a for a in statement["Action"] if a != action]
                statement["Resource"] = kept
                policy["Statement"].append(split)
                removed = True
    assert removed, f"{function_id} has no {action} on {table}"
    for policy in policies:
        policy["Statement"] = [s for s in policy["Statement"] if s["Resource"] and s["Action"]]
    return changed


@pytest.mark.parametrize(
    ("function_id", "action", "table", "step"),
    [
        ("StartExperimentFunction", "dynamodb:Query", "VariantsTable", "start"),
        ("RecordResultFunction", "dynamodb:PutItem", "AssignmentsTable", "result aliased first"),
        ("RecordResultsFunction", "dynamodb:PutItem", "AssignmentsTable", "batch item"),
        ("GetVariantFunction", "dynamodb:GetItem", "AssignmentsTable", "get-variant session"),
    ],
)
def test_removing_one_needed_permission_fails_the_replay(
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
    function_id: str,
    action: str,
    table: str,
    step: str,
) -> None:
    from ab_testing import runtime

    # Given the template with one permission the lifecycle needs taken away
    monkeypatch.setenv("AB_CACHE_TTL_SECONDS", "0")
    runtime.reset()
    template = without(load_template(), function_id, action, table)
    for enforcing in _enforcing(template):
        # When the lifecycle is replayed
        steps = replay_lifecycle()
        # Then DynamoDB refuses the call, the way AWS would, and the step fails
        assert {d.function_id for d in enforcing.denials} == {function_id}
        assert {d.action for d in enforcing.denials} == {action}
        failed = {name for name, status in steps if status != EXPECTED.get(name, 200)}
        assert step in failed
    runtime.reset()
