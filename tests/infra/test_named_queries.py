"""The named queries: well-formed files, and each one runs on DuckDB over the Glue schema.

DuckDB reads JSON Lines written the way the workflow writes them (gzip findings, one-line
summaries) under ``dt=/run=`` folders, with the column types of the Glue tables converted from
their Hive type strings, so a query that runs here runs over the deployed schema. The data: three
runs of the demo fleet, 10, 5 and 1 days ago; the latest run fixes a few instances, the middle run
one instance that regresses again.
"""

from __future__ import annotations

import gzip
import json
import re
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
from workflow.fleet import demo_fleet, iter_fleet_document
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


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Run]]:
    root = tmp_path_factory.mktemp("report-bucket")
    policy = load_policy(deployment.ROOT / "policies" / "baseline.json")
    fleet = [
        i for i in iter_fleet_document(demo_fleet(instances_per_region=40)) if in_scope(i.instance, policy)
    ]
    today = date.today()
    base = [
        evaluate_instance(i.instance, policy, region=i.region, account_id=i.account_id, now=datetime.now(UTC))
        for i in fleet
    ]
    noncompliant = [f["instance_id"] for f in base if not f["compliant"]]
    assert len(noncompliant) > 10
    regressed, fixed = noncompliant[0], set(noncompliant[1:6])
    result = []
    for run_id, days_ago, adjust in (
        ("scan-a", 10, lambda f: f),
        ("scan-c", 5, lambda f: _fix(f) if f["instance_id"] == regressed else f),
        ("scan-b", 1, lambda f: _fix(f) if f["instance_id"] in fixed else f),
    ):
        day = today - timedelta(days=days_ago)
        evaluated_at = f"{day.isoformat()}T06:00:00+00:00"
        findings = [
            {**adjust(f), "run_id": run_id, "evaluated_at": evaluated_at, "policy_name": policy.name}
            for f in base
        ]
        summary = (
            SummaryBuilder()
            .add_all(findings)
            .summary(
                run_id=run_id,
                policy_name=policy.name,
                policy_sha256=policy.sha256,
                evaluated_at=evaluated_at,
                extra={"status": "complete", "partial": False, "regions": ["us-east-1"], "dry_run": False},
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
    regressed = next(iter(first.noncompliant - middle.noncompliant))
    rows = _rows(db, "noncompliant_longer_than_days", days=5)
    assert {r["instance_id"] for r in rows} == latest.noncompliant - {regressed}
    assert {r["days_noncompliant"] for r in rows} == {10}
    assert regressed in {r["instance_id"] for r in _rows(db, "noncompliant_longer_than_days", days=0)}
    assert _rows(db, "noncompliant_longer_than_days", days=10) == []
