"""Lambda for the state "Register partitions"."""

from typing import Any

from lambdas._runtime import client, logger, step_boundary
from workflow.config import CatalogConfig
from workflow.steps.register_partitions import register_partitions


@step_boundary
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return register_partitions(event, CatalogConfig.from_env(), glue=client("glue"))
