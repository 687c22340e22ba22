"""Lambda for the state "List EC2 instances"."""

from typing import Any

from lambdas._runtime import client, logger, step_boundary
from workflow.aws import assumed_client
from workflow.config import ListConfig
from workflow.steps.list_instances import list_instances


@step_boundary
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return list_instances(
        event,
        ListConfig.from_env(),
        ec2_factory=lambda region, credentials: (
            assumed_client("ec2", region, credentials) if credentials else client("ec2", region)
        ),
        s3=client("s3"),
        sts=client("sts"),
        remaining_ms=context.get_remaining_time_in_millis,
    )
