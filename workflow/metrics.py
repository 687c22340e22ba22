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
EVALUATED_INSTANCES: Final = "EvaluatedInstances"

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
    """Emit the run's totals, and the same per region; returns the EMF documents written.

    >>> summary = {"totals": {"total": 4, "noncompliant": 1, "compliance_percentage": 75.0}, "by_region": {}}
    >>> docs = emit_run_metrics(summary, environment="dev", namespace="Tagwarden", sink=lambda _: None)
    >>> docs[0]["CompliancePercentage"], docs[0]["environment"]
    ([75.0], 'dev')
    """
    totals = summary["totals"]
    documents = [
        _emit(
            namespace,
            {"environment": environment},
            {
                COMPLIANCE_PERCENTAGE: (MetricUnit.Percent, float(totals["compliance_percentage"])),
                NONCOMPLIANT_INSTANCES: (MetricUnit.Count, float(totals["noncompliant"])),
                EVALUATED_INSTANCES: (MetricUnit.Count, float(totals["total"])),
            },
            sink,
        )
    ]
    for region, counts in sorted(summary.get("by_region", {}).items()):
        compliant = int(counts.get("compliant", 0))
        noncompliant = int(counts.get("noncompliant", 0))
        total = compliant + noncompliant
        documents.append(
            _emit(
                namespace,
                {"environment": environment, "region": region},
                {
                    COMPLIANCE_PERCENTAGE: (
                        MetricUnit.Percent,
                        100.0 if total == 0 else round(100.0 * compliant / total, 2),
                    ),
                    NONCOMPLIANT_INSTANCES: (MetricUnit.Count, float(noncompliant)),
                    EVALUATED_INSTANCES: (MetricUnit.Count, float(total)),
                },
                sink,
            )
        )
    return documents
