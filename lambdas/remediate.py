"""Lambda for the state "Remediate"."""

from typing import Any

from lambdas._runtime import client, logger, step_boundary
from workflow.aws import assumed_client
from workflow.config import RemediateConfig
from workflow.steps.remediate import remediate


@step_boundary
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return remediate(
        event,
        RemediateConfig.from_env(),
        s3=client("s3"),
        ec2_factory=lambda region, credentials: (
            assumed_client("ec2", region, credentials) if credentials else client("ec2", region)
        ),
        sts=client("sts"),
    )
