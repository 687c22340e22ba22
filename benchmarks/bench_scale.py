"""Scaling of a full tagwarden execution: 1,000 / 10,000 / 100,000 instances, and the EC2 family.

    .venv/bin/python benchmarks/bench_scale.py --sizes 1000 10000 100000 --family 100000 --write BENCHMARKS.md

``--family N`` adds a column: N instances plus, per instance, 1.5 volumes (a root volume each
and a data volume on every second one), 0.5 snapshots and one network interface, all carrying
their instance's tags, under a policy that covers the four types with ``inherit`` (the FinOps
example's shape): 100,000 instances make 150,000 volumes, 50,000 snapshots and 100,000 interfaces.

Each size is a fresh :class:`workflow.engine.local.LocalDeployment` (the real ASL file and
handlers on the embedded engine, moto's S3/SNS/SQS/Glue, EC2 answered from the fleet) running one
execution with ``{"notify": "always"}``. The fleet is ``workflow.fleet.demo_fleet`` over its three
regions, cut to exactly N instances. Two executions per size, each in its own deployment:

* pass 1, uninstrumented: wall time of the execution (``local.run``, start to SUCCEEDED), state
  transitions and payload sizes from the execution history, API calls counted by a
  ``before-parameter-build`` hook on the handlers' boto3 session (one count per API call a handler makes,
  through botocore; a multipart upload counts each of its requests), the handler time of each
  Lambda invocation (timed around the handler call itself, gate wait excluded) and the bytes the
  run left in S3.
* pass 2, with :mod:`tracemalloc`: the peak of Python allocations during each Lambda invocation.
  Tracing starts when the handler is called and stops when it returns, so the peak is that of the
  memory the invocation allocated (what existed before is not traced). The engine runs one
  handler at a time (``serialize_invocations``), so it is the invocation's own, plus what moto
  allocates meanwhile: moto's S3 runs in the process and keeps every object a handler uploads in
  memory, so a step's peak includes the bytes it wrote (an overstatement). It is the Python heap,
  not a sandbox's RSS: interpreter, modules and botocore models are not in it. Peak per step = the
  largest of its invocations. From ``--large-from`` (100,000) only the ``--trace-large`` steps
  (evaluate-tags) are traced: tracing slows a step several times.

State transitions: ``StateEntered`` + ``StateExited`` events of the history (each state entered
is one billed transition on Step Functions Standard; the exits are listed for completeness).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import threading
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from markdown_sections import replace_section

from workflow import aws
from workflow.engine import embedded
from workflow.engine.local import BUCKET, LocalDeployment
from workflow.fleet import FleetInstance, FleetResource, demo_fleet, iter_fleet_document

SECTION = "## Scaling of a full execution"
PAYLOAD_LIMIT = 8 * 1024
EVALUATE_MEMORY_GOAL = 512 * 1024 * 1024
STEP_NAMES = (
    "validate-input",
    "list-instances",
    "evaluate-tags",
    "persist-report",
    "register-partitions",
    "notify",
)


def fleet_of(count: int) -> list[FleetInstance]:
    per_region = math.ceil(count / 3)
    return list(iter_fleet_document(demo_fleet(instances_per_region=per_region)))[:count]


FAMILY_POLICY: dict[str, Any] = {
    "version": 1,
    "name": "bench-family",
    "resource_types": ["instance", "volume", "snapshot", "network-interface"],
    "rules": [
        {"key": "CostCenter", "pattern": "^CC-[0-9]{4}$"},
        {"key": "Owner", "resource_types": ["instance"]},
        {"key": "Environment", "allowed_values": ["prod", "staging", "dev"], "resource_types": ["instance"]},
    ],
    "inherit": [
        {"keys": ["CostCenter"], "from": "instance", "to": ["volume", "network-interface"]},
        {"keys": ["CostCenter"], "from": "volume", "to": ["snapshot"]},
    ],
}


def family_of(fleet: list[FleetInstance]) -> list[FleetResource]:
    """1.5 volumes, 0.5 snapshots and one interface per instance, with the instance's tags."""
    resources = []
    for number, item in enumerate(fleet):
        instance = item.instance
        suffix = instance["InstanceId"][2:]
        zone = instance["Placement"]["AvailabilityZone"]
        tags = [t for t in instance.get("Tags", []) if not t["Key"].startswith("aws:")]
        attached = {"InstanceId": instance["InstanceId"], "AttachTime": instance["LaunchTime"]}
        disks = ["r"] if number % 2 else ["r", "d"]
        for disk in disks:
            volume = {
                "VolumeId": f"vol-{disk}{suffix}",
                "AvailabilityZone": zone,
                "CreateTime": instance["LaunchTime"],
                "Size": 100,
                "VolumeType": "gp3",
                "State": "in-use",
                "Attachments": [attached],
                "Tags": tags,
            }
            resources.append(FleetResource("volume", item.account_id, item.region, volume))
        if number % 2 == 0:
            snapshot = {
                "SnapshotId": f"snap-{suffix}",
                "OwnerId": item.account_id,
                "StartTime": instance["LaunchTime"],
                "State": "completed",
                "VolumeId": f"vol-r{suffix}",
                "VolumeSize": 100,
                "Tags": tags,
            }
            resources.append(FleetResource("snapshot", item.account_id, item.region, snapshot))
        interface = {
            "NetworkInterfaceId": f"eni-{suffix}",
            "AvailabilityZone": zone,
            "OwnerId": item.account_id,
            "InterfaceType": "interface",
            "Status": "in-use",
            "Attachment": attached,
            "TagSet": tags,
        }
        resources.append(FleetResource("network-interface", item.account_id, item.region, interface))
    return resources


def _step(function_name: str) -> str:
    # tagwarden-<step>-local
    return function_name.removeprefix("tagwarden-").rsplit("-", 1)[0]


@dataclass
class StepRecord:
    invocations: int = 0
    handler_seconds: float = 0.0
    peak_bytes: int = 0


@dataclass
class Measure:
    count: int
    label: str = ""
    wall: float = 0.0
    status: str = ""
    entered: int = 0
    exited: int = 0
    events: int = 0
    largest_payload: tuple[int, str, str] = (0, "", "")
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    fleet_calls: int = 0
    steps: dict[str, StepRecord] = field(default_factory=lambda: defaultdict(StepRecord))
    s3_bytes: dict[str, int] = field(default_factory=dict)
    flagged: int = 0
    evaluated: int = 0

    def service_calls(self, service: str) -> int:
        return sum(n for (svc, _), n in self.calls.items() if svc == service)


@contextmanager
def instrument_handlers(measure: Measure, traced_steps: frozenset[str]) -> Iterator[None]:
    """Wrap the engine's handler call: handler time, and for ``traced_steps`` the tracemalloc
    peak of the call (tracing runs only while such a handler does: the rest runs at full speed)."""
    original = embedded._call_handler
    lock = threading.Lock()

    def wrapped(handler: str, event: Any, context: Any) -> Any:
        step = _step(context.function_name)
        trace = step in traced_steps
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        try:
            return original(handler, event, context)
        finally:
            elapsed = time.perf_counter() - started
            peak = 0
            if trace:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            with lock:
                record = measure.steps[step]
                record.invocations += 1
                record.handler_seconds += elapsed
                record.peak_bytes = max(record.peak_bytes, peak)

    embedded._call_handler = wrapped
    try:
        yield
    finally:
        embedded._call_handler = original


def count_api_calls(measure: Measure) -> None:
    """Count every API call made through the handlers' session (register before any client)."""
    session = aws._current_session()

    def on_call(model: Any, **_: Any) -> None:
        measure.calls[(model.service_model.service_name, model.name)] += 1

    # before-parameter-build reaches every handler (before-call stops at the first one that
    # answers, as the fleet endpoint does for DescribeInstances).
    session.events.register("before-parameter-build", on_call)
    with aws._lock:  # clients copy the session's hooks when created: start with none cached
        aws._clients.clear()


def run_once(
    count: int,
    fleet: list[FleetInstance],
    *,
    traced_steps: frozenset[str],
    timeout: float,
    resources: list[FleetResource] | None = None,
) -> Measure:
    label = f"{count:,}" if resources is None else f"{count:,} + {len(resources):,} family"
    measure = Measure(count, label)
    execution_input: dict[str, Any] = {"notify": "always"}
    if resources is not None:
        execution_input["policy"] = FAMILY_POLICY
    with LocalDeployment(fleet, retry_wait_scale=0, resources=resources or ()) as local:
        count_api_calls(measure)
        with instrument_handlers(measure, traced_steps):
            started = time.perf_counter()
            arn = local.start(execution_input, name=f"scale-{count}{'-family' if resources else ''}")
            description = local.engine.wait(arn, timeout=timeout)
            measure.wall = time.perf_counter() - started
        measure.status = description["status"]
        history = local.engine.history(arn)
        measure.events = len(history)
        measure.entered = sum(1 for e in history if e["type"].endswith("StateEntered"))
        measure.exited = sum(1 for e in history if e["type"].endswith("StateExited"))
        for event in history:
            for key, fld in (("stateEnteredEventDetails", "input"), ("stateExitedEventDetails", "output")):
                details = event.get(key)
                if details and details.get(fld) is not None:
                    size = len(details[fld].encode("utf-8"))
                    if size > measure.largest_payload[0]:
                        measure.largest_payload = (size, details["name"], fld)
        measure.fleet_calls = len(local.fleet.calls)
        s3 = local.engine.client("s3")
        sizes: Counter[str] = Counter()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for obj in page.get("Contents", []):
                top = obj["Key"].split("/")[0]
                prefix = "/".join(obj["Key"].split("/")[:2]) if top == "reports" else top
                sizes[prefix] += obj["Size"]
                sizes["objects"] += 1
        measure.s3_bytes = dict(sizes)
        if description.get("output"):
            output = json.loads(description["output"])
            summary_key = output.get("result", {}).get("report", {}).get("summary_key")
            if summary_key:
                summary = json.loads(s3.get_object(Bucket=BUCKET, Key=summary_key)["Body"].read())
                totals = summary.get("totals", {})
                measure.evaluated = int(totals.get("total", 0))
                measure.flagged = int(totals.get("noncompliant", 0))
    return measure


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:,.1f} MiB"


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def render(plain: list[Measure], traced: list[Measure], command: str, loads: list[float]) -> str:
    head = "| | " + " | ".join(m.label for m in plain) + " |\n| --- |" + " ---: |" * len(plain) + "\n"

    def row(label: str, values: list[str]) -> str:
        return f"| {label} | " + " | ".join(values) + " |\n"

    rows = [
        row("execution status", [m.status for m in plain]),
        row("summary: total / noncompliant", [f"{m.evaluated:,} / {m.flagged:,}" for m in plain]),
        row("wall time of the execution", [f"{m.wall:.1f} s" for m in plain]),
        row("state transitions (states entered)", [f"{m.entered}" for m in plain]),
        row("StateEntered + StateExited events", [f"{m.entered + m.exited}" for m in plain]),
        row("largest state payload", [f"{m.largest_payload[0]:,} B" for m in plain]),
        row("… in", [f"{m.largest_payload[1]} ({m.largest_payload[2]})" for m in plain]),
        row("S3 API calls", [f"{m.service_calls('s3')}" for m in plain]),
        row(
            "EC2 API calls (Describe* pages)",
            [f"{m.service_calls('ec2')} (fleet endpoint saw {m.fleet_calls})" for m in plain],
        ),
        row(
            "other API calls (Glue, SNS)",
            [f"{sum(n for (s, _), n in m.calls.items() if s not in {'s3', 'ec2'})}" for m in plain],
        ),
    ]
    for step in STEP_NAMES:
        rows.append(
            row(
                f"`{step}`: invocations, total handler time",
                [f"{m.steps[step].invocations}, {m.steps[step].handler_seconds:.2f} s" for m in plain],
            )
        )
    for step in STEP_NAMES:
        rows.append(
            row(
                f"`{step}`: peak memory (tracemalloc)",
                [
                    _mib(m.steps[step].peak_bytes) if m.steps[step].peak_bytes else "not traced"
                    for m in traced
                ],
            )
        )
    rows.append(
        row(
            "S3 bytes left by the run: findings / summary / staging / state",
            [
                " / ".join(
                    f"{m.s3_bytes.get(k, 0) / 1024:,.0f} KiB"
                    for k in ("reports/findings", "reports/runs", "staging", "state")
                )
                for m in plain
            ],
        )
    )
    s3_ops = []
    for m in plain:
        s3_ops.append(", ".join(f"{op} {n}" for (svc, op), n in sorted(m.calls.items()) if svc == "s3"))
    transitions_flat = len({m.entered for m in plain}) == 1
    payload_ok = all(m.largest_payload[0] < PAYLOAD_LIMIT for m in plain)
    biggest = traced[-1] if traced else None
    evaluate_ok = (
        biggest is not None
        and biggest.count >= 100_000
        and biggest.steps["evaluate-tags"].peak_bytes < EVALUATE_MEMORY_GOAL
    )
    load = " → ".join(f"{x:.2f}" for x in loads)
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("tagwarden", "moto", "boto3") if _has(p))
    measured_large = biggest is not None and biggest.count >= 100_000
    evaluate_verdict = "met" if evaluate_ok else "not met" if measured_large else "not measured"
    goals = (
        f"- State transitions independent of instance (and resource) count: "
        f"**{'met' if transitions_flat else 'not met'}** "
        f"({', '.join(str(m.entered) for m in plain)} states entered).\n"
        f"- Largest payload under 8 KB (8,192 B) at every size: **{'met' if payload_ok else 'not met'}** "
        f"(largest {max(m.largest_payload[0] for m in plain):,} B).\n"
        f"- Peak memory of the evaluate step under 512 MB at 100,000 instances "
        f"({biggest.label if biggest else '-'}): "
        f"**{evaluate_verdict}**"
        + (f" ({_mib(biggest.steps['evaluate-tags'].peak_bytes)}).\n" if biggest else ".\n")
    )
    s3_detail = "\n".join(f"- {m.label}: {ops}" for m, ops in zip(plain, s3_ops, strict=True))
    return f"""{SECTION}

_Written by `benchmarks/bench_scale.py`; rerunning it replaces this section only._

- Command: `{command}`
- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC
- Machine: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, \
{platform.platform()}; load average {load}
- Versions: {versions}

{head}{"".join(rows)}
Goals:

{goals}
S3 calls by operation:

{s3_detail}

How it is measured: for each size a fresh `LocalDeployment` (the ASL file and handlers on the
embedded engine, moto's S3/SNS/SQS/Glue, DescribeInstances answered from the fleet, Retry waits
scaled to 0) runs one execution with `{{"notify": "always"}}` on `demo_fleet` cut to N instances
over three regions. Two executions per size, each in its own deployment: the first,
uninstrumented, gives the wall time (start to SUCCEEDED), the history (transitions = states
entered, each a billed Standard transition; payloads = every state input and output), the API
calls (a `before-parameter-build` hook on the handlers' boto3 session counts each call a handler makes;
reads of the results by the benchmark are not counted) and each Lambda's handler time (timed
around the handler call, without the engine's wait for its one-at-a-time gate); the second runs
under `tracemalloc`, started when a handler is called and stopped when it returns, and records
the peak of what the invocation allocated. Handlers run one at a time, so that peak is the
invocation's own, plus what moto allocates meanwhile: moto's S3 lives in the process and keeps the
bytes a handler uploads, so they count in its peak (an overstatement). It is the Python heap, not
a sandbox's RSS (interpreter, modules and botocore models, loaded once, are not in it). At
100,000 instances only the evaluate step is traced (tracing slows a step several times). A step's figure is
the largest of its invocations. Wall times include moto serving S3 in the same process on a
shared 2-CPU machine: they show the trend, not Lambda latencies. A "family" column adds
volumes, snapshots and interfaces (1.5, 0.5 and 1 per instance, with the instance's tags) under a
policy covering them with `inherit` (`FAMILY_POLICY` in the benchmark).
"""


def _has(package: str) -> bool:
    try:
        metadata.version(package)
    except metadata.PackageNotFoundError:
        return False
    return True


def write_section(path: Path, section: str) -> None:
    replace_section(path, SECTION, section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument(
        "--family",
        type=int,
        metavar="N",
        help="also N instances with 1.5 volumes, 0.5 snapshots, 1 interface each",
    )
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--skip-memory", action="store_true", help="no tracemalloc pass")
    parser.add_argument(
        "--large-from", type=int, default=100_000, help="sizes from this one trace only --trace-large"
    )
    parser.add_argument(
        "--trace-large",
        nargs="+",
        default=["evaluate-tags"],
        choices=STEP_NAMES,
        help="steps traced at large sizes (tracemalloc slows a traced step several times)",
    )
    parser.add_argument("--write", type=Path, help="replace this benchmark's section of this file")
    parser.add_argument("--json", type=Path, help="also dump the raw figures as JSON")
    args = parser.parse_args(argv)
    loads = [_load()]
    plain: list[Measure] = []
    traced: list[Measure] = []
    runs: list[tuple[int, bool]] = [(count, False) for count in args.sizes]
    if args.family:
        runs.append((args.family, True))
    for count, with_family in runs:
        fleet = fleet_of(count)
        family = family_of(fleet) if with_family else None
        m = run_once(count, fleet, traced_steps=frozenset(), timeout=args.timeout, resources=family)
        plain.append(m)
        print(
            f"{count:>7,}: {m.status} {m.wall:.1f} s, {m.entered} states entered, largest payload "
            f"{m.largest_payload[0]:,} B, s3 {m.service_calls('s3')}, ec2 {m.service_calls('ec2')}, "
            f"handler s {{{', '.join(f'{k}: {v.handler_seconds:.2f}' for k, v in m.steps.items())}}}",
            flush=True,
        )
        if not args.skip_memory:
            steps = frozenset(args.trace_large if count >= args.large_from else STEP_NAMES)
            t = run_once(count, fleet, traced_steps=steps, timeout=args.timeout, resources=family)
            traced.append(t)
            print(
                f"{count:>7,}: traced {t.wall:.1f} s, peaks "
                f"{{{', '.join(f'{k}: {_mib(v.peak_bytes)}' for k, v in t.steps.items())}}}",
                flush=True,
            )
        del fleet
        loads.append(_load())
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "count": m.count,
                        "wall": m.wall,
                        "status": m.status,
                        "entered": m.entered,
                        "exited": m.exited,
                        "largest_payload": m.largest_payload,
                        "calls": {f"{s}.{o}": n for (s, o), n in m.calls.items()},
                        "fleet_calls": m.fleet_calls,
                        "s3_bytes": m.s3_bytes,
                        "evaluated": m.evaluated,
                        "flagged": m.flagged,
                        "steps": {k: vars(v) for k, v in m.steps.items()},
                        "peaks": {k: v.peak_bytes for k, v in t.steps.items()} if t else {},
                    }
                    for m, t in zip(plain, traced or [None] * len(plain), strict=True)  # type: ignore[list-item]
                ],
                indent=2,
            )
        )
    command = " ".join(
        [".venv/bin/python", "benchmarks/bench_scale.py", *(argv if argv is not None else sys.argv[1:])]
    )
    section = render(plain, traced, command, loads)
    if args.write:
        write_section(args.write, section)
        print(f"wrote the {SECTION[3:]!r} section of {args.write}")
    else:
        print(section)
    ok = all(m.status == "SUCCEEDED" for m in plain)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
