"""Step "Persist report": publish the run's findings and summary, with drift since the last run.

Order matters for readers: the findings object (one atomic upload) first, then the summary, then
the latest-run pointer. A run without its summary is not finished; a redrive repeats the same
writes to the same keys, so nothing is duplicated.
"""

from __future__ import annotations

import json
from typing import Any

from workflow import layout
from workflow.config import PersistConfig
from workflow.digests import owner_counts
from workflow.errors import Throttled
from workflow.metrics import Sink, emit_run_metrics
from workflow.report import (
    Baseline,
    SummaryBuilder,
    coverage_section,
    incomplete,
    summarize_targets,
    target_key,
)
from workflow.steps.evaluate_tags import COVERAGE_METADATA
from workflow.storage import (
    JsonLinesWriter,
    get_gz_bytes,
    get_json,
    get_json_and_etag,
    get_json_if_exists,
    gz_lines,
    list_keys,
    loads,
    put_json,
    put_json_if_unchanged,
)
from workflow.targets import execution_account, self_items


def _choose_baseline(
    index: dict[str, Any] | None, run: dict[str, Any], scanned: set[str]
) -> tuple[dict[str, Any] | None, str]:
    """The newest earlier run of the same policy that scanned every target this one scanned;
    failing that, the newest that scanned the most of them. Why it was chosen goes with it."""
    candidates = [
        entry
        for entry in (index or {}).get("runs", [])
        if entry.get("run_id") != run["run_id"] and str(entry.get("started_at", "")) < run["started_at"]
    ]
    candidates.sort(key=lambda entry: str(entry.get("started_at", "")), reverse=True)
    for entry in candidates:
        if scanned and scanned <= set(entry.get("scanned", ())):
            return entry, "the latest earlier run of the same policy that scanned every target of this run"
    best, overlap = None, 0
    for entry in candidates:
        common = len(scanned & set(entry.get("scanned", ())))
        if common > overlap:
            best, overlap = entry, common
    if best is None:
        return None, ""
    return best, (
        "the latest earlier run of the same policy with the most targets in common "
        f"({overlap} of {len(scanned)})"
    )


def _baseline(s3: Any, bucket: str, run: dict[str, Any], scanned: set[str]) -> Baseline | None:
    """The run this one's drift compares with, fixed at its first attempt: a retry, replay or
    redrive compares with the same run even after a later run has moved the policy's index."""
    baseline_key = layout.baseline_key(run["run_id"])
    chosen = get_json_if_exists(s3, bucket, baseline_key)
    if chosen is None:
        index = get_json_if_exists(s3, bucket, layout.policy_runs_key(run["policy_sha256"]))
        entry, reason = _choose_baseline(index, run, scanned)
        chosen = (
            {"run_id": entry["run_id"], "summary_key": entry["summary_key"], "reason": reason}
            if entry
            else {"run_id": None}
        )
        put_json(s3, bucket, baseline_key, chosen)
    if chosen.get("run_id") is None:
        return None
    summary = get_json_if_exists(s3, bucket, chosen["summary_key"])
    if not isinstance(summary, dict) or not isinstance(summary.get("scanned_targets"), dict):
        return None
    return Baseline(chosen["run_id"], summary["scanned_targets"], chosen.get("reason", ""))


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


def _read_coverage(metadata: dict[str, str]) -> dict[str, Any]:
    try:
        document = json.loads(metadata.get(COVERAGE_METADATA, "{}"))
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def persist_report(
    event: dict[str, Any], config: PersistConfig, *, s3: Any, metrics_sink: Sink | None = None
) -> dict[str, Any]:
    """Merge the staged per-target findings into the run's report and summary.

    The summary states its coverage (targets and regions scanned or not, instances listed, in
    scope, out of scope, duplicates dropped); each instance id is written once; drift compares with
    the same policy's latest run over the targets both scanned.
    """
    run = event["run"]
    bucket = run["bucket"]
    run_id, dt = run["run_id"], run["dt"]
    dry_run = bool(run.get("dry_run"))
    own_account = execution_account(run)
    findings_key = layout.staged_report_findings_key(run_id) if dry_run else layout.findings_key(dt, run_id)
    scanned, outcomes = _target_outcomes(s3, run, _work_items(s3, run))
    for outcome in outcomes:
        if outcome["account_id"] == layout.SELF_ACCOUNT:
            outcome["account_id"] = own_account
    targets_section = summarize_targets(outcomes)
    builder = SummaryBuilder()
    per_target: dict[str, dict[str, Any]] = {}
    writer = JsonLinesWriter()
    # Staged by Evaluate tag compliance with the findings (by one that predates them: none).
    with_fields = set(list_keys(s3, bucket, layout.staged_summary_fields_prefix(run_id)))
    try:
        for account, region in scanned:
            key = target_key(own_account if account == layout.SELF_ACCOUNT else account, region)
            builder.scanned(key, region)
            metadata, compressed = get_gz_bytes(
                s3, bucket, layout.staged_findings_key(run_id, account, region)
            )
            per_target[key] = _read_coverage(metadata)
            fields_key = layout.staged_summary_fields_key(run_id, account, region)
            fields = get_gz_bytes(s3, bucket, fields_key)[1] if fields_key in with_fields else None
            _merge_target(builder, writer, key, compressed, fields=fields)
        writer.upload(s3, bucket, findings_key)
    finally:
        writer.close()

    # An event run checks the few resources some events named: it is no drift baseline, and drift
    # is the scheduled runs' (which stay the source of truth for the latest run and the trend).
    event_run = run.get("source") == "event"
    baseline = None if event_run else _baseline(s3, bucket, run, set(builder.by_target))
    coverage = coverage_section(outcomes, per_target, builder)
    summary = builder.summary(
        run_id=run_id,
        policy_name=run["policy_name"],
        policy_sha256=run["policy_sha256"],
        evaluated_at=run["started_at"],
        baseline=baseline,
        extra={
            "status": "complete",
            "regions": list(run["regions"]),
            "dry_run": dry_run,
            **targets_section,
            "coverage": coverage,
            **({"source": run["source"]} if run.get("source") else {}),
            **({"events": run["events"]} if run.get("events") else {}),
            **({"exemption_files": run["exemption_files"]} if run.get("exemption_files") else {}),
        },
    )
    summary["incomplete"] = incomplete(summary)
    noncompliant_now = {i for tally in builder.by_target.values() for i in tally.noncompliant}
    if event_run:
        _remember_event_reports(s3, bucket, run, noncompliant_now)
    elif not dry_run:
        _settle_event_reports(s3, bucket, run, summary["drift"], builder.seen_ids, noncompliant_now)
    summary_key = layout.staged_summary_key(run_id) if dry_run else layout.summary_key(dt, run_id)
    counts_key = None
    if not dry_run:
        # For Notify's digests: the per-owner counts it would otherwise read every finding for.
        counts_key = layout.owner_counts_key(run_id)
        put_json(s3, bucket, counts_key, owner_counts(builder.noncompliant_by_owner))
    put_json(s3, bucket, summary_key, summary)
    if not dry_run and not event_run:
        _advance_latest_pointer(s3, bucket, run, summary_key)
        _record_in_policy_index(s3, bucket, run, summary_key, set(builder.by_target))
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
        **({"owner_counts_key": counts_key} if counts_key else {}),
        "totals": summary["totals"],
        "previous_run_id": drift["previous_run_id"],
        "newly_noncompliant": len(drift["newly_noncompliant"] or []),
        "newly_compliant": len(drift["newly_compliant"] or []),
        "partial": targets_section["partial"],
        "targets_failed": targets_section["target_counts"]["error"],
        "nothing_evaluated": coverage["nothing_evaluated"],
        "incomplete": summary["incomplete"],
    }


def _merge_target(
    builder: SummaryBuilder, writer: JsonLinesWriter, target: str, compressed: bytes, *, fields: bytes | None
) -> None:
    """Fold a target's staged findings into the summary and the report.

    The summary is built from the target's staged summary fields (``fields``, one line per finding
    in the same order; without them, from the findings themselves). Evaluate tag compliance
    serialised and compressed the findings already; unless a resource of this target was seen
    under an earlier one (the summary keeps the first), their compressed bytes become the next
    gzip member of the report as they are. Memory holds the compressed objects and one line at a
    time.
    """
    dropped: set[int] = set()
    lines = 0
    for number, line in enumerate(gz_lines(compressed if fields is None else fields)):
        lines += 1
        if not builder.add(loads(line), target=target):
            dropped.add(number)
    if not dropped:
        writer.append_member(compressed, lines)
        return
    for number, line in enumerate(gz_lines(compressed)):
        if number not in dropped:
            writer.write_line(line)


def index_entry(run_id: str, started_at: str, summary_key: str, scanned: set[str]) -> dict[str, Any]:
    """One run in its policy's index: when it started, where its summary is, what it scanned."""
    return {
        "run_id": run_id,
        "started_at": started_at,
        "summary_key": summary_key,
        "scanned": sorted(scanned),
    }


def indexed_runs(runs: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """A policy's index with ``entry`` added, newest first, without the runs it supersedes.

    A run supersedes an older run of the same policy whose targets it all scanned again; a run
    with a narrower scope (a manual run of one region) joins without removing the wider runs, so
    the next full run still compares with the last full run.

    >>> full = index_entry("full", "2026-01-01", "k1", {"a", "b"})
    >>> narrow = index_entry("narrow", "2026-01-02", "k2", {"a"})
    >>> [r["run_id"] for r in indexed_runs(indexed_runs([], full), narrow)]
    ['narrow', 'full']
    >>> again = index_entry("full2", "2026-01-03", "k3", {"a", "b"})
    >>> [r["run_id"] for r in indexed_runs([narrow, full], again)]
    ['full2']
    """
    runs = [r for r in runs if r.get("run_id") != entry["run_id"]]
    runs.append(entry)
    runs.sort(key=lambda r: str(r.get("started_at", "")), reverse=True)
    kept: list[dict[str, Any]] = []
    for candidate in runs:
        covered = set(candidate.get("scanned", ()))
        if any(covered <= set(newer.get("scanned", ())) for newer in kept):
            continue
        kept.append(candidate)
    return kept[:_MAX_INDEXED_RUNS]


def _record_in_policy_index(
    s3: Any, bucket: str, run: dict[str, Any], summary_key: str, scanned: set[str]
) -> None:
    """Add this run to its policy's index of drift baselines (a conditional write, like the
    latest-run pointer, so two runs finishing together both land)."""
    key = layout.policy_runs_key(run["policy_sha256"])
    entry = index_entry(run["run_id"], run["started_at"], summary_key, scanned)
    for _ in range(_POINTER_ATTEMPTS):
        current, etag = get_json_and_etag(s3, bucket, key)
        runs = indexed_runs(list((current or {}).get("runs", [])), entry)
        document = {"policy_sha256": run["policy_sha256"], "runs": runs}
        if put_json_if_unchanged(s3, bucket, key, document, etag):
            return
    raise Throttled(f"{key} changed under every one of {_POINTER_ATTEMPTS} attempts")


# Resources event runs reported noncompliant and no scheduled run has seen since: bounded, so a
# flood of events cannot grow the state object without end (the oldest ids are not kept).
MAX_EVENT_REPORTED = 10_000


def _remember_event_reports(s3: Any, bucket: str, run: dict[str, Any], noncompliant: set[str]) -> None:
    """Add what this event run found noncompliant to its policy's record (a conditional write, as
    for the latest-run pointer), so the next scheduled run neither reports them again nor misses
    that they were fixed."""
    if not noncompliant:
        return
    key = layout.event_reported_key(run["policy_sha256"])
    for _ in range(_POINTER_ATTEMPTS):
        current, etag = get_json_and_etag(s3, bucket, key)
        known = [str(i) for i in (current or {}).get("noncompliant", [])]
        merged = sorted(set(known) | noncompliant)[-MAX_EVENT_REPORTED:]
        if put_json_if_unchanged(s3, bucket, key, {"noncompliant": merged}, etag):
            return
    raise Throttled(f"{key} changed under every one of {_POINTER_ATTEMPTS} attempts")


def _settle_event_reports(
    s3: Any,
    bucket: str,
    run: dict[str, Any],
    drift: dict[str, Any],
    evaluated: set[str],
    noncompliant: set[str],
) -> None:
    """A scheduled run against what event runs reported since the last one: a resource they
    reported is not "newly noncompliant" again, and one this run finds compliant is listed as
    ``fixed_since_event``. What this run evaluated leaves the record; the rest waits for a run
    that scans its target."""
    key = layout.event_reported_key(run["policy_sha256"])
    for _ in range(_POINTER_ATTEMPTS):
        current, etag = get_json_and_etag(s3, bucket, key)
        reported = {str(i) for i in (current or {}).get("noncompliant", [])}
        if not reported:
            return
        if drift.get("newly_noncompliant") is not None:
            drift["already_reported_by_events"] = sorted(set(drift["newly_noncompliant"]) & reported)
            drift["newly_noncompliant"] = sorted(set(drift["newly_noncompliant"]) - reported)
        drift["fixed_since_event"] = sorted((reported & evaluated) - noncompliant)
        if put_json_if_unchanged(s3, bucket, key, {"noncompliant": sorted(reported - evaluated)}, etag):
            return
    raise Throttled(f"{key} changed under every one of {_POINTER_ATTEMPTS} attempts")


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
# Runs of one policy with scopes no later run covered; more than this means many narrow manual
# runs, and the oldest of them are the least useful baselines.
_MAX_INDEXED_RUNS = 20
