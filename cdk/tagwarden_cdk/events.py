"""The event path: CloudTrail's EC2 API calls in, checked within minutes by the event state machine.

EventBridge rule (successful RunInstances, Create*, CreateTags, DeleteTags) -> SQS queue -> an
EventBridge Pipe that batches the messages (up to ``PIPE_BATCH_SIZE`` or ``PIPE_BATCH_WINDOW``),
stores each batch in S3 through its enrichment Lambda (the claim check) and starts one execution of
the event state machine per batch. Standard, not Express: the run waits out the policy's grace
period (15 minutes or more), and Express executions stop at five.

Prerequisite: a CloudTrail trail with management events in each region (EventBridge receives
"AWS API Call via CloudTrail" events only for calls a trail records). Without it the rule matches
nothing and the scheduled scan remains the only check.

Member accounts (targets or organisation deployments): each member stack's rule forwards the same
events to this stack's own event bus, ``tagwarden-<environment>-events``, whose resource policy
admits ``events:PutEvents`` only from the organisation (``aws:PrincipalOrgID``; with targets and no
organisation id, only from the target accounts). A rule on that bus feeds the same queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_pipes as pipes
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from tagwarden_cdk.functions import PLAN_EVENTS, STORE_EVENTS, WorkflowFunction
from tagwarden_cdk.nag import acknowledge
from tagwarden_cdk.orchestration import failed_executions_rule, workflow_state_machine
from tagwarden_cdk.settings import Settings
from workflow import deployment
from workflow.events import EVENT_PATTERN, PIPE_BATCH_SIZE

# A batch is at most PIPE_BATCH_SIZE messages (workflow.events), gathered for at most this long.
PIPE_BATCH_WINDOW: Final = Duration.seconds(60)
EVENT_BUS_OUTPUT: Final = "EventBusArn"
# The event workflow's Tasks: its own Lambda and the scheduled workflow's.
EVENT_TASK_STEPS: Final = (
    PLAN_EVENTS,
    "list-instances",
    "evaluate-tags",
    "persist-report",
    "remediate",
    "register-partitions",
    "notify",
)


def event_pattern() -> events.EventPattern:
    """Successful EC2 calls that create a resource of a checked type or change its tags
    (:data:`workflow.events.EVENT_PATTERN`, which the local engine routes with too)."""
    return events.EventPattern(
        source=list(EVENT_PATTERN["source"]),
        detail_type=list(EVENT_PATTERN["detail-type"]),
        detail=dict(EVENT_PATTERN["detail"]),
    )


def member_bus_policy(settings: Settings, bus_arn: str) -> iam.PolicyStatement:
    """Who may put events on the member bus: the organisation's accounts (``aws:PrincipalOrgID``),
    or with targets and no organisation id the target accounts alone. Only ``events:PutEvents``,
    only on this bus."""
    if settings.organization_id is None and not settings.targets:
        raise ValueError("the member event bus needs organization_id or targets")
    principals: list[iam.IPrincipal] = (
        [iam.AccountPrincipal(t.account_id) for t in settings.targets]
        if settings.targets
        else [iam.StarPrincipal()]
    )
    statement = iam.PolicyStatement(
        sid="MemberAccountsForwardEc2ApiCalls",
        principals=principals,
        actions=["events:PutEvents"],
        resources=[bus_arn],
    )
    if settings.organization_id is not None:
        statement.add_condition("StringEquals", {"aws:PrincipalOrgID": settings.organization_id})
    return statement


class EventWorkflow(Construct):
    """``state_machine``, ``queue``, ``dead_letter_queue``, ``rule`` and ``pipe`` of the event path."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        functions: Mapping[str, WorkflowFunction],
        dead_letter_queue: sqs.IQueue,
        log_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        used = deployment.placeholders(deployment.read_events_definition())
        self.state_machine, self.log_group = workflow_state_machine(
            self,
            settings=settings,
            suffix="events",
            definition_path=str(deployment.EVENTS_ASL_PATH),
            substitutions={
                deployment.DEAD_LETTER_QUEUE_PLACEHOLDER: dead_letter_queue.queue_url,
                **{
                    f.step.placeholder: f.function.function_arn
                    for f in functions.values()
                    if f.step.placeholder in used
                },
            },
            task_arns=[functions[name].function.function_arn for name in EVENT_TASK_STEPS],
            dead_letter_queue=dead_letter_queue,
            log_key=log_key,
            comment=f"Tagwarden {settings.environment}: check the EC2 resources CloudTrail events name",
        )

        self.dead_letter_queue = sqs.Queue(
            self,
            "EventsDeadLetterQueue",
            queue_name=settings.name("events-dead-letters"),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        for rule in ("Serverless-SQSRedrivePolicy",):
            acknowledge(
                self.dead_letter_queue,
                rule,
                "The events queue's dead-letter queue: batches the Pipe could not hand on after five "
                "receives wait here for an operator; nothing consumes it, so it needs no DLQ of its own.",
            )
        self.queue = sqs.Queue(
            self,
            "EventsQueue",
            queue_name=settings.name("events"),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(4),
            # Longer than the enrichment's timeout: a batch in flight is not handed out twice.
            visibility_timeout=Duration.seconds(6 * deployment.STORE_EVENT_BATCH.timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.dead_letter_queue),
        )
        self.rule = self._rule_to_queue(
            "Ec2ApiCalls",
            settings.name("ec2-api-calls"),
            "Tagwarden: successful EC2 launches, creations and tag changes to the events queue",
        )
        self.bus: events.EventBus | None = None
        self.member_rule: events.Rule | None = None
        if settings.targets or settings.organization:
            self.bus = events.EventBus(self, "MemberEventBus", event_bus_name=settings.name("events"))
            self.bus.add_to_resource_policy(member_bus_policy(settings, self.bus.event_bus_arn))
            self.member_rule = self._rule_to_queue(
                "MemberEc2ApiCalls",
                settings.name("member-ec2-api-calls"),
                "Tagwarden: member accounts' EC2 launches and tag changes to the events queue",
                bus=self.bus,
            )
            CfnOutput(
                scope,
                EVENT_BUS_OUTPUT,
                value=self.bus.event_bus_arn,
                description="The member stacks' central_event_bus_arn: where their EC2 call events go",
            )

        role = iam.Role(
            self,
            "PipeRole",
            assumed_by=iam.ServicePrincipal("pipes.amazonaws.com"),
            description=f"Tagwarden {settings.environment}: the events Pipe (queue, enrichment, event runs)",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadEventsQueue",
                actions=["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                resources=[self.queue.queue_arn],
            )
        )
        store = functions[STORE_EVENTS].function
        role.add_to_policy(
            iam.PolicyStatement(
                sid="StoreBatches", actions=["lambda:InvokeFunction"], resources=[store.function_arn]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="StartEventRuns",
                actions=["states:StartExecution"],
                resources=[self.state_machine.state_machine_arn],
            )
        )
        self.pipe_role = role
        self.pipe = pipes.CfnPipe(
            self,
            "Pipe",
            name=settings.name("events"),
            description="Tagwarden: batches of EC2 API call events, stored in S3, each one event run",
            role_arn=role.role_arn,
            source=self.queue.queue_arn,
            source_parameters=pipes.CfnPipe.PipeSourceParametersProperty(
                sqs_queue_parameters=pipes.CfnPipe.PipeSourceSqsQueueParametersProperty(
                    batch_size=PIPE_BATCH_SIZE,
                    maximum_batching_window_in_seconds=int(PIPE_BATCH_WINDOW.to_seconds()),
                )
            ),
            enrichment=store.function_arn,
            target=self.state_machine.state_machine_arn,
            target_parameters=pipes.CfnPipe.PipeTargetParametersProperty(
                step_function_state_machine_parameters=pipes.CfnPipe.PipeTargetStateMachineParametersProperty(
                    invocation_type="FIRE_AND_FORGET"
                )
            ),
        )
        self.pipe.node.add_dependency(role)

        self.failed_executions_rule = failed_executions_rule(
            self,
            "FailedEventRuns",
            rule_name=settings.name("failed-event-runs"),
            description="Tagwarden: FAILED, TIMED_OUT or ABORTED event runs go to the dead-letter queue",
            state_machine=self.state_machine,
            dead_letter_queue=dead_letter_queue,
        )

    def _rule_to_queue(
        self, construct_id: str, name: str, description: str, *, bus: events.IEventBus | None = None
    ) -> events.Rule:
        """A rule with the EC2 call pattern into the events queue (on ``bus``, else the default one)."""
        rule = events.Rule(
            self,
            construct_id,
            rule_name=name,
            description=description,
            event_bus=bus,
            event_pattern=event_pattern(),
            targets=[
                events_targets.SqsQueue(self.queue, retry_attempts=10, max_event_age=Duration.hours(24))
            ],
        )
        acknowledge(
            rule,
            "Serverless-EventBusDLQ",
            "The rule's target is a queue with its own dead-letter queue and a 24-hour retry window; "
            "the alarm on the rule's FailedInvocations reports an event it could not deliver.",
        )
        return rule
