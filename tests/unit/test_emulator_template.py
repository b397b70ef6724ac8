"""The template reader: short tags, the resolver, tables, environment, routes and schedules."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from emulator.intrinsics import Resolver
from emulator.template import (
    DEFAULT_TEMPLATE,
    Route,
    api_routes,
    create_tables,
    function_environment,
    function_settings,
    layer_dirs,
    load_template,
    missing_route_response,
    scheduled_functions,
    table_definitions,
    table_names,
)

EXPECTED_KEYS = {
    "ab_experiments": [("pk", "HASH")],
    "ab_variants": [("experiment_id", "HASH"), ("sk", "RANGE")],
    "ab_assignments": [("experiment_id", "HASH"), ("unit", "RANGE")],
    "ab_results": [("experiment_id", "HASH"), ("result_id", "RANGE")],
    "ab_insights": [("experiment_id", "HASH"), ("analysed_at", "RANGE")],
}


@pytest.fixture(scope="module")
def real_template() -> dict[str, Any]:
    return load_template(DEFAULT_TEMPLATE)


def write_template(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ------------------------------------------------------------------ loader


def test_short_tags_become_long_forms(tmp_path: Path) -> None:
    # Given a template using every kind of short tag node
    path = write_template(
        tmp_path,
        """
        A: !Ref Thing
        B: !Sub "${X}-y"
        C: !GetAtt Table.Arn
        D: !If [Cond, 1, 2]
        E: !Equals [!Ref P, "v"]
        F: !Not [!Condition Cond]
        G: !Join [",", [a, b]]
        H: !Sub
          - "${Name}"
          - Name: !Ref P
        I: !GetAtt [Table, StreamArn]
        """,
    )
    # When it is loaded
    data = load_template(path)
    # Then each tag is the dict CloudFormation's long form would be
    assert data["A"] == {"Ref": "Thing"}
    assert data["B"] == {"Fn::Sub": "${X}-y"}
    assert data["C"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert data["D"] == {"Fn::If": ["Cond", 1, 2]}
    assert data["E"] == {"Fn::Equals": [{"Ref": "P"}, "v"]}
    assert data["F"] == {"Fn::Not": [{"Condition": "Cond"}]}
    assert data["G"] == {"Fn::Join": [",", ["a", "b"]]}
    assert data["H"] == {"Fn::Sub": ["${Name}", {"Name": {"Ref": "P"}}]}
    assert data["I"] == {"Fn::GetAtt": ["Table", "StreamArn"]}


def test_loading_a_non_mapping_is_an_error(tmp_path: Path) -> None:
    # Given a YAML file that is a plain list
    path = write_template(tmp_path, "- a\n- b\n")
    # When / Then loading it fails clearly
    with pytest.raises(ValueError, match="not a CloudFormation template"):
        load_template(path)


# ------------------------------------------------------------------ resolver

RESOLVER_TEMPLATE: dict[str, Any] = {
    "Parameters": {
        "Prefix": {"Type": "String", "Default": "p_"},
        "Size": {"Type": "Number", "Default": 5},
        "Mode": {"Type": "String", "Default": "A"},
    },
    "Conditions": {
        "IsA": {"Fn::Equals": [{"Ref": "Mode"}, "A"]},
        "NotA": {"Fn::Not": [{"Condition": "IsA"}]},
    },
    "Resources": {
        "Tbl": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {"TableName": {"Fn::Sub": "${Prefix}t"}},
        },
        "Fn": {"Type": "AWS::Serverless::Function", "Properties": {}},
    },
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"Ref": "Prefix"}, "p_"),
        ({"Ref": "Size"}, "5"),
        ({"Ref": "Tbl"}, "p_t"),
        ({"Ref": "AWS::Region"}, "eu-west-3"),
        ({"Fn::Sub": "${AWS::Region}/${Prefix}x/${!Literal}"}, "eu-west-3/p_x/${Literal}"),
        ({"Fn::Sub": ["${A}-${Prefix}", {"A": {"Ref": "Size"}}]}, "5-p_"),
        ({"Fn::GetAtt": ["Tbl", "Arn"]}, "arn:aws:dynamodb:eu-west-3:123456789012:table/p_t"),
        (
            {"Fn::Sub": "${Tbl.Arn}/index/*"},
            "arn:aws:dynamodb:eu-west-3:123456789012:table/p_t/index/*",
        ),
        ({"Fn::If": ["IsA", "yes", "no"]}, "yes"),
        ({"Fn::If": ["NotA", "yes", "no"]}, "no"),
        ({"Fn::Join": ["-", ["a", {"Ref": "Size"}]]}, "a-5"),
        ({"Fn::Select": [1, ["a", "b"]]}, "b"),
        ([1, {"Ref": "AWS::NoValue"}, 2], [1, 2]),
    ],
)
def test_resolver_evaluates_intrinsics(expression: Any, expected: Any) -> None:
    # Given a resolver for a small template in another region
    resolver = Resolver(RESOLVER_TEMPLATE, region="eu-west-3")
    # When the expression is resolved / Then it has CloudFormation's value
    assert resolver.resolve(expression) == expected


def test_parameter_overrides_win_over_defaults() -> None:
    # Given an override for a parameter and a condition that depends on another
    resolver = Resolver(RESOLVER_TEMPLATE, {"Prefix": "dev_", "Mode": "B"})
    # When / Then the table name and the condition follow the overrides
    assert resolver.resolve({"Ref": "Tbl"}) == "dev_t"
    assert resolver.condition("NotA") is True


def test_ref_to_unknown_name_is_an_error() -> None:
    # Given a resolver / When a !Ref names nothing in the template / Then it says so
    with pytest.raises(KeyError, match="Nope"):
        Resolver(RESOLVER_TEMPLATE).resolve({"Ref": "Nope"})


# ------------------------------------------------------------------ the real template


def test_real_template_has_the_five_tables_with_their_keys(real_template: dict[str, Any]) -> None:
    # Given the project's template / When its tables are read
    definitions = table_definitions(real_template)
    # Then the five ab_* tables are there, keyed as the template says
    by_name = {d["TableName"]: d for d in definitions}
    assert set(by_name) == set(EXPECTED_KEYS)
    for name, keys in EXPECTED_KEYS.items():
        schema = [(k["AttributeName"], k["KeyType"]) for k in by_name[name]["KeySchema"]]
        assert schema == keys
        assert by_name[name]["BillingMode"] == "PAY_PER_REQUEST"
        assert "PointInTimeRecoverySpecification" not in by_name[name]
        assert by_name[name]["SSESpecification"] == {"Enabled": True}
    gsi = by_name["ab_experiments"]["GlobalSecondaryIndexes"][0]
    assert gsi["IndexName"] == "status-index"


def test_table_prefix_parameter_prefixes_every_table(real_template: dict[str, Any]) -> None:
    # Given the parameter TablePrefix="x_" / When the tables are read
    names = table_names(real_template, {"TablePrefix": "x_"})
    # Then every table name carries the prefix
    assert names["ExperimentsTable"] == "x_ab_experiments"
    assert sorted(names.values()) == sorted(f"x_{n}" for n in EXPECTED_KEYS)
    assert table_definitions(real_template, {"TablePrefix": "x_"})[0]["TableName"] == (
        "x_ab_experiments"
    )


def test_function_environment_resolves_table_refs(real_template: dict[str, Any]) -> None:
    # Given the template's Globals / When the environment is resolved with a prefix
    env = function_environment(real_template, {"TablePrefix": "x_"})
    # Then table refs are table names and numbers are strings
    assert env["AB_EXPERIMENTS_TABLE"] == "x_ab_experiments"
    assert env["AB_INSIGHTS_TABLE"] == "x_ab_insights"
    assert env["AB_CACHE_TTL_SECONDS"] == "5"
    assert all(isinstance(v, str) for v in env.values())


def test_function_environment_merges_a_functions_own_variables() -> None:
    # Given a function with its own variable that shadows a global one
    template = {
        "Globals": {"Function": {"Environment": {"Variables": {"A": "g", "B": "g"}}}},
        "Resources": {
            "F": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"Environment": {"Variables": {"B": "f", "C": 3}}},
            }
        },
    }
    # When / Then the function's variables are merged over the globals
    assert function_environment(template, function_id="F") == {"A": "g", "B": "f", "C": "3"}


def test_api_routes_of_the_real_template(real_template: dict[str, Any]) -> None:
    # Given the project's template / When its Api events are listed
    routes = api_routes(real_template)
    # Then each one is a Route with its path as written, its function and code directory
    assert (
        Route(
            "POST",
            "/api/v1/experiments/{id}/start",
            "StartExperimentFunction",
            "functions/start_experiment/",
            "app.handler",
        )
        in routes
    )
    pairs = {(r.method, r.path) for r in routes}
    assert len(pairs) == len(routes)  # no method+path is defined twice
    assert {
        ("GET", "/api/v1/experiments"),
        ("POST", "/api/v1/experiments/get-variant"),
        ("POST", "/api/v1/experiments/record-result"),
        ("GET", "/api/v1/experiments/{id}/summary"),
    } <= pairs
    assert routes[0].code_dir(Path("/repo")) == Path("/repo/functions/create_experiment")


def test_scheduled_functions_and_other_template_facts(real_template: dict[str, Any]) -> None:
    # Given the project's template / When the scheduled functions and the rest are read
    scheduled = scheduled_functions(real_template)
    # Then the analysis is the one scheduled function, with its resolved expression
    assert [s.function_id for s in scheduled] == ["ScheduledAnalysisFunction"]
    assert scheduled[0].code_uri == "functions/scheduled_analysis/"
    assert scheduled[0].schedule == "cron(0 * * * ? *)"
    assert "layers/ab_testing/" in layer_dirs(real_template)
    status, body = missing_route_response(real_template)
    # An unsigned admin call and an unknown route share this response: never a 404
    assert status == 403 and '"missing_authentication"' in body
    settings = function_settings(real_template, "StopExperimentFunction")
    assert (settings["MemorySize"], settings["Timeout"]) == (1024, 30)


def test_missing_route_response_defaults_to_api_gateways() -> None:
    # Given a template without gateway responses / When / Then API Gateway's own 403 is used
    assert missing_route_response({"Resources": {}}) == (
        403,
        '{"message":"Missing Authentication Token"}',
    )


class FakeDynamo:
    """Records create_table calls; no network."""

    def __init__(self, existing: list[str]) -> None:
        self.existing = list(existing)
        self.created: list[dict[str, Any]] = []

    def get_paginator(self, name: str) -> FakeDynamo:
        assert name == "list_tables"
        return self

    def paginate(self) -> list[dict[str, Any]]:
        return [{"TableNames": self.existing[:1]}, {"TableNames": self.existing[1:]}]

    def create_table(self, **kwargs: Any) -> None:
        self.created.append(kwargs)
        self.existing.append(kwargs["TableName"])


def test_create_tables_skips_existing_tables(real_template: dict[str, Any]) -> None:
    # Given a DynamoDB that already has two of the five tables
    client = FakeDynamo(["ab_experiments", "ab_results"])
    # When the tables are created twice
    first = create_tables(client, real_template)
    create_tables(client, real_template)
    # Then only the three missing ones were created, once, and the mapping names all five
    assert sorted(c["TableName"] for c in client.created) == [
        "ab_assignments",
        "ab_insights",
        "ab_variants",
    ]
    assert first["InsightsTable"] == "ab_insights" and len(first) == 5
