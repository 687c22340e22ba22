"""Step "Persist report": publish the run's findings and summary, with drift since the last run.

Order matters for readers: the findings object (one atomic upload) first, then the summary, then
the latest-run pointer. A run without its summary is not finished; a redrive repeats the same
writes to the same keys, so nothing is duplicated.
"""

from __future__ import annotations

from typing import Any

from workflow import layout
from workflow.config import PersistConfig
from workflow.errors import Throttled
from workflow.metrics import Sink, emit_run_metrics
from workflow.report import SummaryBuilder, summarize_targets
from workflow.storage import (
    JsonLinesWriter,
    get_json,
    get_json_and_etag,
    get_json_if_exists,
    iter_jsonl_gz,
    list_keys,
    put_json,
    put_json_if_unchanged,
)
from workflow.targets import self_items


def _previous_run(s3: Any, bucket: str, run: dict[str, Any]) -> tuple[str | None, set[str] | None]:
    """The run this one's drift compares with, fixed at its first attempt: a retry, replay or
    redrive compares with the same run even after a later run has moved the pointer."""
    baseline_key = layout.baseline_key(run["run_id"])
    baseline = get_json_if_exists(s3, bucket, baseline_key)
    if baseline is None:
        pointer = get_json_if_exists(s3, bucket, layout.LATEST_RUN_KEY)
        if pointer and pointer.get("run_id") == run["run_id"]:
            # A repeat of this very run from before baselines were kept: the run before it.
            pointer = pointer.get("previous")
        if not pointer or pointer.get("started_at", "") > run["started_at"]:
            pointer = None
        baseline = (
            {"run_id": pointer["run_id"], "summary_key": pointer["summary_key"]}
            if pointer
            else {"run_id": None}
        )
        put_json(s3, bucket, baseline_key, baseline)
    if baseline["run_id"] is None:
        return None, None
    summary = get_json_if_exists(s3, bucket, baseline["summary_key"])
    if summary is None:
        return None, None
    return baseline["run_id"], set(summary.get("noncompliant_instance_ids", []))


def _work_items(s3: Any, run: dict[str, Any]) -> list[dict[str, str]]:
    if "targets_key" not in run:  # a run validated before targets existed (redriven)
        return self_items(run["regions"])
    items: list[dict[str, str]] = get_json(s3, run["bucket"], run["targets_key"])
    return items


def _target_outcomes(
    s3: Any, run: dict[str, Any], items: list[dict[str, str]]
) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """Which targets have findings to merge, and the status of every target.

    Listing the two staging prefixes costs one request per 1,000 targets, where a HEAD per target
    would cost one each. A target with neither findings nor a recorded error is one whose
    iteration failed and was tolerated by the Distributed Map.
    """
    bucket, run_id = run["bucket"], run["run_id"]
    staged = set(list_keys(s3, bucket, layout.staged_findings_prefix(run_id)))
    errors = set(list_keys(s3, bucket, layout.target_errors_prefix(run_id)))
    scanned: list[tuple[str, str]] = []
    outcomes: list[dict[str, Any]] = []
    for item in items:
        account, region = item["account_id"], item["region"]
        outcome: dict[str, Any] = {"account_id": account, "region": region}
        if layout.staged_findings_key(run_id, account, region) in staged:
            scanned.append((account, region))
            outcome["status"] = "ok"
        elif (error_key := layout.target_error_key(run_id, account, region)) in errors:
            outcome.update(status="error", reason=get_json(s3, bucket, error_key).get("reason"))
        else:
            outcome.update(
                status="error", reason="the target's iteration failed (see the Map Run's failed executions)"
            )
        outcomes.append(outcome)
    return scanned, outcomes


def persist_report(
    event: dict[str, Any], config: PersistConfig, *, s3: Any, metrics_sink: Sink | None = None
) -> dict[str, Any]:
    """Merge the staged per-region findings into the run's report and summary."""
    run = event["run"]
    bucket = run["bucket"]
    run_id, dt = run["run_id"], run["dt"]
    dry_run = bool(run.get("dry_run"))
    findings_key = layout.staged_report_findings_key(run_id) if dry_run else layout.findings_key(dt, run_id)
    scanned, outcomes = _target_outcomes(s3, run, _work_items(s3, run))
    targets_section = summarize_targets(outcomes)
    previous_run_id, previous_noncompliant = _previous_run(s3, bucket, run)
    # A partial scan did not see the failed targets' instances: none of them is "newly compliant".
    builder = SummaryBuilder(watched_ids=previous_noncompliant if targets_section["partial"] else None)
    writer = JsonLinesWriter()
    try:
        for account, region in scanned:
            for finding in iter_jsonl_gz(s3, bucket, layout.staged_findings_key(run_id, account, region)):
                builder.add(finding)
                writer.write(finding)
        writer.upload(s3, bucket, findings_key)
    finally:
        writer.close()

    summary = builder.summary(
        run_id=run_id,
        policy_name=run["policy_name"],
        policy_sha256=run["policy_sha256"],
        evaluated_at=run["started_at"],
        previous_noncompliant=previous_noncompliant,
        previous_run_id=previous_run_id,
        extra={"status": "complete", "regions": list(run["regions"]), "dry_run": dry_run, **targets_section},
    )
    summary_key = layout.staged_summary_key(run_id) if dry_run else layout.summary_key(dt, run_id)
    put_json(s3, bucket, summary_key, summary)
    if not dry_run:
        _advance_latest_pointer(s3, bucket, run, summary_key)
        kwargs = {"sink": metrics_sink} if metrics_sink else {}
        emit_run_metrics(
            summary, environment=config.environment, namespace=config.metrics_namespace, **kwargs
        )
    drift = summary["drift"]
    return {
        "run_id": run_id,
        "dt": dt,
        "dry_run": dry_run,
        "findings_key": findings_key,
        "summary_key": summary_key,
        "totals": summary["totals"],
        "previous_run_id": previous_run_id,
        "newly_noncompliant": len(drift["newly_noncompliant"] or []),
        "newly_compliant": len(drift["newly_compliant"] or []),
        "partial": targets_section["partial"],
        "targets_failed": targets_section["target_counts"]["error"],
    }


def _advance_latest_pointer(s3: Any, bucket: str, run: dict[str, Any], summary_key: str) -> None:
    # Read, decide, write only if nobody wrote in between (S3 conditional write); a Persist report
    # of another run overlapping this one otherwise could move the pointer back.
    for _ in range(_POINTER_ATTEMPTS):
        current, etag = get_json_and_etag(s3, bucket, layout.LATEST_RUN_KEY)
        if current and current.get("run_id") == run["run_id"]:
            previous = current.get("previous")
        elif current and current.get("started_at", "") > run["started_at"]:
            return  # a newer run already finished (two executions at once); keep pointing at it
        else:
            previous = {k: current[k] for k in ("run_id", "started_at", "summary_key")} if current else None
        document = {
            "run_id": run["run_id"],
            "started_at": run["started_at"],
            "summary_key": summary_key,
            "previous": previous,
        }
        if put_json_if_unchanged(s3, bucket, layout.LATEST_RUN_KEY, document, etag):
            return
    raise Throttled(f"{layout.LATEST_RUN_KEY} changed under every one of {_POINTER_ATTEMPTS} attempts")


_POINTER_ATTEMPTS = 5
