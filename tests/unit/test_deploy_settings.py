"""template.yaml's production settings, resource by resource: what `sam deploy` will create."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.template import REPO_ROOT, Resolver, load_template

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
FUNCTION_GLOBALS: dict[str, Any] = TEMPLATE["Globals"]["Function"]


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {lid: res for lid, res in RESOURCES.items() if res["Type"] == kind}


TABLES = of_type("AWS::DynamoDB::Table")
FUNCTIONS = of_type("AWS::Serverless::Function")
ALARMS = of_type("AWS::CloudWatch::Alarm")
LOG_GROUPS = of_type("AWS::Logs::LogGroup")
ANALYSING = (
    "AnalyzeExperimentFunction",
    "StopExperimentFunction",
    "ExperimentReportFunction",
    "ReconcileExperimentFunction",
)


def props(lid: str) -> dict[str, Any]:
    props: dict[str, Any] = RESOURCES[lid]["Properties"]
    return props


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_table_survives_deletion_and_keeps_its_history(table: str) -> None:
    # Given a table of the template
    resource, spec = TABLES[table], props(table)

    # Then it is retained, protected, restorable, encrypted and billed on demand
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"
    assert spec["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}
    assert spec["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert spec["SSESpecification"] == {"SSEEnabled": True}
    assert spec["BillingMode"] == "PAY_PER_REQUEST"


def test_deletion_protection_is_on_unless_turned_off() -> None:
    assert PARAMETERS["TableDeletionProtection"]["Default"] == "true"


def names_for(stack: str, stack_id: str, **parameters: str) -> dict[str, str]:
    resolver = Resolver(TEMPLATE, {"TableNaming": "per-stack", **parameters}, stack_name=stack)
    resolver.pseudo["AWS::StackId"] = (
        f"arn:aws:cloudformation:us-east-1:123456789012:stack/{stack}/{stack_id}"
    )
    return {lid: resolver.table_name(lid) for lid in TABLES}


def test_table_names_differ_per_stack_and_per_creation_of_a_stack() -> None:
    # Given the default naming
    assert PARAMETERS["TableNaming"]["Default"] == "per-stack"

    # When the same template is deployed as two stacks, and one stack again after deletion
    first = names_for("ab", "0f4c1a2e-1111-4c4c-9999-123456789abc")
    again = names_for("ab", "7d2e9b10-2222-4d4d-8888-cba987654321")
    other = names_for("ab-staging", "0f4c1a2e-1111-4c4c-9999-123456789abc")

    # Then no table name repeats, each is a valid DynamoDB name and still says which table
    everything = [*first.values(), *again.values(), *other.values()]
    assert len(set(everything)) == 3 * len(TABLES)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", name) for name in everything)
    assert first["ExperimentsTable"] == "ab_experiments-ab-0f4c1a2e"
    assert names_for("ab", "x-y", TablePrefix="team_")["InsightsTable"].startswith(
        "team_ab_insights-ab-"
    )


def test_fixed_names_keep_the_prefix_and_the_guides_names() -> None:
    resolver = Resolver(TEMPLATE, {"TableNaming": "fixed", "TablePrefix": "dev_"})
    assert {resolver.table_name(lid) for lid in TABLES} == {
        f"dev_ab_{t}" for t in ("experiments", "variants", "assignments", "results", "insights")
    }


def test_insights_expire_through_the_attribute_the_scheduled_job_writes() -> None:
    ttl = props("InsightsTable")["TimeToLiveSpecification"]
    assert ttl["AttributeName"] == "expires_at"
    assert ttl["Enabled"] == {"Fn::If": ["InsightsExpire", True, False]}
    assert FUNCTION_GLOBALS["Environment"]["Variables"]["AB_INSIGHTS_TTL_DAYS"] == {
        "Ref": "InsightsRetentionDays"
    }
    source = (REPO_ROOT / "layers/ab_testing/ab_testing/scheduled.py").read_text()
    assert '"expires_at"' in source


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_has_its_log_group_with_retention(function: str) -> None:
    # Given a function, When its log group is looked up by the name Lambda writes to
    wanted = {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    groups = [g for g in LOG_GROUPS.values() if g["Properties"]["LogGroupName"] == wanted]

    # Then exactly one exists and it keeps LogRetentionDays (30 by default)
    assert len(groups) == 1
    assert groups[0]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert PARAMETERS["LogRetentionDays"]["Default"] == 30


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_has_error_and_throttle_alarms(function: str) -> None:
    watched = {
        a["Properties"]["MetricName"]
        for a in ALARMS.values()
        if a["Properties"].get("Dimensions")
        == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    }
    assert watched == {"Errors", "Throttles"}


def test_alarms_notify_the_optional_topic() -> None:
    actions = {"Fn::If": ["HasAlarmTarget", [{"Fn::If": ["HasAlarmTopicArn", {"Ref":
               "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}], []]}  # fmt: skip
    assert all(a["Properties"]["AlarmActions"] == actions for a in ALARMS.values())
    assert RESOURCES["AlarmTopic"]["Condition"] == "CreateAlarmTopic"
    assert PARAMETERS["AlarmEmail"]["Default"] == PARAMETERS["AlarmTopicArn"]["Default"] == ""


def test_api_5xx_alarm_watches_this_stacks_api_and_stage() -> None:
    api = props("AbTestingApi")
    alarm = props("Api5xxAlarm")
    assert alarm["MetricName"] == "5XXError"
    assert alarm["Dimensions"] == [
        {"Name": "ApiName", "Value": api["Name"]},
        {"Name": "Stage", "Value": api["StageName"]},
    ]


def test_api_access_logs_go_to_their_own_group() -> None:
    setting = props("AbTestingApi")["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "$context.requestId" in setting["Format"]
    assert props("ApiAccessLogGroup")["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert RESOURCES["AbTestingApi"]["DependsOn"] == "ApiGatewayAccount"


def test_no_stray_stage_named_stage() -> None:
    # SAM adds a stage called "Stage" unless the Api sets OpenApiVersion.
    assert TEMPLATE["Globals"]["Api"]["OpenApiVersion"]
    for resource in of_type("AWS::Serverless::Api").values():
        assert resource["Properties"]["StageName"] != "Stage"


def test_tracing_is_all_or_nothing() -> None:
    # Functions, API Gateway and the X-Ray subsegments of DynamoDB calls follow one parameter.
    assert FUNCTION_GLOBALS["Tracing"] == {
        "Fn::If": ["TracingOn", "Active", {"Ref": "AWS::NoValue"}]
    }
    assert props("AbTestingApi")["TracingEnabled"] == {"Fn::If": ["TracingOn", True, False]}
    assert FUNCTION_GLOBALS["Environment"]["Variables"]["AB_TRACING"] == {"Ref": "Tracing"}
    assert all("Tracing" not in spec["Properties"] for spec in FUNCTIONS.values())


def test_scheduled_function_runs_alone_never_retried_and_keeps_failures() -> None:
    spec = props("ScheduledAnalysisFunction")
    assert spec["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveAnalysis", 1, {"Ref": "AWS::NoValue"}]
    }
    invoke = spec["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] == 0
    assert invoke["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["ScheduledFailureQueue", "Arn"]},
    }


@pytest.mark.parametrize("function", ANALYSING)
def test_analysing_functions_reserve_concurrency_from_a_parameter(function: str) -> None:
    assert props(function)["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "ReserveAnalysis",
            {"Ref": "AnalysisReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }


def test_scheduled_alarms_watch_metrics_the_job_emits() -> None:
    service = FUNCTION_GLOBALS["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    for alarm in ("ScheduledExperimentsFailedAlarm", "ReconciliationDifferencesAlarm"):
        spec = props(alarm)
        assert (
            spec["Namespace"]
            == FUNCTION_GLOBALS["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
        )
        assert spec["Dimensions"] == [{"Name": "service", "Value": service}]


@pytest.mark.parametrize("layer", sorted(of_type("AWS::Serverless::LayerVersion")))
def test_layers_are_built_by_their_makefile(layer: str) -> None:
    assert RESOURCES[layer]["Metadata"]["BuildMethod"] == "makefile"
    makefile = (REPO_ROOT / props(layer)["ContentUri"] / "Makefile").read_text()
    assert f"build-{layer}:" in makefile
    assert "compileall" in makefile


def conditions_resolved(value: Any, resolver: Resolver) -> Any:
    """Fn::If on parameter conditions chosen, as AWS::LanguageExtensions does before SAM."""
    if isinstance(value, list):
        return [conditions_resolved(v, resolver) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        chosen = when_true if resolver.condition(condition) else when_false
        return conditions_resolved(chosen, resolver)
    resolved = {k: conditions_resolved(v, resolver) for k, v in value.items()}
    return {k: v for k, v in resolved.items() if v != {"Ref": "AWS::NoValue"}}


@pytest.fixture(scope="module", params=["API_KEY", "IAM"])
def transformed(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The template after the SAM transform in each AuthMode (what CloudFormation will
    create), local code locations replaced by S3 URIs as `sam deploy` does."""
    from unittest.mock import Mock

    from samtranslator.translator.transform import transform

    resolver = Resolver(TEMPLATE, {"AuthMode": request.param})
    template = conditions_resolved(copy.deepcopy(TEMPLATE), resolver)
    template["Transform"] = "AWS::Serverless-2016-10-31"
    for resource in template["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://bucket/key"
    policies = Mock()
    policies.load.return_value = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield transform(template, {}, policies)["Resources"]


def test_the_transform_deploys_one_stage_and_no_stray_stage(transformed: dict[str, Any]) -> None:
    stages = [r for r in transformed.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    assert len(stages) == 1
    assert stages[0]["Properties"]["StageName"] == {"Ref": "StageName"}


def test_the_transform_keeps_the_scheduled_function_unretried(
    transformed: dict[str, Any],
) -> None:
    (config,) = [r for r in transformed.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert config["Properties"]["FunctionName"] == {"Ref": "ScheduledAnalysisFunction"}
    assert config["Properties"]["MaximumRetryAttempts"] == 0
    role = transformed["ScheduledAnalysisFunctionRole"]["Properties"]["Policies"]
    sends = [
        s
        for p in role
        for s in p["PolicyDocument"]["Statement"]
        if s["Action"] == "sqs:SendMessage"
    ]
    assert sends == [
        {
            "Action": "sqs:SendMessage",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": ["ScheduledFailureQueue", "Arn"]},
        }
    ]


@pytest.mark.parametrize(("tracing", "granted"), [("Disabled", False), ("Active", True)])
def test_only_traced_functions_may_write_to_x_ray(tracing: str, granted: bool) -> None:
    from unittest.mock import Mock

    from samtranslator.translator.transform import transform

    # Given the template translated with Tracing=Disabled, then Active
    resolver = Resolver(TEMPLATE, {"Tracing": tracing})
    template = conditions_resolved(copy.deepcopy(TEMPLATE), resolver)
    for resource in template["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://bucket/key"
    template["Transform"] = "AWS::Serverless-2016-10-31"
    policies = Mock()
    policies.load.return_value = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        resources = transform(template, {}, policies)["Resources"]
    # Then a function's role has X-Ray's write policy exactly when it is traced
    functions = {k: r for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert functions
    for name, function in functions.items():
        role = resources[f"{name}Role"]["Properties"]
        xray = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess" in role["ManagedPolicyArns"]
        traced = function["Properties"].get("TracingConfig") == {"Mode": "Active"}
        assert (xray, traced) == (granted, granted), name


def test_the_analysis_and_the_reconciliation_never_fire_in_the_same_minute() -> None:
    # The scheduled function runs one at a time (reserved concurrency 1): two rules firing in
    # one minute would throttle one of them, and its alarm, every day.
    default = TEMPLATE["Parameters"]["AnalysisSchedule"]["Default"]
    events = props("ScheduledAnalysisFunction")["Events"]
    daily = events["DailyReconciliation"]["Properties"]["Schedule"]
    assert events["Schedule"]["Properties"]["Schedule"] == {"Ref": "AnalysisSchedule"}
    minutes = []
    for expression in (default, daily):
        assert expression.startswith("cron(") and expression.endswith(")"), expression
        minute = expression[len("cron(") : -1].split()[0]
        assert minute.isdigit(), expression  # one fixed minute of the hour
        minutes.append(int(minute))
    assert minutes[0] != minutes[1]


@pytest.mark.parametrize(("reserved", "expected"), [("0", set()), ("10", {1, 10})])
def test_analysis_reserved_concurrency_0_reserves_nothing_anywhere(
    reserved: str, expected: set[int]
) -> None:
    # Given the template as CloudFormation resolves it with AnalysisReservedConcurrency=0, then 10
    resolver = Resolver(TEMPLATE, {"AnalysisReservedConcurrency": reserved})
    resolved = conditions_resolved(copy.deepcopy(TEMPLATE), resolver)
    # Then with 0 no function reserves concurrency (an account with a limit of 10 can deploy),
    # with 10 the analysing functions reserve 10 and the scheduled one 1
    found = {
        resolver.resolve(spec["Properties"]["ReservedConcurrentExecutions"])
        for spec in resolved["Resources"].values()
        if spec["Type"] == "AWS::Serverless::Function"
        and "ReservedConcurrentExecutions" in spec["Properties"]
    }
    assert {int(v) for v in found} == expected


def test_alarms_can_publish_to_the_encrypted_alarm_topic() -> None:
    # CloudWatch cannot use the AWS managed alias/aws/sns key: the topic has its own key, and
    # that key lets this account's CloudWatch alarms encrypt what they publish.
    topic = RESOURCES["AlarmTopic"]
    key_id = topic["Properties"]["KmsMasterKeyId"]
    assert key_id == {"Ref": "AlarmTopicKey"}
    key = RESOURCES["AlarmTopicKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Condition"] == topic["Condition"]
    assert key["Properties"]["EnableKeyRotation"] is True
    grants = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(grants) == 1
    assert grants[0]["Effect"] == "Allow"
    assert set(grants[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert grants[0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    }
