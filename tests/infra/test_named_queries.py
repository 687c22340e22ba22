"""The named queries: well-formed files, and each one runs on DuckDB over the Glue schema.

DuckDB reads JSON Lines written the way the workflow writes them (gzip findings, one-line
summaries) under ``dt=/run=`` folders, with the column types of the Glue tables converted from
their Hive type strings, so a query that runs here runs over the deployed schema. The data: three
runs of the demo fleet spread over three accounts (the third only in one region), 10, 5 and 1 days
ago; the latest run fixes a few instances, the middle run one instance that regresses again, and
the middle run could not reach the third account (a partial scan: no findings from it).
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from tagwarden_cdk.catalog import FINDINGS_TABLE, RUNS_TABLE, TableSpec

from tests.infra.conftest import CDK_DIR  # noqa: F401  (puts cdk/ on sys.path)
from workflow import deployment
from workflow.evaluator import evaluate_instance, in_scope
from workflow.fleet import DEMO_REGIONS, demo_fleet, iter_fleet_document
from workflow.policy import load_policy
from workflow.queries import NAMED_QUERIES, count_placeholders, parse_named_query
from workflow.report import SummaryBuilder

# -- Hive type strings (Glue) to DuckDB types ------------------------------------------------------

_SCALARS = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
}


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"<": 1, ">": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def duckdb_type(hive: str) -> str:
    hive = hive.strip()
    if hive in _SCALARS:
        return _SCALARS[hive]
    match = re.fullmatch(r"(array|map|struct)<(.*)>", hive)
    assert match, hive
    kind, inner = match.groups()
    if kind == "array":
        return f"{duckdb_type(inner)}[]"
    if kind == "map":
        key, value = _split_top_level(inner)
        return f"MAP({duckdb_type(key)}, {duckdb_type(value)})"
    fields = [field.split(":", 1) for field in _split_top_level(inner)]
    return "STRUCT(" + ", ".join(f'"{name}" {duckdb_type(kind)}' for name, kind in fields) + ")"


def test_hive_types_convert_to_duckdb_types() -> None:
    assert duckdb_type("array<struct<code:string,key:string>>") == 'STRUCT("code" VARCHAR, "key" VARCHAR)[]'
    assert duckdb_type("map<string,struct<a:int,b:int>>") == 'MAP(VARCHAR, STRUCT("a" INTEGER, "b" INTEGER))'


# -- a report bucket on disk -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    run_id: str
    dt: str
    findings: list[dict[str, Any]]
    summary: dict[str, Any]

    @property
    def noncompliant(self) -> set[str]:
        return {f["instance_id"] for f in self.findings if not f["compliant"]}


def _fix(finding: dict[str, Any]) -> dict[str, Any]:
    return {**finding, "compliant": True, "violations": []}


ACCOUNT_A, ACCOUNT_B, ACCOUNT_C = "111111111111", "222222222222", "333333333333"
ACCOUNTS = (ACCOUNT_A, ACCOUNT_B, ACCOUNT_C)


def _account_of(index: int, region: str) -> str:
    """A of most instances, B of every third, C of a few in the first region only, so an account is
    neither a region nor a fixed share of one."""
    if region == DEMO_REGIONS[0] and index % 5 == 0:
        return ACCOUNT_C
    return ACCOUNT_B if index % 3 == 0 else ACCOUNT_A


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Run]]:
    root = tmp_path_factory.mktemp("report-bucket")
    policy = load_policy(deployment.ROOT / "policies" / "baseline.json")
    fleet = [
        i for i in iter_fleet_document(demo_fleet(instances_per_region=40)) if in_scope(i.instance, policy)
    ]
    today = date.today()
    base = [
        evaluate_instance(
            i.instance,
            policy,
            region=i.region,
            account_id=_account_of(index, i.region),
            now=datetime.now(UTC),
        )
        for index, i in enumerate(fleet)
    ]
    # Changes only in accounts A and B: the middle run has no findings from C.
    noncompliant = [f["instance_id"] for f in base if not f["compliant"] and f["account_id"] != ACCOUNT_C]
    assert len(noncompliant) > 10
    regressed, fixed = noncompliant[0], set(noncompliant[1:6])
    result = []
    for run_id, days_ago, adjust, reached in (
        ("scan-a", 10, lambda f: f, set(ACCOUNTS)),
        ("scan-c", 5, lambda f: _fix(f) if f["instance_id"] == regressed else f, {ACCOUNT_A, ACCOUNT_B}),
        ("scan-b", 1, lambda f: _fix(f) if f["instance_id"] in fixed else f, set(ACCOUNTS)),
    ):
        day = today - timedelta(days=days_ago)
        evaluated_at = f"{day.isoformat()}T06:00:00+00:00"
        findings = [
            {**adjust(f), "run_id": run_id, "evaluated_at": evaluated_at, "policy_name": policy.name}
            for f in base
            if f["account_id"] in reached
        ]
        summary = (
            SummaryBuilder()
            .add_all(findings)
            .summary(
                run_id=run_id,
                policy_name=policy.name,
                policy_sha256=policy.sha256,
                evaluated_at=evaluated_at,
                extra={
                    "status": "complete",
                    "partial": reached != set(ACCOUNTS),
                    "regions": list(DEMO_REGIONS),
                    "dry_run": False,
                },
            )
        )
        dt = day.isoformat()
        findings_dir = root / FINDINGS_TABLE.prefix / f"dt={dt}" / f"run={run_id}"
        findings_dir.mkdir(parents=True)
        with gzip.open(findings_dir / "findings.jsonl.gz", "wt", encoding="utf-8") as out:
            out.writelines(json.dumps(f, separators=(",", ":")) + "\n" for f in findings)
        runs_dir = root / RUNS_TABLE.prefix / f"dt={dt}" / f"run={run_id}"
        runs_dir.mkdir(parents=True)
        (runs_dir / "summary.json").write_text(json.dumps(summary, separators=(",", ":")) + "\n")
        result.append(Run(run_id, dt, findings, summary))
    return root, result


def _view(connection: duckdb.DuckDBPyConnection, root: Path, spec: TableSpec, pattern: str) -> None:
    columns = "{" + ", ".join(f"'{name}': '{duckdb_type(kind)}'" for name, kind, _ in spec.columns) + "}"
    connection.execute(
        f"CREATE VIEW {spec.name} AS SELECT * FROM read_json('{root / spec.prefix}/*/*/{pattern}', "
        f"format='newline_delimited', columns={columns}, hive_partitioning=true, "
        "hive_types={'dt': 'VARCHAR', 'run': 'VARCHAR'})"
    )


@pytest.fixture(scope="module")
def db(runs: tuple[Path, list[Run]]) -> Iterator[duckdb.DuckDBPyConnection]:
    root, _ = runs
    connection = duckdb.connect()
    _view(connection, root, FINDINGS_TABLE, "*.jsonl.gz")
    _view(connection, root, RUNS_TABLE, "*.json")
    yield connection
    connection.close()


def _rows(db: duckdb.DuckDBPyConnection, name: str, **values: int) -> list[dict[str, Any]]:
    query = NAMED_QUERIES[name]
    cursor = db.execute(query.sql, query.bind(values))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# -- the files --------------------------------------------------------------------------------------


def test_every_query_has_a_title_a_description_and_one_param_line_per_placeholder() -> None:
    assert NAMED_QUERIES
    for query in NAMED_QUERIES.values():
        assert query.title and query.description
        assert count_placeholders(query.sql) == len(query.parameters)
        assert len(query.full_description) <= 1024
        assert len(query.title) <= 128


def test_query_header_errors_are_reported_with_the_file_name() -> None:
    with pytest.raises(ValueError, match=r"x\.sql: 1 '\?' markers but 0"):
        parse_named_query("x", "-- title: t\n-- description: d\nSELECT ?")
    with pytest.raises(ValueError, match="malformed parameter"):
        parse_named_query("x", "-- title: t\n-- description: d\n-- param: days\nSELECT ?")
    with pytest.raises(ValueError, match="no '-- title:' line"):
        parse_named_query("x", "-- description: d\nSELECT 1")


def test_bind_fills_defaults_and_rejects_unknown_or_non_integer_values() -> None:
    query = NAMED_QUERIES["noncompliant_longer_than_days"]
    assert query.bind() == [30]
    with pytest.raises(KeyError):
        query.bind({"weeks": 2})
    with pytest.raises(TypeError):
        query.bind({"days": "7"})  # type: ignore[dict-item]


# -- the queries on DuckDB -----------------------------------------------------------------------


def test_noncompliant_latest_run_lists_the_latest_runs_noncompliant_instances(
    db: duckdb.DuckDBPyConnection, runs: tuple[Path, list[Run]]
) -> None:
    latest = runs[1][-1]
    rows = _rows(db, "noncompliant_latest_run")
    assert {r["instance_id"] for r in rows} == latest.noncompliant
    assert {r["run_id"] for r in rows} == {"scan-b"}
    assert all(r["violations"] for r in rows)


def test_compliance_trend_has_one_row_per_day_within_the_window(
    db: duckdb.DuckDBPyConnection, runs: tuple[Path, list[Run]]
) -> None:
    by_day = {r.dt: r for r in runs[1]}
    rows = _rows(db, "compliance_trend_daily")
    assert [r["day"] for r in rows] == sorted(by_day)
    for row in rows:
        totals = by_day[row["day"]].summary["totals"]
        assert row["compliance_percentage"] == pytest.approx(totals["compliance_percentage"])
        assert row["noncompliant"] == totals["noncompliant"]
    assert len(_rows(db, "compliance_trend_daily", days=3)) == 1


def test_noncompliant_by_owner_region_and_rule_add_up_to_the_latest_run(
    db: duckdb.DuckDBPyConnection, runs: tuple[Path, list[Run]]
) -> None:
    latest = runs[1][-1]
    totals = latest.summary["totals"]
    by_owner = _rows(db, "noncompliant_by_owner")
    assert sum(r["noncompliant"] for r in by_owner) == totals["noncompliant"]
    assert {r["owner"]: r["noncompliant"] for r in by_owner} == latest.summary["noncompliant_by_owner"]
    by_region = _rows(db, "noncompliant_by_region")
    assert sum(r["instances"] for r in by_region) == totals["total"]
    assert sum(r["noncompliant"] for r in by_region) == totals["noncompliant"]
    by_rule = _rows(db, "noncompliant_by_rule")
    assert {f"{r['tag_key']}:{r['violation']}": r["violations"] for r in by_rule} == latest.summary["by_rule"]


def test_noncompliant_longer_than_days_counts_the_streak_since_the_last_compliant_run(
    db: duckdb.DuckDBPyConnection, runs: tuple[Path, list[Run]]
) -> None:
    first, middle, latest = runs[1]
    # Fixed in the middle run only (the middle run's missing account is not "fixed").
    (regressed,) = first.noncompliant & {f["instance_id"] for f in middle.findings if f["compliant"]}
    rows = _rows(db, "noncompliant_longer_than_days", days=5)
    assert {r["resource_id"] for r in rows} == latest.noncompliant - {regressed}
    assert {r["resource_type"] for r in rows} == {"instance"}
    assert {r["days_noncompliant"] for r in rows} == {10}
    assert regressed in {r["resource_id"] for r in _rows(db, "noncompliant_longer_than_days", days=0)}
    assert _rows(db, "noncompliant_longer_than_days", days=10) == []


# -- grouped by account ------------------------------------------------------------------------------


def _percentage(compliant: int, total: int) -> float:
    return round(100 * compliant / total, 2)


def test_the_fixture_spans_three_accounts_that_are_not_regions(runs: tuple[Path, list[Run]]) -> None:
    latest = runs[1][-1]
    regions_of: dict[str, set[str]] = defaultdict(set)
    for f in latest.findings:
        regions_of[f["account_id"]].add(f["region"])
    assert regions_of == {
        ACCOUNT_A: set(DEMO_REGIONS),
        ACCOUNT_B: set(DEMO_REGIONS),
        ACCOUNT_C: {DEMO_REGIONS[0]},
    }
    assert all(latest.summary["by_account"][a]["noncompliant"] for a in ACCOUNTS)


def test_compliance_by_account_rolls_each_account_up_with_its_worst_rule(
    db: duckdb.DuckDBPyConnection, runs: tuple[Path, list[Run]]
) -> None:
    latest = runs[1][-1]
    expected = []
    for account in ACCOUNTS:
        mine = [f for f in latest.findings if f["account_id"] == account]
        bad = [f for f in mine if not f["compliant"]]
        breaking: dict[str, set[str]] = defaultdict(set)
        for f in bad:
            for v in f["violations"]:
                breaking[f"{v['key']}:{v['code']}"].add(f["instance_id"])
        worst = min(breaking, key=lambda rule: (-len(breaking[rule]), rule))
        expected.append(
            {
                "account_id": account,
                "regions": len({f["region"] for f in mine}),
                "instances": len(mine),
                "noncompliant": len(bad),
                "compliance_percentage": pytest.approx(_percentage(len(mine) - len(bad), len(mine))),
                "worst_rule": worst,
                "worst_rule_instances": len(breaking[worst]),
            }
        )
    expected.sort(key=lambda r: (-r["noncompliant"], r["account_id"]))
    rows = _rows(db, "compliance_by_account")
    assert rows == expected
    assert [r["regions"] for r in sorted(rows, key=lambda r: r["account_id"])] == [3, 3, 1]
    # The same counts as the run summary's by_account.
    assert {r["account_id"]: (r["instances"] - r["noncompliant"], r["noncompliant"]) for r in rows} == {
        a: (c.get("compliant", 0), c.get("noncompliant", 0)) for a, c in latest.summary["by_account"].items()
    }


def test_compliance_by_account_has_no_worst_rule_for_a_clean_account() -> None:
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE runs AS SELECT '2026-01-01' AS dt, 'r1' AS run, '2026-01-01T00:00:00+00:00' AS evaluated_at, "
        "CAST(NULL AS VARCHAR) AS source"
    )
    connection.execute(
        "CREATE TABLE findings AS SELECT * FROM (VALUES "
        "('2026-01-01', 'r1', '1', 'us-east-1', 'i-1', NULL, true, "
        "CAST([] AS STRUCT(code VARCHAR, key VARCHAR, value VARCHAR, message VARCHAR)[])), "
        "('2026-01-01', 'r1', '2', 'us-east-1', 'i-2', 'i-2', false, "
        "[{'code': 'missing', 'key': 'Owner', 'value': NULL, 'message': 'm'}])) "
        "AS t(dt, run, account_id, region, instance_id, resource_id, compliant, violations)"
    )
    rows = _rows(connection, "compliance_by_account")
    connection.close()
    assert [
        (r["account_id"], r["noncompliant"], r["worst_rule"], r["worst_rule_instances"]) for r in rows
    ] == [
        ("2", 1, "Owner:missing", 1),
        ("1", 0, None, None),
    ]


def test_noncompliant_by_account_and_owner_splits_owners_per_account(
    db: duckdb.DuckDBPyConnection, runs: tuple[Path, list[Run]]
) -> None:
    latest = runs[1][-1]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for f in latest.findings:
        groups[(f["account_id"], f["owner"] or "(no owner)")].append(f)
    expected = []
    for (account, owner), members in groups.items():
        bad = sum(not f["compliant"] for f in members)
        if bad:
            expected.append(
                {
                    "account_id": account,
                    "owner": owner,
                    "instances": len(members),
                    "noncompliant": bad,
                    "compliance_percentage": pytest.approx(_percentage(len(members) - bad, len(members))),
                }
            )
    expected.sort(key=lambda r: (r["account_id"], -r["noncompliant"], r["owner"]))
    rows = _rows(db, "noncompliant_by_account_and_owner")
    assert rows == expected
    assert [r["account_id"] for r in rows] == sorted(r["account_id"] for r in rows)
    # Some owner has noncompliant instances in several accounts, and the rows add up to the
    # organisation-wide count of the summary (and of noncompliant_by_owner).
    per_owner: Counter[str] = Counter()
    for r in rows:
        per_owner[r["owner"]] += r["noncompliant"]
    assert any(len({r["account_id"] for r in rows if r["owner"] == o}) > 1 for o in per_owner)
    assert dict(per_owner) == latest.summary["noncompliant_by_owner"]
    assert dict(per_owner) == {r["owner"]: r["noncompliant"] for r in _rows(db, "noncompliant_by_owner")}


def test_noncompliant_by_account_and_rule_counts_each_accounts_violations(
    db: duckdb.DuckDBPyConnection, runs: tuple[Path, list[Run]]
) -> None:
    latest = runs[1][-1]
    instances: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    count: Counter[tuple[str, str, str]] = Counter()
    for f in latest.findings:
        if f["compliant"]:
            continue
        for v in f["violations"]:
            instances[(f["account_id"], v["key"], v["code"])].add(f["instance_id"])
            count[(f["account_id"], v["key"], v["code"])] += 1
    expected = [
        {"account_id": a, "tag_key": k, "violation": c, "instances": len(ids), "violations": count[(a, k, c)]}
        for (a, k, c), ids in instances.items()
    ]
    expected.sort(key=lambda r: (r["account_id"], -r["instances"], r["tag_key"], r["violation"]))
    rows = _rows(db, "noncompliant_by_account_and_rule")
    assert rows == expected
    assert {r["account_id"] for r in rows} == set(ACCOUNTS)
    by_rule: Counter[str] = Counter()
    for r in rows:
        by_rule[f"{r['tag_key']}:{r['violation']}"] += r["violations"]
    assert dict(by_rule) == latest.summary["by_rule"]


def test_compliance_trend_by_account_has_one_row_per_day_and_account_scanned(
    db: duckdb.DuckDBPyConnection, runs: tuple[Path, list[Run]]
) -> None:
    expected = []
    for run in runs[1]:
        for account in sorted({f["account_id"] for f in run.findings}):
            mine = [f for f in run.findings if f["account_id"] == account]
            bad = sum(not f["compliant"] for f in mine)
            expected.append(
                {
                    "day": run.dt,
                    "account_id": account,
                    "runs": 1,
                    "last_run_id": run.run_id,
                    "evaluated": len(mine),
                    "noncompliant": bad,
                    "exempt": sum(bool(f["exempt"]) for f in mine),
                    "compliance_percentage": pytest.approx(_percentage(len(mine) - bad, len(mine))),
                }
            )
    expected.sort(key=lambda r: (r["day"], r["account_id"]))
    rows = _rows(db, "compliance_trend_by_account")
    assert rows == expected
    middle = runs[1][1]
    assert [r["account_id"] for r in rows if r["day"] == middle.dt] == [ACCOUNT_A, ACCOUNT_B]  # C not reached
    # Per day, the accounts add up to the run's totals (the daily trend).
    for day in {r["day"] for r in rows}:
        totals = next(run.summary["totals"] for run in runs[1] if run.dt == day)
        assert sum(r["evaluated"] for r in rows if r["day"] == day) == totals["total"]
        assert sum(r["noncompliant"] for r in rows if r["day"] == day) == totals["noncompliant"]
    assert {r["day"] for r in _rows(db, "compliance_trend_by_account", days=3)} == {runs[1][-1].dt}


def test_compliance_trend_by_account_takes_the_days_last_run_that_scanned_the_account() -> None:
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE findings AS SELECT * FROM (VALUES "
        # Account 1: two runs on the day, the later one fixes i-1. Account 2: only in the earlier run.
        "(CAST(current_date AS VARCHAR), 'early', '1', 'i-1', false, false, '2026-01-01T01:00:00+00:00', NULL), "
        "(CAST(current_date AS VARCHAR), 'early', '1', 'i-2', true, true, '2026-01-01T01:00:00+00:00', NULL), "
        "(CAST(current_date AS VARCHAR), 'early', '2', 'i-3', false, false, '2026-01-01T01:00:00+00:00', NULL), "
        "(CAST(current_date AS VARCHAR), 'late', '1', 'i-1', true, false, '2026-01-01T09:00:00+00:00', NULL), "
        "(CAST(current_date AS VARCHAR), 'late', '1', 'i-2', true, false, '2026-01-01T09:00:00+00:00', NULL), "
        # An event run later that day checks one resource: the trend keeps the day's scheduled run.
        "(CAST(current_date AS VARCHAR), 'event', '1', 'i-1', false, false, '2026-01-01T10:00:00+00:00', 'event')) "
        "AS t(dt, run_id, account_id, instance_id, compliant, exempt, evaluated_at, source)"
    )
    rows = _rows(connection, "compliance_trend_by_account")
    connection.close()
    assert [
        (r["account_id"], r["runs"], r["last_run_id"], r["evaluated"], r["noncompliant"], r["exempt"])
        for r in rows
    ] == [("1", 2, "late", 2, 0, 0), ("2", 1, "early", 1, 1, 0)]
    assert [r["compliance_percentage"] for r in rows] == [100.0, 0.0]
