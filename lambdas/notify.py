"""Lambda for the state "Notify"."""

from typing import Any

from lambdas._runtime import client, logger, step_boundary
from workflow.config import NotifyConfig
from workflow.steps.notify import notify


@step_boundary
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return notify(event, NotifyConfig.from_env(), sns=client("sns"), s3=client("s3"))
