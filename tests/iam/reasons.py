"""Written reasons for granted (action, resource) pairs no scenario exercises.

Each entry says which principal, which actions and resources it covers, and why the grant stays
although no recorded call uses it. A grant with neither a call nor a reason fails the check.
Keep this list short: a reason is a claim about AWS that only a real account can test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.iam.check import Deployment, Grant


@dataclass(frozen=True)
class Reason:
    principal: str  # state-machine, scheduler, crawler, key, access-logs-bucket, dead-letter-queue
    actions: str  # regex over the granted action, case-insensitive
    resources: str  # regex over the granted resource
    why: str


REASONS = (
    Reason(
        "pipe",
        r"sqs:(ReceiveMessage|DeleteMessage|GetQueueAttributes)|lambda:InvokeFunction|states:StartExecution"
        r"|sts:AssumeRole",
        r".*",
        "The events Pipe (EventBridge Pipes) polls the events queue, invokes the enrichment that stores each "
        "batch and starts the event state machine with its key; no local engine runs Pipes (moto does not), so "
        "tagwarden run --event and the tests invoke the enrichment and start the event run as the Pipe does.",
    ),
    Reason(
        "events-queue",
        r"sqs:(GetQueueAttributes|GetQueueUrl)",
        r".*",
        "aws-cdk-lib's SQS target grants the EC2 API call rules these with SendMessage (grantSendMessages); "
        "EventBridge delivers with SendMessage only, which the event scenarios exercise.",
    ),
    Reason(
        "state-machine",
        r"logs:(CreateLogDelivery|DeleteLogDelivery|DescribeLogGroups|DescribeResourcePolicies|GetLogDelivery|ListLogDeliveries|PutResourcePolicy|UpdateLogDelivery)",
        r"\*",
        "aws-cdk-lib adds these for logging level ALL: CloudWatch Logs' vended log delivery, set up with the "
        "state machine's role when CloudFormation creates or updates its logging configuration (deploy time).",
    ),
    Reason(
        "state-machine",
        r"states:(StopExecution|RedriveExecution)",
        r".*execution:.*/.*",
        "A Map Run stops its child executions when it fails or is aborted, and redrives them when the parent "
        "execution is redriven (tagwarden dlq); the embedded engine has neither (RedriveExecution is not in moto).",
    ),
    Reason(
        "state-machine",
        r"states:DescribeExecution",
        r".*execution:[^/]*:\*",
        "AWS's Distributed Map policy example lets the Map Run describe its parent execution; Step Functions does "
        "it service-side, which no local interpreter reproduces.",
    ),
    Reason(
        "state-machine",
        r"s3:(GetObject|ListMultipartUploadParts|AbortMultipartUpload)",
        r".*",
        "The ResultWriter writes its result files as multipart uploads, lists their parts and aborts them on "
        "failure (AWS's 'IAM policies for ResultWriter'); moto writes only manifest.json with one PutObject.",
    ),
    Reason(
        "scheduler",
        r"sqs:SendMessage",
        r".*",
        "The schedule's dead-letter queue: EventBridge Scheduler sends an invocation it could not deliver after "
        "its retries (a throttled or failed StartExecution), service-side.",
    ),
    Reason(
        "crawler",
        r".*",
        r".*",
        "The Glue crawler backfills partitions by hand (docs/deploy.md); the Glue service runs it with this "
        "role, which the embedded engine cannot (moto's crawler does not crawl).",
    ),
    Reason(
        "key",
        r"kms:.*",
        r".*",
        "CloudWatch Logs encrypts the crawler's log group with this key (the statement is conditioned on that "
        "log group's encryption context): service-side, while the crawler runs.",
    ),
    Reason(
        "access-logs-bucket",
        r"s3:PutObject",
        r".*",
        "S3 server access logging delivers the report bucket's access logs, service-side.",
    ),
    Reason(
        "dead-letter-queue",
        r"sqs:(GetQueueAttributes|GetQueueUrl)",
        r".*",
        "aws-cdk-lib's SQS target grants EventBridge these with SendMessage (grantSendMessages); EventBridge "
        "delivers with SendMessage only.",
    ),
)


def _trusted_service(d: Deployment, role: str) -> str:
    resource = d.template.resources.get(role) or {}
    statements = (resource.get("Properties") or {}).get("AssumeRolePolicyDocument", {}).get("Statement", [])
    for statement in statements:
        principal = statement.get("Principal")
        if isinstance(principal, dict) and isinstance(principal.get("Service"), str):
            return str(principal["Service"])
    return ""


def _principal_kind(d: Deployment, grant: Grant) -> str:
    key = grant.principal_key
    if key == d.state_machine_role or (d.event_machine_role and key == d.event_machine_role):
        return "state-machine"
    if _trusted_service(d, key.removeprefix("trust:")) == "pipes.amazonaws.com":
        return "pipe"
    if key.startswith("resource:arn:aws:sqs:") and key.endswith("-events"):
        return "events-queue"
    found = d.scheduler()
    if found and key == found[1]:
        return "scheduler"
    crawlers = d.template.of_type("AWS::Glue::Crawler").values()
    crawler_roles = {
        str(c["Properties"]["Role"].get("Fn::GetAtt", [""])[0])
        for c in crawlers
        if isinstance(c["Properties"]["Role"], dict)
    }
    if key in crawler_roles or key.removeprefix("trust:") in crawler_roles:
        return "crawler"
    if key.startswith("key:"):
        principal = grant.statement.document.get("Principal")
        if isinstance(principal, dict) and str(principal.get("Service", "")).startswith("logs."):
            return "key"
        return "key-other"
    if key.startswith("resource:arn:aws:s3:::") and "access-logs" in key:
        return "access-logs-bucket"
    if key == f"resource:{d.queue_arn}":
        return "dead-letter-queue"
    return "other"


def reason_for(d: Deployment, grant: Grant) -> str | None:
    kind = _principal_kind(d, grant)
    for reason in REASONS:
        if reason.principal != kind:
            continue
        if re.fullmatch(reason.actions, grant.action, re.IGNORECASE) and re.fullmatch(
            reason.resources, grant.resource
        ):
            return reason.why
    return None
