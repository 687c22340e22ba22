"""Alarms (metric, threshold, comparison, actions), the dashboard and the stack outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.cfn import function_id, only, ref, render
from tests.infra.conftest import Synthesized
from workflow import deployment
from workflow.metrics import (
    COMPLIANCE_PERCENTAGE,
    INSTANCES_EVALUATED,
    INSTANCES_EVALUATED_DROP,
    NONCOMPLIANT_INSTANCES,
    TARGETS_NOT_SCANNED,
)

OUTPUT_KEYS = {
    "StateMachineArn",
    "ReportBucketName",
    "ComplianceTopicArn",
    "OperationsTopicArn",
    "DeadLetterQueueUrl",
    "AthenaWorkGroupName",
    "GlueDatabaseName",
    "CrawlerName",
    "DashboardUrl",
}


def _alarms(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["AlarmName"].removeprefix("tagwarden-test-"): r["Properties"]
        for r in synthesized.of_type("AWS::CloudWatch::Alarm").values()
    }


def _operations_topic(synthesized: Synthesized) -> str:
    return only(
        synthesized.resources, "AWS::SNS::Topic", lambda p: p["TopicName"] == "tagwarden-test-operations"
    )


def _dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}


EXPECTED_OPERATIONS_ALARMS = {
    "executions-failed": ("AWS/States", "ExecutionsFailed", "Sum"),
    "executions-timed-out": ("AWS/States", "ExecutionsTimedOut", "Sum"),
    "executions-throttled": ("AWS/States", "ExecutionThrottled", "Sum"),
    "dead-letter-queue-not-empty": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum"),
    "failed-execution-events-undelivered": ("AWS/Events", "FailedInvocations", "Sum"),
    # The event path.
    "event-runs-failed": ("AWS/States", "ExecutionsFailed", "Sum"),
    "ec2-api-call-events-undelivered": ("AWS/Events", "FailedInvocations", "Sum"),
    "failed-event-run-events-undelivered": ("AWS/Events", "FailedInvocations", "Sum"),
    "events-dead-letter-queue-not-empty": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum"),
    **{
        f"{s.name}-errors": ("AWS/Lambda", "Errors", "Sum")
        for s in (*deployment.STEP_FUNCTIONS, *deployment.EVENT_STEP_FUNCTIONS, deployment.STORE_EVENT_BATCH)
    },
}


def test_alarm_set_is_operations_plus_compliance(synthesized: Synthesized) -> None:
    assert set(_alarms(synthesized)) == {
        *EXPECTED_OPERATIONS_ALARMS,
        "events-queue-stale",
        "noncompliant-instances-above-threshold",
        "compliance-percentage-below-threshold",
        "targets-not-scanned",
        "nothing-evaluated",
        "instances-evaluated-dropped",
    }


@pytest.mark.parametrize(
    ("name", "metric", "statistic", "threshold", "comparison"),
    [
        ("targets-not-scanned", TARGETS_NOT_SCANNED, "Maximum", 1, "GreaterThanOrEqualToThreshold"),
        ("nothing-evaluated", INSTANCES_EVALUATED, "Minimum", 1, "LessThanThreshold"),
        ("instances-evaluated-dropped", INSTANCES_EVALUATED_DROP, "Maximum", 20, "GreaterThanThreshold"),
    ],
)
def test_an_incomplete_scan_raises_an_alarm_of_its_own(
    synthesized: Synthesized, name: str, metric: str, statistic: str, threshold: float, comparison: str
) -> None:
    """Fail closed: targets not scanned, nothing evaluated, or a drop in coverage is never a green."""
    alarm = _alarms(synthesized)[name]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("Tagwarden", metric, statistic)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (threshold, comparison)
    assert _dimensions(alarm) == {"environment": "test"}
    assert alarm["TreatMissingData"] == "ignore"  # keeps the latest run's verdict between runs
    assert "Runbook: docs/deploy.md#" + name in alarm["AlarmDescription"]
    runbook = (deployment.ROOT / "docs" / "deploy.md").read_text()
    assert f'<a id="{name}"></a>' in runbook or f"### {name}" in runbook


def test_the_coverage_drop_threshold_comes_from_context(prod: Synthesized) -> None:
    alarms = {
        r["Properties"]["AlarmName"]: r["Properties"] for r in prod.of_type("AWS::CloudWatch::Alarm").values()
    }
    assert alarms["tagwarden-prod-instances-evaluated-dropped"]["Threshold"] == 20


@pytest.mark.parametrize("name", sorted(EXPECTED_OPERATIONS_ALARMS))
def test_operations_alarm_fires_on_the_first_event_within_five_minutes(
    synthesized: Synthesized, name: str
) -> None:
    alarm = _alarms(synthesized)[name]
    namespace, metric, statistic = EXPECTED_OPERATIONS_ALARMS[name]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (namespace, metric, statistic)
    assert alarm["Period"] == 300
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["EvaluationPeriods"] == 1
    assert alarm["TreatMissingData"] == "notBreaching"
    assert "Runbook: docs/deploy.md#" + name in alarm["AlarmDescription"]


def test_a_stuck_events_pipe_raises_an_alarm_within_ten_minutes(synthesized: Synthesized) -> None:
    """Events wait in the queue only as long as the Pipe's batching window; older means stuck."""
    alarm = _alarms(synthesized)["events-queue-stale"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        "Maximum",
    )
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (600, "GreaterThanThreshold")
    assert "Runbook: docs/deploy.md#events-queue-stale" in alarm["AlarmDescription"]


def test_operations_alarms_watch_this_stacks_resources(synthesized: Synthesized) -> None:
    alarms = _alarms(synthesized)
    resources = synthesized.resources
    machine = only(
        resources,
        "AWS::StepFunctions::StateMachine",
        lambda p: p.get("StateMachineName") == "tagwarden-test-scan",
    )
    for name in ("executions-failed", "executions-timed-out", "executions-throttled"):
        assert _dimensions(alarms[name]) == {"StateMachineArn": ref(machine)}
    for step in (*deployment.STEP_FUNCTIONS, *deployment.EVENT_STEP_FUNCTIONS, deployment.STORE_EVENT_BATCH):
        function = function_id(resources, f"tagwarden-test-{step.name}")
        assert _dimensions(alarms[f"{step.name}-errors"]) == {"FunctionName": ref(function)}
    queue = only(resources, "AWS::SQS::Queue", lambda p: p["QueueName"] == "tagwarden-test-dead-letters")
    assert _dimensions(alarms["dead-letter-queue-not-empty"]) == {
        "QueueName": {"Fn::GetAtt": [queue, "QueueName"]}
    }
    rule = only(resources, "AWS::Events::Rule", lambda p: p.get("Name") == "tagwarden-test-failed-executions")
    assert _dimensions(alarms["failed-execution-events-undelivered"]) == {"RuleName": ref(rule)}


def test_compliance_alarms_use_the_workflows_metrics_and_the_context_thresholds(
    synthesized: Synthesized,
) -> None:
    alarms = _alarms(synthesized)
    above = alarms["noncompliant-instances-above-threshold"]
    assert (above["Namespace"], above["MetricName"], above["Statistic"]) == (
        "Tagwarden",
        NONCOMPLIANT_INSTANCES,
        "Maximum",
    )
    assert above["Threshold"] == 25
    assert above["ComparisonOperator"] == "GreaterThanThreshold"
    below = alarms["compliance-percentage-below-threshold"]
    assert (below["Namespace"], below["MetricName"], below["Statistic"]) == (
        "Tagwarden",
        COMPLIANCE_PERCENTAGE,
        "Minimum",
    )
    assert below["Threshold"] == 95
    assert below["ComparisonOperator"] == "LessThanThreshold"
    for alarm in (above, below):
        assert _dimensions(alarm) == {"environment": "test"}
        assert alarm["Period"] == 3600
        assert alarm["TreatMissingData"] == "ignore"  # keeps the latest run's verdict between runs


def test_default_compliance_thresholds(prod: Synthesized) -> None:
    alarms = {
        r["Properties"]["AlarmName"]: r["Properties"] for r in prod.of_type("AWS::CloudWatch::Alarm").values()
    }
    assert alarms["tagwarden-prod-noncompliant-instances-above-threshold"]["Threshold"] == 50
    assert alarms["tagwarden-prod-compliance-percentage-below-threshold"]["Threshold"] == 90


def test_every_alarm_notifies_the_operations_topic_on_alarm_and_on_recovery(synthesized: Synthesized) -> None:
    topic = ref(_operations_topic(synthesized))
    for name, alarm in _alarms(synthesized).items():
        assert alarm["AlarmActions"] == [topic], name
        assert alarm["OKActions"] == [topic], name


def _widgets(synthesized: Synthesized) -> list[dict[str, Any]]:
    """The dashboard's widgets, with every Ref/GetAtt rendered as ``<Ref Id>``."""
    (dashboard,) = synthesized.of_type("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "tagwarden-test-dashboard"
    body = json.loads(render(dashboard["Properties"]["DashboardBody"]))
    widgets: list[dict[str, Any]] = body["widgets"]
    return widgets


def _graph(widgets: list[dict[str, Any]], title: str) -> dict[str, Any]:
    (widget,) = [w for w in widgets if w["properties"].get("title") == title]
    properties: dict[str, Any] = widget["properties"]
    return properties


def _metric_names(graph: dict[str, Any]) -> list[str]:
    """Metric names of a graph's metric rows (``[namespace, name, dim, value, ..., {options}]``)."""
    return [row[1] for row in graph["metrics"] if not isinstance(row[0], dict)]


def test_dashboard_shows_compliance_percentage_and_noncompliant_count_over_time_overall_and_per_region(
    synthesized: Synthesized,
) -> None:
    widgets = _widgets(synthesized)
    overall = _graph(widgets, "Compliance percentage")
    assert overall["metrics"][0][:4] == ["Tagwarden", COMPLIANCE_PERCENTAGE, "environment", "test"]
    assert overall["annotations"]["horizontal"][0]["value"] == 95
    counts = _graph(widgets, "Noncompliant and evaluated instances")
    assert _metric_names(counts) == [NONCOMPLIANT_INSTANCES, INSTANCES_EVALUATED]
    coverage = [
        w["properties"] for w in widgets if w["properties"].get("title") == "Coverage of the latest scan"
    ]
    assert [_metric_names(c) for c in coverage] == [[INSTANCES_EVALUATED, TARGETS_NOT_SCANNED]]
    for title, metric in (
        ("Compliance percentage per region", COMPLIANCE_PERCENTAGE),
        ("Noncompliant instances per region", NONCOMPLIANT_INSTANCES),
    ):
        (row,) = _graph(widgets, title)["metrics"]
        expression = row[0]["expression"]
        assert expression.startswith("SEARCH('{Tagwarden,environment,region} ")
        assert f'MetricName="{metric}"' in expression and 'environment="test"' in expression


def test_dashboard_shows_executions_and_their_duration(synthesized: Synthesized) -> None:
    widgets = _widgets(synthesized)
    assert _metric_names(_graph(widgets, "Scan executions")) == [
        "ExecutionsSucceeded",
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "ExecutionsAborted",
    ]
    assert set(_metric_names(_graph(widgets, "Scan duration"))) == {"ExecutionTime"}


def test_dashboard_shows_each_lambdas_errors_and_duration_and_the_dead_letter_depth(
    synthesized: Synthesized,
) -> None:
    widgets = _widgets(synthesized)
    steps = (
        len(deployment.STEP_FUNCTIONS) + len(deployment.EVENT_STEP_FUNCTIONS) + 1
    )  # + the Pipe's enrichment
    assert _metric_names(_graph(widgets, "Lambda errors")) == ["Errors"] * steps
    assert _metric_names(_graph(widgets, "Lambda duration (p90)")) == ["Duration"] * steps
    assert _metric_names(_graph(widgets, "Dead-letter queue depth")) == ["ApproximateNumberOfMessagesVisible"]


def test_dashboard_has_a_logs_insights_table_of_recent_errors_from_every_log_group(
    synthesized: Synthesized,
) -> None:
    (widget,) = [w for w in _widgets(synthesized) if w["type"] == "log"]
    query = widget["properties"]["query"]
    resources = synthesized.resources
    groups = [
        f"<Ref {_log_group(resources, f'/aws/lambda/tagwarden-test-{s.name}')}>"
        for s in deployment.STEP_FUNCTIONS
    ]
    groups.append(f"<Ref {_log_group(resources, '/aws/vendedlogs/states/tagwarden-test-scan')}>")
    for group in groups:
        assert f"SOURCE '{group}'" in query
    assert 'filter level = "ERROR"' in query
    assert "sort @timestamp desc" in query
    assert widget["properties"]["view"] == "table"


def _log_group(resources: dict[str, dict[str, Any]], name: str) -> str:
    return only(resources, "AWS::Logs::LogGroup", lambda p: p.get("LogGroupName") == name)


def test_outputs_have_the_stable_keys_a_cli_looks_up(synthesized: Synthesized) -> None:
    outputs = synthesized.json["Outputs"]
    assert set(outputs) == OUTPUT_KEYS
    resources = synthesized.resources
    assert outputs["StateMachineArn"]["Value"] == ref(
        only(
            resources,
            "AWS::StepFunctions::StateMachine",
            lambda p: p.get("StateMachineName") == "tagwarden-test-scan",
        )
    )
    assert outputs["GlueDatabaseName"]["Value"] == "tagwarden_test"
    assert outputs["CrawlerName"]["Value"] == "tagwarden-test-reports"
    assert outputs["AthenaWorkGroupName"]["Value"] == "tagwarden-test-analytics"
    assert outputs["OperationsTopicArn"]["Value"] == ref(_operations_topic(synthesized))
    assert "#dashboards:name=tagwarden-test-dashboard" in json.dumps(outputs["DashboardUrl"]["Value"])
    for output in outputs.values():
        assert "Export" not in output  # found by key, never imported by other stacks


def test_every_alarm_has_a_runbook_section_in_the_deploy_guide(synthesized: Synthesized) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text(encoding="utf-8")
    headings = {line.removeprefix("### ").strip() for line in guide.splitlines() if line.startswith("### ")}
    assert set(_alarms(synthesized)) <= headings
