"""Compliance metrics in CloudWatch embedded metric format (EMF), through Powertools.

A Lambda's stdout goes to CloudWatch Logs, which turns EMF lines into metrics: no PutMetricData
call, no extra permission. The alarms and the dashboard of the CDK app read these names.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

COMPLIANCE_PERCENTAGE: Final = "CompliancePercentage"
NONCOMPLIANT_INSTANCES: Final = "NoncompliantInstances"
INSTANCES_EVALUATED: Final = "InstancesEvaluated"
TARGETS_NOT_SCANNED: Final = "TargetsNotScanned"
# How far the instances evaluated fell since the baseline run, over the targets both scanned.
INSTANCES_EVALUATED_DROP: Final = "InstancesEvaluatedDropPercent"

Sink = Callable[[str], None]


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _emit(
    namespace: str, dimensions: Mapping[str, str], values: Mapping[str, tuple[MetricUnit, float]], sink: Sink
) -> dict[str, Any]:
    # service="" keeps Powertools from adding a "service" dimension the alarms do not use.
    metrics = EphemeralMetrics(namespace=namespace, service="")
    for name, value in dimensions.items():
        metrics.add_dimension(name=name, value=value)
    for name, (unit, number) in values.items():
        metrics.add_metric(name=name, unit=unit, value=number)
    document: dict[str, Any] = dict(metrics.serialize_metric_set())
    sink(json.dumps(document, separators=(",", ":")))
    return document


def emit_run_metrics(
    summary: Mapping[str, Any], *, environment: str, namespace: str, sink: Sink = _stdout
) -> list[dict[str, Any]]:
    """Emit the run's totals and coverage, and the totals per region; returns the EMF documents.

    A run that evaluated nothing emits no compliance percentage (0 of 0 is not 100%): the alarms
    see ``InstancesEvaluated`` 0 and, for targets not scanned, ``TargetsNotScanned``.

    >>> summary = {"totals": {"total": 4, "noncompliant": 1, "compliance_percentage": 75.0},
    ...            "by_region": {}, "target_counts": {"error": 1}}
    >>> docs = emit_run_metrics(summary, environment="dev", namespace="Tagwarden", sink=lambda _: None)
    >>> docs[0]["CompliancePercentage"], docs[0]["TargetsNotScanned"], docs[0]["environment"]
    ([75.0], [1.0], 'dev')
    >>> empty = {"totals": {"total": 0, "noncompliant": 0, "compliance_percentage": None}, "by_region": {}}
    >>> docs = emit_run_metrics(empty, environment="dev", namespace="T", sink=lambda _: None)
    >>> "CompliancePercentage" in docs[0], docs[0]["InstancesEvaluated"]
    (False, [0.0])
    """
    totals = summary["totals"]
    run_values: dict[str, tuple[MetricUnit, float]] = {
        NONCOMPLIANT_INSTANCES: (MetricUnit.Count, float(totals["noncompliant"])),
        INSTANCES_EVALUATED: (MetricUnit.Count, float(totals["total"])),
        TARGETS_NOT_SCANNED: (MetricUnit.Count, float((summary.get("target_counts") or {}).get("error", 0))),
    }
    if totals.get("compliance_percentage") is not None:
        run_values[COMPLIANCE_PERCENTAGE] = (MetricUnit.Percent, float(totals["compliance_percentage"]))
    evaluated_change = (summary.get("drift") or {}).get("evaluated")
    if evaluated_change:
        run_values[INSTANCES_EVALUATED_DROP] = (
            MetricUnit.Percent,
            float(evaluated_change["drop_percentage"]),
        )
    documents = [_emit(namespace, {"environment": environment}, run_values, sink)]
    for region, counts in sorted(summary.get("by_region", {}).items()):
        compliant = int(counts.get("compliant", 0))
        noncompliant = int(counts.get("noncompliant", 0))
        total = compliant + noncompliant
        values: dict[str, tuple[MetricUnit, float]] = {
            NONCOMPLIANT_INSTANCES: (MetricUnit.Count, float(noncompliant)),
            INSTANCES_EVALUATED: (MetricUnit.Count, float(total)),
        }
        if total:
            values[COMPLIANCE_PERCENTAGE] = (MetricUnit.Percent, round(100.0 * compliant / total, 2))
        documents.append(_emit(namespace, {"environment": environment, "region": region}, values, sink))
    return documents
