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
from workflow.report import SummaryBuilder
from workflow.storage import (
    JsonLinesWriter,
    get_json_and_etag,
    get_json_if_exists,
    iter_jsonl_gz,
    put_json,
    put_json_if_unchanged,
)


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


def _targets(run: dict[str, Any]) -> list[tuple[str, str]]:
    return [(layout.SELF_ACCOUNT, region) for region in run["regions"]]


def persist_report(
    event: dict[str, Any], config: PersistConfig, *, s3: Any, metrics_sink: Sink | None = None
) -> dict[str, Any]:
    """Merge the staged per-region findings into the run's report and summary."""
    run = event["run"]
    bucket = run["bucket"]
    run_id, dt = run["run_id"], run["dt"]
    dry_run = bool(run.get("dry_run"))
    findings_key = layout.staged_report_findings_key(run_id) if dry_run else layout.findings_key(dt, run_id)
    builder = SummaryBuilder()
    writer = JsonLinesWriter()
    try:
        for account, region in _targets(run):
            for finding in iter_jsonl_gz(s3, bucket, layout.staged_findings_key(run_id, account, region)):
                builder.add(finding)
                writer.write(finding)
        writer.upload(s3, bucket, findings_key)
    finally:
        writer.close()

    previous_run_id, previous_noncompliant = _previous_run(s3, bucket, run)
    summary = builder.summary(
        run_id=run_id,
        policy_name=run["policy_name"],
        policy_sha256=run["policy_sha256"],
        evaluated_at=run["started_at"],
        previous_noncompliant=previous_noncompliant,
        previous_run_id=previous_run_id,
        extra={"status": "complete", "partial": False, "regions": list(run["regions"]), "dry_run": dry_run},
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
