"""The lean data path of a real execution on the embedded engine: the fleet endpoint's shared
instances are never mutated, staged pages hold only what evaluation reads and still give the
findings the whole instances give, the report is the staged gzip members, readable by DuckDB, and
the summary is built from the staged summary fields, with what the findings themselves give."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import duckdb
import orjson
import pytest

from workflow import layout
from workflow.engine.local import BUCKET, LocalDeployment, RunResult
from workflow.evaluator import EVALUATED_FIELDS, evaluate_instance
from workflow.fleet import demo_fleet, iter_fleet_document
from workflow.policy import compile_policy
from workflow.report import SummaryBuilder, bounded_table, summary_fields

RUN_FIELDS = ("run_id", "evaluated_at", "policy_name")


def digest(by_region: dict[str, Any]) -> bytes:
    return orjson.dumps(by_region, option=orjson.OPT_SORT_KEYS, default=str)


@pytest.fixture(scope="module")
def deployment() -> Iterator[LocalDeployment]:
    fleet = list(iter_fleet_document(demo_fleet(), source="demo fleet"))
    with LocalDeployment(fleet, retry_wait_scale=0) as local:
        yield local


@pytest.fixture(scope="module")
def scan(deployment: LocalDeployment) -> tuple[RunResult, bytes]:
    before = digest(deployment.fleet._by_region)
    result = deployment.run({"notify": "always"}, name="lean-staging")
    assert result.status == "SUCCEEDED", result.cause
    return result, before


def objects(deployment: LocalDeployment, prefix: str) -> dict[str, bytes]:
    s3 = deployment.engine.client("s3")
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for item in page.get("Contents", [])
    ]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def test_a_whole_run_leaves_the_endpoints_shared_instances_as_they_were(
    deployment: LocalDeployment, scan: tuple[RunResult, bytes]
) -> None:
    result, before = scan
    assert result.findings
    assert digest(deployment.fleet._by_region) == before


def test_staged_pages_hold_only_the_evaluated_fields_and_give_the_findings_of_whole_instances(
    deployment: LocalDeployment, scan: tuple[RunResult, bytes]
) -> None:
    result, _ = scan
    pages = objects(deployment, f"staging/{result.summary['run_id']}/inventory/")  # type: ignore[index]
    staged = [
        instance
        for body in pages.values()
        for reservation in orjson.loads(gzip.decompress(body))["Reservations"]
        for instance in reservation["Instances"]
    ]
    assert len(staged) == len(result.findings)
    for instance in staged:
        assert set(instance) <= set(EVALUATED_FIELDS)
        assert set(instance["State"]) == {"Name"}
        assert set(instance.get("Placement", {})) <= {"AvailabilityZone"}

    policy = compile_policy(deployment.default_policy)
    now = datetime.fromisoformat(result.summary["evaluated_at"])  # type: ignore[index]
    whole = {
        instance["InstanceId"]: (region, account, instance)
        for region, pairs in deployment.fleet._by_region.items()
        for account, instance in pairs
    }
    for finding in result.findings:
        region, account, instance = whole[finding["instance_id"]]
        expected = evaluate_instance(instance, policy, region=region, account_id=account, now=now)
        assert {k: v for k, v in finding.items() if k not in RUN_FIELDS} == expected


def test_the_report_is_the_staged_findings_members_and_duckdb_reads_it_whole(
    deployment: LocalDeployment, scan: tuple[RunResult, bytes], tmp_path: Any
) -> None:
    result, _ = scan
    run_id = result.summary["run_id"]  # type: ignore[index]
    staged = objects(deployment, layout.staged_findings_prefix(run_id))
    report_key = result.output["result"]["report"]["findings_key"]  # type: ignore[index]
    report = objects(deployment, report_key)[report_key]

    assert len(staged) > 1  # several targets: several members
    assert len(report) == sum(len(body) for body in staged.values())
    assert all(body in report for body in staged.values())

    path = tmp_path / "findings.jsonl.gz"
    path.write_bytes(report)
    # Typed columns, as workflow.local_query reads findings (tag maps vary per instance).
    rows = duckdb.sql(
        f"select count(*), count(distinct instance_id) from read_json('{path}', "
        "format='newline_delimited', compression='gzip', "
        "columns={'instance_id': 'VARCHAR', 'compliant': 'BOOLEAN'})"
    ).fetchall()
    assert rows == [(len(result.findings), len(result.findings))]


def test_the_summary_comes_from_staged_summary_fields_that_match_the_findings_line_for_line(
    deployment: LocalDeployment, scan: tuple[RunResult, bytes]
) -> None:
    result, _ = scan
    run_id = result.summary["run_id"]  # type: ignore[index]
    findings = objects(deployment, layout.staged_findings_prefix(run_id))
    fields = objects(deployment, layout.staged_summary_fields_prefix(run_id))
    assert len(fields) == len(findings) > 1
    for key, body in findings.items():
        account, region = key.removeprefix(layout.staged_findings_prefix(run_id)).split("/")
        staged = [orjson.loads(line) for line in gzip.decompress(body).splitlines()]
        lines = gzip.decompress(
            fields[layout.staged_summary_fields_key(run_id, account, region.removesuffix(".jsonl.gz"))]
        )
        assert [orjson.loads(line) for line in lines.splitlines()] == [summary_fields(f) for f in staged]
        assert len(lines) < len(gzip.decompress(body)) / 2  # what the summary needs is a fraction

    rebuilt = SummaryBuilder().add_all(result.findings)
    assert result.summary["totals"] == rebuilt.totals()  # type: ignore[index]
    assert result.summary["by_rule"] == bounded_table(rebuilt.by_rule)  # type: ignore[index]
