"""``tagwarden run``: a real execution of the state machine on the embedded engine.

The run folder ``<out>/<run id>/`` holds ``findings.jsonl``, ``summary.json``, ``history.json``
(the execution's events as GetExecutionHistory returns them) and ``notifications.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workflow.errors import InvalidInput, Problem
from workflow.fleet import FleetInstance, demo_fleet, iter_fleet_document, load_fleet_file
from workflow.policy import compile_policy, load_policy_document, read_policy_file
from workflow.targets import add_scope_options

RUN_TIMEOUT_SECONDS = 7200
_EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")


def _fleet(paths: list[str]) -> list[FleetInstance]:
    if not paths:
        return list(iter_fleet_document(demo_fleet(), source="demo fleet"))
    instances: list[FleetInstance] = []
    for path in paths:
        instances.extend(load_fleet_file(path))
    return instances


def _regions(text: str | None) -> list[str] | None:
    if not text:
        return None
    regions = [r.strip() for r in text.split(",") if r.strip()]
    bad = [r for r in regions if not _REGION.match(r)]
    if bad or not regions:
        raise InvalidInput([Problem("--regions", f"not a region list like us-east-1,eu-west-1: {text!r}")])
    return list(dict.fromkeys(regions))


def _run_id(name: str | None) -> str:
    if name is None:
        return f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    if not _EXECUTION_NAME.match(name):
        raise InvalidInput(
            [Problem("--name", "1 to 80 letters, digits, '-' or '_' (a Step Functions execution name)")]
        )
    return name


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _write_json(path: Path, document: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        json.dumps(document, indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8"
    )
    tmp.replace(path)


def _print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    totals = summary["totals"]
    table = Table(
        title=f"Tag policy {summary['policy']['name']!r}, run {summary['run_id']}", title_justify="left"
    )
    table.add_column("instances")
    table.add_column("count", justify="right")
    for label, key in (
        ("evaluated", "total"),
        ("compliant", "compliant"),
        ("noncompliant", "noncompliant"),
        ("exempt", "exempt"),
        ("in grace period", "in_grace_period"),
    ):
        table.add_row(label, str(totals[key]))
    table.add_row("compliance", f"{totals['compliance_percentage']}%")
    console.print(table)
    if summary["by_rule"]:
        rules = Table(title="Violations by rule", title_justify="left")
        rules.add_column("tag:code")
        rules.add_column("instances", justify="right")
        for rule, count in list(summary["by_rule"].items())[:10]:
            rules.add_row(rule, str(count))
        console.print(rules)
    console.print(_counts_table("region", summary["by_region"]))
    if len(summary.get("by_account", {})) > 1:
        console.print(_counts_table("account", summary["by_account"]))
    failed = [t for t in summary.get("targets", []) if t.get("status") != "ok"]
    if failed:
        console.print(f"[bold]Partial scan[/]: {len(failed)} account/region targets were not scanned:")
        for target in failed[:20]:
            console.print(
                f"  {target['account_id']} {target['region']}: {target.get('reason')}", markup=False
            )
    console.print(f"Report folder: {run_dir}")


def _counts_table(what: str, counts_by: dict[str, dict[str, int]]) -> Any:
    """``By region`` / ``By account``: compliant and noncompliant instances per key."""
    from rich.table import Table

    table = Table(title=f"By {what}", title_justify="left")
    table.add_column(what)
    table.add_column("compliant", justify="right")
    table.add_column("noncompliant", justify="right")
    for key, counts in counts_by.items():
        table.add_row(key, str(counts.get("compliant", 0)), str(counts.get("noncompliant", 0)))
    return table


def _seed_previous_run(local: Any, out: Path) -> None:
    """Give the fresh engine the last local run's summary, so drift spans local runs too."""
    from workflow import layout
    from workflow.engine.local import BUCKET
    from workflow.storage import put_json

    summaries = []
    for path in out.glob("*/summary.json"):
        try:
            summaries.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    summaries = [s for s in summaries if isinstance(s, dict) and "run_id" in s and "evaluated_at" in s]
    if not summaries:
        return
    latest = max(summaries, key=lambda s: s["evaluated_at"])
    dt = latest["evaluated_at"][:10]
    s3 = local.engine.client("s3")
    key = layout.summary_key(dt, latest["run_id"])
    put_json(s3, BUCKET, key, latest)
    put_json(
        s3,
        BUCKET,
        layout.LATEST_RUN_KEY,
        {
            "run_id": latest["run_id"],
            "started_at": latest["evaluated_at"],
            "summary_key": key,
            "previous": None,
        },
    )


def run_locally(args: argparse.Namespace) -> int:
    """Run one scan on the embedded engine; returns the exit status of ``tagwarden run``."""
    from workflow.engine.local import LocalDeployment
    from workflow.progress import ExecutionProgress

    execution_input: dict[str, Any] = {"notify": args.notify}
    if args.policy:
        document = load_policy_document(
            read_policy_file(args.policy), source=args.policy, name=Path(args.policy).stem
        )
        compile_policy(document)
        execution_input["policy"] = document
    regions = _regions(args.regions)
    run_id = _run_id(args.name)
    fleet = _fleet(args.fleet)
    if regions:
        execution_input["regions"] = regions
    add_scope_options(
        execution_input,
        targets_file=getattr(args, "targets", None),
        organization=getattr(args, "organization", False),
        exclude_accounts=getattr(args, "exclude_accounts", None),
    )
    out = Path(args.out)
    run_dir = out / run_id
    progress = None if args.json else ExecutionProgress()
    try:
        with LocalDeployment(fleet, regions=regions) as local:
            _seed_previous_run(local, out)
            if progress is not None:
                print(
                    f"Execution {run_id} of {local.state_machine_arn} on the embedded engine", file=sys.stderr
                )
            # Up to the definition's own TimeoutSeconds (7,200 s): a 100,000-instance dump takes
            # minutes on a busy laptop, and the engine stops the execution at its own timeout.
            result = local.run(execution_input, name=run_id, on_event=progress, timeout=RUN_TIMEOUT_SECONDS)
    finally:
        if progress is not None:
            progress.close()
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / "history.json", result.history)
    from workflow.graph import write_run_graph

    write_run_graph(run_dir, result.history)
    _write_json(run_dir / "notifications.json", result.notifications)
    (run_dir / "lambda-logs.txt").write_text(result.logs, encoding="utf-8")
    findings_path = run_dir / "findings.jsonl"
    if result.summary is not None:
        _write_json(run_dir / "summary.json", result.summary)
        tmp = findings_path.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for finding in result.findings:
                handle.write(json.dumps(finding, ensure_ascii=False, separators=(",", ":")) + "\n")
        tmp.replace(findings_path)
    totals = (result.summary or {}).get("totals", {})
    if args.json:
        print(
            json.dumps(
                {
                    "status": result.status,
                    "execution_arn": result.execution_arn,
                    "summary": {k: totals.get(k) for k in ("total", "compliant", "noncompliant", "exempt")}
                    if totals
                    else None,
                    "findings_path": str(findings_path) if result.summary is not None else None,
                    "partial": (result.summary or {}).get("partial"),
                    **(
                        {"error": result.error, "cause": result.cause} if result.status != "SUCCEEDED" else {}
                    ),
                }
            )
        )
    elif result.summary is not None:
        _print_summary(result.summary, run_dir)
    if result.status != "SUCCEEDED":
        if not args.json:
            print(f"tagwarden: execution {result.status}: {result.error}: {result.cause}", file=sys.stderr)
            print(f"history: {run_dir / 'history.json'}", file=sys.stderr)
        return 2 if result.error == "InvalidInput" else 3
    if args.fail_on_violations and totals.get("noncompliant"):
        return 1
    return 0
