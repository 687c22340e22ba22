"""The state machine (the ASL file, unchanged), its dead-letter feeds and its schedule."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

from aws_cdk import ArnFormat, Duration, Stack, TimeZone
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from tagwarden_cdk.common import data_removal_policy, log_retention
from tagwarden_cdk.functions import WorkflowFunction
from tagwarden_cdk.nag import acknowledge, acknowledge_all, arn_finding
from tagwarden_cdk.settings import Settings, scheduled_input
from tagwarden_cdk.storage import ReportStorage
from workflow import deployment, layout

FAILED_STATUSES: Final = ("FAILED", "TIMED_OUT", "ABORTED")
# Where the Distributed Map reads its items: Validate input writes the run's manifest with the same
# workflow.layout function; "*" stands for the run id.
TARGETS_MANIFEST_KEYS: Final = layout.targets_manifest_key("*")  # staging/*/targets.json
# The four actions AWS's "IAM policies for ResultWriter" names: the result files are written as
# multipart uploads, which Step Functions lists and, when a write fails, aborts.
RESULT_WRITER_ACTIONS: Final = (
    "s3:PutObject",
    "s3:GetObject",
    "s3:ListMultipartUploadParts",
    "s3:AbortMultipartUpload",
)


def schedule_description(settings: Settings) -> str:
    scope = (
        ", every active account of the organisation"
        if settings.organization
        else (", the deployment's target accounts" if settings.targets else "")
    )
    return f"Tagwarden: scheduled scan with the deployment's default policy and regions{scope}"


def _map_states(states: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for state in states.values():
        if state.get("Type") == "Map":
            yield state
            processor = state.get("ItemProcessor") or state.get("Iterator") or {}
            yield from _map_states(processor.get("States", {}))
        for branch in state.get("Branches", ()):
            yield from _map_states(branch.get("States", {}))


def _distributed_maps(definition: str) -> list[Mapping[str, Any]]:
    document = json.loads(definition)
    return [
        state
        for state in _map_states(document["States"])
        if state.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
    ]


def distributed_map_labels(definition: str) -> tuple[str, ...]:
    """The ``Label`` of every Distributed Map of an ASL definition; ``*`` for one without a label.

    A Map Run's child executions are named ``<state machine>/<label>:<id>``, so the label scopes the
    state machine role's grants on them. A Distributed Map without a label gets a generated one,
    which only ``*`` can match.
    """
    return tuple(dict.fromkeys(str(state.get("Label", "*")) for state in _distributed_maps(definition)))


def result_writer_prefixes(definition: str) -> tuple[str, ...]:
    """The S3 prefix (``""`` or ending in ``/``) each Distributed Map's ResultWriter writes under.

    The ResultWriter puts ``<Prefix>/<Map Run id>/manifest.json`` and the result files there. A prefix
    taken from the state (``Prefix.$``) is the run's map-results folder Validate input sets.
    """
    prefixes = []
    for state in _distributed_maps(definition):
        writer = state.get("ResultWriter")
        if not writer:
            continue
        parameters = writer.get("Parameters") or writer.get("Arguments") or {}
        if "Prefix.$" in parameters:
            prefixes.append(layout.map_results_prefix("*"))
        else:
            prefix = str(parameters.get("Prefix", "")).strip("/")
            prefixes.append(f"{prefix}/" if prefix else "")
    return tuple(dict.fromkeys(prefixes))


def definition_substitutions(
    functions: Mapping[str, WorkflowFunction], dead_letter_queue: sqs.IQueue, report_bucket: s3.IBucket
) -> dict[str, str]:
    """A value for every ``${...}`` placeholder of the ASL file."""
    values = {
        step.placeholder: functions[step.name].function.function_arn for step in deployment.STEP_FUNCTIONS
    }
    values[deployment.DEAD_LETTER_QUEUE_PLACEHOLDER] = dead_letter_queue.queue_url
    values[deployment.REPORT_BUCKET_PLACEHOLDER] = report_bucket.bucket_name
    return values


def workflow_state_machine(
    scope: Construct,
    *,
    settings: Settings,
    suffix: str,
    definition_path: str,
    substitutions: Mapping[str, str],
    task_arns: list[str],
    dead_letter_queue: sqs.IQueue,
    log_key: kms.IKey,
    comment: str,
) -> tuple[sfn.StateMachine, logs.LogGroup]:
    """A Standard state machine from an ASL file, logging everything (execution data encrypted with
    the stack's key) and traced, allowed exactly its Tasks' functions and the dead-letter queue."""
    log_group = logs.LogGroup(
        scope,
        "StateMachineLogs",
        log_group_name=f"/aws/vendedlogs/states/{settings.name(suffix)}",
        retention=log_retention(settings),
        encryption_key=log_key,
        removal_policy=data_removal_policy(settings),
    )
    machine = sfn.StateMachine(
        scope,
        "StateMachine",
        state_machine_name=settings.name(suffix),
        state_machine_type=sfn.StateMachineType.STANDARD,
        definition_body=sfn.DefinitionBody.from_file(definition_path),
        definition_substitutions=dict(substitutions),
        logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        tracing_enabled=True,
        comment=comment,
    )
    # The definition comes from a file, so CDK cannot infer what the Tasks call: grant it here,
    # exactly their functions (unqualified ARNs, as the ASL names them) and the queue.
    machine.add_to_role_policy(
        iam.PolicyStatement(sid="InvokeStepFunctions", actions=["lambda:InvokeFunction"], resources=task_arns)
    )
    machine.add_to_role_policy(
        iam.PolicyStatement(
            sid="SendToDeadLetterQueue", actions=["sqs:SendMessage"], resources=[dead_letter_queue.queue_arn]
        )
    )
    acknowledge(
        machine,
        "AwsSolutions-IAM5[Resource::*]",
        "Generated by CDK for logging level ALL and tracing: the CloudWatch Logs vended-delivery "
        "actions (CreateLogDelivery, PutResourcePolicy, ...) and X-Ray PutTraceSegments/"
        "GetSampling* support no resource-level permissions.",
    )
    return machine, log_group


def failed_executions_rule(
    scope: Construct,
    construct_id: str,
    *,
    rule_name: str,
    description: str,
    state_machine: sfn.IStateMachine,
    dead_letter_queue: sqs.IQueue,
) -> events.Rule:
    """The EventBridge rule that sends a state machine's FAILED, TIMED_OUT and ABORTED executions'
    status-change events to the dead-letter queue (what the Catch states cannot report)."""
    rule = events.Rule(
        scope,
        construct_id,
        rule_name=rule_name,
        description=description,
        event_pattern=events.EventPattern(
            source=["aws.states"],
            detail_type=["Step Functions Execution Status Change"],
            detail={"status": list(FAILED_STATUSES), "stateMachineArn": [state_machine.state_machine_arn]},
        ),
        targets=[
            events_targets.SqsQueue(dead_letter_queue, retry_attempts=10, max_event_age=Duration.hours(24))
        ],
    )
    acknowledge(
        rule,
        "Serverless-EventBusDLQ",
        "The rule's target is the dead-letter queue itself; an event it cannot take has no further queue to "
        "go to. The scan rule's FailedInvocations has an alarm of its own.",
    )
    return rule


class Orchestration(Construct):
    """``state_machine``, ``log_group``, ``failed_executions_rule`` and ``schedule`` (or None)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        functions: Mapping[str, WorkflowFunction],
        dead_letter_queue: sqs.Queue,
        storage: ReportStorage,
        log_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.substitutions = definition_substitutions(functions, dead_letter_queue, storage.bucket)
        self.state_machine, self.log_group = workflow_state_machine(
            self,
            settings=settings,
            suffix="scan",
            definition_path=str(deployment.ASL_PATH),
            substitutions=self.substitutions,
            task_arns=[functions[s.name].function.function_arn for s in deployment.STEP_FUNCTIONS],
            dead_letter_queue=dead_letter_queue,
            log_key=log_key,
            comment=f"Tagwarden {settings.environment}: EC2 tag compliance scan",
        )
        self._grant_distributed_map(stack, settings, storage)

        # Backstop for failures the Catch states cannot report (timeouts, aborts, SQS errors).
        self.failed_executions_rule = failed_executions_rule(
            self,
            "FailedExecutions",
            rule_name=settings.name("failed-executions"),
            description="Tagwarden: FAILED, TIMED_OUT or ABORTED executions go to the dead-letter queue",
            state_machine=self.state_machine,
            dead_letter_queue=dead_letter_queue,
        )

        self.schedule: scheduler.Schedule | None = None
        if settings.schedule:
            self.schedule = scheduler.Schedule(
                self,
                "Schedule",
                schedule_name=settings.name("scan"),
                description=schedule_description(settings),
                schedule=scheduler.ScheduleExpression.expression(settings.schedule, TimeZone.ETC_UTC),
                target=scheduler_targets.StepFunctionsStartExecution(
                    self.state_machine,
                    input=scheduler.ScheduleTargetInput.from_object(scheduled_input(settings)),
                    dead_letter_queue=dead_letter_queue,
                    retry_attempts=3,
                    max_event_age=Duration.hours(1),
                ),
            )

    def _grant_distributed_map(self, stack: Stack, settings: Settings, storage: ReportStorage) -> None:
        """What AWS documents for a Distributed Map ("IAM policies for using Distributed Map states").

        Granted in every mode: any manual execution may name enough targets to cross the threshold.
        ARNs are built from the state machine's fixed name, not its ``Ref``: the state machine
        depends on its role's policy, so a policy naming the state machine would be a cycle.
        """
        definition = deployment.read_definition()
        # Map Run children, <name>/<label>:<id>, for the labels the ASL gives its Distributed Maps.
        labels = distributed_map_labels(definition)
        if not labels:
            return
        name = settings.name("scan")
        machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        own_executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        child_executions = [
            stack.format_arn(
                service="states",
                resource="execution",
                resource_name=f"{name}/{label}:*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            for label in labels
        ]
        manifests = storage.bucket.arn_for_objects(TARGETS_MANIFEST_KEYS)
        # The ASL names the report bucket (${ReportBucketName}) and the prefix of its ResultWriter.
        result_prefixes = result_writer_prefixes(definition)
        results = [storage.objects(prefix) for prefix in result_prefixes]
        for statement in (
            # The Map Run starts each child execution of this very state machine.
            iam.PolicyStatement(
                sid="StartMapRunChildren", actions=["states:StartExecution"], resources=[machine_arn]
            ),
            # It tracks and, on failure or abort, stops them; redriving a run redrives its Map Run.
            iam.PolicyStatement(
                sid="ManageMapRunChildren",
                actions=["states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"],
                resources=child_executions,
            ),
            # The current guide's example also lets the Map Run describe its parent execution.
            iam.PolicyStatement(
                sid="DescribeOwnExecutions", actions=["states:DescribeExecution"], resources=[own_executions]
            ),
            # ItemReader: the (account, region) manifest Validate input writes for the run.
            iam.PolicyStatement(sid="ReadTargetsManifest", actions=["s3:GetObject"], resources=[manifests]),
            # ResultWriter: its prefix in the report bucket and nothing else.
            *(
                [
                    iam.PolicyStatement(
                        sid="WriteMapRunResults", actions=list(RESULT_WRITER_ACTIONS), resources=results
                    )
                ]
                if results
                else []
            ),
        ):
            self.state_machine.add_to_role_policy(statement)

        bucket = arn_finding(storage.bucket)
        execution_finding = f"arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:{name}"
        acknowledge_all(
            self.state_machine,
            [
                *(
                    (
                        f"AwsSolutions-IAM5[Resource::{execution_finding}/{label}:*]",
                        f"The child executions of the Distributed Map labelled {label!r}: Step Functions "
                        "names them <state machine>/<label>:<generated id> at run time, so the label is "
                        "the narrowest fixed scope (AWS's documented form for Map Run children).",
                    )
                    for label in labels
                ),
                (
                    f"AwsSolutions-IAM5[Resource::{execution_finding}:*]",
                    "DescribeExecution only, on this state machine's own executions, whose names (the "
                    "run ids) are chosen at start time; AWS's Distributed Map policy example grants it so.",
                ),
                (
                    f"AwsSolutions-IAM5[Resource::{bucket}/{TARGETS_MANIFEST_KEYS}]",
                    "The Distributed Map's ItemReader reads staging/<run id>/targets.json: the run id is "
                    "known only at run time, the object name is fixed below it.",
                ),
                *(
                    (
                        f"AwsSolutions-IAM5[Resource::{bucket}/{prefix}*]",
                        "The Distributed Map's ResultWriter writes manifest.json and its result files "
                        f"under {prefix or '(the bucket root)'}<Map Run id>/: the Map Run id exists only "
                        "at run time, so the ResultWriter's own prefix is the narrowest fixed scope.",
                    )
                    for prefix in result_prefixes
                ),
            ],
        )
