"""Lambda for the state "Persist report"."""

from typing import Any

from lambdas._runtime import client, logger, step_boundary
from workflow.config import PersistConfig
from workflow.steps.persist_report import persist_report


@step_boundary
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return persist_report(event, PersistConfig.from_env(), s3=client("s3"))
