"""``tagwarden run``: a real execution of the state machine on the embedded engine.

The run folder ``<out>/<run id>/`` holds ``findings.jsonl``, ``summary.json``, ``history.json``
(the execution's events as GetExecutionHistory returns them), ``notifications.json`` (the
summary message), ``digests.json`` (the owner digests, when any), ``actions.jsonl`` (staged
remediation's actions, when the run remediated), ``lambda-logs.txt`` and
``graph.html``. It is whole or absent: written in a private folder beside
it, summary last, and renamed into place; a run name is used once, as on Step Functions. A
failed execution's folder has everything but ``findings.jsonl`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import gc
import gzip
import io
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from workflow import config
from workflow.cli_options import results_kept
from workflow.errors import FleetError, InvalidInput, Problem
from workflow.fleet import (
    FleetInstance,
    FleetResource,
    demo_fleet,
    demo_resources,
    dump_type,
    iter_fleet_document,
    load_fleet_file,
    load_resource_file,
    parse_fleet_argument,
)
from workflow.notifications import remediation_lines
from workflow.policy import compile_policy, load_policy_document, read_policy_file
from workflow.report import percentage_text, resource_type_rows, untagged_ebs_line
from workflow.resources import INSTANCE, RESOURCE_TYPES
from workflow.safe_files import open_for_write_no_follow
from workflow.targets import add_scope_options
from workflow.verdict import EXIT_INCOMPLETE, coverage_lines, exit_status

RUN_TIMEOUT_SECONDS = 7200
# A run folder being written lives in a private folder whose name starts with this; report, query
# and drift skip folders whose name starts with a dot.
STAGING_PREFIX: Final = ".tagwarden-partial-"
_EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@contextlib.contextmanager
def _bulk_load() -> Iterator[None]:
    """No garbage collection while a fleet loads, and none of it walked again afterwards.

    Loading 100,000 instances allocates millions of container objects and no reference cycles;
    each full collection meanwhile walked the whole growing heap (seconds each). The fleet lives
    until the process ends, so it is frozen (:func:`gc.freeze`): later collections, while the
    engine runs, skip it. Collected once first, so no garbage is frozen with it.
    """
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _settled_collector() -> Iterator[None]:
    """While an execution runs and its run folder is written: what the engine built (moto,
    botocore's models, the deployment) and the fleet live as long as it does, so they are frozen,
    and full collections come ten times rarer; both undone afterwards (a test process runs many
    executions).

    Each Lambda step allocates and drops a page at a time; with the long-lived heap frozen, the
    collector's own accounting (it compares survivors with the unfrozen long-lived objects, of
    which there are then few) would otherwise start a full pass every few pages. Measured on the
    100,000-instance dump of BENCHMARKS.md: 16.4 s -> 14.6 s, peak RSS unchanged (about 790 MiB).
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(thresholds[0], thresholds[1], 10 * thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@dataclass
class LoadedFleet:
    """What the dumps hold: instances (each id once), the other resource types, the (type, region,
    account) each dump of another type listed, and how many repeated instance listings were dropped."""

    instances: list[FleetInstance]
    resources: list[FleetResource] = field(default_factory=list)
    covered: list[tuple[str, str, str | None]] = field(default_factory=list)
    repeated: int = 0


def _fleet(paths: list[str]) -> LoadedFleet:
    """The instances of the dumps, each instance id once (the last listing wins), and how many
    repeated listings were dropped: two dumps of the same region, or one dump listing an instance
    twice, must not count it twice. Volumes, snapshots, images and interfaces come with them."""
    with _bulk_load():
        return _load_fleet(paths)


def _load_fleet(paths: list[str]) -> LoadedFleet:
    if not paths:
        document = demo_fleet()
        resources = demo_resources(document)
        return LoadedFleet(
            list(iter_fleet_document(document, source="demo fleet")),
            resources,
            [(r.resource_type, r.region, r.account_id) for r in resources],
        )
    by_id: dict[str, FleetInstance] = {}
    resources = []
    covered: list[tuple[str, str, str | None]] = []
    listings = 0
    for argument in paths:
        account, region, path = parse_fleet_argument(argument)
        resource_type = dump_type(path)
        if resource_type == INSTANCE:
            if account or region:
                raise FleetError(
                    [
                        Problem(
                            "$",
                            "an ACCOUNT: or REGION: prefix is for volumes, snapshots, images and "
                            "network interfaces; describe-instances names its account and zones",
                        )
                    ],
                    source=argument,
                )
            for item in load_fleet_file(path):
                listings += 1
                instance_id = str(item.instance["InstanceId"])
                by_id.pop(instance_id, None)  # re-inserted: keeps the order of the last listing
                by_id[instance_id] = item
            continue
        loaded = load_resource_file(path, resource_type, account=account, region=region)
        resources.extend(loaded)
        covered.extend((resource_type, r.region, r.account_id) for r in loaded)
        if region is not None:
            covered.append((resource_type, region, account))
    instances = list(by_id.values())
    return LoadedFleet(instances, _with_accounts(resources, instances), covered, listings - len(by_id))


def _with_accounts(resources: list[FleetResource], instances: list[FleetInstance]) -> list[FleetResource]:
    """Volumes as describe-volumes prints them name no account: take the attached instance's,
    or the run's only account; with several accounts and nothing to go by, say how to give it."""
    if all(r.account_id is not None for r in resources):
        return resources
    account_of = {str(i.instance["InstanceId"]): i.account_id for i in instances}
    accounts = {i.account_id for i in instances} | {r.account_id for r in resources}
    accounts.discard(None)
    only = next(iter(accounts)) if len(accounts) == 1 else None
    placed = []
    for resource in resources:
        account = resource.account_id
        if account is None:
            spec = RESOURCE_TYPES[resource.resource_type]
            parents = spec.parents(resource.resource)
            account = next((account_of[p] for p in parents if account_of.get(p)), None) or only
            if account is None and accounts:
                raise FleetError(
                    [
                        Problem(
                            "$",
                            f"{resource.resource_type} {spec.resource_id(resource.resource)} "
                            f"is attached to no listed instance and the dumps span accounts "
                            f"{', '.join(sorted(a for a in accounts if a))}: give its account as a prefix "
                            "(--fleet 111122223333:us-east-1:volumes.json)",
                        )
                    ]
                )
        placed.append(resource if account == resource.account_id else replace(resource, account_id=account))
    return placed


def _regions(text: str | None) -> list[str] | None:
    from workflow.cli_options import parse_regions

    return parse_regions(text) if text else None


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


def _json_text(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, default=_json_default) + "\n"


def _decompressed_text(compressed: bytes, chunk_bytes: int = 1 << 20) -> Iterator[str]:
    """UTF-8 text of gzip data, a chunk at a time (a character cut by a chunk waits for the next).

    >>> "".join(_decompressed_text(gzip.compress("é\\n".encode() * 3), chunk_bytes=1))
    'é\\né\\né\\n'
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    with gzip.GzipFile(fileobj=io.BytesIO(compressed), mode="rb") as unzipped:
        while chunk := unzipped.read(chunk_bytes):
            yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def _create_file(path: Path, chunks: Iterable[str]) -> None:
    """Write a new file of a run folder (never one that exists, never through a symlink), flushed to
    disk before returning."""
    with open_for_write_no_follow(path) as handle:
        for chunk in chunks:
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass
class RunFolder:
    """A run folder that is whole or absent: written in a private folder beside its destination,
    summary last, then renamed into place in one step.

    ``prepare`` runs before the scan, so a bad ``--out`` or a reused ``--name`` costs nothing.
    """

    out: Path
    run_id: str
    staging_root: Path | None = None

    @property
    def destination(self) -> Path:
        return self.out / self.run_id

    @property
    def staging(self) -> Path:
        assert self.staging_root is not None
        return self.staging_root / self.run_id

    def prepare(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise InvalidInput(
                [Problem("--out", f"{out} is a file, not a folder; give a folder for run folders")]
            )
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InvalidInput(
                [Problem("--out", f"cannot create {out}: {err.strerror or err}; give a writable folder")]
            ) from None
        self._refuse_existing()
        try:
            self.staging_root = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
            self.staging.mkdir()
        except OSError as err:
            self.discard()
            raise InvalidInput(
                [Problem("--out", f"cannot write in {out}: {err.strerror or err}; give a writable folder")]
            ) from None

    def _refuse_existing(self) -> None:
        if os.path.lexists(self.destination):
            raise InvalidInput(
                [
                    Problem(
                        "--name",
                        f"a run named {self.run_id!r} already exists in {self.out}: a run name is used once "
                        "(as Step Functions' ExecutionAlreadyExists); choose another --name or another --out",
                    )
                ]
            )

    def write_text(self, name: str, text: str) -> None:
        _create_file(self.staging / name, [text])

    def write_chunks(self, name: str, chunks: Iterable[str]) -> None:
        _create_file(self.staging / name, chunks)

    def publish(self) -> Path:
        """Move the finished folder into place; it never replaces an existing one."""
        self._refuse_existing()
        os.chmod(self.staging, 0o755 & ~_umask())
        os.rename(self.staging, self.destination)
        self.discard()
        return self.destination

    def discard(self) -> None:
        if self.staging_root is not None:
            shutil.rmtree(self.staging_root, ignore_errors=True)
            self.staging_root = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from workflow.render import terminal_text as text  # every string from data goes through it

    console = Console(highlight=False)
    totals = summary["totals"]
    types = resource_type_rows(summary)
    noun = "resources" if types else "instances"
    kind = "event run" if summary.get("source") == "event" else "run"
    table = Table(
        title=text(f"Tag policy {summary['policy']['name']!r}, {kind} {summary['run_id']}"),
        title_justify="left",
    )
    table.add_column(noun)
    table.add_column("count", justify="right")
    for label, key in (
        ("evaluated", "total"),
        ("compliant", "compliant"),
        ("noncompliant", "noncompliant"),
        ("exempt", "exempt"),
        ("in grace period", "in_grace_period"),
    ):
        table.add_row(label, str(totals[key]))
    table.add_row("compliance", percentage_text(totals))
    console.print(table)
    if types:
        by_type = {kind: {"compliant": good, "noncompliant": bad} for kind, good, bad in types}
        console.print(_counts_table("resource type", by_type))
        console.print(text(untagged_ebs_line(summary)))
    if summary["by_rule"]:
        console.print(_top_table("Violations by rule", "tag:code", noun, summary["by_rule"]))
        if len(summary["by_rule"]) > 10:
            more = len(summary["by_rule"]) - 10
            hint = f"tagwarden report --local {run_dir.parent} --run {summary['run_id']}"
            console.print(f"+{more} more ({hint})", markup=False, soft_wrap=True)
    if summary.get("noncompliant_by_creator"):
        title = "Noncompliant, by who created them (CloudTrail)"
        console.print(_top_table(title, "created by", noun, summary["noncompliant_by_creator"]))
    console.print(_counts_table("region", summary["by_region"]))
    if len(summary.get("by_account", {})) > 1:
        console.print(_counts_table("account", summary["by_account"]))
    for line in coverage_lines(summary):
        console.print(text(line))
    failed = [t for t in summary.get("targets", []) if t.get("status") != "ok"]
    if failed:
        console.print(f"[bold]Partial scan[/]: {len(failed)} account/region targets were not scanned:")
        for target in failed[:20]:
            console.print(text(f"  {target['account_id']} {target['region']}: {target.get('reason')}"))
    drift = summary.get("drift") or {}
    if drift.get("previous_run_id"):
        console.print(
            text(
                f"Drift since {drift['previous_run_id']} (same policy, "
                f"{drift.get('targets_compared_count', 0)} targets compared): "
                f"{len(drift.get('newly_noncompliant') or [])} became noncompliant, "
                f"{len(drift.get('newly_compliant') or [])} became compliant"
            )
        )
    for line in remediation_lines(summary.get("remediation"), None, requested=None):
        if line:
            console.print(text(line))
    console.print(text(f"Report folder: {run_dir}"))


def _counts_table(what: str, counts_by: dict[str, dict[str, int]]) -> Any:
    """``By region`` / ``By account``: compliant and noncompliant instances per key."""
    from rich.table import Table

    from workflow.render import terminal_text as text

    table = Table(title=f"By {what}", title_justify="left")
    table.add_column(what)
    table.add_column("compliant", justify="right")
    table.add_column("noncompliant", justify="right")
    for key, counts in counts_by.items():
        table.add_row(text(key), text(counts.get("compliant", 0)), text(counts.get("noncompliant", 0)))
    return table


def _earlier_summaries(out: Path) -> Iterator[dict[str, Any]]:
    """Finished, non-dry runs under ``out`` that can be drift baselines; anything else is skipped
    (a folder without a summary, a summary that is not one, a folder being written)."""
    for path in sorted(out.glob("*/summary.json")):
        if path.parent.name.startswith(".") or path.is_symlink() or path.parent.is_symlink():
            continue
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            summary = None
        if (
            isinstance(summary, dict)
            and isinstance(summary.get("run_id"), str)
            and _EXECUTION_NAME.match(summary["run_id"])
            and _is_timestamp(summary.get("evaluated_at"))
            and isinstance(summary.get("policy"), dict)
            and isinstance(summary["policy"].get("sha256"), str)
            and isinstance(summary.get("scanned_targets"), dict)
        ):
            if not summary.get("dry_run"):
                yield summary
            continue
        # A folder someone edited or truncated must not stop later runs: skip it, and say so.
        from workflow.render import printable

        print(
            printable(f"tagwarden: ignoring {path} for drift: not a Tagwarden run summary"), file=sys.stderr
        )


def _is_timestamp(value: Any) -> bool:
    """An ISO 8601 timestamp with a time zone, as ``evaluated_at`` is written.

    >>> _is_timestamp("2026-12-01T00:00:00+00:00"), _is_timestamp(5), _is_timestamp("yesterday")
    (True, False, False)
    """
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _seed_earlier_runs(local: Any, out: Path) -> None:
    """Give the fresh engine the earlier local runs (summary and policy index), so drift spans
    local runs as it spans scheduled runs on AWS: same policy, same targets."""
    from workflow import layout
    from workflow.engine.local import BUCKET
    from workflow.steps.persist_report import index_entry, indexed_runs
    from workflow.storage import put_json

    s3 = local.engine.client("s3")
    runs_by_policy: dict[str, list[dict[str, Any]]] = {}
    for summary in _earlier_summaries(out):
        key = layout.summary_key(summary["evaluated_at"][:10], summary["run_id"])
        put_json(s3, BUCKET, key, summary)
        sha = summary["policy"]["sha256"]
        entry = index_entry(summary["run_id"], summary["evaluated_at"], key, set(summary["scanned_targets"]))
        runs_by_policy[sha] = indexed_runs(runs_by_policy.get(sha, []), entry)
    for sha, runs in runs_by_policy.items():
        put_json(s3, BUCKET, layout.policy_runs_key(sha), {"policy_sha256": sha, "runs": runs})


_MAX_EVENT_FILE_BYTES: Final = 64 * 1024 * 1024


def _read_events(args: argparse.Namespace) -> list[Any] | None:
    """The events of ``--event`` files (each one event or a list), or None for a scheduled run."""
    paths = getattr(args, "event", None) or []
    if not paths:
        if getattr(args, "now", None):
            raise InvalidInput([Problem("--now", "only an event run (--event) has a start time to give")])
        return None
    for option in ("targets", "organization", "regions"):
        if getattr(args, option, None):
            raise InvalidInput(
                [
                    Problem(
                        f"--{option}",
                        "an event run checks the accounts and regions its events name, of those the dumps "
                        "cover; drop it",
                    )
                ]
            )
    events: list[Any] = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                raw = handle.read(_MAX_EVENT_FILE_BYTES + 1)
        except OSError as err:
            raise InvalidInput([Problem(path, f"cannot read file: {err.strerror or err}")]) from None
        if len(raw) > _MAX_EVENT_FILE_BYTES:
            raise InvalidInput([Problem(path, f"larger than {_MAX_EVENT_FILE_BYTES // 2**20} MiB of events")])
        try:
            document = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as err:
            raise InvalidInput([Problem(path, f"not a JSON event (or list of events): {err}")]) from None
        batch = document if isinstance(document, list) else [document]
        if not all(isinstance(event, dict) for event in batch):
            raise InvalidInput([Problem(path, "holds something other than EventBridge event objects")])
        events.extend(batch)
    return events


def _event_run_now(given: str | None, events: list[Any], policy_document: dict[str, Any]) -> str:
    """``--now``, or the newest event's time plus the grace period: the time by which every
    resource the events name can be judged, so a local event run never waits."""
    from workflow.events import event_time

    if given:
        try:
            datetime.fromisoformat(given.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput([Problem("--now", f"{given!r} is not an ISO 8601 time")]) from None
        return given
    times = []
    for event in events:
        try:
            times.append(event_time(event))
        except (ValueError, TypeError, AttributeError):
            continue  # not an event the run will use; the plan counts it
    if not times:
        return datetime.now(UTC).isoformat()
    grace = 60 * int((policy_document.get("scope") or {}).get("grace_period_minutes", 0))
    return datetime.fromtimestamp(max(times).timestamp() + grace, UTC).isoformat()


def run_locally(args: argparse.Namespace) -> int:
    """Run one scan on the embedded engine; returns the exit status of ``tagwarden run``
    (:mod:`workflow.verdict` has the table)."""
    from workflow.engine.local import LocalDeployment
    from workflow.progress import ExecutionProgress

    execution_input: dict[str, Any] = {"notify": args.notify}
    document: dict[str, Any] | None = None
    if args.policy:
        document = load_policy_document(
            read_policy_file(args.policy), source=args.policy, name=Path(args.policy).stem
        )
        compile_policy(document)
        execution_input["policy"] = document
    events = _read_events(args)
    regions = _regions(args.regions)
    run_id = _run_id(args.name)
    loaded = _fleet(args.fleet)
    fleet, repeated = loaded.instances, loaded.repeated
    if regions:
        execution_input["regions"] = regions
    add_scope_options(
        execution_input,
        targets_file=getattr(args, "targets", None),
        organization=getattr(args, "organization", False),
        exclude_accounts=getattr(args, "exclude_accounts", None),
    )
    folder = RunFolder(Path(args.out), run_id)
    folder.prepare()
    if repeated and not args.json:
        print(
            f"fleet: {repeated} repeated listings of the same instance id across the dumps; "
            "each instance is evaluated once (the last listing wins)",
            file=sys.stderr,
        )
    progress = None if args.json else ExecutionProgress()
    try:
        try:
            with (
                LocalDeployment(
                    fleet,
                    regions=regions,
                    resources=loaded.resources,
                    covered=loaded.covered,
                    # An event run checks with the deployed policy: --policy stands for it.
                    default_policy=document if events is not None else None,
                    # A policy's remediation acts on the in-memory fleet only: a local run shows
                    # what it would mark (each run starts with an empty record).
                    extra_environment={config.REMEDIATION: "true"},
                ) as local,
                _settled_collector(),
            ):
                _seed_earlier_runs(local, folder.out)
                if progress is not None:
                    print(
                        f"Execution {run_id} of {local.state_machine_arn} on the embedded engine",
                        file=sys.stderr,
                    )
                # Up to the definition's own TimeoutSeconds (7,200 s): a 100,000-instance dump takes
                # minutes on a busy laptop, and the engine stops the execution at its own timeout.
                if events is not None:
                    result = local.run_events(
                        events,
                        now=_event_run_now(args.now, events, local.default_policy),
                        name=run_id,
                        on_event=progress,
                        timeout=RUN_TIMEOUT_SECONDS,
                        parse_findings=False,
                    )
                else:
                    result = local.run(
                        execution_input,
                        name=run_id,
                        on_event=progress,
                        timeout=RUN_TIMEOUT_SECONDS,
                        parse_findings=False,
                    )
                if result.summary is not None and repeated:
                    result.summary.setdefault("coverage", {}).setdefault("instances", {})[
                        "duplicates_in_dumps"
                    ] = repeated
                # Still settled: the writer's first imports would otherwise start a full collection
                # of the whole heap (a second at 100,000 instances).
                run_dir = _write_run_folder(folder, result)
        finally:
            if progress is not None:
                progress.close()
    finally:
        folder.discard()
    results_kept()  # the run folder is whole: Ctrl-C while the summary prints is not a failure
    findings_path = run_dir / "findings.jsonl"
    summary = result.summary
    status = exit_status(result.status, result.error, summary, fail_on_violations=args.fail_on_violations)
    if args.json:
        totals = (summary or {}).get("totals") or {}
        print(
            json.dumps(
                {
                    "status": result.status,
                    "exit_status": status,
                    "execution_arn": result.execution_arn,
                    "summary": {
                        k: totals.get(k)
                        for k in ("total", "compliant", "noncompliant", "exempt", "compliance_percentage")
                    }
                    if totals
                    else None,
                    "findings_path": str(findings_path) if summary is not None else None,
                    "partial": (summary or {}).get("partial"),
                    "incomplete": (summary or {}).get("incomplete"),
                    "coverage": (summary or {}).get("coverage"),
                    **(
                        {"error": result.error, "cause": result.cause} if result.status != "SUCCEEDED" else {}
                    ),
                }
            )
        )
    elif summary is not None:
        _print_summary(summary, run_dir)
    if result.status != "SUCCEEDED" and not args.json:
        from workflow.render import terminal_line

        print(
            terminal_line(f"tagwarden: execution {result.status}: {result.error}: {result.cause}"),
            file=sys.stderr,
        )
        print(f"history: {run_dir / 'history.json'}", file=sys.stderr)
    elif status == EXIT_INCOMPLETE and not args.json:
        unchecked = _unchecked_events(result.history) if summary is None else None
        if unchecked:
            print(f"tagwarden: nothing to check: {unchecked}", file=sys.stderr)
        print(
            "tagwarden: incomplete scan (a target not scanned, or nothing evaluated): exit status 4",
            file=sys.stderr,
        )
    return status


def _top_table(title: str, label: str, noun: str, counts: dict[str, Any]) -> Any:
    """The first ten rows of a summary's count table (largest first, as stored)."""
    from rich.table import Table

    from workflow.render import terminal_text as text

    table = Table(title=title, title_justify="left")
    table.add_column(label)
    table.add_column(noun, justify="right")
    for key, count in list(counts.items())[:10]:
        table.add_row(text(key), text(count))
    return table


def _unchecked_events(history: list[dict[str, Any]]) -> str | None:
    r"""Why an event run checked nothing, from its plan (None for a scheduled run).

    >>> plan = {"events": {"messages": 2, "unreadable": 0, "ignored": 1, "not_covered": {"volume": 1},
    ...         "out_of_scope": [{"account_id": "1", "region": "ap-south-1", "resources": 1}]}}
    >>> print(_unchecked_events([{"type": "TaskStateExited", "stateExitedEventDetails": {
    ...     "name": "Plan event run", "output": json.dumps(plan)}}]).replace(", ", ",\n"))
    of 2 messages,
    1 named no checked resource,
    1 volume of a type the policy does not cover,
    1 resource(s) outside the scanned accounts and regions (1 ap-south-1)
    """
    from workflow.render import terminal_line

    for event in history:
        details = event.get("stateExitedEventDetails") or {}
        if event.get("type") != "TaskStateExited" or details.get("name") != "Plan event run":
            continue
        counts = (json.loads(details.get("output") or "{}") or {}).get("events") or {}
        parts = [f"of {counts.get('messages', 0)} messages"]
        if counts.get("unreadable"):
            parts.append(f"{counts['unreadable']} were not events")
        if counts.get("ignored"):
            parts.append(f"{counts['ignored']} named no checked resource")
        parts += [
            f"{n} {kind} of a type the policy does not cover"
            for kind, n in (counts.get("not_covered") or {}).items()
        ]
        outside = counts.get("out_of_scope") or []
        if outside:
            where = ", ".join(f"{o['account_id']} {o['region']}" for o in outside)
            total = sum(int(o.get("resources", 0)) for o in outside)
            parts.append(f"{total} resource(s) outside the scanned accounts and regions ({where})")
        return terminal_line(", ".join(parts))
    return None


def _write_run_folder(folder: RunFolder, result: Any) -> Path:
    """Write everything the run produced, summary last, and move the folder into place."""
    from workflow.graph import write_run_graph

    try:
        folder.write_text("history.json", _json_text(result.history))
        write_run_graph(folder.staging, result.history)
        folder.write_text("notifications.json", _json_text(result.notifications))
        if result.digests:
            folder.write_text("digests.json", _json_text(result.digests))
        if result.actions:
            # The actions table's rows, one per line (tagwarden query --local reads them).
            folder.write_text(
                "actions.jsonl", "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in result.actions)
            )
        folder.write_text("lambda-logs.txt", result.logs)
        if result.summary is not None:
            # The report's lines as Persist report wrote them (serialised once, by Evaluate),
            # decompressed a megabyte at a time.
            folder.write_chunks("findings.jsonl", _decompressed_text(result.findings_jsonl_gz or b""))
            folder.write_text("summary.json", _json_text(result.summary))
    except OSError as err:
        raise InvalidInput(
            [
                Problem(
                    "--out",
                    f"cannot write the run folder in {folder.out}: {err.strerror or err}; nothing was kept",
                )
            ]
        ) from None
    try:
        return folder.publish()
    except OSError as err:
        kept = folder.staging
        folder.staging_root = None  # keep the finished run where it is: nothing is lost
        raise InvalidInput(
            [
                Problem(
                    "--out",
                    f"cannot move the run folder into {folder.destination}: {err.strerror or err}; "
                    f"the complete run is in {kept}",
                )
            ]
        ) from None
