"""One Lambda per step: runtime, packaging, logging, configuration and a least-privilege role each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tagwarden_cdk.bundling import LambdaAssets

from tests.infra.cfn import (
    all_policy_statements,
    expected,
    function_id,
    getatt,
    grants,
    objects,
    only,
    ref,
    remediation_grants,
    role_of,
)
from tests.infra.conftest import TEST_CONTEXT, Synthesized, _synthesize
from tests.infra.test_quality_bars import _violations as quality_bar_violations
from workflow import config, deployment

STEP_NAMES = [s.name for s in deployment.STEP_FUNCTIONS]
SECURITY_HUB_PRODUCT = {
    "Fn::Join": [
        "",
        [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":securityhub:",
            {"Ref": "AWS::Region"},
            ":",
            {"Ref": "AWS::AccountId"},
            ":product/",
            {"Ref": "AWS::AccountId"},
            "/default",
        ],
    ]
}
# The List step's read-only calls, one per resource type a policy can cover.
EC2_DESCRIBE = [
    "ec2:DescribeInstances",
    "ec2:DescribeVolumes",
    "ec2:DescribeSnapshots",
    "ec2:DescribeImages",
    "ec2:DescribeNetworkInterfaces",
]
XRAY = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
LOG_WRITE = ["logs:CreateLogStream", "logs:PutLogEvents"]
# Resource "*" is allowed only for APIs without resource-level permissions.
STAR_RESOURCE_ACTIONS = {
    "ec2:DescribeInstances",
    "ec2:DescribeVolumes",
    "ec2:DescribeSnapshots",
    "ec2:DescribeImages",
    "ec2:DescribeNetworkInterfaces",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
}


def _function(synthesized: Synthesized, step: str) -> tuple[str, dict[str, Any]]:
    logical_id = function_id(synthesized.resources, f"tagwarden-test-{step}")
    return logical_id, synthesized.resources[logical_id]["Properties"]


def _bucket(synthesized: Synthesized) -> str:
    return only(
        synthesized.resources,
        "AWS::S3::Bucket",
        lambda p: "tagwarden-test-reports-" in str(p.get("BucketName")),
    )


def _log_group_of(synthesized: Synthesized, step: str) -> str:
    _, properties = _function(synthesized, step)
    log_group: str = properties["LoggingConfig"]["LogGroup"]["Ref"]
    return log_group


@pytest.mark.parametrize("step", deployment.STEP_FUNCTIONS, ids=STEP_NAMES)
def test_each_step_runs_on_python_3_13_on_arm64_with_its_handler_and_sizing(
    synthesized: Synthesized, step: deployment.StepFunction
) -> None:
    _, properties = _function(synthesized, step.name)
    assert properties["Runtime"] == "python3.13"
    assert properties["Architectures"] == ["arm64"]
    assert properties["Handler"] == step.handler
    assert properties["Timeout"] == step.timeout_seconds
    assert properties["MemorySize"] == step.memory_mb
    assert properties["TracingConfig"] == {"Mode": "Active"}


def test_python_3_13_is_the_newest_runtime_google_re2_has_arm64_wheels_for() -> None:
    """The pattern engine (google-re2) decides the runtime: the layer build fails without a wheel.

    When google-re2 publishes cp314 aarch64 wheels (the layer test then passes on 3.14), move the
    runtime up; this test says which versions CDK offers so that the choice is visible.
    """
    from aws_cdk import aws_lambda
    from tagwarden_cdk import bundling

    versions = [
        tuple(int(x) for x in name.removeprefix("PYTHON_").split("_"))
        for name in dir(aws_lambda.Runtime)
        if name.startswith("PYTHON_")
    ]
    assert (3, 13) in versions
    assert bundling.PYTHON_VERSION == "3.13"


@pytest.mark.parametrize("step", STEP_NAMES)
def test_each_step_logs_structured_json_to_its_own_log_group_with_retention(
    synthesized: Synthesized, step: str
) -> None:
    _, properties = _function(synthesized, step)
    logging = properties["LoggingConfig"]
    assert logging["LogFormat"] == "JSON"
    assert logging["ApplicationLogLevel"] == "DEBUG"  # the test context's log_level
    assert logging["SystemLogLevel"] == "WARN"
    group = synthesized.resources[_log_group_of(synthesized, step)]["Properties"]
    assert group["LogGroupName"] == f"/aws/lambda/tagwarden-test-{step}"
    assert group["RetentionInDays"] == 30


def test_every_function_shares_one_code_asset_and_one_dependency_layer(synthesized: Synthesized) -> None:
    codes = {str(_function(synthesized, s)[1]["Code"]) for s in STEP_NAMES}
    layers = {str(_function(synthesized, s)[1]["Layers"]) for s in STEP_NAMES}
    assert len(codes) == 1
    assert len(layers) == 1
    layer_id = _function(synthesized, STEP_NAMES[0])[1]["Layers"][0]["Ref"]
    layer = synthesized.resources[layer_id]["Properties"]
    assert layer["CompatibleRuntimes"] == ["python3.13"]
    assert layer["CompatibleArchitectures"] == ["arm64"]


def _asset_dir(synthesized: Synthesized, code: dict[str, Any]) -> Path:
    key: str = code["S3Key"]
    return synthesized.asset_path(f"asset.{key.removesuffix('.zip')}")


def test_code_asset_holds_the_workflow_and_lambdas_packages_and_nothing_compiled(
    synthesized: Synthesized,
) -> None:
    _, properties = _function(synthesized, STEP_NAMES[0])
    root = _asset_dir(synthesized, properties["Code"])
    assert sorted(p.name for p in root.iterdir()) == ["lambdas", "workflow"]
    for step in deployment.STEP_FUNCTIONS:
        module = step.handler.rsplit(".", 1)[0].replace(".", "/") + ".py"
        assert (root / module).is_file(), module
    assert (root / "workflow" / "policy" / "policy-v1.schema.json").is_file()
    assert not [p for p in root.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"]


def test_dependency_layer_holds_the_runtime_dependencies_built_for_python_3_13_on_arm64(
    synthesized: Synthesized,
) -> None:
    _, properties = _function(synthesized, STEP_NAMES[0])
    layer = synthesized.resources[properties["Layers"][0]["Ref"]]["Properties"]
    site = _asset_dir(synthesized, layer["Content"]) / "python"
    for package in ("jsonschema", "re2", "aws_lambda_powertools", "rpds"):
        assert (site / package).is_dir(), package
    for package in ("boto3", "botocore"):
        assert not (site / package).exists(), f"{package} comes with the Lambda runtime"
    extensions = [p.name for p in site.rglob("*.so")]
    assert extensions
    assert all("cpython-313-aarch64-linux-gnu" in name for name in extensions), extensions
    assert any(name.startswith("_re2.") for name in extensions), extensions


def test_default_policy_object_is_the_baseline_policy_from_the_repository(synthesized: Synthesized) -> None:
    deployments = synthesized.of_type("Custom::CDKBucketDeployment")
    (properties,) = (r["Properties"] for r in deployments.values())
    assert properties["DestinationBucketKeyPrefix"] == "policies/"
    assert properties["Prune"] is False
    (key,) = properties["SourceObjectKeys"]
    staged = synthesized.asset_path(f"asset.{key.removesuffix('.zip')}")  # zipped when published
    assert sorted(p.name for p in staged.iterdir()) == ["default.json"]
    deployed = (staged / "default.json").read_bytes()
    repository = Path(__file__).resolve().parents[2] / "policies" / "baseline.json"
    assert deployed == repository.read_bytes()


def test_environment_of_each_function_is_exactly_what_its_step_reads(synthesized: Synthesized) -> None:
    bucket = ref(_bucket(synthesized))
    topic = ref(
        only(
            synthesized.resources, "AWS::SNS::Topic", lambda p: p["TopicName"] == "tagwarden-test-compliance"
        )
    )
    common = {"POWERTOOLS_SERVICE_NAME": "tagwarden", "POWERTOOLS_LOG_LEVEL": "DEBUG"}
    want: dict[str, dict[str, Any]] = {
        "validate-input": {
            config.REPORT_BUCKET: bucket,
            config.DEFAULT_POLICY_URI: {"Fn::Join": ["", ["s3://", bucket, "/policies/default.json"]]},
            config.DEFAULT_REGIONS: "us-east-1,eu-west-1",
            config.DEFAULT_NOTIFY: "new_violations",
            config.MAP_MAX_CONCURRENCY: "8",
            config.MEMBER_ROLE_NAME: "TagwardenReadOnly",
            config.DISTRIBUTED_MAP_THRESHOLD: "25",
            config.DISTRIBUTED_MAX_CONCURRENCY: "120",
            config.TOLERATED_FAILURE_PERCENTAGE: "5",
        },
        # No member_external_id in a single-account deployment: nothing to assume.
        "list-instances": {config.REPORT_BUCKET: bucket, config.PAGE_SIZE: "1000"},
        "evaluate-tags": {config.REPORT_BUCKET: bucket},
        "persist-report": {
            config.REPORT_BUCKET: bucket,
            config.ENVIRONMENT: "test",
            config.METRICS_NAMESPACE: "Tagwarden",
        },
        "register-partitions": {config.GLUE_DATABASE: "tagwarden_test"},
        "notify": {
            config.TOPIC_ARN: topic,
            config.REPORT_BUCKET: bucket,
            config.ENVIRONMENT: "test",
            config.CONSOLE_REGION: {"Ref": "AWS::Region"},
            config.MAX_OWNER_DIGESTS: "50",
        },
        "import-security-hub": {
            config.REPORT_BUCKET: bucket,
            config.SECURITY_HUB_PRODUCT_ARN: SECURITY_HUB_PRODUCT,
        },
        "remediate": {
            config.REPORT_BUCKET: bucket,
            config.REMEDIATION_ROLE_NAME: "TagwardenRemediation",
            config.MAX_STOPS_PER_RUN: "10",
        },
    }
    for step in STEP_NAMES:
        _, properties = _function(synthesized, step)
        assert properties["Environment"]["Variables"] == {**want[step], **common}, step


def test_each_function_has_its_own_role(synthesized: Synthesized) -> None:
    roles = [role_of(synthesized.resources, _function(synthesized, s)[0]) for s in STEP_NAMES]
    assert len(set(roles)) == len(roles)


def test_each_role_is_allowed_exactly_its_allow_list(synthesized: Synthesized) -> None:
    resources = synthesized.resources
    bucket = _bucket(synthesized)
    key = only(resources, "AWS::KMS::Key", lambda p: True)
    topic = only(resources, "AWS::SNS::Topic", lambda p: p["TopicName"] == "tagwarden-test-compliance")

    def glue_arn(resource: str) -> dict[str, Any]:
        return {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":glue:",
                    {"Ref": "AWS::Region"},
                    ":",
                    {"Ref": "AWS::AccountId"},
                    f":{resource}",
                ],
            ]
        }

    allow = {
        "validate-input": expected(
            (["s3:GetObject"], [objects(bucket, "policies/"), objects(bucket, "exemptions/")]),
            (["s3:PutObject"], [objects(bucket, "staging/")]),
            (["s3:ListBucket"], [getatt(bucket)]),
        ),
        "list-instances": expected(
            (EC2_DESCRIBE, ["*"]),
            (["s3:PutObject"], [objects(bucket, "staging/")]),
            (["s3:GetObject"], [{"Fn::Join": ["", [getatt(bucket), "/staging/*/targets.json"]]}]),
        ),
        "evaluate-tags": expected(
            (["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], [objects(bucket, "staging/")])
        ),
        "persist-report": expected(
            (["s3:GetObject"], [objects(bucket, p) for p in ("staging/", "reports/", "state/")]),
            (["s3:PutObject"], [objects(bucket, p) for p in ("reports/", "state/", "staging/*/report/")]),
            (
                ["s3:ListBucket"],
                [getatt(bucket)],
                {"StringLike": {"s3:prefix": ["staging/*", "reports/*", "state/*"]}},
            ),
            (["s3:AbortMultipartUpload"], [objects(bucket, p) for p in ("reports/", "staging/*/report/")]),
        ),
        "register-partitions": expected(
            (
                ["glue:GetTable", "glue:BatchCreatePartition"],
                [glue_arn("catalog"), glue_arn("database/tagwarden_test")]
                + [glue_arn(f"table/tagwarden_test/{t}") for t in ("findings", "runs", "actions")],
            )
        ),
        "notify": expected(
            (["sns:Publish"], [ref(topic)]),
            (["kms:Decrypt", "kms:GenerateDataKey"], [getatt(key)]),
            (
                ["s3:GetObject"],
                [
                    objects(bucket, "reports/"),
                    objects(bucket, "staging/*/remediation/"),
                    {"Fn::Join": ["", [getatt(bucket), "/staging/*/report/owners.json"]]},
                ],
            ),
        ),
        # Off in this deployment (remediation=false): its bucket access, and no EC2 grant.
        "remediate": expected(
            (
                ["s3:GetObject"],
                [
                    {"Fn::Join": ["", [getatt(bucket), "/staging/*/policy.json"]]},
                    {"Fn::Join": ["", [getatt(bucket), "/staging/*/targets.json"]]},
                    objects(bucket, "reports/"),
                    objects(bucket, "state/remediation/"),
                ],
            ),
            (["s3:PutObject", "s3:AbortMultipartUpload"], [objects(bucket, "reports/")]),
            (
                ["s3:PutObject"],
                [objects(bucket, p) for p in ("state/remediation/", "staging/*/remediation/")],
            ),
            (["s3:ListBucket"], [getatt(bucket)], {"StringLike": {"s3:prefix": ["state/remediation/*"]}}),
        ),
        # Off in this deployment (security_hub=false): its bucket access, and no Security Hub grant.
        "import-security-hub": expected(
            (["s3:GetObject"], [objects(bucket, "reports/"), objects(bucket, "state/securityhub/")]),
            (["s3:PutObject"], [objects(bucket, "state/securityhub/")]),
            (["s3:ListBucket"], [getatt(bucket)], {"StringLike": {"s3:prefix": ["state/securityhub/*"]}}),
        ),
        # The event workflow's planner, and the events Pipe's enrichment.
        "plan-event-run": expected(
            (
                ["s3:GetObject"],
                [objects(bucket, p) for p in ("policies/", "staging/event-batches/", "exemptions/")],
            ),
            (["s3:ListBucket"], [getatt(bucket)], {"StringLike": {"s3:prefix": ["exemptions/*"]}}),
            (["s3:PutObject"], [objects(bucket, "staging/")]),
        ),
        "store-event-batch": expected((["s3:PutObject"], [objects(bucket, "staging/event-batches/")])),
    }
    for step in [*STEP_NAMES, "plan-event-run", "store-event-batch"]:
        function, _ = _function(synthesized, step)
        role = role_of(resources, function)
        own = expected((LOG_WRITE, [getatt(_log_group_of(synthesized, step))]), (XRAY, ["*"]))
        assert grants(resources, role) == allow[step] | own, step


def test_lambda_roles_trust_only_lambda(synthesized: Synthesized) -> None:
    for step in STEP_NAMES:
        role = synthesized.resources[role_of(synthesized.resources, _function(synthesized, step)[0])]
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
        ]


def test_no_policy_allows_every_action_and_star_resources_only_where_the_api_requires_it(
    synthesized: Synthesized,
) -> None:
    for logical_id, statement in all_policy_statements(synthesized.resources):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), (logical_id, statement)
        if "*" in resources:
            assert set(actions) <= STAR_RESOURCE_ACTIONS, (logical_id, statement)


def test_with_security_hub_the_import_role_may_batch_import_into_the_accounts_default_product_only(
    tmp_path_factory: pytest.TempPathFactory, lambda_assets: LambdaAssets
) -> None:
    hub = _synthesize(
        tmp_path_factory.mktemp("cdk-hub"), {**TEST_CONTEXT, "security_hub": True}, lambda_assets, checks=True
    )
    function, properties = _function(hub, "import-security-hub")
    granted = grants(hub.resources, role_of(hub.resources, function))
    assert {g for g in granted if g[0].startswith("securityhub:")} == expected(
        (["securityhub:BatchImportFindings"], [SECURITY_HUB_PRODUCT])
    )
    validate, _ = _function(hub, "validate-input")
    assert hub.resources[validate]["Properties"]["Environment"]["Variables"][config.SECURITY_HUB] == "true"
    assert properties["Environment"]["Variables"][config.SECURITY_HUB_PRODUCT_ARN] == SECURITY_HUB_PRODUCT
    assert quality_bar_violations(hub.validation_report) == []


def test_with_remediation_the_remediate_role_may_tag_only_the_mark_and_stop_only_marked_instances(
    tmp_path_factory: pytest.TempPathFactory, lambda_assets: LambdaAssets
) -> None:
    staged = _synthesize(
        tmp_path_factory.mktemp("cdk-remediation"),
        {**TEST_CONTEXT, "remediation": True, "remediation_max_stops_per_run": 3},
        lambda_assets,
        checks=True,
    )
    function, properties = _function(staged, "remediate")
    granted = grants(staged.resources, role_of(staged.resources, function))
    assert {g for g in granted if g[0].startswith("ec2:")} == remediation_grants()
    assert properties["Environment"]["Variables"][config.MAX_STOPS_PER_RUN] == "3"
    for step in ("validate-input", "plan-event-run"):
        validate, _ = _function(staged, step)
        assert (
            staged.resources[validate]["Properties"]["Environment"]["Variables"][config.REMEDIATION] == "true"
        )
    # Member accounts' remediation roles trust this role by its ARN: a stable name.
    role = staged.resources[role_of(staged.resources, function)]
    assert role["Properties"]["RoleName"] == "tagwarden-test-remediate"
    assert quality_bar_violations(staged.validation_report) == []
