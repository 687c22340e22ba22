"""Lambda for the state "Import to Security Hub"."""

from typing import Any

from lambdas._runtime import client, logger, step_boundary
from workflow.config import SecurityHubConfig
from workflow.steps.import_security_hub import import_security_hub


@step_boundary
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return import_security_hub(
        event, SecurityHubConfig.from_env(), securityhub=client("securityhub"), s3=client("s3")
    )
