"""Step "Notify": publish the run's summary, and one digest per owner, to the compliance topic.

The summary message carries ``kind=summary``; each owner's digest ``kind=owner-digest`` and
``owner=<owner>``, so subscription filter policies route them (``tagwarden subscribe-owner``).
The digests are built from the run's findings (only noncompliant, unexempt ones), at most
``TAGWARDEN_MAX_OWNER_DIGESTS`` messages; the summary says how many went out and who got none.
"""

from __future__ import annotations

from typing import Any, Final

from workflow.aws import aws_call
from workflow.config import NotifyConfig
from workflow.digests import DigestPlan, plan_digests, summary_lines
from workflow.notifications import build_message, remediation_lines, securityhub_lines
from workflow.remediation import owner_notices
from workflow.storage import get_json, iter_jsonl_gz

# In every noncompliant finding's line, as the steps serialise it (compact JSON), and in no
# compliant one's: the top-level key is the only "compliant" whose value is not a string.
NONCOMPLIANT_LINE: Final = b'"compliant":false'


def notify(event: dict[str, Any], config: NotifyConfig, *, sns: Any, s3: Any) -> dict[str, Any]:
    """Publish the summary and the owner digests; returns ``{"message_id", "subject", "digests"}``."""
    run, report = event["run"], event["report"]
    summary = get_json(s3, run["bucket"], report["summary_key"])
    report_uri = f"s3://{run['bucket']}/{report['findings_key']}"
    digests = DigestPlan()
    remediation = summary.get("remediation")
    notices: dict[str, str] = {}
    if isinstance(remediation, dict) and remediation.get("notify_owner") and remediation.get("notices_key"):
        # Written before the summary named it (workflow.steps.remediate): read, never looked for.
        notices = owner_notices(
            get_json(s3, run["bucket"], remediation["notices_key"]), remediation.get("stopped_ids") or ()
        )
    if config.max_owner_digests and summary["totals"]["noncompliant"]:
        digests = plan_digests(
            # Streamed: the lines of the owners who get a digest (counts first, if not given).
            # Only noncompliant findings can be in a digest: the others are not even parsed.
            lambda: iter_jsonl_gz(s3, run["bucket"], report["findings_key"], containing=NONCOMPLIANT_LINE),
            environment=config.environment,
            max_messages=config.max_owner_digests,
            # Counted by Persist report; a run persisted before it counted reads the findings twice.
            counts=get_json(s3, run["bucket"], report["owner_counts_key"])
            if report.get("owner_counts_key")
            else None,
            report=report_uri,
            notices=notices,
        )
    message = build_message(
        summary,
        environment=config.environment,
        report_uri=report_uri,
        execution_arn=run["execution_id"],
        console_region=config.console_region,
        catalog=event.get("catalog"),
        extra_lines=[
            *summary_lines(digests),
            *remediation_lines(remediation, event.get("remediation"), requested=run.get("remediation")),
            *securityhub_lines(event.get("securityhub")),
        ],
    )
    with aws_call("SNS Publish"):
        response = sns.publish(
            TopicArn=config.topic_arn,
            Subject=message["subject"],
            Message=message["body"],
            MessageAttributes=message["attributes"],
        )
        for digest in digests.digests:
            sns.publish(
                TopicArn=config.topic_arn,
                Subject=digest.subject,
                Message=digest.body,
                MessageAttributes=digest.attributes,
            )
    return {
        "message_id": response["MessageId"],
        "subject": message["subject"],
        "digests": {
            "messages": len(digests.digests),
            "owners": digests.owners,
            "not_sent": len(digests.not_sent),
        },
    }
