"""The parts of a deployed Tagwarden stack, found through its CloudFormation outputs.

The CDK stack publishes stable output keys (``StateMachineArn``, ``ReportBucketName``,
``DeadLetterQueueUrl``, ...). ``--stack`` takes the stack's name (``Tagwarden-prod``) or its
environment (``prod``). :func:`resolve` reads them once; a flag given on the command line
(``--state-machine-arn``, ``--bucket``, ``--queue-url``) wins over the stack's value, and works
without any stack at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from workflow.errors import InvalidInput, Problem

#: Output key -> field of :class:`StackResources`, in the order the stack declares them.
OUTPUT_FIELDS: Final[Mapping[str, str]] = {
    "StateMachineArn": "state_machine_arn",
    "ReportBucketName": "report_bucket",
    "ComplianceTopicArn": "compliance_topic_arn",
    "OperationsTopicArn": "operations_topic_arn",
    "DeadLetterQueueUrl": "dead_letter_queue_url",
    "AthenaWorkGroupName": "athena_workgroup",
    "GlueDatabaseName": "glue_database",
    "CrawlerName": "crawler_name",
    "DashboardUrl": "dashboard_url",
}

#: The command-line flag that replaces an output, where there is one.
OUTPUT_FLAGS: Final[Mapping[str, str]] = {
    "StateMachineArn": "--state-machine-arn",
    "ReportBucketName": "--bucket",
    "DeadLetterQueueUrl": "--queue-url",
}

_STATE_MACHINE_ARN: Final = re.compile(
    r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}(:[A-Za-z0-9_.-]+)?$"
)
_BUCKET: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_QUEUE_URL: Final = re.compile(r"^https?://\S+/\d{12}/[A-Za-z0-9_-]{1,80}(\.fifo)?$")
_CHECKS: Final[Mapping[str, tuple[re.Pattern[str], str]]] = {
    "StateMachineArn": (
        _STATE_MACHINE_ARN,
        "a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)",
    ),
    "ReportBucketName": (_BUCKET, "an S3 bucket name"),
    "DeadLetterQueueUrl": (_QUEUE_URL, "an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"),
}


@dataclass(frozen=True)
class StackResources:
    """What Tagwarden's operations commands need from a deployment; ``None`` where unknown.

    >>> resources = StackResources(state_machine_arn="arn:aws:states:eu-west-1:123456789012:stateMachine:tw")
    >>> resources.require("StateMachineArn")
    'arn:aws:states:eu-west-1:123456789012:stateMachine:tw'
    >>> resources.region
    'eu-west-1'
    """

    stack_name: str | None = None
    stack_status: str | None = None
    state_machine_arn: str | None = None
    report_bucket: str | None = None
    compliance_topic_arn: str | None = None
    operations_topic_arn: str | None = None
    dead_letter_queue_url: str | None = None
    athena_workgroup: str | None = None
    glue_database: str | None = None
    crawler_name: str | None = None
    dashboard_url: str | None = None

    def get(self, output_key: str) -> str | None:
        """The value of one output key (``StateMachineArn``, ...), or ``None``.

        >>> StackResources(report_bucket="reports").get("ReportBucketName")
        'reports'
        """
        value: str | None = getattr(self, OUTPUT_FIELDS[output_key])
        return value

    def require(self, output_key: str) -> str:
        """The value of an output the caller cannot do without; :class:`InvalidInput` otherwise.

        >>> StackResources().require("DeadLetterQueueUrl")
        Traceback (most recent call last):
        ...
        workflow.errors.InvalidInput: tagwarden: no dead-letter queue: pass --stack NAME or --queue-url URL
        """
        value = self.get(output_key)
        if value:
            return value
        raise InvalidInput([missing_output_problem(output_key, self.stack_name, self.stack_status)])

    @property
    def region(self) -> str | None:
        """The region of the state machine, when its ARN is known."""
        if not self.state_machine_arn:
            return None
        parts = self.state_machine_arn.split(":")
        return parts[3] if len(parts) > 3 and parts[3] else None

    def to_json(self) -> dict[str, str | None]:
        """The resources keyed by output key, as the stack names them."""
        return {key: self.get(key) for key in OUTPUT_FIELDS}


_HEALTHY: Final = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
_WHAT: Final[Mapping[str, tuple[str, str]]] = {
    "StateMachineArn": ("state machine", "ARN"),
    "ReportBucketName": ("report bucket", "NAME"),
    "DeadLetterQueueUrl": ("dead-letter queue", "URL"),
}


def missing_output_problem(
    output_key: str, stack_name: str | None, stack_status: str | None = None
) -> Problem:
    """The one line explaining a missing output: which output, and the flag to pass instead.

    >>> str(missing_output_problem("StateMachineArn", "tagwarden-dev"))
    "tagwarden: stack 'tagwarden-dev' has no output StateMachineArn; pass --state-machine-arn ARN instead"
    """
    flag = OUTPUT_FLAGS.get(output_key)
    what, metavar = _WHAT.get(output_key, (output_key, "VALUE"))
    if stack_name is None:
        hint = f"pass --stack NAME or {flag} {metavar}" if flag else "pass --stack NAME"
        return Problem("tagwarden", f"no {what}: {hint}")
    status = f" (stack status {stack_status})" if stack_status and stack_status not in _HEALTHY else ""
    instead = f"; pass {flag} {metavar} instead" if flag else "; deploy a stack version that exports it"
    return Problem("tagwarden", f"stack {stack_name!r} has no output {output_key}{status}{instead}")


def _check_override(output_key: str, value: str) -> Problem | None:
    check = _CHECKS.get(output_key)
    if check is None or check[0].match(value):
        return None
    flag = OUTPUT_FLAGS.get(output_key, output_key)
    return Problem(flag, f"not {check[1]}: {value!r}")


#: Every central stack is ``Tagwarden-<environment>`` (cdk/tagwarden_cdk/settings.py).
STACK_PREFIX: Final = "Tagwarden-"
_LIVE_STATUSES: Final = (
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "CREATE_IN_PROGRESS",
    "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "ROLLBACK_COMPLETE",
)


def _not_found(err: Exception) -> bool:
    error = getattr(err, "response", {}).get("Error", {})
    return error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message", ""))


def tagwarden_stacks(cloudformation: Any) -> list[str]:
    """The names of the live stacks in the client's region that start with ``Tagwarden-``; empty
    when ListStacks is not allowed (the list only helps an error message)."""
    from botocore.exceptions import BotoCoreError, ClientError

    names: list[str] = []
    try:
        for page in cloudformation.get_paginator("list_stacks").paginate(
            StackStatusFilter=list(_LIVE_STATUSES)
        ):
            names.extend(
                str(summary["StackName"])
                for summary in page.get("StackSummaries", [])
                if str(summary.get("StackName", "")).startswith(STACK_PREFIX)
            )
    except (BotoCoreError, ClientError):
        return []
    return sorted(set(names))


def stack_name_candidates(name: str) -> list[str]:
    """The stack names ``--stack`` may mean: the name itself, then, for an environment name, the
    central stack of that environment.

    >>> stack_name_candidates("prod"), stack_name_candidates("Tagwarden-prod")
    (['prod', 'Tagwarden-prod'], ['Tagwarden-prod'])
    """
    return [name] if name.startswith(STACK_PREFIX) else [name, f"{STACK_PREFIX}{name}"]


def _describe_stack(cloudformation: Any, stack_name: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    stacks: list[dict[str, Any]] = []
    for candidate in stack_name_candidates(stack_name):
        try:
            stacks = cloudformation.describe_stacks(StackName=candidate)["Stacks"]
        except ClientError as err:
            if not _not_found(err):
                raise
            continue
        if stacks:
            break
    if not stacks:
        region = getattr(getattr(cloudformation, "meta", None), "region_name", None) or "this region"
        tried = " or ".join(repr(c) for c in stack_name_candidates(stack_name))
        found = tagwarden_stacks(cloudformation)
        close = [n for n in found if n.lower() in {c.lower() for c in stack_name_candidates(stack_name)}]
        if close:
            hint = f"did you mean --stack {close[0]}? (stack names are case-sensitive)"
        elif found:
            hint = f"Tagwarden stacks in {region}: {', '.join(found)} (check --stack and --region)"
        else:
            hint = f"no stack named {STACK_PREFIX}* in {region} (check --region)"
        raise InvalidInput([Problem("tagwarden", f"no stack {tried} in {region}; {hint}")])
    stack: dict[str, Any] = stacks[0]
    return stack


def resolve(
    cloudformation: Any,
    stack_name: str | None = None,
    overrides: Mapping[str, str | None] | None = None,
    *,
    required: Iterable[str] = (),
) -> StackResources:
    """The stack's resources: its outputs, with ``overrides`` (keyed by output key) winning.

    ``cloudformation`` is a boto3 CloudFormation client; it is not called without ``stack_name``.
    Every problem is reported at once: a malformed override, a stack that does not exist, or a
    ``required`` output that neither the stack nor an override supplies (the line names the
    output and the flag to pass instead).

    >>> arn = "arn:aws:states:us-east-1:123456789012:stateMachine:tagwarden"
    >>> resolve(None, overrides={"StateMachineArn": arn}, required=["StateMachineArn"]).state_machine_arn
    'arn:aws:states:us-east-1:123456789012:stateMachine:tagwarden'
    >>> resolve(None, required=["StateMachineArn"])
    Traceback (most recent call last):
    ...
    workflow.errors.InvalidInput: tagwarden: no state machine: pass --stack NAME or --state-machine-arn ARN
    """
    given = {k: v for k, v in (overrides or {}).items() if v}
    unknown = sorted(set(given) - set(OUTPUT_FIELDS))
    if unknown:
        raise ValueError(f"unknown output keys: {', '.join(unknown)}")
    problems = [p for p in (_check_override(k, v) for k, v in given.items()) if p is not None]
    if problems:
        raise InvalidInput(problems)
    values: dict[str, str | None] = {}
    status: str | None = None
    if stack_name:
        stack = _describe_stack(cloudformation, stack_name)
        status = stack.get("StackStatus")
        for output in stack.get("Outputs") or []:
            key = output.get("OutputKey")
            if key in OUTPUT_FIELDS and output.get("OutputValue"):
                values[OUTPUT_FIELDS[key]] = str(output["OutputValue"])
        stack_name = str(stack.get("StackName") or stack_name)
    for key, value in given.items():
        values[OUTPUT_FIELDS[key]] = value
    resources = StackResources(stack_name=stack_name or None, stack_status=status, **values)
    missing = [
        missing_output_problem(key, resources.stack_name, status)
        for key in dict.fromkeys(required)
        if not resources.get(key)
    ]
    if missing:
        raise InvalidInput(missing)
    return resources
