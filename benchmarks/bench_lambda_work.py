"""What each Lambda does per 1,000 instances: handler CPU-seconds and bytes staged, before and after.

    .venv/bin/python benchmarks/bench_lambda_work.py --sizes 10000 100000 \\
        --before-tree /tmp/before-8fb3bed --write BENCHMARKS.md

Each measurement is a child process running one execution of the state machine on the embedded
engine (the real ASL and handlers, moto's S3) over a fleetgen fleet of full-size instances (every
field of the describe-instances sample, five accounts, three regions: what DescribeInstances
returns on AWS, served by the fleet endpoint). The handler's CPU time is ``time.thread_time()``
of the worker thread around each handler call, plus that of any thread the handler starts (List
EC2 instances asks for the next page from one); it includes moto serving that handler's S3 calls
in the same thread (on AWS that is network wait, not CPU), so it overstates Lambda's CPU. Bytes
staged are the objects under the run's staging prefix: the inventory pages List EC2 instances
writes for Evaluate tag compliance, and the per-target findings Persist report merges. Notify's
SNS Publish calls are answered at the client's wire, so its figure is its own work (see the
section's text).

``--before-tree`` runs the same child against another checkout (``PYTHONPATH`` pointing at it),
so the "before" column is the code before this change measured by this very benchmark.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from markdown_sections import replace_section, section_header

SECTION = "## Lambda work per 1,000 instances"
ROOT = Path(__file__).resolve().parents[1]
MEASURED_STEPS = ("list-instances", "evaluate-tags", "persist-report", "notify")
# What SNS answers a Publish: Notify's requests are built, signed and sent, and this answer parsed,
# by botocore as in a Lambda; only SNS's own side (moto's, in this process) is left out.
_PUBLISH_ANSWER = (
    '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>'
    "<MessageId>{id}</MessageId></PublishResult><ResponseMetadata><RequestId>{id}</RequestId>"
    "</ResponseMetadata></PublishResponse>"
)


def _answer_publishes_at_the_wire(sns: Any) -> list[int]:
    """SNS Publish answered where the request leaves the client (before moto sees it); the size of
    each request body sent, in the returned list."""
    import uuid

    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import MockRawResponse

    sent: list[int] = []

    def answer(request: Any, **_kwargs: Any) -> AWSResponse:
        sent.append(len(request.body or b""))
        body = _PUBLISH_ANSWER.format(id=uuid.uuid4()).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "text/xml"}, MockRawResponse(body))

    sns.meta.events.register_first("before-send.sns.Publish", answer)
    return sent


def child(count: int, seed: int) -> dict[str, Any]:
    """One execution over ``count`` full-size instances; what each step did."""
    from fleetgen import iter_reservations

    from workflow.engine import embedded
    from workflow.engine.local import BUCKET, LocalDeployment
    from workflow.evaluator import region_of_zone
    from workflow.fleet import FleetInstance

    fleet = [
        FleetInstance(reservation["OwnerId"], str(region_of_zone(i["Placement"]["AvailabilityZone"])), i)
        for reservation in iter_reservations(count, seed, fidelity="full")
        for i in reservation["Instances"]
    ]
    cpu: dict[str, float] = defaultdict(float)
    invocations: dict[str, int] = defaultdict(int)
    lock = threading.Lock()
    original = embedded._call_handler

    # The step a thread works for: the handler's own, and any thread it starts (List EC2
    # instances asks for the next page from a helper thread), so a step's CPU is all of its work.
    working_for = threading.local()
    original_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        step = getattr(working_for, "step", None)
        if step is not None:
            run = thread.run

            def measured() -> None:
                began = time.thread_time()
                try:
                    run()
                finally:
                    with lock:
                        cpu[step] += time.thread_time() - began

            thread.run = measured  # type: ignore[method-assign]
        original_start(thread)

    def timed(handler: str, event: Any, context: Any) -> Any:
        step = context.function_name.removeprefix("tagwarden-").rsplit("-", 1)[0]
        working_for.step = step
        started = time.thread_time()
        try:
            return original(handler, event, context)
        finally:
            working_for.step = None
            with lock:
                cpu[step] += time.thread_time() - started
                invocations[step] += 1

    embedded._call_handler = timed
    threading.Thread.start = start  # type: ignore[method-assign,assignment]
    try:
        with LocalDeployment(fleet, retry_wait_scale=0) as local:
            from workflow import aws

            published = _answer_publishes_at_the_wire(aws.client("sns"))  # the client Notify's handler gets
            # A Lambda's heap holds its own step's work, not the fleet, moto and the engine: frozen
            # here, so the collector's passes over them are not charged to whichever step allocates.
            gc.collect()
            gc.freeze()
            try:
                arn = local.start({"notify": "always"}, name=f"work-{count}")
                description = local.engine.wait(arn, timeout=3600)
            finally:
                gc.unfreeze()
            s3 = local.engine.client("s3")
            staged: dict[str, int] = defaultdict(int)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="staging/"):
                for item in page.get("Contents", []):
                    kind = item["Key"].split("/")[2] if item["Key"].count("/") >= 3 else "other"
                    staged[kind] += item["Size"]
            output = json.loads(description.get("output") or "{}")
            totals = output.get("result", {}).get("report", {}).get("totals", {})
    finally:
        embedded._call_handler = original
        threading.Thread.start = original_start  # type: ignore[method-assign]
    return {
        "status": description["status"],
        "evaluated": totals.get("total"),
        "noncompliant": totals.get("noncompliant"),
        "cpu": dict(cpu),
        "invocations": dict(invocations),
        "staged": dict(staged),
        "published": {"messages": len(published), "request_bytes": sum(published)},
    }


def measure(tree: Path, count: int, seed: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(count), "--seed", str(seed)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tree,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed for {tree} at {count}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def render(results: dict[tuple[str, int], dict[str, Any]], sizes: list[int], labels: list[str]) -> str:
    columns = [(label, size) for size in sizes for label in labels]
    head = "| per 1,000 instances | " + " | ".join(f"{label}, {size:,}" for label, size in columns) + " |"
    rows = [head, "| --- |" + " ---: |" * len(columns)]

    def per_k(value: float, size: int) -> float:
        return value / size * 1000

    for step in MEASURED_STEPS:
        rows.append(
            f"| `{step}` handler CPU-seconds | "
            + " | ".join(f"{per_k(results[c]['cpu'].get(step, 0.0), c[1]):.3f}" for c in columns)
            + " |"
        )
    for kind, label in (
        ("inventory", "inventory pages staged"),
        ("findings", "findings staged"),
        ("summary-fields", "summary fields staged"),
    ):
        rows.append(
            f"| {label} (KiB) | "
            + " | ".join(f"{per_k(results[c]['staged'].get(kind, 0), c[1]) / 1024:.1f}" for c in columns)
            + " |"
        )
    rows.append(
        "| evaluated / noncompliant (whole run) | "
        + " | ".join(f"{results[c]['evaluated']:,} / {results[c]['noncompliant']:,}" for c in columns)
        + " |"
    )
    return "\n".join(rows)


def _published(results: dict[tuple[str, int], dict[str, Any]]) -> str:
    shown = []
    for (label, size), result in results.items():
        if "published" in result:
            messages, sent = result["published"]["messages"], result["published"]["request_bytes"]
            plural = "" if messages == 1 else "s"
            shown.append(f"{label}, {size:,}: {messages} message{plural}, {sent / 1024:,.0f} KiB of requests")
    return "; ".join(shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--before-tree", type=Path, help="a checkout of the code before, measured alike")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path, help="replace this benchmark's section of this file")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.seed)))
        return 0
    trees = ([("before", args.before_tree.resolve())] if args.before_tree else []) + [("after", ROOT)]
    loads = [_load()]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for size in args.sizes:
        for label, tree in trees:
            results[(label, size)] = measure(tree, size, args.seed)
            loads.append(_load())
            print(label, size, json.dumps(results[(label, size)]), flush=True)
    same = all(
        results[("before", s)]["evaluated"] == results[("after", s)]["evaluated"]
        and results[("before", s)]["noncompliant"] == results[("after", s)]["noncompliant"]
        for s in args.sizes
        if args.before_tree
    )
    command = f".venv/bin/python benchmarks/bench_lambda_work.py {' '.join(argv or sys.argv[1:])}".strip()
    labels = [label for label, _ in trees]
    before_note = (
        f"before: the checkout `{args.before_tree}` (the code before issue 14, measured by this "
        f"benchmark in the same session); totals identical before and after: {'yes' if same else 'NO'}"
        if args.before_tree
        else "no before column in this run"
    )
    header = section_header(SECTION, "bench_lambda_work.py", command, loads)
    section = f"""{header}
- Fleet: fleetgen full-size instances (seed {args.seed}), five accounts, three regions; {before_note}

{render(results, args.sizes, labels)}

How it is measured: one execution per column, each in a child process of its own, on the embedded
engine (the ASL and the handlers, moto's S3 in the same process). CPU-seconds are
`time.thread_time()` of the thread running each handler and of the threads it starts (List EC2
instances asks for the next page from one), summed over the step's invocations and
divided by the instances per 1,000, with the fleet, moto and the engine frozen (`gc.freeze()`)
before the execution starts, as a Lambda's heap holds only its own step's work (measured since
2026-12-04 10:50; without it the collector's passes over the fleet went to whichever step
allocated, mostly Evaluate tag compliance); they include moto serving the handler's S3 requests in that
thread, which on AWS is network wait, and for List EC2 instances the fleet endpoint building each
DescribeInstances answer (AWS's side on AWS), so they overstate a Lambda's CPU. Bytes staged are the
run's objects under `staging/<run>/inventory/` (pages List EC2 instances writes for Evaluate tag
compliance), `staging/<run>/findings/` (per-target findings; since issue 14 Persist report
copies them into the report as they are) and `staging/<run>/summary-fields/` (what the summary
reads of each finding, which Persist report folds in instead of parsing the findings; the before
tree stages none). Findings are 5% larger than in the before tree: since issue 16 each carries
`resource_type` and `resource_id`. The execution notifies (`{{"notify": "always"}}`: the run's
summary and the owner digests, {_published(results)}); each SNS Publish is answered where the
request leaves the client (a `before-send` hook ahead of moto's), so Notify's CPU-seconds hold
building, signing and sending every message and parsing SNS's answer, as in a Lambda, and not
SNS's own side (measured since 2026-12-04 13:05; until then Notify did not run here; the before
tree predates the owner digests and publishes the summary alone). The
CPU-seconds carry into docs/cost.md, where the Lambda memory sizes are chosen from them.
"""
    if args.write:
        replace_section(args.write, SECTION, section)
        print(f"wrote the section {SECTION!r} of {args.write}")
    else:
        print(section)
    return 0 if all(r["status"] == "SUCCEEDED" for r in results.values()) and same else 1


if __name__ == "__main__":
    sys.exit(main())
