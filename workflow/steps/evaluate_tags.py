"""Step "Evaluate tag compliance": stream a region's inventory from S3 through the policy.

Each instance id is evaluated once: a listing that returned an instance twice (pages shifting
while the region changed) is counted in the target's coverage, which rides on the findings object
as S3 metadata (:data:`COVERAGE_METADATA`) so Persist report reads it with the findings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

from workflow import layout
from workflow.config import EvaluateConfig
from workflow.evaluator import evaluate_instances
from workflow.policy import compile_policy
from workflow.storage import REPORT_GZIP_LEVEL, JsonLinesWriter, get_json, get_json_gz


def _inventory(
    s3: Any, bucket: str, run_id: str, account: str, region: str, pages: int
) -> Iterator[tuple[str | None, dict[str, Any]]]:
    for page in range(pages):
        document = get_json_gz(s3, bucket, layout.inventory_page_key(run_id, account, region, page))
        for reservation in document.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                yield reservation.get("OwnerId"), instance


COVERAGE_METADATA: Final = "tagwarden-coverage"


def target_coverage(listing: dict[str, Any], *, evaluated: int, duplicates: int) -> dict[str, Any]:
    """What one target's listing saw and what was evaluated of it.

    >>> target_coverage({"listed": 5, "instances": 4, "out_of_scope": {"terminated": 1}},
    ...                 evaluated=3, duplicates=1)
    {'listed': 5, 'in_scope': 4, 'evaluated': 3, 'duplicates_dropped': 1, 'out_of_scope': {'terminated': 1}}
    """
    return {
        "listed": int(listing.get("listed", listing.get("instances", 0))),
        "in_scope": int(listing.get("instances", 0)),
        "evaluated": evaluated,
        "duplicates_dropped": duplicates,
        "out_of_scope": {str(k): int(v) for k, v in sorted((listing.get("out_of_scope") or {}).items())},
    }


def evaluate_tags(event: dict[str, Any], config: EvaluateConfig, *, s3: Any) -> dict[str, Any]:
    """Evaluate one region; findings go to ``staging/<run>/findings/<account>/<region>.jsonl.gz``.

    The evaluation time is the run's start time, so a retried step writes identical findings.
    """
    run = event["run"]
    listing = event["listing"]
    region = (event.get("target") or {}).get("region") or event["region"]
    account = listing.get("account_id") or layout.SELF_ACCOUNT
    bucket = run["bucket"]
    # "Validate input" probed the patterns already; every match is still time-bounded.
    policy = compile_policy(get_json(s3, bucket, run["policy_key"]))
    started = datetime.fromisoformat(run["started_at"])
    key = layout.staged_findings_key(run["run_id"], account, region)
    # Written once, at the report's level: Persist report copies these bytes into the report.
    writer = JsonLinesWriter(compresslevel=REPORT_GZIP_LEVEL)
    total = noncompliant = duplicates = 0
    seen: set[str] = set()
    try:
        for owner_id, instance in _inventory(
            s3, bucket, run["run_id"], account, region, int(listing["pages"])
        ):
            instance_id = str(instance.get("InstanceId"))
            if instance_id in seen:
                duplicates += 1
                continue
            seen.add(instance_id)
            for finding in evaluate_instances(
                [instance], policy, region=region, account_id=owner_id, now=started
            ):
                finding.update(run_id=run["run_id"], evaluated_at=run["started_at"], policy_name=policy.name)
                writer.write(finding)
                total += 1
                noncompliant += not finding["compliant"]
        coverage = target_coverage(listing, evaluated=total, duplicates=duplicates)
        writer.upload(
            s3, bucket, key, metadata={COVERAGE_METADATA: json.dumps(coverage, separators=(",", ":"))}
        )
    finally:
        writer.close()
    return {
        "region": region,
        "account_id": account,
        "findings_key": key,
        "total": total,
        "noncompliant": noncompliant,
        "duplicates_dropped": duplicates,
    }
