"""Alarms to the operations topic and the CloudWatch dashboard."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from tagwarden_cdk.events import EventWorkflow
from tagwarden_cdk.functions import WorkflowFunction
from tagwarden_cdk.settings import Settings
from workflow import config, deployment
from workflow.metrics import (
    COMPLIANCE_PERCENTAGE,
    INSTANCES_EVALUATED,
    INSTANCES_EVALUATED_DROP,
    NONCOMPLIANT_INSTANCES,
    TARGETS_NOT_SCANNED,
)

NAMESPACE: Final = config.DEFAULT_METRICS_NAMESPACE
ENVIRONMENT_DIMENSION: Final = "environment"
REGION_DIMENSION: Final = "region"
OPERATIONS_PERIOD: Final = Duration.minutes(5)
# The workflow emits compliance metrics once per run; an hourly period with missing data ignored
# keeps each alarm in the state of the latest run until the next one.
COMPLIANCE_PERIOD: Final = Duration.hours(1)


def _execution_timeout_minutes() -> int:
    """The ASL's top-level TimeoutSeconds, in minutes."""
    return int(json.loads(deployment.read_definition())["TimeoutSeconds"]) // 60


# The Pipe hands on a batch within a minute; ten minutes of waiting means it is not running.
EVENTS_QUEUE_MAX_AGE_SECONDS: Final = 600


def failed_invocations(rule: events.IRule, *, bus: events.IEventBus | None = None) -> cw.Metric:
    """A rule's deliveries that failed for good (EventBridge publishes it only when not zero).

    A rule on a custom bus publishes its metrics with the bus's name as a second dimension.
    """
    dimensions = {"RuleName": rule.rule_name}
    if bus is not None:
        dimensions["EventBusName"] = bus.event_bus_name
    return cw.Metric(
        namespace="AWS/Events",
        metric_name="FailedInvocations",
        dimensions_map=dimensions,
        period=OPERATIONS_PERIOD,
        statistic="Sum",
    )


class Monitoring(Construct):
    """``alarms[name]`` (each to the operations topic) and ``dashboard``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        state_machine: sfn.StateMachine,
        functions: Mapping[str, WorkflowFunction],
        dead_letter_queue: sqs.Queue,
        failed_executions_rule: events.Rule,
        operations_topic: sns.Topic,
        state_machine_log_group_name: str,
        event_workflow: EventWorkflow | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._settings = settings
        self._action = cw_actions.SnsAction(operations_topic)
        self.alarms: dict[str, cw.Alarm] = {}

        def sm_metric(name: str, statistic: str = "Sum") -> cw.Metric:
            return state_machine.metric(name, period=OPERATIONS_PERIOD, statistic=statistic)

        self._alarm(
            "executions-failed",
            sm_metric("ExecutionsFailed"),
            threshold=1,
            description="A scan execution failed; the dead-letter queue holds its error and input.",
        )
        self._alarm(
            "executions-timed-out",
            sm_metric("ExecutionsTimedOut"),
            threshold=1,
            description=(
                "A scan execution ran into the state machine's timeout "
                f"({_execution_timeout_minutes()} minutes)."
            ),
        )
        self._alarm(
            "executions-throttled",
            sm_metric("ExecutionThrottled"),
            threshold=1,
            description="Step Functions throttled the scan's state transitions.",
        )
        for name, item in functions.items():
            self._alarm(
                f"{name}-errors",
                item.function.metric_errors(period=OPERATIONS_PERIOD, statistic="Sum"),
                threshold=1,
                description=f"The {name} Lambda raised errors (retries included); see its log group.",
            )
        self._alarm(
            "dead-letter-queue-not-empty",
            dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=OPERATIONS_PERIOD, statistic="Maximum"
            ),
            threshold=1,
            description="Failed scans are waiting in the dead-letter queue.",
        )
        self._alarm(
            "failed-execution-events-undelivered",
            failed_invocations(failed_executions_rule),
            threshold=1,
            description="EventBridge could not put a failed-execution event into the dead-letter queue.",
        )
        if event_workflow is not None:
            self._event_alarms(event_workflow)
        self._alarm(
            "noncompliant-instances-above-threshold",
            self.compliance_metric(NONCOMPLIANT_INSTANCES, "Maximum"),
            threshold=settings.noncompliant_threshold,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            missing=cw.TreatMissingData.IGNORE,
            description=(
                f"The latest scan found more than {settings.noncompliant_threshold} noncompliant instances."
            ),
        )
        self._alarm(
            "compliance-percentage-below-threshold",
            self.compliance_metric(COMPLIANCE_PERCENTAGE, "Minimum"),
            threshold=settings.compliance_percentage_threshold,
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cw.TreatMissingData.IGNORE,
            description=(
                "The latest scan's compliance percentage is below "
                f"{settings.compliance_percentage_threshold:g}%."
            ),
        )
        # Fail closed: a scan that did not see part of the fleet is an alarm of its own, never a
        # quiet green. Missing data (no run in the hour) keeps the state of the latest run.
        self._alarm(
            "targets-not-scanned",
            self.compliance_metric(TARGETS_NOT_SCANNED, "Maximum"),
            threshold=1,
            missing=cw.TreatMissingData.IGNORE,
            description=(
                "The latest scan could not scan one or more account/region targets (a member role "
                "missing or refusing, a wrong external id, a region not enabled); its verdict is partial."
            ),
        )
        self._alarm(
            "nothing-evaluated",
            self.compliance_metric(INSTANCES_EVALUATED, "Minimum"),
            threshold=1,
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cw.TreatMissingData.IGNORE,
            description="The latest scan evaluated no instance at all: it is not a clean bill of health.",
        )
        self._alarm(
            "instances-evaluated-dropped",
            self.compliance_metric(INSTANCES_EVALUATED_DROP, "Maximum"),
            threshold=settings.evaluated_drop_alarm_percent,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            missing=cw.TreatMissingData.IGNORE,
            description=(
                f"The latest scan evaluated more than {settings.evaluated_drop_alarm_percent:g}% fewer "
                "instances than its baseline run (same policy, over the targets both scanned)."
            ),
        )

        self.dashboard = self._dashboard(
            state_machine=state_machine,
            functions=functions,
            dead_letter_queue=dead_letter_queue,
            log_group_names=[
                state_machine_log_group_name,
                *(f.log_group.log_group_name for f in functions.values()),
            ],
        )
        self.dashboard_url = (
            f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
            f"#dashboards:name={settings.name('dashboard')}"
        )

    def compliance_metric(self, metric_name: str, statistic: str) -> cw.Metric:
        return cw.Metric(
            namespace=NAMESPACE,
            metric_name=metric_name,
            dimensions_map={ENVIRONMENT_DIMENSION: self._settings.environment},
            period=COMPLIANCE_PERIOD,
            statistic=statistic,
        )

    def _per_region(self, metric_name: str, statistic: str, label: str) -> cw.MathExpression:
        search = (
            f"SEARCH('{{{NAMESPACE},{ENVIRONMENT_DIMENSION},{REGION_DIMENSION}}} "
            f'MetricName="{metric_name}" {ENVIRONMENT_DIMENSION}="{self._settings.environment}"\', '
            f"'{statistic}', {int(COMPLIANCE_PERIOD.to_seconds())})"
        )
        return cw.MathExpression(expression=search, label=label, period=COMPLIANCE_PERIOD, using_metrics={})

    def _event_alarms(self, workflow: EventWorkflow) -> None:
        """The event path is loud too: failed event runs, events the rules could not deliver, and
        batches the Pipe could not hand on (stuck in the queue, or moved to its dead-letter queue)."""
        self._alarm(
            "event-runs-failed",
            workflow.state_machine.metric("ExecutionsFailed", period=OPERATIONS_PERIOD, statistic="Sum"),
            threshold=1,
            description="An event run failed; the dead-letter queue holds its error and input.",
        )
        for name, rule, what in (
            (
                "ec2-api-call-events-undelivered",
                workflow.rule,
                "a CloudTrail EC2 call event into the events queue",
            ),
            (
                "failed-event-run-events-undelivered",
                workflow.failed_executions_rule,
                "a failed event run's event",
            ),
        ):
            self._alarm(
                name,
                failed_invocations(rule),
                threshold=1,
                description=f"EventBridge could not deliver {what}.",
            )
        if workflow.bus is not None and workflow.member_rule is not None:
            self._alarm(
                "member-ec2-api-call-events-undelivered",
                failed_invocations(workflow.member_rule, bus=workflow.bus),
                threshold=1,
                description="EventBridge could not deliver a member account's forwarded EC2 call event "
                "into the events queue.",
            )
        self._alarm(
            "events-queue-stale",
            workflow.queue.metric_approximate_age_of_oldest_message(
                period=OPERATIONS_PERIOD, statistic="Maximum"
            ),
            threshold=EVENTS_QUEUE_MAX_AGE_SECONDS,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description="Events wait in the events queue longer than the Pipe's batching allows: the Pipe is "
            "stopped or its enrichment fails.",
        )
        self._alarm(
            "events-dead-letter-queue-not-empty",
            workflow.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=OPERATIONS_PERIOD, statistic="Maximum"
            ),
            threshold=1,
            description="Batches of events the Pipe could not hand on wait in the events dead-letter queue.",
        )

    def _alarm(
        self,
        name: str,
        metric: cw.IMetric,
        *,
        threshold: float,
        description: str,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
    ) -> cw.Alarm:
        construct_id = "".join(part.capitalize() for part in name.split("-"))
        alarm = cw.Alarm(
            self,
            construct_id,
            alarm_name=self._settings.name(name),
            alarm_description=f"{description} Runbook: docs/deploy.md#{name}",
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms[name] = alarm
        return alarm

    def _dashboard(
        self,
        *,
        state_machine: sfn.StateMachine,
        functions: Mapping[str, WorkflowFunction],
        dead_letter_queue: sqs.Queue,
        log_group_names: list[str],
    ) -> cw.Dashboard:
        day = Duration.days(1)
        dashboard = cw.Dashboard(
            self,
            "Dashboard",
            dashboard_name=self._settings.name("dashboard"),
            default_interval=Duration.days(30),
        )
        env = self._settings.environment
        dashboard.add_widgets(
            cw.TextWidget(
                markdown=(
                    f"# Tagwarden ({env})\nCompliance from the workflow's embedded metrics "
                    f"(namespace `{NAMESPACE}`), scan executions, Lambdas and the dead-letter queue. "
                    "A run that evaluated nothing has no compliance percentage (a gap, never 100%): "
                    "see *instances evaluated* and the nothing-evaluated alarm. "
                    "Alarms go to the operations topic; the runbook is docs/deploy.md."
                ),
                width=24,
                height=2,
            )
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Compliance percentage",
                left=[self.compliance_metric(COMPLIANCE_PERCENTAGE, "Minimum").with_(label="all regions")],
                left_y_axis=cw.YAxisProps(min=0, max=100, label="%", show_units=False),
                left_annotations=[
                    cw.HorizontalAnnotation(
                        value=self._settings.compliance_percentage_threshold, label="alarm threshold"
                    )
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Compliance percentage per region",
                left=[self._per_region(COMPLIANCE_PERCENTAGE, "Minimum", "")],
                left_y_axis=cw.YAxisProps(min=0, max=100, label="%", show_units=False),
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Noncompliant and evaluated instances",
                left=[self.compliance_metric(NONCOMPLIANT_INSTANCES, "Maximum").with_(label="noncompliant")],
                right=[self.compliance_metric(INSTANCES_EVALUATED, "Maximum").with_(label="evaluated")],
                left_annotations=[
                    cw.HorizontalAnnotation(
                        value=self._settings.noncompliant_threshold, label="alarm threshold"
                    )
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Noncompliant instances per region",
                left=[self._per_region(NONCOMPLIANT_INSTANCES, "Maximum", "")],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.SingleValueWidget(
                title="Coverage of the latest scan",
                metrics=[
                    self.compliance_metric(INSTANCES_EVALUATED, "Minimum").with_(label="instances evaluated"),
                    self.compliance_metric(TARGETS_NOT_SCANNED, "Maximum").with_(label="targets not scanned"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Instances evaluated, drop from the baseline run",
                left=[self.compliance_metric(INSTANCES_EVALUATED_DROP, "Maximum").with_(label="drop")],
                left_y_axis=cw.YAxisProps(min=0, max=100, label="%", show_units=False),
                left_annotations=[
                    cw.HorizontalAnnotation(
                        value=self._settings.evaluated_drop_alarm_percent, label="alarm threshold"
                    )
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Scan executions",
                left=[
                    state_machine.metric_succeeded(period=day, statistic="Sum", label="succeeded"),
                    state_machine.metric_failed(period=day, statistic="Sum", label="failed"),
                    state_machine.metric_timed_out(period=day, statistic="Sum", label="timed out"),
                    state_machine.metric_aborted(period=day, statistic="Sum", label="aborted"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Scan duration",
                left=[
                    state_machine.metric_time(period=day, statistic="Average", label="average"),
                    state_machine.metric_time(period=day, statistic="Maximum", label="maximum"),
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Lambda errors",
                left=[
                    f.function.metric_errors(period=Duration.hours(1), statistic="Sum", label=name)
                    for name, f in functions.items()
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Lambda duration (p90)",
                left=[
                    f.function.metric_duration(period=Duration.hours(1), statistic="p90", label=name)
                    for name, f in functions.items()
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Dead-letter queue depth",
                left=[
                    dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=OPERATIONS_PERIOD, statistic="Maximum", label="messages"
                    )
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cw.LogQueryWidget(
                title="Recent errors (Lambdas and state machine)",
                log_group_names=log_group_names,
                query_lines=[
                    "fields @timestamp, @log, coalesce(level, type) as kind, "
                    "coalesce(message, error, cause, @message) as detail",
                    'filter level = "ERROR" or level = "CRITICAL" or type like /Failed|TimedOut|Aborted/',
                    "sort @timestamp desc",
                    "limit 100",
                ],
                view=cw.LogQueryVisualizationType.TABLE,
                width=24,
                height=8,
            )
        )
        return dashboard
