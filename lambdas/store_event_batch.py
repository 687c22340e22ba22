"""Lambda for the EventBridge Pipe's enrichment: store a batch of queued events, hand on its key."""

from typing import Any

from lambdas._runtime import client, logger, step_boundary
from workflow.config import EventsConfig
from workflow.steps.event_run import store_event_batch


@step_boundary
@logger.inject_lambda_context
def handler(event: list[dict[str, Any]], context: Any) -> dict[str, Any]:
    return store_event_batch(event, EventsConfig.from_env(), s3=client("s3"))
