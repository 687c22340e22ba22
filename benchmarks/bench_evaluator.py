"""Evaluator throughput, side by side with Cloud Custodian, on the same generated fleet.

    .venv-bench/bin/python benchmarks/bench_evaluator.py --instances 100000 --write BENCHMARKS.md

(``make bench`` builds ``.venv-bench`` and runs exactly that.) This is a benchmark, not a timed
test: it prints its figures and, with ``--write``, replaces the "Evaluator throughput" section
of BENCHMARKS.md. It exits non-zero only when the two tools disagree on which instances break
the policy, since then the comparison would be meaningless.

What is measured: both tools get the same already-loaded list of describe-instances dicts
(fleetgen.py) and only their filtering is timed, with the same timer, best of ``--runs``:

* tagwarden: ``list(evaluate_instances(fleet, policy))``, one finding per instance;
* Cloud Custodian: ``EC2.filter_resources(fleet)`` of a real ``c7n.policy.Policy`` for
  ``aws.ec2`` whose filters are the equivalent of the tagwarden policy. That is the call
  ``Policy.run`` makes once the instances are listed; the session factory raises if anything
  asks for AWS.

Peak memory is measured in a separate, untimed pass per tool with :mod:`tracemalloc`: the peak
of the Python allocations made while filtering, the input fleet not included (it is loaded
before tracing starts), the result included.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import pickle
import platform
import random
import re
import shlex
import sys
import time
import tracemalloc
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from fleetgen import CLASSIFICATIONS, DEFAULT_SEED, ENVIRONMENTS, TEAMS, describe_fleet, generate_fleet
from markdown_sections import replace_section

from workflow.evaluator import evaluate_instances, evaluate_resource
from workflow.policy import compile_policy
from workflow.resources import RESOURCE_TYPES

SECTION = "## Evaluator throughput"
GOAL_RATIO = 20.0
# The goal on another realistic mix ("Second mix" below).
GOAL_RATIO_MIX = 15.0
VARIANT_INSTANCES = 25_000  # enough to hit every trap hundreds of times, and keeps `make bench` short
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ALL_STATES = ["pending", "running", "shutting-down", "terminated", "stopping", "stopped"]

# Six rules, each with a Cloud Custodian filter that flags exactly the same instances:
# three patterns (c7n `regex-case`) and three lists of allowed values (c7n `not-in`).
TAGWARDEN_POLICY: dict[str, Any] = {
    "version": 1,
    "name": "bench-six-rules",
    "description": "Six required tags; the benchmark policy that has an exact Cloud Custodian equivalent.",
    "rules": [
        {"key": "Owner", "pattern": r"^[a-z0-9._-]+@example\.com$"},
        {"key": "CostCenter", "pattern": r"^CC-[0-9]{4}$"},
        {"key": "Application", "pattern": r"^[a-z][a-z0-9-]{1,40}$"},
        {"key": "Environment", "allowed_values": list(ENVIRONMENTS)},
        {"key": "DataClassification", "allowed_values": list(CLASSIFICATIONS)},
        {"key": "Team", "allowed_values": list(TEAMS)},
    ],
    "key_case": "exact",
    "scope": {"states": ALL_STATES, "grace_period_minutes": 0},
}

RULE_KEYS = [rule["key"] for rule in TAGWARDEN_POLICY["rules"]]

C7N_POLICY: dict[str, Any] = {
    "name": "bench-six-rules",
    "resource": "aws.ec2",
    "description": "Instances that break one of the six tag rules (the tagwarden benchmark policy).",
    "filters": [
        {
            "or": [
                {"not": [{"type": "value", "key": "tag:Owner", "op": "regex-case",
                          "value": r"^[a-z0-9._-]+@example\.com\Z"}]},
                {"not": [{"type": "value", "key": "tag:CostCenter", "op": "regex-case",
                          "value": r"^CC-[0-9]{4}\Z"}]},
                {"not": [{"type": "value", "key": "tag:Application", "op": "regex-case",
                          "value": r"^[a-z][a-z0-9-]{1,40}\Z"}]},
                {"type": "value", "key": "tag:Environment", "op": "not-in", "value": list(ENVIRONMENTS)},
                {"type": "value", "key": "tag:DataClassification", "op": "not-in",
                 "value": list(CLASSIFICATIONS)},
                {"type": "value", "key": "tag:Team", "op": "not-in", "value": list(TEAMS)},
                # A rule key spelled with another capitalisation, beside the right spelling or not.
                {"type": "list-item", "key": "Tags", "attrs": [
                    {"type": "value", "key": "Key", "op": "regex",
                     "value": "^(" + "|".join(re.escape(k.lower()) for k in RULE_KEYS) + r")\Z"},
                    {"type": "value", "key": "Key", "op": "not-in", "value": RULE_KEYS},
                ]},
            ]
        }
    ],
}  # fmt: skip

WHY_EQUIVALENT = """\
- Every rule is required, with case-sensitive values, `key_case: exact`, no exemptions, no
  prohibited keys, no `max_tags` and a scope of all six states with no grace period. So tagwarden
  flags an instance exactly when, for some rule key K, a tag spelled like K in another case exists
  (`key_case`, reported even beside K itself), or K itself is absent, or its value is blank
  (`value.strip() == ""`), or the value fails the rule.
- c7n's `tag:K` looks up exactly K. A value filter on an absent tag already matches (`not-in`
  compares `()` against the list, and `not` of `regex-case` on `None` is true), so a separate
  `tag:K: absent` filter would be redundant (checked below: it flags the same set). The
  `list-item` filter over `Tags` catches the other capitalisations: a key that matches a rule key
  case-insensitively but is none of them.
- No allowed value is blank, and no pattern matches a blank value, so "blank or not allowed" in
  tagwarden is "not allowed" in c7n.
- c7n's `regex` op is `re.match` with `IGNORECASE`; `regex-case` is the case-sensitive one. And
  `re.match` anchors only the start: `$` still matches before a trailing newline, so the c7n
  patterns end in `\\Z` to be the full match tagwarden does. Both engines (`re` and `regex` in
  VERSION0) agree on these ASCII-only patterns.
- tagwarden compares keys with `str.casefold`, c7n's `regex` with `re.IGNORECASE`: the same on
  ASCII keys, which is every key in the fleet (a few non-ASCII letters such as `ſ` or `K` fold
  differently)."""


@dataclass
class Side:
    name: str
    run: Callable[[list[dict[str, Any]]], Any]
    flagged_of: Callable[[Any], set[str]]
    cpu_times: list[float] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)
    peak_bytes: int = 0
    flagged: set[str] = field(default_factory=set)


def _refuse_aws(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("the benchmark must not reach AWS: filters were given the resources already")


def c7n_filter(
    policy_data: dict[str, Any], id_field: str = "InstanceId"
) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """The ``filter_resources`` of a validated c7n policy (``aws.ec2`` by default), without AWS."""
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources

    load_resources((policy_data["resource"],))
    options = Config.empty(region="us-east-1", account_id="123456789012")
    policy = Policy(deepcopy(policy_data), options, session_factory=_refuse_aws)
    policy.validate()
    manager = policy.resource_manager
    if manager.get_model().id != id_field:
        raise RuntimeError(f"unexpected c7n resource manager {manager!r}")
    filter_resources: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = manager.filter_resources
    return filter_resources


def c7n_variants() -> dict[str, tuple[dict[str, Any], bool]]:
    """Other translations of the policy, and whether each should flag the same instances."""

    def tag_filters(data: dict[str, Any]) -> list[dict[str, Any]]:
        """The value filters on ``tag:K`` (the inner one of a ``not``)."""
        entries = data["filters"][0]["or"]
        inner = [entry["not"][0] if "not" in entry else entry for entry in entries]
        return [f for f in inner if f.get("type") == "value" and f["key"].startswith("tag:")]

    def variant(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        data = deepcopy(C7N_POLICY)
        change(data)
        return data

    def add_absent(data: dict[str, Any]) -> None:
        data["filters"][0]["or"][:0] = [{f["key"]: "absent"} for f in tag_filters(data)]

    def case_insensitive(data: dict[str, Any]) -> None:
        for f in tag_filters(data):
            if f["op"] == "regex-case":
                f["op"] = "regex"

    def dollar(data: dict[str, Any]) -> None:
        for f in tag_filters(data):
            if f["op"] == "regex-case":
                f["value"] = f["value"].removesuffix(r"\Z") + "$"

    def no_list_item(data: dict[str, Any]) -> None:
        data["filters"][0]["or"] = [f for f in data["filters"][0]["or"] if f.get("type") != "list-item"]

    return {
        "with explicit `tag:K: absent` filters as well": (variant(add_absent), True),
        "naive: `op: regex` (case-insensitive) on the values instead of `regex-case`": (
            variant(case_insensitive),
            False,
        ),
        "naive: patterns ending in `$` instead of `\\Z`": (variant(dollar), False),
        "naive: without the `list-item` filter (wrong-case keys beside the right one)": (
            variant(no_list_item),
            False,
        ),
    }


# A second mix, not tuned to the first: 0 to 20 tags, unicode keys, long values, and prohibited
# keys (eight globs, two literals) that tagwarden checks case-insensitively on every user tag.
MIX_PROHIBITED = ["tmp*", "temp-*", "*-old", "test*", "scratch*", "do-not-*", "*-backup", "draft*"]
MIX_PROHIBITED_LITERALS = ["foo", "delete-me"]
MIX_UNICODE_KEYS = ["Équipe", "负责人", "Projekt-Ü", "コスト", "Ωmega", "Señal"]
TAGWARDEN_POLICY_MIX: dict[str, Any] = {
    **TAGWARDEN_POLICY,
    "name": "bench-second-mix",
    "description": "The six rules plus prohibited keys: the second mix's policy.",
    "prohibited_keys": MIX_PROHIBITED + MIX_PROHIBITED_LITERALS,
}


def _glob_regex(glob: str) -> str:
    return ".*".join(re.escape(part) for part in glob.split("*"))


C7N_POLICY_MIX: dict[str, Any] = {
    **C7N_POLICY,
    "name": "bench-second-mix",
    "description": "The six rules plus prohibited keys (tagwarden's second-mix policy).",
    "filters": [
        {
            "or": [
                *C7N_POLICY["filters"][0]["or"],
                # A prohibited key (case-insensitive, as tagwarden folds keys), never an aws: one.
                {"type": "list-item", "key": "Tags", "attrs": [
                    {"type": "value", "key": "Key", "op": "regex",
                     "value": "^(?!aws:)(?:" + "|".join(_glob_regex(g) for g in MIX_PROHIBITED)
                     + "|" + "|".join(re.escape(k) for k in MIX_PROHIBITED_LITERALS) + r")\Z"},
                ]},
            ]
        }
    ],
}  # fmt: skip


def second_mix(fleet: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The same instances with other tags: 0 to 20 of them, some keys in other scripts, some values
    200 to 256 characters long, one instance in eight carrying a prohibited key."""
    rng = random.Random(seed + 7)
    prohibited_examples = ["tmp-build", "TEMP-x", "db-old", "Test", "scratch", "do-not-delete", "vm-backup",
                           "DraftPlan", "foo", "Delete-Me"]  # fmt: skip
    for instance in fleet:
        tags = list(instance.get("Tags") or [])
        rng.shuffle(tags)
        tags = tags[: rng.randint(0, 20)]
        for _ in range(rng.choice((0, 0, 1, 2))):
            key = rng.choice(MIX_UNICODE_KEYS) + str(rng.randint(1, 9))
            tags.append({"Key": key, "Value": "値" * rng.randint(1, 30)})
        if rng.random() < 0.2:
            tags.append({"Key": f"notes{rng.randint(1, 3)}", "Value": "x" * rng.randint(200, 256)})
        if rng.random() < 0.125:
            tags.append({"Key": rng.choice(prohibited_examples), "Value": "1"})
        seen: set[str] = set()
        instance["Tags"] = [t for t in tags if not (t["Key"] in seen or seen.add(t["Key"]))]
    return fleet


def tagwarden_side(policy_document: dict[str, Any] = TAGWARDEN_POLICY) -> Side:
    """tagwarden as the Evaluate step uses it: every finding is built in full (violations with
    their messages, owner, region, tags) and handed on one at a time; the consumer here keeps the
    ids of the noncompliant ones, where the step writes each to the report, and drops it."""
    policy = compile_policy(policy_document)

    def run(fleet: list[dict[str, Any]]) -> list[str]:
        return [f["instance_id"] for f in evaluate_instances(fleet, policy, now=NOW) if not f["compliant"]]

    return Side("tagwarden", run, set)


def tagwarden_kept_side(policy_document: dict[str, Any] = TAGWARDEN_POLICY) -> Side:
    """The same, with all findings kept in one list (this benchmark's method before 2026-12-04):
    the garbage collector then walks a growing heap of findings that no step ever holds."""
    policy = compile_policy(policy_document)

    def run(fleet: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(evaluate_instances(fleet, policy, now=NOW))

    return Side(
        "tagwarden, every finding kept",
        run,
        lambda findings: {f["instance_id"] for f in findings if not f["compliant"]},
    )


def finding_shape_side() -> Side:
    """The ceiling of any evaluator that writes a full finding per instance: each instance's tags
    dict and a finding of the same fifteen keys (launch time as text, the region's zone), with no
    check at all. It flags nothing, so it takes no part in the agreement check."""

    def run(fleet: list[dict[str, Any]]) -> list[str]:
        flagged = []
        for instance in fleet:
            get = instance.get
            tag_list = get("Tags")
            tags = {tag["Key"]: tag["Value"] for tag in tag_list} if tag_list else {}
            launch_time = get("LaunchTime")
            placement = get("Placement")
            instance_id = get("InstanceId")
            finding = {
                "resource_type": "instance",
                "resource_id": instance_id,
                "instance_id": instance_id,
                "region": placement and placement.get("AvailabilityZone"),
                "account_id": None,
                "state": (get("State") or {}).get("Name"),
                "launch_time": launch_time if type(launch_time) is str else launch_time.isoformat(),
                "instance_type": get("InstanceType"),
                "name": tags.get("Name"),
                "owner": tags.get("Owner"),
                "tags": tags,
                "compliant": True,
                "exempt": False,
                "in_grace_period": False,
                "violations": [],
            }
            if not finding["compliant"]:
                flagged.append(instance_id)
        return flagged

    return Side("finding shape alone, no checks", run, lambda _: set())


def c7n_side(policy_data: dict[str, Any] = C7N_POLICY) -> Side:
    return Side(
        "Cloud Custodian", c7n_filter(policy_data), lambda resources: {r["InstanceId"] for r in resources}
    )


def measure(sides: list[Side], frozen: bytes, runs: int) -> None:
    """Best of ``runs`` for each side, interleaved, each run on its own fresh copy of the fleet
    (c7n annotates the resources it matches)."""
    for _ in range(runs):
        for side in sides:
            fleet = pickle.loads(frozen)
            gc.collect()
            # The loaded input moves to the permanent generation for both tools alike: the timing
            # is of the filtering, not of the collector walking the benchmark's own 100,000-instance
            # input again and again (the workflow evaluates 1,000-instance pages, so its heap stays
            # small). The collector stays on for everything the tools allocate.
            gc.freeze()
            started, started_cpu = time.perf_counter(), time.process_time()
            try:
                result = side.run(fleet)
            finally:
                gc.unfreeze()
            side.cpu_times.append(time.process_time() - started_cpu)
            side.wall_times.append(time.perf_counter() - started)
            flagged = side.flagged_of(result)
            if side.flagged and flagged != side.flagged:
                raise RuntimeError(f"{side.name} flagged different instances from one run to the next")
            side.flagged = flagged
            del result, fleet


def measure_memory(side: Side, frozen: bytes) -> None:
    fleet = pickle.loads(frozen)
    gc.collect()
    tracemalloc.start()
    try:
        result = side.run(fleet)
        _, side.peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result, fleet


def fleet_bytes(frozen: bytes) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fleet = pickle.loads(frozen)
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del fleet
    return size


def explain_mismatch(fleet: list[dict[str, Any]], only_tw: set[str], only_c7n: set[str]) -> str:
    policy = compile_policy(TAGWARDEN_POLICY)
    by_id = {i["InstanceId"]: i for i in fleet}
    lines = [f"flagged by tagwarden only: {len(only_tw)}, by Cloud Custodian only: {len(only_c7n)}"]
    for label, ids in (("tagwarden only", only_tw), ("Cloud Custodian only", only_c7n)):
        for instance_id in sorted(ids)[:5]:
            finding = next(evaluate_instances([by_id[instance_id]], policy, now=NOW))
            tags = {t["Key"]: t.get("Value") for t in by_id[instance_id].get("Tags") or ()}
            codes = [(v["code"], v["key"]) for v in finding["violations"]]
            lines.append(f"  {label}: {instance_id} violations={codes} tags={tags!r}")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_average() -> float:
    """The one-minute load average (other processes compete for the CPUs), 0 where unknown."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def command_line() -> str:
    executable = Path(sys.executable)
    with contextlib.suppress(ValueError):
        executable = executable.relative_to(Path.cwd())
    command = shlex.join([str(executable), *sys.argv])
    if os.environ.get("MAKELEVEL"):
        return f"`make bench`, which runs `{command}`"
    return f"`{command}`"


def _seconds(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times) + " s"


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}"


def _yaml(data: dict[str, Any]) -> tuple[str, str]:
    try:
        import yaml
    except ImportError:
        return "json", json.dumps(data, indent=2)
    return "yaml", yaml.safe_dump({"policies": [data]}, sort_keys=False, width=100)


def report(
    *,
    count: int,
    sides: list[Side],
    fleet_stats: dict[str, Any],
    input_bytes: int,
    variants: list[tuple[str, int, int, bool]],
    runs: int,
    seed: int,
    load_averages: list[float],
    variant_count: int,
    mix_text: str = "",
) -> str:
    tw, c7n, kept, shape = sides
    ratio = min(c7n.cpu_times) / min(tw.cpu_times)
    ceiling = min(c7n.cpu_times) / min(shape.cpu_times)
    kept_ratio = min(c7n.cpu_times) / min(kept.cpu_times)
    wall_ratio = min(c7n.wall_times) / min(tw.wall_times)
    load = " → ".join(f"{a:.2f}" for a in load_averages) or "unknown"
    verdict = "met" if ratio >= GOAL_RATIO else "**not met**"
    states = ", ".join(f"{name} {n:,}" for name, n in fleet_stats["states"].items())
    lang, c7n_text = _yaml(C7N_POLICY)
    variant_rows = "\n".join(
        f"| {label} | {flagged:,} | {differ:,} | {'yes' if ok else 'NO'} |"
        for label, flagged, differ, ok in variants
    )
    variant_table = (
        f"\nOther translations checked on the first {variant_count:,} instances of the fleet (one untimed "
        "pass each), to show the fleet exercises the semantic traps:\n\n"
        "| Cloud Custodian variant | flagged | differs from tagwarden by | as expected |\n"
        "| --- | ---: | ---: | :---: |\n" + variant_rows + "\n"
        if variants
        else ""
    )
    return f"""{SECTION}

_Written by `benchmarks/bench_evaluator.py`; rerunning it replaces this section only._

- Command: {command_line()}
- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC
- Machine: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs \
({_cpu_model()}), {platform.platform()}; load average {load}
- Versions: tagwarden {_version("tagwarden")}, regex {_version("regex")}, \
c7n {_version("c7n")}, boto3 {_version("boto3")}

| {count:,} instances | tagwarden | Cloud Custodian | tagwarden, every finding kept |
| --- | ---: | ---: | ---: |
| instances/s (CPU time, best of {runs}) | **{_rate(count, min(tw.cpu_times))}** | \
{_rate(count, min(c7n.cpu_times))} | {_rate(count, min(kept.cpu_times))} |
| instances/s (wall clock, best of {runs}) | {_rate(count, min(tw.wall_times))} | \
{_rate(count, min(c7n.wall_times))} | {_rate(count, min(kept.wall_times))} |
| CPU time of each run | {_seconds(tw.cpu_times)} | {_seconds(c7n.cpu_times)} | {_seconds(kept.cpu_times)} |
| wall time of each run | {_seconds(tw.wall_times)} | {_seconds(c7n.wall_times)} | \
{_seconds(kept.wall_times)} |
| peak memory (tracemalloc) | {_mib(tw.peak_bytes)} | {_mib(c7n.peak_bytes)} | {_mib(kept.peak_bytes)} |
| flagged instances | {len(tw.flagged):,} | {len(c7n.flagged):,} | {len(kept.flagged):,} |

**tagwarden / Cloud Custodian throughput: {ratio:.1f}x** by CPU time, {wall_ratio:.1f}x by wall clock \
(goal: at least {GOAL_RATIO:.0f}x, {verdict}); {kept_ratio:.1f}x with every finding kept in a list.

All three flagged exactly the same {len(tw.flagged):,} instance ids (asserted: the benchmark exits \
non-zero otherwise).

**What a full finding costs by itself:** building each instance's finding with no check at all \
(its tags dict and the same fifteen keys, launch time as text: `finding_shape_side` in the \
benchmark, timed in the same interleaved runs) runs at {_rate(count, min(shape.cpu_times))} \
instances/s, **{ceiling:.1f}x** Cloud Custodian, and takes {min(shape.cpu_times) / min(tw.cpu_times):.0%} \
of tagwarden's time. Every instance gets a full finding (the report states what was covered, \
compliant instances included), so in CPython an evaluator that builds these findings cannot pass \
about {ceiling:.0f}x here, however fast its checks; Cloud Custodian's filters hand back the matched \
resources as they are.

How it is measured: both tools get the same already-loaded list of describe-instances dicts and
only the filtering is timed, by the same two clocks for both: `time.process_time` (the headline:
both run on one thread, and on a shared machine CPU time leaves out the time spent waiting for a
CPU) and `time.perf_counter`. Garbage collector on, with the loaded input frozen (`gc.freeze()`)
for both tools alike so collections do not walk the benchmark's own input (the workflow evaluates
pages of 1,000 instances, so its heap never holds 100,000), each run on a fresh copy of the fleet,
the tools' runs interleaved. tagwarden: `evaluate_instances(fleet, policy)` builds a full
finding (violations with their messages, owner, region, tags) per instance and hands each on, as
the Evaluate step hands each to the report writer and drops it; the consumer keeps the ids of the
noncompliant ones. "Every finding kept" is `list(evaluate_instances(fleet, policy))`, this
benchmark's method until 2026-12-04, shown for comparison: holding 100,000 findings makes the
collector's full passes walk them again and again, a cost no step pays (each evaluates a page of
1,000). Cloud Custodian: `filter_resources(fleet)`
of a validated `c7n.policy.Policy` for `aws.ec2`, in process, the call `Policy.run` makes once the
instances are listed (no AWS: its session factory raises). Peak memory: `tracemalloc` peak of
the allocations made during one separate untimed pass, result included, input not included (the
fleet itself takes {_mib(input_bytes)}).

Fleet: `benchmarks/fleetgen.py`, seed {seed}. {fleet_stats["tags_mean"]:.1f} tags per instance on \
average, at most {fleet_stats["tags_max"]}; {fleet_stats["share_4_to_12_tags"]:.0%} carry 4 to 12, \
{fleet_stats["share_0_tags"]:.1%} none, {fleet_stats["share_over_25_tags"]:.1%} more than 25. \
{fleet_stats["aws_tags"]:,} `aws:` tags and {fleet_stats["wrong_case_house_keys"]:,} wrong-case rule keys \
in all. States: {states}.
{variant_table}
Why the two policies flag the same instances:

{WHY_EQUIVALENT}

<details><summary>tagwarden policy</summary>

```json
{json.dumps(TAGWARDEN_POLICY, indent=2)}
```
</details>

<details><summary>Cloud Custodian policy</summary>

```{lang}
{c7n_text.rstrip()}
```
</details>
{mix_text}"""


def measure_second_mix(count: int, seed: int, runs: int) -> tuple[str, bool]:
    """Both tools on the second mix (:func:`second_mix`); the section's text, and whether they agree."""
    frozen = pickle.dumps(second_mix(generate_fleet(count, seed), seed), protocol=pickle.HIGHEST_PROTOCOL)
    sides = [
        tagwarden_side(TAGWARDEN_POLICY_MIX),
        c7n_side(C7N_POLICY_MIX),
        tagwarden_kept_side(TAGWARDEN_POLICY_MIX),
    ]
    measure(sides, frozen, runs)
    tw, c7n, kept = sides
    fleet = pickle.loads(frozen)
    tag_counts = [len(i.get("Tags") or ()) for i in fleet]
    same = tw.flagged == c7n.flagged == kept.flagged
    ratio = min(c7n.cpu_times) / min(tw.cpu_times)
    kept_ratio = min(c7n.cpu_times) / min(kept.cpu_times)
    verdict = "met" if ratio >= GOAL_RATIO_MIX else "**not met**"
    _, c7n_text = _yaml(C7N_POLICY_MIX)
    print(f"second mix: {ratio:.1f}x by CPU time, same flagged: {same}", flush=True)
    text = f"""
### Second mix

The same {count:,} instances with other tags (`second_mix` in the benchmark): 0 to 20 tags each \
({sum(tag_counts) / len(tag_counts):.1f} on average), keys in other scripts (`Équipe3`, `负责人5`, \
`コスト2`, ...), values of 200 to 256 characters on a fifth of the instances, a prohibited key on \
an eighth, and a policy of the six rules plus {len(MIX_PROHIBITED)} prohibited globs and \
{len(MIX_PROHIBITED_LITERALS)} literals (case-insensitive, never an `aws:` key; in Cloud Custodian a \
`list-item` filter with one `regex` on `Key`, ASCII globs so `re.IGNORECASE` and `str.casefold` \
agree).

| {count:,} instances, second mix | tagwarden | Cloud Custodian | tagwarden, every finding kept |
| --- | ---: | ---: | ---: |
| instances/s (CPU time, best of {runs}) | **{_rate(count, min(tw.cpu_times))}** | \
{_rate(count, min(c7n.cpu_times))} | {_rate(count, min(kept.cpu_times))} |
| CPU time of each run | {_seconds(tw.cpu_times)} | {_seconds(c7n.cpu_times)} | {_seconds(kept.cpu_times)} |
| wall time of each run | {_seconds(tw.wall_times)} | {_seconds(c7n.wall_times)} | \
{_seconds(kept.wall_times)} |
| flagged instances | {len(tw.flagged):,} | {len(c7n.flagged):,} | {len(kept.flagged):,} |

**tagwarden / Cloud Custodian throughput on the second mix: {ratio:.1f}x** by CPU time (goal: at \
least {GOAL_RATIO_MIX:.0f}x, {verdict}); {kept_ratio:.1f}x with every finding kept. Same flagged \
instance ids: **{"yes" if same else "NO"}** (the benchmark exits non-zero otherwise).

<details><summary>Cloud Custodian's extra filter for the second mix</summary>

```yaml
{c7n_text.rstrip()}
```
</details>
"""
    return text, same


# The EC2 family: the same six rules on volumes, snapshots, images and interfaces, against Cloud
# Custodian's resources for them (same filters). c7n's ENI resource reads ``Tags``, which its
# augment step copies from ``TagSet``; its side gets that shape, tagwarden the API's.
FAMILY_C7N = {
    "volume": "aws.ebs",
    "snapshot": "aws.ebs-snapshot",
    "image": "aws.ami",
    "network-interface": "aws.eni",
}


FAMILY_TABLE_HEAD = (
    "| type | Cloud Custodian resource | tagwarden resources/s | Cloud Custodian resources/s | ratio "
    "| flagged | same flagged |\n| --- | --- | ---: | ---: | ---: | ---: | --- |"
)


def family_fleet(fleet: list[dict[str, Any]], resource_type: str) -> list[dict[str, Any]]:
    """One resource of ``resource_type`` per generated instance, with that instance's tags."""
    resources = []
    for instance in fleet:
        suffix = instance["InstanceId"][2:]
        tags = instance.get("Tags") or []
        zone = instance["Placement"]["AvailabilityZone"]
        attachment = {"InstanceId": instance["InstanceId"], "AttachTime": instance["LaunchTime"]}
        if resource_type == "volume":
            resource = {
                "VolumeId": f"vol-{suffix}",
                "AvailabilityZone": zone,
                "CreateTime": instance["LaunchTime"],
                "Size": 8 + len(suffix) % 500,
                "VolumeType": "gp3",
                "State": "in-use",
                "Attachments": [{**attachment, "State": "attached", "Device": "/dev/xvda"}],
                "Tags": tags,
            }
        elif resource_type == "snapshot":
            resource = {
                "SnapshotId": f"snap-{suffix}",
                "OwnerId": "123456789012",
                "StartTime": instance["LaunchTime"],
                "State": "completed",
                "VolumeId": f"vol-{suffix}",
                "VolumeSize": 100,
                "Tags": tags,
            }
        elif resource_type == "image":
            resource = {
                "ImageId": f"ami-{suffix}",
                "OwnerId": "123456789012",
                "CreationDate": "2026-09-01T10:00:00.000Z",
                "State": "available",
                "Name": f"image-{suffix}",
                "Tags": tags,
            }
        else:
            resource = {
                "NetworkInterfaceId": f"eni-{suffix}",
                "AvailabilityZone": zone,
                "OwnerId": "123456789012",
                "InterfaceType": "interface",
                "RequesterManaged": False,
                "Status": "in-use",
                "Attachment": attachment,
                "TagSet": tags,
            }
        resources.append(resource)
    return resources


def tagwarden_family_side(resource_type: str) -> Side:
    """The Evaluate step's loop for one type: each finding built and handed on."""
    policy = compile_policy({**TAGWARDEN_POLICY, "resource_types": [resource_type]})

    def run(resources: list[dict[str, Any]]) -> list[str]:
        return [
            finding["resource_id"]
            for finding in (evaluate_resource(resource_type, r, policy, now=NOW) for r in resources)
            if not finding["compliant"]
        ]

    return Side(f"tagwarden ({resource_type})", run, set)


def c7n_family_side(resource_type: str) -> Side:
    id_field = RESOURCE_TYPES[resource_type].id_field
    filter_resources = c7n_filter({**C7N_POLICY, "resource": FAMILY_C7N[resource_type]}, id_field)

    def run(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if resource_type == "network-interface":
            resources = [{**r, "Tags": r["TagSet"]} for r in resources]
        return filter_resources(resources)

    return Side(
        f"Cloud Custodian ({FAMILY_C7N[resource_type]})", run, lambda found: {r[id_field] for r in found}
    )


def measure_family(count: int, seed: int, runs: int) -> tuple[str, bool]:
    """Throughput per resource type, each against Cloud Custodian's resource for it."""
    fleet = generate_fleet(count, seed)
    rows = []
    agree = True
    for resource_type, c7n_resource in FAMILY_C7N.items():
        frozen = pickle.dumps(family_fleet(fleet, resource_type), protocol=pickle.HIGHEST_PROTOCOL)
        sides = [tagwarden_family_side(resource_type), c7n_family_side(resource_type)]
        measure(sides, frozen, runs)
        tw, c7n = sides
        same = tw.flagged == c7n.flagged
        agree = agree and same
        ratio = min(c7n.cpu_times) / min(tw.cpu_times)
        print(f"{resource_type}: {ratio:.1f}x by CPU time, same flagged: {same}", flush=True)
        rows.append(
            f"| {resource_type} | `{c7n_resource}` | **{_rate(count, min(tw.cpu_times))}** | "
            f"{_rate(count, min(c7n.cpu_times))} | **{ratio:.1f}x** | {len(tw.flagged):,} | "
            f"{'yes' if same else 'NO'} |"
        )
    text = f"""
### Per resource type

{count:,} resources of each type, one per generated instance with that instance's tags, under the
same six rules (`resource_types` set to the type); Cloud Custodian runs the same filters on its
resource for the type (`filter_resources`, in process, no AWS). CPU time, best of {runs}; tagwarden
builds every finding (with `size_gib`, `attached_to`, ...) and hands it on, as the Evaluate step
does.

{FAMILY_TABLE_HEAD}
{chr(10).join(rows)}
"""
    return text, agree


def write_section(path: Path, section: str) -> None:
    replace_section(path, SECTION, section)


def print_table(count: int, sides: list[Side], runs: int) -> None:
    tw, c7n, *_ = sides
    rows = [
        (
            f"instances/s (CPU, best of {runs})",
            _rate(count, min(tw.cpu_times)),
            _rate(count, min(c7n.cpu_times)),
        ),
        ("best CPU time", f"{min(tw.cpu_times):.3f} s", f"{min(c7n.cpu_times):.3f} s"),
        ("best wall time", f"{min(tw.wall_times):.3f} s", f"{min(c7n.wall_times):.3f} s"),
        ("peak memory (tracemalloc)", _mib(tw.peak_bytes), _mib(c7n.peak_bytes)),
        ("flagged instances", f"{len(tw.flagged):,}", f"{len(c7n.flagged):,}"),
    ]
    ratio = f"ratio {min(c7n.cpu_times) / min(tw.cpu_times):.1f}x by CPU time (goal {GOAL_RATIO:.0f}x)"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"{count:,} instances".ljust(30), "tagwarden".rjust(14), "Cloud Custodian".rjust(16))
        for label, a, b in rows:
            print(label.ljust(30), a.rjust(14), b.rjust(16))
        print(ratio)
        return
    table = Table(title=f"Evaluator throughput, {count:,} instances", caption=ratio)
    table.add_column("")
    table.add_column("tagwarden", justify="right")
    table.add_column("Cloud Custodian", justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def profile_tagwarden(frozen: bytes, top: int) -> None:
    import cProfile
    import pstats

    side = tagwarden_side()
    fleet = pickle.loads(frozen)
    profiler = cProfile.Profile()
    profiler.runcall(side.run, fleet)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100_000, help="fleet size (default 100000)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="fleet generator seed")
    parser.add_argument(
        "--runs", type=int, default=3, help="timed runs per tool; the best counts (default 3)"
    )
    parser.add_argument("--write", type=Path, metavar="MARKDOWN", help="write the figures into this file")
    parser.add_argument("--skip-variants", action="store_true", help="skip the untimed c7n variant checks")
    parser.add_argument("--profile", type=int, metavar="N", help="also cProfile tagwarden; print the top N")
    parser.add_argument(
        "--family-resources",
        type=int,
        metavar="N",
        help="resources per type for the per-type table (default: --instances)",
    )
    args = parser.parse_args(argv)
    if args.instances < 1 or args.runs < 1:
        parser.error("--instances and --runs must be positive")

    load_averages = [_load_average()]
    print(f"generating {args.instances:,} instances (seed {args.seed})...", flush=True)
    fleet = generate_fleet(args.instances, args.seed)
    frozen = pickle.dumps(fleet, protocol=pickle.HIGHEST_PROTOCOL)
    stats = describe_fleet(fleet)
    input_bytes = fleet_bytes(frozen)
    # Only the copy under test stays alive while timing: the garbage collector's full passes walk
    # every live object, so a spare fleet would slow both tools down.
    del fleet

    sides = [tagwarden_side(), c7n_side(), tagwarden_kept_side(), finding_shape_side()]
    print(f"timing, best of {args.runs}...", flush=True)
    measure(sides, frozen, args.runs)
    for side in sides:
        measure_memory(side, frozen)
    tw, c7n, kept, _ = sides
    if not tw.flagged == c7n.flagged == kept.flagged:
        print("MISMATCH: the two tools flag different instances; no figures written", file=sys.stderr)
        print(
            explain_mismatch(pickle.loads(frozen), tw.flagged - c7n.flagged, c7n.flagged - tw.flagged),
            file=sys.stderr,
        )
        return 1
    if not 0 < len(tw.flagged) < args.instances:
        print("warning: every instance or none is flagged; the comparison proves little", file=sys.stderr)

    variants: list[tuple[str, int, int, bool]] = []
    if not args.skip_variants:
        print("checking other c7n translations...", flush=True)
        expected = tw.flagged & {i["InstanceId"] for i in pickle.loads(frozen)[:VARIANT_INSTANCES]}
        for label, (data, should_match) in c7n_variants().items():
            flagged = {r["InstanceId"] for r in c7n_filter(data)(pickle.loads(frozen)[:VARIANT_INSTANCES])}
            differ = len(flagged ^ expected)
            variants.append((label, len(flagged), differ, (differ == 0) == should_match))
        if not all(ok for *_, ok in variants):
            print("warning: a c7n variant did not behave as expected:", variants, file=sys.stderr)

    mix_text, mix_same = measure_second_mix(args.instances, args.seed, args.runs)
    if not mix_same:
        print("MISMATCH on the second mix: the two tools flag different instances", file=sys.stderr)
        return 1
    family_text, family_same = measure_family(args.family_resources or args.instances, args.seed, args.runs)
    if not family_same:
        print("MISMATCH on a resource type: the two tools flag different resources", file=sys.stderr)
        return 1
    load_averages.append(_load_average())
    print_table(args.instances, sides, args.runs)
    if args.profile:
        profile_tagwarden(frozen, args.profile)
    if args.write:
        write_section(
            args.write,
            report(
                count=args.instances,
                sides=sides,
                fleet_stats=stats,
                input_bytes=input_bytes,
                variants=variants,
                runs=args.runs,
                seed=args.seed,
                load_averages=load_averages,
                variant_count=min(args.instances, VARIANT_INSTANCES),
                mix_text=mix_text + family_text,
            ),
        )
        print(f"wrote the {SECTION[3:]!r} section of {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
