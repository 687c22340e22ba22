"""Lambda for the state "Evaluate tag compliance"."""

from typing import Any

from lambdas._runtime import client, logger, step_boundary
from workflow.config import EvaluateConfig
from workflow.steps.evaluate_tags import evaluate_tags


@step_boundary
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return evaluate_tags(event, EvaluateConfig.from_env(), s3=client("s3"))
