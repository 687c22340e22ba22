"""``tagwarden run``: a scan on this machine, writing a run folder under ``--out``."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workflow.evaluator import evaluate_instance, in_scope
from workflow.fleet import FleetInstance, demo_fleet, iter_fleet_document, load_fleet_file
from workflow.policy import CompiledPolicy, load_policy
from workflow.report import SummaryBuilder

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "baseline.json"


def _fleet(args: argparse.Namespace) -> list[FleetInstance]:
    if not args.fleet:
        return list(iter_fleet_document(demo_fleet(), source="demo fleet"))
    instances: list[FleetInstance] = []
    for path in args.fleet:
        instances.extend(load_fleet_file(path))
    return instances


def run_locally(args: argparse.Namespace) -> int:
    """Evaluate a fleet against a policy and write ``findings.jsonl`` and ``summary.json``."""
    policy: CompiledPolicy = load_policy(args.policy or DEFAULT_POLICY)
    fleet = _fleet(args)
    regions = {r.strip() for r in args.regions.split(",")} if args.regions else None
    run_id = args.name or f"local-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    run_dir = Path(args.out) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    builder = SummaryBuilder()
    findings_path = run_dir / "findings.jsonl"
    with findings_path.open("w", encoding="utf-8") as out:
        for item in fleet:
            if (regions and item.region not in regions) or not in_scope(item.instance, policy):
                continue
            finding: dict[str, Any] = evaluate_instance(
                item.instance, policy, region=item.region, account_id=item.account_id, now=now
            )
            finding.update(run_id=run_id, evaluated_at=now.isoformat())
            builder.add(finding)
            out.write(json.dumps(finding, ensure_ascii=False, separators=(",", ":")) + "\n")
    summary = builder.summary(
        run_id=run_id, policy_name=policy.name, policy_sha256=policy.sha256, evaluated_at=now.isoformat()
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    totals = summary["totals"]
    if args.json:
        print(
            json.dumps(
                {
                    "status": "SUCCEEDED",
                    "execution_arn": None,
                    "summary": {k: totals[k] for k in ("total", "compliant", "noncompliant", "exempt")},
                    "findings_path": str(findings_path),
                }
            )
        )
    else:
        print(
            f"policy {policy.name!r}: {totals['noncompliant']} of {totals['total']} instances noncompliant "
            f"({totals['compliance_percentage']}% compliant, {totals['exempt']} exempt)"
        )
        for rule, count in list(summary["by_rule"].items())[:5]:
            print(f"  {count:5d}  {rule}")
        print(f"report: {run_dir}", file=sys.stderr)
    return 1 if args.fail_on_violations and totals["noncompliant"] else 0
