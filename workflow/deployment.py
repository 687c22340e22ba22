"""What the state machine needs from a deployment, shared by the CDK app and the local engine:
the ASL file, its ``${...}`` placeholders, and the Lambda behind each Task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
ASL_PATH: Final = ROOT / "state_machines" / "tagwarden.asl.json"
# The event workflow: the resources CloudTrail events name, checked within minutes.
EVENTS_ASL_PATH: Final = ROOT / "state_machines" / "tagwarden-events.asl.json"
DEAD_LETTER_QUEUE_PLACEHOLDER: Final = "DeadLetterQueueUrl"
# The Distributed Map's ResultWriter writes to the report bucket, named by the deployment.
REPORT_BUCKET_PLACEHOLDER: Final = "ReportBucketName"
_PLACEHOLDER: Final = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


@dataclass(frozen=True)
class StepFunction:
    """One Lambda of the workflow: its ASL placeholder, handler, sizing."""

    placeholder: str
    name: str
    handler: str
    timeout_seconds: int
    memory_mb: int


STEP_FUNCTIONS: Final = (
    StepFunction("ValidateInputFunctionArn", "validate-input", "lambdas.validate_input.handler", 60, 512),
    # 840 s under the Task's 900 s: the Lambda's own timeout fires first, with its logs.
    StepFunction("ListInstancesFunctionArn", "list-instances", "lambdas.list_instances.handler", 840, 512),
    # 1,769 MB: one full vCPU, where a single-threaded, CPU-bound handler stops getting faster
    # (docs/cost.md, "Lambda work and memory sizes", says how the sizes are chosen).
    StepFunction("EvaluateTagsFunctionArn", "evaluate-tags", "lambdas.evaluate_tags.handler", 840, 1769),
    StepFunction("PersistReportFunctionArn", "persist-report", "lambdas.persist_report.handler", 840, 1769),
    # Stops at most a few instances a run, but re-describes and checks each first.
    StepFunction("RemediateFunctionArn", "remediate", "lambdas.remediate.handler", 300, 512),
    StepFunction(
        "RegisterPartitionsFunctionArn", "register-partitions", "lambdas.register_partitions.handler", 60, 256
    ),
    StepFunction(
        "ImportSecurityHubFunctionArn", "import-security-hub", "lambdas.import_security_hub.handler", 300, 512
    ),
    # 1,769 MB by the same method since its own CPU was measured (docs/cost.md); at 256 MB a
    # 1,000,000-instance run's Notify would model at about 55 s of its 60 s timeout.
    StepFunction("NotifyFunctionArn", "notify", "lambdas.notify.handler", 60, 1769),
)


# The event workflow's own Lambdas; its other Tasks are the scheduled workflow's.
EVENT_STEP_FUNCTIONS: Final = (
    StepFunction("PlanEventRunFunctionArn", "plan-event-run", "lambdas.plan_event_run.handler", 120, 512),
)
# The EventBridge Pipe's enrichment: stores each batch of queued events in S3 and hands the event
# state machine its key (no ASL placeholder: the Pipe, not a Task, invokes it).
STORE_EVENT_BATCH: Final = StepFunction("", "store-event-batch", "lambdas.store_event_batch.handler", 60, 512)


def placeholders(definition: str) -> set[str]:
    """The ``${Name}`` placeholders of a definition.

    >>> sorted(placeholders('{"A": "${One}", "B": "${Two}"}'))
    ['One', 'Two']
    """
    return set(_PLACEHOLDER.findall(definition))


def substitute(definition: str, values: Mapping[str, str]) -> str:
    """Replace every placeholder, as CloudFormation's ``Fn::Sub`` does; a missing one is an error.

    >>> substitute('{"Q": "${DeadLetterQueueUrl}"}', {"DeadLetterQueueUrl": "https://q"})
    '{"Q": "https://q"}'
    """
    missing = placeholders(definition) - set(values)
    if missing:
        raise KeyError(f"no substitution for {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], definition)


def read_definition() -> str:
    return ASL_PATH.read_text(encoding="utf-8")


def read_events_definition() -> str:
    return EVENTS_ASL_PATH.read_text(encoding="utf-8")
