"""Local IAM: policies read from a template, the permissions a call needs, AWS's refusal."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from emulator import iam
from emulator.template import load_template

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/"


def template(policies: Any, **extra: Any) -> dict[str, Any]:
    table = {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": {"Fn::Sub": "${P}t"}}}
    function = {"Type": "AWS::Serverless::Function", "Properties": {"Policies": policies}}
    return {
        "Parameters": {"P": {"Type": "String", "Default": ""}},
        "Resources": {"T": table, "F": function, **extra},
    }


def decide(tpl: dict[str, Any], operation: str, params: dict[str, Any], **parameters: str) -> Any:
    return iam.Enforcer.from_template(tpl, parameters).check("F", operation, params)


def test_intrinsics_and_the_table_prefix_are_resolved() -> None:
    # Given a statement on !GetAtt T.Arn and its indexes, with TablePrefix-like parameter P
    statement = {
        "Effect": "Allow",
        "Action": ["dynamodb:Query"],
        "Resource": [{"Fn::GetAtt": ["T", "Arn"]}, {"Fn::Sub": "${T.Arn}/index/*"}],
    }
    tpl = template([{"Statement": [statement]}])
    # When calls name the prefixed table and one of its indexes / Then they pass
    assert decide(tpl, "Query", {"TableName": "dev_t"}, P="dev_") is None
    assert decide(tpl, "Query", {"TableName": "dev_t", "IndexName": "i"}, P="dev_") is None
    # And another table, or another action, is denied
    assert decide(tpl, "Query", {"TableName": "t"}, P="dev_") is not None
    assert decide(tpl, "GetItem", {"TableName": "dev_t"}, P="dev_") is not None


def test_each_item_of_a_transaction_and_each_table_of_a_batch_is_checked() -> None:
    statement = {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": f"{ARN}t"}
    tpl = template([{"Statement": statement}])
    put = {"Put": {"TableName": "t"}}
    # A transaction of puts on the table passes; an Update or ConditionCheck in it is refused
    assert decide(tpl, "TransactWriteItems", {"TransactItems": [put, put]}) is None
    update = {"Update": {"TableName": "t"}}
    denied = decide(tpl, "TransactWriteItems", {"TransactItems": [put, update]})
    assert denied.action == "dynamodb:UpdateItem"
    check = {"ConditionCheck": {"TableName": "t"}}
    assert decide(tpl, "TransactWriteItems", {"TransactItems": [check]}).action == (
        "dynamodb:ConditionCheckItem"
    )
    # And a batch needs its own action on every table it names
    batch = {"RequestItems": {"t": {}, "other": {}}}
    assert decide(tpl, "BatchWriteItem", batch).action == "dynamodb:BatchWriteItem"
    get = {"TransactItems": [{"Get": {"TableName": "t"}}]}
    assert decide(tpl, "TransactGetItems", get).action == "dynamodb:GetItem"


def test_wildcards_deny_and_conditions() -> None:
    allow = {"Effect": "Allow", "Action": "dynamodb:*", "Resource": f"{ARN}*"}
    deny = {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"}
    tpl = template([{"Statement": [allow, deny]}])
    assert decide(tpl, "GetItem", {"TableName": "t"}) is None
    assert decide(tpl, "DeleteItem", {"TableName": "t"}) is not None  # an explicit Deny wins
    conditional = {**allow, "Condition": {"StringEquals": {"aws:SourceVpc": "v"}}}
    # A Condition the emulator cannot evaluate never allows (stricter, never more lenient)
    assert decide(template([{"Statement": conditional}]), "GetItem", {"TableName": "t"})


def test_sam_policy_templates_expand_as_sam_expands_them() -> None:
    tpl = template([{"DynamoDBReadPolicy": {"TableName": {"Ref": "T"}}}])
    assert decide(tpl, "Query", {"TableName": "t", "IndexName": "i"}) is None
    assert decide(tpl, "PutItem", {"TableName": "t"}) is not None
    crud = template([{"DynamoDBCrudPolicy": {"TableName": "t"}}])
    assert decide(crud, "ConditionCheckItem", {"TableName": "t"}) is None


def test_a_function_without_policies_may_call_nothing() -> None:
    assert decide(template(None), "GetItem", {"TableName": "t"}) is not None


def test_a_denied_call_raises_aws_access_denied_and_calls_outside_functions_pass() -> None:
    # Given the project's template enforced, and a table on moto
    previous = iam.install(iam.Enforcer.from_template(load_template()))
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(
                TableName="ab_variants",
                KeySchema=[{"AttributeName": "experiment_id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "experiment_id", "AttributeType": "N"}],
                BillingMode="PAY_PER_REQUEST",
            )
            key = {"experiment_id": {"N": "1"}}
            # When a function without PutItem on ab_variants writes there
            with iam.acting_as("GetExperimentFunction"), pytest.raises(ClientError) as error:
                client.put_item(TableName="ab_variants", Item=key)
            # Then it fails as DynamoDB fails it, naming the action and the resource
            answer = error.value.response
            assert answer["Error"]["Code"] == "AccessDeniedException"
            assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert (
                "GetExperimentFunction is not authorized to perform: dynamodb:PutItem on "
                f"resource: {ARN}ab_variants because no identity-based policy allows"
            ) in answer["Error"]["Message"]
            # And the same call outside any function (a fixture) is not checked
            client.put_item(TableName="ab_variants", Item=key)
    finally:
        iam.restore(previous)


def test_each_function_keeps_its_own_singletons_and_cache() -> None:
    # Given the layer's per-function singletons, as separate Lambda instances have them
    from ab_testing import runtime
    from emulator.lambdas import invoked_as

    runtime.reset()
    try:
        # When two functions ask for their service, and one of them asks again
        with invoked_as("GetVariantFunction"):
            first = runtime.service()
            again = runtime.service()
        with invoked_as("StartExperimentFunction"):
            other = runtime.service()
        # Then each function has its own service (and so its own experiment cache): one
        # function's cached read never answers another, whose policy may not allow the read
        assert first is again
        assert other is not first
        assert other._cache is not first._cache
    finally:
        runtime.reset()
