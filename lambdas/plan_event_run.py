"""Lambda for the event workflow's state "Plan event run"."""

from typing import Any

from lambdas._runtime import client, logger, step_boundary
from workflow.config import EventPlanConfig
from workflow.steps.event_run import plan_event_run_step


@step_boundary
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return plan_event_run_step(event, EventPlanConfig.from_env(), s3=client("s3"))
