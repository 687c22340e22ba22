"""Step "Start crawler": let Athena see the new partition. Never fails a persisted run."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from workflow.aws import error_code, translate
from workflow.config import CrawlConfig


def start_crawler(event: dict[str, Any], config: CrawlConfig, *, glue: Any) -> dict[str, Any]:
    """Start the crawler; one already running (a manual run overlapping the schedule) is fine.

    Returns ``{"started": bool, "reason": str | None}``.
    """
    try:
        glue.start_crawler(Name=config.crawler_name)
    except ClientError as err:
        if error_code(err) == "CrawlerRunningException":
            return {
                "started": False,
                "reason": "crawler already running; the next crawl adds this run's partition",
            }
        raise translate(err, f"StartCrawler {config.crawler_name}") from err
    return {"started": True, "reason": None}
