"""Lambda for the state "Start crawler"."""

from typing import Any

from lambdas._runtime import client, logger
from workflow.config import CrawlConfig
from workflow.steps.start_crawler import start_crawler


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return start_crawler(event, CrawlConfig.from_env(), glue=client("glue"))
