"""What event runs cost per 1,000 events: executions, state transitions, Lambda Tasks, payloads.

    .venv/bin/python benchmarks/bench_events.py --events 1000 --batch 250 --write BENCHMARKS.md

A fresh :class:`workflow.engine.local.LocalDeployment` runs the event workflow as the deployed
Pipe would: 1,000 RunInstances events (an Identity Center user, untagged instances in one region)
in batches of ``--batch`` (the Pipe's batch size), each stored by the enrichment Lambda and
checked by one execution (``LocalDeployment.run_events``). It also runs the trickle case: one
event per batch, for ``--trickle`` events. Counted from each execution's history: states entered
(billed transitions on Standard), Lambda Tasks, the largest state payload; the dollar figures use
the prices in docs/cost.md. Wall times are the embedded engine's, not AWS latencies.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from markdown_sections import replace_section, section_header

from workflow.engine.local import CENTRAL_ACCOUNT, LocalDeployment
from workflow.fleet import FleetInstance

SECTION = "## Event runs per 1,000 events"
TRANSITION_PRICE = 0.025 / 1000  # Step Functions Standard, per state transition (docs/cost.md)
LAMBDA_REQUEST_PRICE = 0.20 / 1_000_000


def _launch(instance_id: str, second: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.unit.test_events import SSO, launch

    return launch(SSO, instance_id, time=f"2026-12-01T10:00:{second % 60:02d}Z", account=CENTRAL_ACCOUNT)


def _fleet(count: int) -> list[FleetInstance]:
    return [
        FleetInstance(
            CENTRAL_ACCOUNT,
            "eu-west-1",
            {
                "InstanceId": f"i-{n:017x}",
                "State": {"Name": "running"},
                "Placement": {"AvailabilityZone": "eu-west-1a"},
                "LaunchTime": "2026-12-01T10:00:00+00:00",
                "Tags": [],
            },
        )
        for n in range(1, count + 1)
    ]


def measure(events: int, batch: int) -> dict[str, Any]:
    """Run ``events`` launches in batches of ``batch``; what the runs cost in the history's terms."""
    fleet = _fleet(events)
    launches = [_launch(item.instance["InstanceId"], n) for n, item in enumerate(fleet)]
    totals = {
        "events": events,
        "batch": batch,
        "runs": 0,
        "entered": 0,
        "tasks": 0,
        "largest": 0,
        "seconds": 0.0,
    }
    with LocalDeployment(fleet, regions=["eu-west-1"], retry_wait_scale=0) as local:
        for start in range(0, events, batch):
            began = time.perf_counter()
            result = local.run_events(
                launches[start : start + batch], now="2026-12-01T10:16:00Z", name=f"b{start}"
            )
            totals["seconds"] += time.perf_counter() - began
            if result.status != "SUCCEEDED":
                raise RuntimeError(f"event run {start}: {result.status} {result.cause}")
            totals["runs"] += 1
            totals["entered"] += sum(1 for e in result.history if e["type"].endswith("StateEntered"))
            totals["tasks"] += sum(1 for e in result.history if e["type"] == "TaskScheduled")
            for event in result.history:
                for key, field in (
                    ("stateEnteredEventDetails", "input"),
                    ("stateExitedEventDetails", "output"),
                ):
                    details = event.get(key)
                    if details and details.get(field):
                        totals["largest"] = max(totals["largest"], len(details[field].encode("utf-8")))
    return totals


def render(rows: list[dict[str, Any]], command: str, loads: list[str]) -> str:
    lines = [
        section_header(SECTION, "bench_events.py", command, loads),
        "",
        "| | events | batch | event runs | states entered | Lambda Tasks (+ enrichment) | largest payload "
        "| transitions per 1,000 events | $ transitions + Lambda requests per 1,000 events | wall time |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, row in zip(("batched", "trickle"), rows, strict=True):
        per_thousand = 1000 / row["events"]
        transitions = row["entered"] * per_thousand
        invocations = (row["tasks"] + row["runs"]) * per_thousand
        dollars = transitions * TRANSITION_PRICE + invocations * LAMBDA_REQUEST_PRICE
        lines.append(
            f"| {label} | {row['events']:,} | {row['batch']} | {row['runs']} | {row['entered']} | "
            f"{row['tasks']} (+ {row['runs']}) | {row['largest']:,} B | {transitions:,.0f} | "
            f"${dollars:.4f} | {row['seconds']:.1f} s |"
        )
    lines += [
        "",
        "Each event run enters the same states whatever its batch holds, so the cost per event falls "
        "with the batch: the Pipe's 250 messages or 60 seconds (cdk/tagwarden_cdk/events.py) bound it. "
        "docs/cost.md adds Lambda GB-seconds, SQS, S3 and the prices not checked against a bill.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--trickle", type=int, default=20, help="events for the one-event-per-run case")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    loads = [f"{os.getloadavg()[0]:.2f}"]
    rows = [measure(args.events, args.batch), measure(args.trickle, 1)]
    loads.append(f"{os.getloadavg()[0]:.2f}")
    command = " ".join(
        [".venv/bin/python", "benchmarks/bench_events.py", *(argv if argv is not None else sys.argv[1:])]
    )
    section = render(rows, command, loads)
    print(section)
    if args.write:
        replace_section(args.write, SECTION, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
