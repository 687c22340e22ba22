"""The deployed state machine is the ASL file `tagwarden run` executes, wired to this stack."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match, Template
from tagwarden_cdk import orchestration

from tests.infra.cfn import (
    expected,
    function_id,
    getatt,
    grants,
    objects,
    only,
    ref,
    render,
    role_of,
)
from tests.infra.conftest import Synthesized
from workflow import config, deployment, layout

CDK_LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
)
CDK_XRAY_ACTIONS = (
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
)


def _arn(service_and_resource: str) -> dict[str, Any]:
    """How CDK renders ``Stack.format_arn`` of a regional resource in this account."""
    service, resource = service_and_resource.split(":", 1)
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                f":{service}:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":{resource}",
            ],
        ]
    }


# Where the ASL's ResultWriter writes (its static Prefix, in the report bucket).
RESULT_WRITER_PREFIX = "staging/map-results/"


def distributed_map_grants(synthesized: Synthesized) -> set[Any]:
    """What the state machine role needs for the ASL's Distributed Map (AWS's "IAM policies for using
    Distributed Map states"): present in every mode, since any manual execution may fan out."""
    machine_name = "tagwarden-test-scan"
    bucket = only(
        synthesized.resources,
        "AWS::S3::Bucket",
        lambda p: "tagwarden-test-reports-" in str(p.get("BucketName")),
    )
    return expected(
        (["states:StartExecution"], [_arn(f"states:stateMachine:{machine_name}")]),
        (
            ["states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"],
            [_arn(f"states:execution:{machine_name}/Targets:*")],
        ),
        (["states:DescribeExecution"], [_arn(f"states:execution:{machine_name}:*")]),
        (
            ["s3:GetObject"],
            [{"Fn::Join": ["", [getatt(bucket), "/staging/*/targets.json"]]}],
        ),
        (
            ["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
            [objects(bucket, RESULT_WRITER_PREFIX)],
        ),
    )


def _state_machine(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    """The scan state machine (the event workflow's is tests/infra/test_events.py's)."""
    logical_id = only(
        synthesized.resources,
        "AWS::StepFunctions::StateMachine",
        lambda p: p.get("StateMachineName") == "tagwarden-test-scan",
    )
    return logical_id, synthesized.resources[logical_id]["Properties"]


def _synthesized_definition(synthesized: Synthesized) -> str:
    """The definition as deployed: DefinitionBody.from_file uploads the file as an S3 asset."""
    _, properties = _state_machine(synthesized)
    assert "DefinitionString" not in properties
    key = properties["DefinitionS3Location"]["Key"]
    return synthesized.asset_path(f"asset.{key}").read_text(encoding="utf-8")


def _walk_tasks(states: dict[str, Any]) -> list[dict[str, Any]]:
    tasks = []
    for state in states.values():
        if state["Type"] == "Task":
            tasks.append(state)
        if state["Type"] == "Map":
            tasks.extend(_walk_tasks(state["ItemProcessor"]["States"]))
    return tasks


def test_every_asl_placeholder_has_exactly_one_substitution(synthesized: Synthesized) -> None:
    _, properties = _state_machine(synthesized)
    placeholders = deployment.placeholders(deployment.read_definition())
    assert placeholders == {
        *(step.placeholder for step in deployment.STEP_FUNCTIONS),
        deployment.DEAD_LETTER_QUEUE_PLACEHOLDER,
        deployment.REPORT_BUCKET_PLACEHOLDER,
    }
    assert set(properties["DefinitionSubstitutions"]) == placeholders


def test_substitutions_point_at_the_function_of_each_step_the_dead_letter_queue_and_the_report_bucket(
    synthesized: Synthesized,
) -> None:
    _, properties = _state_machine(synthesized)
    substitutions = properties["DefinitionSubstitutions"]
    for step in deployment.STEP_FUNCTIONS:
        function = function_id(synthesized.resources, f"tagwarden-test-{step.name}")
        assert synthesized.resources[function]["Properties"]["Handler"] == step.handler
        assert substitutions[step.placeholder] == getatt(function)
    queue = only(
        synthesized.resources, "AWS::SQS::Queue", lambda p: p["QueueName"] == "tagwarden-test-dead-letters"
    )
    assert substitutions[deployment.DEAD_LETTER_QUEUE_PLACEHOLDER] == ref(queue)
    bucket = only(
        synthesized.resources,
        "AWS::S3::Bucket",
        lambda p: "tagwarden-test-reports-" in str(p.get("BucketName")),
    )
    assert substitutions[deployment.REPORT_BUCKET_PLACEHOLDER] == ref(bucket)


def test_synthesized_definition_with_substitutions_resolved_is_the_asl_file_tagwarden_run_executes(
    synthesized: Synthesized,
) -> None:
    _, properties = _state_machine(synthesized)
    values = {name: render(value) for name, value in properties["DefinitionSubstitutions"].items()}
    deployed = deployment.substitute(_synthesized_definition(synthesized), values)
    local = deployment.substitute(deployment.read_definition(), values)
    assert "${" not in deployed
    assert json.loads(deployed) == json.loads(local)
    assert deployed == local  # byte for byte, not only the same JSON


def test_state_machine_logs_all_events_with_execution_data_to_a_retained_log_group(
    synthesized: Synthesized, template: Template
) -> None:
    _, properties = _state_machine(synthesized)
    logging = properties["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is True
    (destination,) = logging["Destinations"]
    log_group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    group = synthesized.resources[log_group]["Properties"]
    assert group["LogGroupName"] == "/aws/vendedlogs/states/tagwarden-test-scan"
    assert group["RetentionInDays"] == 30
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineName": "tagwarden-test-scan",
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
        },
    )


def test_state_machine_role_invokes_exactly_the_six_functions_sends_only_to_the_dead_letter_queue_and_runs_its_distributed_map(
    synthesized: Synthesized,
) -> None:
    machine, _ = _state_machine(synthesized)
    role = role_of(synthesized.resources, machine, "RoleArn")
    functions = [
        getatt(function_id(synthesized.resources, f"tagwarden-test-{s.name}"))
        for s in deployment.STEP_FUNCTIONS
    ]
    queue = only(
        synthesized.resources, "AWS::SQS::Queue", lambda p: p["QueueName"] == "tagwarden-test-dead-letters"
    )
    assert grants(synthesized.resources, role) == expected(
        (["lambda:InvokeFunction"], functions),
        (["sqs:SendMessage"], [getatt(queue)]),
        ([*CDK_LOG_DELIVERY_ACTIONS, *CDK_XRAY_ACTIONS], ["*"]),
    ) | distributed_map_grants(synthesized)


def test_distributed_map_grants_follow_the_asl_label_reader_and_writer() -> None:
    """The grants above are scoped by what the ASL says: keep the two in step."""
    definition = json.loads(deployment.read_definition())
    (distributed,) = [
        s
        for s in definition["States"].values()
        if s["Type"] == "Map" and s["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    ]
    assert distributed["Label"] == "Targets"
    assert distributed["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "STANDARD"
    assert distributed["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert distributed["ItemReader"]["Parameters"] == {
        "Bucket.$": "$.run.bucket",
        "Key.$": "$.run.targets_key",
    }
    # Validate input fills run.targets_key from this function.
    assert layout.targets_manifest_key("r1") == "staging/r1/targets.json"
    assert distributed["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject"
    assert distributed["ResultWriter"]["Parameters"] == {
        "Bucket": f"${{{deployment.REPORT_BUCKET_PLACEHOLDER}}}",
        "Prefix": RESULT_WRITER_PREFIX.rstrip("/"),
    }
    assert orchestration.distributed_map_labels(deployment.read_definition()) == ("Targets",)
    assert orchestration.result_writer_prefixes(deployment.read_definition()) == (RESULT_WRITER_PREFIX,)


def test_result_writer_prefixes_of_static_dynamic_and_missing_prefixes() -> None:
    def distributed(writer: dict[str, Any] | None) -> dict[str, Any]:
        state: dict[str, Any] = {"Type": "Map", "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}}}
        return {**state, "ResultWriter": writer} if writer is not None else state

    definition = {
        "States": {
            "Static": distributed({"Parameters": {"Bucket": "b", "Prefix": "out/results/"}}),
            "Dynamic": distributed({"Parameters": {"Bucket.$": "$.b", "Prefix.$": "$.run.prefix"}}),
            "Root": distributed({"Arguments": {"Bucket": "b"}}),
            "None": distributed(None),
        }
    }
    assert orchestration.result_writer_prefixes(json.dumps(definition)) == (
        "out/results/",
        layout.map_results_prefix("*"),
        "",
    )


def test_distributed_map_labels_cover_nested_and_unlabelled_maps() -> None:
    definition = {
        "States": {
            "Inline": {"Type": "Map", "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "States": {}}},
            "Branches": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "States": {
                            "A": {
                                "Type": "Map",
                                "Label": "A",
                                "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "States": {}},
                            },
                            "B": {
                                "Type": "Map",
                                "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}},
                            },
                        }
                    }
                ],
            },
        }
    }
    assert orchestration.distributed_map_labels(json.dumps(definition)) == ("A", "*")


def test_lambda_timeouts_fit_inside_the_task_timeouts_of_the_asl(synthesized: Synthesized) -> None:
    definition = json.loads(deployment.read_definition())
    by_placeholder = {s.placeholder: s for s in deployment.STEP_FUNCTIONS}
    lambda_tasks = [
        t for t in _walk_tasks(definition["States"]) if t["Resource"] == "arn:aws:states:::lambda:invoke"
    ]
    # Every step is a Task at least once (list and evaluate are in both the inline and the Distributed Map).
    placeholders = {
        t["Parameters"]["FunctionName"].removeprefix("${").removesuffix("}") for t in lambda_tasks
    }
    assert placeholders == set(by_placeholder)
    for task in lambda_tasks:
        step = by_placeholder[task["Parameters"]["FunctionName"].removeprefix("${").removesuffix("}")]
        function = synthesized.resources[function_id(synthesized.resources, f"tagwarden-test-{step.name}")]
        assert function["Properties"]["Timeout"] <= task["TimeoutSeconds"], step.name


def test_failed_timed_out_and_aborted_executions_go_to_the_dead_letter_queue(
    synthesized: Synthesized, template: Template
) -> None:
    machine, _ = _state_machine(synthesized)
    queue = only(
        synthesized.resources, "AWS::SQS::Queue", lambda p: p["QueueName"] == "tagwarden-test-dead-letters"
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "Name": "tagwarden-test-failed-executions",
            "State": "ENABLED",
            "EventPattern": {
                "source": ["aws.states"],
                "detail-type": ["Step Functions Execution Status Change"],
                "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [ref(machine)]},
            },
            "Targets": [Match.object_like({"Arn": getatt(queue)})],
        },
    )
    # Only this rule may send to the queue through the queue policy (the rest is IAM).
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [ref(queue)],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Condition": {
                                    "ArnEquals": {
                                        "aws:SourceArn": getatt(
                                            only(
                                                synthesized.resources,
                                                "AWS::Events::Rule",
                                                lambda p: p["Name"] == "tagwarden-test-failed-executions",
                                            )
                                        )
                                    }
                                },
                            }
                        )
                    ]
                )
            },
        },
    )


def test_schedule_starts_the_state_machine_with_the_default_input_on_the_context_cron(
    synthesized: Synthesized,
) -> None:
    machine, _ = _state_machine(synthesized)
    queue = only(
        synthesized.resources, "AWS::SQS::Queue", lambda p: p["QueueName"] == "tagwarden-test-dead-letters"
    )
    schedule_id = only(synthesized.resources, "AWS::Scheduler::Schedule", lambda p: True)
    schedule = synthesized.resources[schedule_id]["Properties"]
    assert schedule["Name"] == "tagwarden-test-scan"
    assert schedule["ScheduleExpression"] == "cron(30 5 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "Etc/UTC"
    assert schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert target["Arn"] == ref(machine)
    assert json.loads(target["Input"]) == {}
    assert target["DeadLetterConfig"] == {"Arn": getatt(queue)}
    role = target["RoleArn"]["Fn::GetAtt"][0]
    assert grants(synthesized.resources, role) == expected(
        (["states:StartExecution"], [ref(machine)]),
        (["sqs:SendMessage"], [getatt(queue)]),
    )


def test_default_schedule_is_daily_and_default_regions_are_the_stack_region(prod: Synthesized) -> None:
    schedule = next(iter(prod.of_type("AWS::Scheduler::Schedule").values()))["Properties"]
    assert schedule["ScheduleExpression"] == "cron(0 6 * * ? *)"
    validate = prod.resources[function_id(prod.resources, "tagwarden-prod-validate-input")]
    variables = validate["Properties"]["Environment"]["Variables"]
    assert variables[config.DEFAULT_REGIONS] == {"Ref": "AWS::Region"}
    assert variables[config.DEFAULT_NOTIFY] == "violations"
    assert variables[config.MAP_MAX_CONCURRENCY] == "4"
    assert variables[config.MEMBER_ROLE_NAME] == "TagwardenReadOnly"
    assert variables[config.DISTRIBUTED_MAP_THRESHOLD] == "40"
    assert variables[config.DISTRIBUTED_MAX_CONCURRENCY] == "50"
    assert variables[config.TOLERATED_FAILURE_PERCENTAGE] == "10"
    listing = prod.resources[function_id(prod.resources, "tagwarden-prod-list-instances")]
    assert config.MEMBER_EXTERNAL_ID not in listing["Properties"]["Environment"]["Variables"]
