"""End to end against Cloud Custodian, fairly: both tools served by the same in-process
DescribeInstances endpoint, with the same modelled page latency and throttling.

    .venv-bench/bin/python benchmarks/bench_e2e_endpoint.py --instances 20000 --write BENCHMARKS.md

Neither tool pays moto's XML here: the fleet endpoint (``workflow/engine/fleet_endpoint.py``, a
botocore ``before-call`` hook) answers DescribeInstances from the fleet, for tagwarden's handlers
and for Cloud Custodian's boto3 sessions alike. Each answer waits as AWS would (the latency model
below) and every ``--throttle-every``-th call is throttled once and retried by the SDK (the
throttled attempt and the backoff add to its latency; see ``RETRY_BACKOFF_SECONDS`` for why the
endpoint charges the retry instead of answering ``RequestLimitExceeded``). Measured, each from
the start of the scan to its end (setup of either tool not counted):

* Cloud Custodian, the regions one after another (what ``custodian run --region all`` does: it
  expands ``all`` and runs the policy per region in turn), a ``c7n.policy.Policy`` per region in
  pull mode, in process;
* Cloud Custodian in parallel, one process per region (forked, so the endpoint's hooks are
  inherited): the parallelism of c7n-org's ``run``, which runs each account-region in a process
  pool. It is this benchmark's process pool, not c7n-org itself (c7n-org needs an accounts file
  and assumes a role per account; the process-per-region shape is the same);
* tagwarden, one execution of the state machine on the embedded engine (the real ASL, the inline
  Map over the regions at MaxConcurrency = the region count, Lambda handlers overlapping as
  concurrent Lambda invocations do, moto's S3, SNS and Glue in process), from StartExecution to
  SUCCEEDED: it lists, stages, evaluates, persists the report and registers partitions too.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from bench_evaluator import ALL_STATES, C7N_POLICY, TAGWARDEN_POLICY
from fleetgen import DEFAULT_SEED, generate_fleet
from markdown_sections import replace_section, section_header

from workflow.engine.fleet_endpoint import FleetEndpoint
from workflow.engine.local import CENTRAL_ACCOUNT, LocalDeployment
from workflow.fleet import FleetInstance

SECTION = "## End to end against Cloud Custodian, same endpoint"
REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-west-3",
    "eu-central-1", "eu-north-1", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1",
    "ap-northeast-2", "ap-south-1", "ca-central-1", "sa-east-1",
)  # fmt: skip
# The latency model: a fixed part per request plus a part per instance in the page. AWS documents
# DescribeInstances pages of at most 1,000 instances (MaxResults 5 to 1,000); a full page of full
# instances is several MB of XML that EC2 assembles, so a page takes on the order of a second.
BASE_SECONDS = 0.1
PER_1000_SECONDS = 0.9
# A throttled call, retried by the SDK after its backoff: botocore's retry handlers never see an
# answer a before-call hook gives (they run around the HTTP send the hook skips), so the endpoint
# charges both tools the time of the throttled attempt and the backoff, then answers.
RETRY_BACKOFF_SECONDS = 0.25


def with_latency(endpoint: FleetEndpoint, throttle_every: int) -> None:
    """Make ``endpoint`` answer like a remote API: latency per page; every Nth call is throttled
    once and retried (the throttled attempt and the SDK's backoff added to its latency)."""
    original = endpoint._describe_instances
    counter = itertools.count(1)
    lock = threading.Lock()

    def describe(**kwargs: Any) -> Any:
        with lock:
            number = next(counter)
        if throttle_every and number % throttle_every == 0:
            time.sleep(BASE_SECONDS + RETRY_BACKOFF_SECONDS)
        answer = original(**kwargs)
        parsed = answer[1]
        count = sum(len(r.get("Instances", [])) for r in parsed.get("Reservations", []))
        time.sleep(BASE_SECONDS + PER_1000_SECONDS * count / 1000)
        return answer

    endpoint._describe_instances = describe  # type: ignore[method-assign]


def fleet_of(count: int, regions: tuple[str, ...], seed: int) -> list[FleetInstance]:
    fleet = []
    for index, instance in enumerate(generate_fleet(count, seed)):
        region = regions[index % len(regions)]
        instance["Placement"] = {"AvailabilityZone": f"{region}a"}
        # Cloud Custodian samples one instance per region; if it has no Tags key it fetches every
        # tag of the region with DescribeTags, which the endpoint does not serve. An empty list
        # for untagged instances keeps it on DescribeInstances alone (one call fewer for it).
        instance.setdefault("Tags", [])
        fleet.append(FleetInstance(CENTRAL_ACCOUNT, region, instance))
    return fleet


_ENDPOINT: FleetEndpoint | None = None


def _c7n_policy(region: str, output_dir: str) -> Any:
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources

    load_resources(("aws.ec2",))
    options = Config.empty(
        region=region, regions=[region], account_id=CENTRAL_ACCOUNT, output_dir=output_dir, cache=""
    )
    endpoint = _ENDPOINT
    assert endpoint is not None

    def session_factory(*_args: Any, **_kwargs: Any) -> boto3.Session:
        session = boto3.Session(region_name=region, aws_access_key_id="bench", aws_secret_access_key="bench")
        return endpoint.attach(session)

    policy = Policy(json.loads(json.dumps(C7N_POLICY)), options, session_factory=session_factory)
    policy.validate()
    return policy


def c7n_region(region: str) -> list[str]:
    from c7n.utils import reset_session_cache

    # c7n keeps one session per thread for 45 minutes: it would outlive the previous fleet's hooks.
    reset_session_cache()
    with tempfile.TemporaryDirectory(prefix="c7n-") as output:
        return [r["InstanceId"] for r in _c7n_policy(region, output).run()]


def timed(run: Callable[[], set[str]]) -> tuple[float, set[str]]:
    started = time.perf_counter()
    flagged = run()
    return time.perf_counter() - started, flagged


def tagwarden_scan(
    fleet: list[FleetInstance], regions: tuple[str, ...], throttle_every: int
) -> tuple[float, set[str]]:
    policy = {**TAGWARDEN_POLICY, "scope": {"states": ALL_STATES, "grace_period_minutes": 0}}
    local = LocalDeployment(
        fleet, regions=list(regions), default_policy=policy, map_max_concurrency=len(regions)
    )
    with_latency(local.fleet, throttle_every)
    local.engine._router.serialize = False  # concurrent invocations, as Lambda runs them
    with local:
        # Timed from StartExecution until it succeeds (the report is in S3), as Cloud Custodian's
        # until policy.run() returns; reading the findings back to compare them is not the scan's work.
        started = time.perf_counter()
        arn = local.start({"notify": "never"})
        local.engine.wait(arn, timeout=3600)
        wall = time.perf_counter() - started
        result = local.collect(arn, timeout=3600)
    if result.status != "SUCCEEDED":
        raise SystemExit(f"tagwarden execution {result.status}: {result.error} {result.cause}")
    return wall, {f["instance_id"] for f in result.findings if not f["compliant"]}


def main(argv: list[str] | None = None) -> int:
    global _ENDPOINT
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--throttle-every", type=int, default=10)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    loads = [f"{os.getloadavg()[0]:.2f}"]
    rows = []
    ok = True
    for regions in (REGIONS[:1], REGIONS):
        fleet = fleet_of(args.instances, regions, args.seed)
        _ENDPOINT = FleetEndpoint(fleet, account_id=CENTRAL_ACCOUNT)
        with_latency(_ENDPOINT, args.throttle_every)
        _c7n_policy(regions[0], tempfile.gettempdir())  # c7n's resource registry, loaded before timing
        sequential = timed(lambda rs=regions: {i for r in rs for i in c7n_region(r)})
        with ProcessPoolExecutor(max_workers=len(regions)) as pool:
            parallel = timed(lambda rs=regions, p=pool: {i for ids in p.map(c7n_region, rs) for i in ids})
        tagwarden = tagwarden_scan(fleet, regions, args.throttle_every)
        loads.append(f"{os.getloadavg()[0]:.2f}")
        same = sequential[1] == parallel[1] == tagwarden[1]
        ok = ok and same
        rows.append((len(regions), sequential, parallel, tagwarden, same))
        print(
            f"{len(regions)} regions: c7n sequential {sequential[0]:.1f} s, "
            f"c7n parallel {parallel[0]:.1f} s, tagwarden {tagwarden[0]:.1f} s, same flagged: {same}",
            flush=True,
        )
    table = [
        "| regions | instances | Cloud Custodian, regions in turn | Cloud Custodian, a process per region | "
        "tagwarden, one execution | tagwarden vs in turn | tagwarden vs parallel | flagged (same ids) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for count, sequential, parallel, tagwarden, same in rows:
        table.append(
            f"| {count} | {args.instances:,} | {sequential[0]:.1f} s | {parallel[0]:.1f} s | "
            f"{tagwarden[0]:.1f} s | "
            f"{sequential[0] / tagwarden[0]:.2f}x | {parallel[0] / tagwarden[0]:.2f}x | "
            f"{len(tagwarden[1]):,} ({'yes' if same else 'NO'}) |"
        )
    one, many = rows[0], rows[1]
    goals = (
        f"Goals: tagwarden at least 1.0x Cloud Custodian on one region: "
        f"**{'met' if one[1][0] / one[3][0] >= 1 else 'not met'}** ({one[1][0] / one[3][0]:.3f}x); "
        f"at least 3x on 16 regions (against the regions in turn): "
        f"**{'met' if many[1][0] / many[3][0] >= 3 else 'not met'}** ({many[1][0] / many[3][0]:.2f}x)."
    )
    command = (
        f".venv-bench/bin/python benchmarks/bench_e2e_endpoint.py {' '.join(argv or sys.argv[1:])}".strip()
    )
    header = section_header(SECTION, "bench_e2e_endpoint.py", command, loads)
    section = f"""{header}
- Latency model: each DescribeInstances answer waits {BASE_SECONDS:.1f} s plus {PER_1000_SECONDS:.1f} s per \
1,000 instances in the page (pages of at most 1,000, as AWS documents); every {args.throttle_every}th \
call is throttled once and retried, {BASE_SECONDS + RETRY_BACKOFF_SECONDS:.2f} s more (botocore's retry \
handlers never see an answer a before-call hook gives, so the endpoint charges the throttled attempt \
and the SDK's backoff instead of answering `RequestLimitExceeded`). A model, not a measurement \
of AWS: a full page of full instances is megabytes of XML, on the order of a second.

{chr(10).join(table)}

{goals}

The fleet is `fleetgen` ({args.instances:,} instances, seed {args.seed}) dealt round-robin over the \
regions, an untagged instance carrying an empty `Tags` list (so Cloud Custodian never falls back \
to a region-wide DescribeTags, a call it would make on AWS when the one instance it samples has \
no tags: this favours it); the policies are the evaluator benchmark's (six rules, exact Cloud \
Custodian equivalent), and all three runs must flag the same instance ids (the benchmark exits \
non-zero otherwise). \
tagwarden's figure is a whole execution on the embedded engine, from StartExecution until it \
succeeds (Step Functions' interpreter, S3 staging, the report and its partitions, all in this \
process on {os.cpu_count()} CPUs); reading its findings back to compare the flagged ids is not timed \
(it was until 2026-12-04 12:27), as Cloud Custodian's timing ends when `policy.run()` returns. On \
AWS each Lambda has its own CPU, so the CPU-bound parts would overlap more than here. See the \
module docstring for what each side runs.
"""
    if args.write:
        replace_section(args.write, SECTION, section)
        print(f"wrote the section {SECTION!r} of {args.write}")
    else:
        print(section)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
