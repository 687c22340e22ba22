"""Step "Notify": publish the run's summary to the compliance topic."""

from __future__ import annotations

from typing import Any

from workflow.aws import aws_call
from workflow.config import NotifyConfig
from workflow.notifications import build_message
from workflow.storage import get_json


def notify(event: dict[str, Any], config: NotifyConfig, *, sns: Any, s3: Any) -> dict[str, Any]:
    """Publish one message; returns ``{"message_id", "subject"}``."""
    run, report = event["run"], event["report"]
    summary = get_json(s3, run["bucket"], report["summary_key"])
    message = build_message(
        summary,
        environment=config.environment,
        report_uri=f"s3://{run['bucket']}/{report['findings_key']}",
        execution_arn=run["execution_id"],
        console_region=config.console_region,
        catalog=event.get("catalog"),
    )
    with aws_call("SNS Publish"):
        response = sns.publish(
            TopicArn=config.topic_arn,
            Subject=message["subject"],
            Message=message["body"],
            MessageAttributes=message["attributes"],
        )
    return {"message_id": response["MessageId"], "subject": message["subject"]}
