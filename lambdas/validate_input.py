"""Lambda for the state "Validate input"."""

from typing import Any

from lambdas._runtime import client, logger, step_boundary
from workflow.config import ValidateConfig
from workflow.steps.validate_input import validate_input


@step_boundary
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return validate_input(
        event,
        ValidateConfig.from_env(),
        s3=client("s3"),
        organizations_factory=lambda: client("organizations"),
    )
