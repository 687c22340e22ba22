"""Step "Evaluate tag compliance": stream a region's inventory from S3 through the policy.

Each instance id is evaluated once: a listing that returned an instance twice (pages shifting
while the region changed) is counted in the target's coverage, which rides on the findings object
as S3 metadata (:data:`COVERAGE_METADATA`) so Persist report reads it with the findings.

Other resource types follow, parents before children (instances, volumes, snapshots, interfaces,
images). The join for ``inherit`` keeps, per parent id, only the values of the keys its children
inherit, so memory grows with the parents' ids, never with their documents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Final

from workflow import layout
from workflow.config import EvaluateConfig
from workflow.evaluator import ParentValues, evaluate_instances, evaluate_resource, inherited_values
from workflow.policy import compile_policy
from workflow.policy.compiler import CompiledPolicy
from workflow.report import summary_fields
from workflow.resources import INSTANCE, RESOURCE_TYPES
from workflow.steps.list_instances import listed_types
from workflow.storage import REPORT_GZIP_LEVEL, STAGING_GZIP_LEVEL, JsonLinesWriter, get_json, get_json_gz
from workflow.targets import execution_account


def _staged_pages(s3: Any, bucket: str, keys: list[str]) -> Iterator[Any]:
    """The staged pages in order, the next one read while this one is evaluated: each GetObject
    waits on S3 for tens of milliseconds that the evaluation can overlap. One page ahead at most."""
    if not keys:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="staged-page") as ahead:
        pending = ahead.submit(get_json_gz, s3, bucket, keys[0])
        for following in [*keys[1:], None]:
            document = pending.result()
            if following is not None:
                pending = ahead.submit(get_json_gz, s3, bucket, following)
            yield document


def _inventory(
    s3: Any, bucket: str, run_id: str, account: str, region: str, pages: int
) -> Iterator[tuple[str | None, dict[str, Any]]]:
    keys = [layout.inventory_page_key(run_id, account, region, page) for page in range(pages)]
    for document in _staged_pages(s3, bucket, keys):
        for reservation in document.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                yield reservation.get("OwnerId"), instance


def _resources(
    s3: Any, bucket: str, run_id: str, account: str, region: str, resource_type: str, pages: int
) -> Iterator[dict[str, Any]]:
    list_key = RESOURCE_TYPES[resource_type].list_key
    keys = [layout.inventory_page_key(run_id, account, region, page, resource_type) for page in range(pages)]
    for document in _staged_pages(s3, bucket, keys):
        yield from document.get(list_key, [])


COVERAGE_METADATA: Final = "tagwarden-coverage"


class _StagedFindings:
    """One target's findings, and what the summary needs of each (the same order), staged for
    Persist report: the findings once, at the report's compression level, since Persist copies
    their bytes into the report; the summary fields fast, since they are read once and deleted."""

    def __init__(self) -> None:
        self.findings = JsonLinesWriter(compresslevel=REPORT_GZIP_LEVEL)
        self.fields = JsonLinesWriter(compresslevel=STAGING_GZIP_LEVEL)

    def write(self, finding: dict[str, Any]) -> None:
        self.findings.write(finding)
        self.fields.write(summary_fields(finding))

    def upload(self, s3: Any, bucket: str, run_id: str, account: str, region: str, coverage: Any) -> str:
        """The summary fields first: Persist report takes the findings object as the sign that
        a target was evaluated, and then finds its summary fields too."""
        self.fields.upload(s3, bucket, layout.staged_summary_fields_key(run_id, account, region))
        key = layout.staged_findings_key(run_id, account, region)
        metadata = {COVERAGE_METADATA: json.dumps(coverage, separators=(",", ":"))}
        self.findings.upload(s3, bucket, key, metadata=metadata)
        return key

    def close(self) -> None:
        self.findings.close()
        self.fields.close()


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
    writer = _StagedFindings()
    stamp: dict[str, Any] = {
        "run_id": run["run_id"],
        "evaluated_at": run["started_at"],
        "policy_name": policy.name,
    }
    if run.get("source"):
        stamp["source"] = run["source"]
    # An event run knows who created each resource it names (from the events).
    creators: dict[str, Any] = get_json(s3, bucket, run["creators_key"]) if run.get("creators_key") else {}
    total = noncompliant = duplicates = 0
    seen: set[str] = set()
    parents: ParentValues = {}
    remember = policy.parent_keys(INSTANCE)
    listed_parents: dict[str, tuple[str | None, ...]] = {}
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
                finding.update(stamp)
                if instance_id in creators:
                    finding["created_by"] = creators[instance_id]
                writer.write(finding)
                total += 1
                noncompliant += not finding["compliant"]
                if remember:
                    listed_parents[instance_id] = inherited_values(INSTANCE, instance, policy) or ()
        parents[INSTANCE] = listed_parents
        coverage = target_coverage(listing, evaluated=total, duplicates=duplicates)
        others = _evaluate_other_types(
            s3, run, listing, account, region, policy, parents, writer, started, stamp, creators
        )
        if others:
            coverage["resources"] = others
            total += sum(c["evaluated"] for c in others.values())
            noncompliant += sum(c.pop("noncompliant") for c in others.values())
        key = writer.upload(s3, bucket, run["run_id"], account, region, coverage)
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


def _evaluate_other_types(
    s3: Any,
    run: dict[str, Any],
    listing: dict[str, Any],
    account: str,
    region: str,
    policy: CompiledPolicy,
    parents: ParentValues,
    writer: _StagedFindings,
    started: datetime,
    stamp: dict[str, Any],
    creators: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Volumes, snapshots, interfaces and images of one target, parents first; each type's coverage
    (with its noncompliant count, which the caller takes out)."""
    owner = execution_account(run) if account == layout.SELF_ACCOUNT else account
    listed: dict[str, Any] = listing.get("resources") or {}
    coverage: dict[str, dict[str, Any]] = {}
    for resource_type in listed_types(run):
        if resource_type == INSTANCE:
            continue
        counts = listed.get(resource_type) or {}
        spec = RESOURCE_TYPES[resource_type]
        remember = policy.parent_keys(resource_type)
        values: dict[str, tuple[str | None, ...]] = {}
        seen: set[str] = set()
        evaluated = noncompliant = duplicates = 0
        for resource in _resources(
            s3, run["bucket"], run["run_id"], account, region, resource_type, int(counts.get("pages", 0))
        ):
            resource_id = spec.resource_id(resource)
            if resource_id in seen:
                duplicates += 1
                continue
            seen.add(resource_id)
            finding = evaluate_resource(
                resource_type, resource, policy, region=region, account_id=owner, now=started, parents=parents
            )
            finding.update(stamp)
            if resource_id in creators:
                finding["created_by"] = creators[resource_id]
            writer.write(finding)
            evaluated += 1
            noncompliant += not finding["compliant"]
            if remember:
                values[resource_id] = inherited_values(resource_type, resource, policy) or ()
        if remember:
            parents[resource_type] = values
        coverage[resource_type] = {
            "listed": int(counts.get("listed", 0)),
            "in_scope": int(counts.get("in_scope", 0)),
            "evaluated": evaluated,
            "duplicates_dropped": duplicates,
            "out_of_scope": {str(k): int(v) for k, v in sorted((counts.get("out_of_scope") or {}).items())},
            "noncompliant": noncompliant,
        }
    return coverage
