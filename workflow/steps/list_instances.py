"""Step "List EC2 instances": page through DescribeInstances and store each page in S3.

Only the prefix and counts go back into the state (claim check). If the Lambda's time budget runs
low, the step stops between pages and returns the NextToken; the state machine loops back and a new
invocation continues from it, so a huge region is never lost to a silent timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workflow import layout
from workflow.aws import aws_call
from workflow.config import ListConfig
from workflow.storage import put_json_gz

Ec2Factory = Callable[[str], Any]


def list_instances(
    event: dict[str, Any],
    config: ListConfig,
    *,
    ec2_factory: Ec2Factory,
    s3: Any,
    remaining_ms: Callable[[], int],
) -> dict[str, Any]:
    """List one region's instances into ``staging/<run>/inventory/<account>/<region>/``.

    ``event`` is ``{"run": {...}, "region": "eu-west-1", "listing": <previous result, when continuing>}``.
    """
    run = event["run"]
    region = event["region"]
    account = event.get("account_id") or layout.SELF_ACCOUNT
    previous = event.get("listing") or {}
    page = int(previous.get("pages", 0))
    instances = int(previous.get("instances", 0))
    token: str | None = previous.get("next_token")
    ec2 = ec2_factory(region)
    request: dict[str, Any] = {
        "MaxResults": config.page_size,
        "Filters": [{"Name": "instance-state-name", "Values": list(run["states"])}],
    }
    margin_ms = config.time_budget_margin_seconds * 1000
    while True:
        if page > int(previous.get("pages", 0)) and remaining_ms() < margin_ms:
            break
        if token:
            request["NextToken"] = token
        with aws_call(f"DescribeInstances in {region}"):
            response = ec2.describe_instances(**request)
        reservations = [
            {"OwnerId": r.get("OwnerId"), "Instances": r.get("Instances", [])}
            for r in response.get("Reservations", [])
        ]
        count = sum(len(r["Instances"]) for r in reservations)
        if count or page == 0:
            key = layout.inventory_page_key(run["run_id"], account, region, page)
            put_json_gz(s3, run["bucket"], key, {"Reservations": reservations})
            page += 1
            instances += count
        token = response.get("NextToken") or None
        if not token:
            break
    return {
        "region": region,
        "account_id": account,
        "prefix": layout.inventory_page_key(run["run_id"], account, region, 0).rsplit("/", 1)[0] + "/",
        "pages": page,
        "instances": instances,
        "complete": token is None,
        "next_token": token,
    }
