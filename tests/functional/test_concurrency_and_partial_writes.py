"""S3 failing in the middle of "Persist report", and executions that overlap, on the embedded engine.

What a reader of the report bucket may see of a run is the contract under test:

- through the run's summary (the ``runs`` table every named query starts from, ``tagwarden
  status``, the latest-run pointer, drift) a run's report is absent or whole, at every moment;
- a failed persist leaves nothing a redrive cannot finish: the redrive repeats the same writes to
  the same keys and the report becomes whole;
- the findings object appears whole or not at all, also as a multipart upload;
- two executions at once are two complete, separate runs; an execution name cannot be reused.

Faults are injected into the S3 client the steps use, through botocore's ``before-call`` hook (the
way the local engine serves EC2): the call never reaches moto and fails as S3 would after
botocore's own retries. moto has no RedriveExecution, so a redrive is simulated the way Step
Functions performs it for the failed state: the failed Task is invoked again with the parameters
its TaskScheduled event recorded.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import io
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3.s3.inject
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from tests.functional.history import states_entered, task_errors
from workflow import aws, layout
from workflow.engine.local import BUCKET, DEFAULT_POLICY, LocalDeployment
from workflow.fleet import FleetInstance, demo_fleet, iter_fleet_document
from workflow.storage import get_json, get_json_if_exists, iter_jsonl_gz

REGION = "us-east-1"
EXECUTION_INPUT = {"regions": [REGION], "notify": "never"}
PERSIST = "Persist report"


def small_fleet() -> list[FleetInstance]:
    return [i for i in iter_fleet_document(demo_fleet(instances_per_region=5, seed=11)) if i.region == REGION]


def in_scope_ids() -> set[str]:
    states = set(json.loads(DEFAULT_POLICY.read_text())["scope"]["states"])
    return {i.instance["InstanceId"] for i in small_fleet() if i.instance["State"]["Name"] in states}


@pytest.fixture(scope="module")
def local() -> Iterator[LocalDeployment]:
    with LocalDeployment(small_fleet(), regions=[REGION], retry_wait_scale=0) as deployed:
        first = deployed.run(EXECUTION_INPUT, name="partial-writes-first-run")
        assert first.status == "SUCCEEDED", first.cause
        yield deployed


@pytest.fixture(autouse=True)
def _handlers_one_at_a_time(local: LocalDeployment) -> Iterator[None]:
    yield
    local.engine.serialize_invocations = True


# -- S3 faults on the steps' client ------------------------------------------------------------------


class _Response(AWSResponse):  # type: ignore[misc]
    def __init__(self, status: int) -> None:
        super().__init__("https://s3.local.tagwarden", status, {}, None)

    @property
    def content(self) -> bytes:
        return b""


@dataclass
class _Rule:
    operation: str
    matches: Callable[[str], bool]
    code: str
    status: int
    times: int | None  # None: every call
    function: str | None  # only calls made by this Lambda function (None: any caller)


@dataclass
class S3Calls:
    """Hooks on the S3 client of the steps: fail chosen calls, run callbacks around them, and
    record every call as ``(operation, key, HTTP status, ETag)``."""

    rules: list[_Rule] = field(default_factory=list)
    before: list[tuple[str, Callable[[str, dict[str, Any]], None]]] = field(default_factory=list)
    after: list[tuple[str, Callable[[str, int], None]]] = field(default_factory=list)
    calls: list[tuple[str, str, int, str | None]] = field(default_factory=list)

    def fail(
        self,
        operation: str,
        matches: Callable[[str], bool],
        *,
        code: str = "InternalError",
        status: int = 500,
        times: int | None = None,
        function: str | None = None,
    ) -> None:
        self.rules.append(_Rule(operation, matches, code, status, times, function))

    def clear(self) -> None:
        self.rules.clear()

    def on(self, operation: str, callback: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``callback(key, api_params)`` before each ``operation``, in the calling thread."""
        self.before.append((operation, callback))

    def on_done(self, operation: str, callback: Callable[[str, int], None]) -> None:
        """Call ``callback(key, http_status)`` after each ``operation``, in the calling thread."""
        self.after.append((operation, callback))

    def etags(self, operation: str, key: str) -> list[str | None]:
        return [etag for op, k, status, etag in self.calls if (op, k, status) == (operation, key, 200)]

    def _remember(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["tagwarden_s3_key"] = params.get("Key", "")
        for operation, callback in self.before:
            if operation == model.name:
                callback(str(params.get("Key", "")), params)

    def _answer(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        key = context.get("tagwarden_s3_key", "")
        for rule in self.rules:
            caller = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")  # set inside a handler (and its threads)
            if rule.function not in {None, caller}:
                continue
            if rule.operation == model.name and rule.matches(key) and rule.times != 0:
                if rule.times is not None:
                    rule.times -= 1
                parsed = {
                    "Error": {"Code": rule.code, "Message": f"injected {rule.code} on {key}"},
                    "ResponseMetadata": {"HTTPStatusCode": rule.status},
                }
                return _Response(rule.status), parsed
        return None

    def _record(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        key = context.get("tagwarden_s3_key", "")
        self.calls.append((model.name, key, http_response.status_code, parsed.get("ETag")))
        for operation, callback in self.after:
            if operation == model.name:
                callback(key, http_response.status_code)


@contextlib.contextmanager
def s3_calls() -> Iterator[S3Calls]:
    hooks = S3Calls()
    events = aws.client("s3").meta.events  # the very client every step's handler uses
    registered = [
        ("before-parameter-build.s3.*", hooks._remember),
        ("before-call.s3.*", hooks._answer),
        ("after-call.s3.*", hooks._record),
    ]
    for event, handler in registered:
        events.register_first(event, handler, unique_id=f"tagwarden-test-{event}")
    try:
        yield hooks
    finally:
        for event, handler in registered:
            events.unregister(event, handler, unique_id=f"tagwarden-test-{event}")


# -- what readers see ---------------------------------------------------------------------------------------


def object_etags(local: LocalDeployment, prefix: str = "") -> dict[str, str]:
    s3 = local.engine.client("s3")
    etags = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            etags[item["Key"]] = item["ETag"]
    return etags


def report_keys(local: LocalDeployment, run_id: str) -> set[str]:
    return {k for k in object_etags(local, "reports/") if f"/run={run_id}/" in k}


def latest_run_id(local: LocalDeployment) -> str | None:
    pointer = get_json_if_exists(local.engine.client("s3"), BUCKET, layout.LATEST_RUN_KEY)
    return None if pointer is None else str(pointer["run_id"])


def summary_reader(local: LocalDeployment, run_id: str) -> str:
    """What a reader that finds runs through their summary sees: ``absent`` or ``whole``.

    The ``runs`` table, every named query, ``tagwarden status`` and drift work this way: the
    summary names the run, and its findings must then be there and agree with it.
    """
    s3 = local.engine.client("s3")
    summaries = [k for k in report_keys(local, run_id) if k.endswith("/summary.json")]
    if not summaries:
        return "absent"
    [summary_key] = summaries
    summary = get_json(s3, BUCKET, summary_key)
    dt = summary_key.split("dt=", 1)[1].split("/", 1)[0]
    try:
        findings = list(iter_jsonl_gz(s3, BUCKET, layout.findings_key(dt, run_id)))
    except Exception as err:  # the summary names findings that cannot be read: a partial report
        return f"partial: {err}"
    if len(findings) != summary["totals"]["total"] or {f["instance_id"] for f in findings} != in_scope_ids():
        return "partial: findings and summary disagree"
    return "whole"


def findings_object(local: LocalDeployment, run_id: str) -> list[dict[str, Any]] | None:
    """The run's findings object as a reader listing reports/findings/ gets it, or None."""
    keys = [k for k in report_keys(local, run_id) if k.endswith("/findings.jsonl.gz")]
    if not keys:
        return None
    [key] = keys
    return list(iter_jsonl_gz(local.engine.client("s3"), BUCKET, key))


# -- runs and redrives ------------------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    arn: str
    status: str
    error: str | None
    history: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    logs: str


def collect(local: LocalDeployment, arn: str, logs: io.StringIO) -> Run:
    description = local.engine.wait(arn, timeout=120)
    return Run(
        name=description["name"],
        arn=arn,
        status=description["status"],
        error=description.get("error"),
        history=local.engine.history(arn),
        dead_letters=local.drain_dead_letters(),
        logs=logs.getvalue(),
    )


def run(local: LocalDeployment, name: str, execution_input: dict[str, Any] = EXECUTION_INPUT) -> Run:
    logs = io.StringIO()  # the handlers' stdout: their CloudWatch log, EMF lines included
    with contextlib.redirect_stdout(logs):
        return collect(local, local.start(execution_input, name=name), logs)


def scheduled_tasks(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parameters of every Lambda Task the execution scheduled, in order."""
    scheduled = [e["taskScheduledEventDetails"] for e in history if e["type"] == "TaskScheduled"]
    return [json.loads(d["parameters"]) for d in scheduled if d["resourceType"] == "lambda"]


def invoke(local: LocalDeployment, parameters: dict[str, Any]) -> dict[str, Any]:
    response = local.engine.client("lambda").invoke(
        FunctionName=parameters["FunctionName"], Payload=json.dumps(parameters["Payload"]).encode()
    )
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return dict(payload)


def redrive_persist(local: LocalDeployment, failed: Run) -> dict[str, Any]:
    """What RedriveExecution does first for a run that failed in Persist report: run that state
    again with the input it had."""
    [*_, parameters] = [p for p in scheduled_tasks(failed.history) if "persist-report" in p["FunctionName"]]
    return invoke(local, parameters)


def emf_totals(logs: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in logs.splitlines()
        if line.startswith('{"_aws"') and '"region"' not in line
    ]


# -- S3 failing in the middle of persisting -----------------------------------------------------------------


def test_findings_upload_failing_leaves_no_report_and_a_redrive_completes_it(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The findings go up as a multipart upload here (threshold 1 byte) whose completion fails:
    no object appears, nothing is left half-uploaded, and the previous run stays the latest."""
    monkeypatch.setattr(
        boto3.s3.inject, "TransferConfig", functools.partial(TransferConfig, multipart_threshold=1)
    )
    previous = latest_run_id(local)
    name = "findings-upload-fails"
    with s3_calls() as s3:
        s3.fail("CompleteMultipartUpload", lambda key: key.endswith("/findings.jsonl.gz"))
        failed = run(local, name)

        assert failed.status == "FAILED"
        assert failed.error == "ServiceUnavailable"  # InternalError 500, after every retry
        assert [e for s, e in task_errors(failed.history) if s == PERSIST] == ["ServiceUnavailable"] * 6
        completions = [c for c in s3.calls if c[0] == "CompleteMultipartUpload" and f"run={name}/" in c[1]]
        assert [c[2] for c in completions] == [500] * 6
        assert [c[0] for c in s3.calls].count("UploadPart") >= 6  # the parts did go up
    [letter] = failed.dead_letters
    assert (letter["failed_state"], letter["execution_name"]) == (PERSIST, name)
    assert report_keys(local, name) == set()
    assert summary_reader(local, name) == "absent"
    assert latest_run_id(local) == previous
    uploads = local.engine.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    assert [u["Key"] for u in uploads if f"run={name}/" in u["Key"]] == []  # aborted, not left behind
    assert emf_totals(failed.logs) == []

    report = redrive_persist(local, failed)

    assert report["run_id"] == name
    assert summary_reader(local, name) == "whole"
    assert latest_run_id(local) == name
    assert report["previous_run_id"] == previous


def test_summary_write_failing_leaves_only_the_whole_findings_and_a_redrive_completes_the_report(
    local: LocalDeployment,
) -> None:
    """The one window: findings are published before the summary. Readers that go through the
    summary (the runs table, the named queries, the latest-run pointer) see no run; a reader
    listing reports/findings/ directly sees the findings of an unfinished run, whole."""
    previous = latest_run_id(local)
    name = "summary-write-fails"
    with s3_calls() as s3:
        # AccessDenied: a permanent error, not retried (a bucket policy changed under the run).
        s3.fail(
            "PutObject", lambda key: key.endswith(f"run={name}/summary.json"), code="AccessDenied", status=403
        )
        failed = run(local, name)

    assert (failed.status, failed.error) == ("FAILED", "AccessDenied")
    [letter] = failed.dead_letters
    assert letter["failed_state"] == PERSIST
    assert summary_reader(local, name) == "absent"
    assert latest_run_id(local) == previous
    findings = findings_object(local, name)
    assert findings is not None and {f["instance_id"] for f in findings} == in_scope_ids()
    assert emf_totals(failed.logs) == []

    logs = io.StringIO()
    with contextlib.redirect_stdout(logs):
        report = redrive_persist(local, failed)

    assert summary_reader(local, name) == "whole"
    assert latest_run_id(local) == name
    [metrics] = emf_totals(logs.getvalue())
    assert metrics["InstancesEvaluated"] == [float(report["totals"]["total"])]


def test_latest_pointer_write_failing_leaves_a_whole_report_and_a_redrive_advances_the_pointer(
    local: LocalDeployment,
) -> None:
    previous = latest_run_id(local)
    name = "pointer-write-fails"
    with s3_calls() as s3:
        s3.fail("PutObject", lambda key: key == layout.LATEST_RUN_KEY)
        failed = run(local, name)

    assert (failed.status, failed.error) == ("FAILED", "ServiceUnavailable")
    assert summary_reader(local, name) == "whole"  # published: the runs table already has it
    assert latest_run_id(local) == previous
    assert emf_totals(failed.logs) == []  # metrics go out only once the pointer moved
    published = {k: v for k, v in object_etags(local).items() if f"run={name}/" in k}

    report = redrive_persist(local, failed)

    assert latest_run_id(local) == name
    assert report["previous_run_id"] == previous
    assert {k: v for k, v in object_etags(local).items() if f"run={name}/" in k} == published  # same bytes


def test_a_reader_sees_the_report_absent_or_whole_at_every_write_of_a_persist(local: LocalDeployment) -> None:
    """Just before each S3 write of Persist report, look at the run the way readers do."""
    name = "observed-persist"
    previous = latest_run_id(local)
    seen: list[tuple[str, str, bool, str | None]] = []

    def look(key: str, _params: dict[str, Any]) -> None:
        if key == layout.LATEST_RUN_KEY or f"run={name}/" in key:
            view = summary_reader(local, name)
            seen.append(
                (key.rsplit("/", 1)[-1], view, findings_object(local, name) is not None, latest_run_id(local))
            )

    with s3_calls() as s3:
        s3.on("PutObject", look)
        result = run(local, name)

    assert result.status == "SUCCEEDED", result.error
    assert seen == [
        ("findings.jsonl.gz", "absent", False, previous),
        # The window: the findings object is there (whole), the summary not yet. Through the
        # summary there is no run; a reader listing reports/findings/ sees an unfinished run.
        ("summary.json", "absent", True, previous),
        ("latest-run.json", "whole", True, previous),
    ]
    assert summary_reader(local, name) == "whole" and latest_run_id(local) == name


def test_transient_s3_errors_while_persisting_are_retried_into_the_same_objects(
    local: LocalDeployment,
) -> None:
    name = "s3-flaky-persist"
    summary_key_suffix = f"run={name}/summary.json"
    with s3_calls() as s3:
        s3.fail("PutObject", lambda key: key.endswith(summary_key_suffix), times=2)
        s3.fail("PutObject", lambda key: key == layout.LATEST_RUN_KEY, code="SlowDown", status=503, times=1)
        result = run(local, name)

    assert result.status == "SUCCEEDED", result.error
    assert [e for s, e in task_errors(result.history) if s == PERSIST] == [
        "ServiceUnavailable",
        "ServiceUnavailable",
        "Throttled",  # S3 SlowDown is throttling
    ]
    assert result.dead_letters == []
    assert summary_reader(local, name) == "whole"
    [findings_key] = [k for k in report_keys(local, name) if k.endswith("findings.jsonl.gz")]
    uploads = s3.etags("PutObject", findings_key)
    assert len(uploads) == 4 and len(set(uploads)) == 1  # uploaded on every attempt, same bytes
    assert len(emf_totals(result.logs)) == 1


# -- two executions at once ----------------------------------------------------------------------------------


def test_a_scheduled_and_a_manual_execution_at_once_are_two_complete_separate_runs(
    local: LocalDeployment,
) -> None:
    logs = io.StringIO()
    with contextlib.redirect_stdout(logs):
        scheduled = local.start(EXECUTION_INPUT, name="at-once-scheduled")
        manual = local.start({"regions": [REGION], "notify": "always"}, name="at-once-manual")
        runs = [collect(local, arn, logs) for arn in (scheduled, manual)]
    notifications = local.drain_notifications()

    assert [r.status for r in runs] == ["SUCCEEDED", "SUCCEEDED"]
    assert [r.dead_letters for r in runs] == [[], []]
    keys = {r.name: report_keys(local, r.name) for r in runs}
    assert all(len(k) == 2 for k in keys.values()) and not set.intersection(*keys.values())
    for r in runs:
        assert summary_reader(local, r.name) == "whole"
        findings = findings_object(local, r.name)
        assert findings is not None and {f["run_id"] for f in findings} == {r.name}
        assert {k.split("/", 2)[1] for k in object_etags(local, f"staging/{r.name}/")} == {r.name}
    assert latest_run_id(local) == "at-once-manual"  # the later-started one, whichever finished last
    [message] = notifications  # only the manual run asked to be told
    assert "at-once-manual" in message["body"]
    assert len(emf_totals(logs.getvalue())) == 2


def test_an_execution_name_cannot_be_used_twice_and_trying_changes_no_object(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step Functions refuses a second execution under an execution's name, except while it runs
    with the same input: then StartExecution returns the same execution (it is idempotent).
    Replaying a run's Task payloads is tested in test_workflow.py::
    test_replaying_every_task_of_a_run_changes_no_object."""
    import lambdas.validate_input

    # Hold the execution in its first step while the same name is started again.
    running = threading.Event()
    release = threading.Event()
    validate = lambdas.validate_input.validate_input

    def held(*args: Any, **kwargs: Any) -> Any:
        running.set()
        assert release.wait(30), "never released"
        return validate(*args, **kwargs)

    monkeypatch.setattr(lambdas.validate_input, "validate_input", held)
    sfn = local.engine.client("stepfunctions")
    logs = io.StringIO()
    with contextlib.redirect_stdout(logs):
        arn = local.start(EXECUTION_INPUT, name="only-once")
        assert running.wait(30)
        assert local.start(EXECUTION_INPUT, name="only-once") == arn  # still running: same execution
        with pytest.raises(ClientError) as other_input:
            local.start({"regions": [REGION], "notify": "always"}, name="only-once")
        release.set()
        done = collect(local, arn, logs)
    assert other_input.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
    assert done.status == "SUCCEEDED"
    before = object_etags(local)
    executions = len(sfn.list_executions(stateMachineArn=local.state_machine_arn)["executions"])

    for execution_input in (EXECUTION_INPUT, {"regions": [REGION], "notify": "always"}):
        with pytest.raises(ClientError) as refused:
            sfn.start_execution(
                stateMachineArn=local.state_machine_arn, name="only-once", input=json.dumps(execution_input)
            )
        assert refused.value.response["Error"]["Code"] == "ExecutionAlreadyExists"

    assert object_etags(local) == before
    assert len(sfn.list_executions(stateMachineArn=local.state_machine_arn)["executions"]) == executions
    assert states_entered(local.engine.history(arn)).count("Persist report") == 1


class ProductBug(AssertionError):
    """The failure an xfail test expects, kept apart from its preconditions' assertions so that
    only the product bug it names counts as the expected failure."""


def overlapping_runs(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch, earlier: str, later: str
) -> list[Run]:
    """Two runs in flight at once with handlers overlapping, as on AWS (one sandbox each);
    the earlier-started run persists first, the order they started in."""
    import lambdas.persist_report

    local.engine.serialize_invocations = False
    earlier_persisted = threading.Event()
    persist = lambdas.persist_report.persist_report

    def in_order(event: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if event["run"]["run_id"] == later:
            assert earlier_persisted.wait(30), "the earlier run never persisted"
        try:
            return persist(event, *args, **kwargs)
        finally:
            if event["run"]["run_id"] == earlier:
                earlier_persisted.set()

    monkeypatch.setattr(lambdas.persist_report, "persist_report", in_order)
    logs = io.StringIO()
    with contextlib.redirect_stdout(logs):
        arns = [local.start(EXECUTION_INPUT, name=name) for name in (earlier, later)]
        runs = [collect(local, arn, logs) for arn in arns]
    local.engine.serialize_invocations = True
    monkeypatch.setattr(lambdas.persist_report, "persist_report", persist)
    assert [r.status for r in runs] == ["SUCCEEDED", "SUCCEEDED"]
    return runs


def test_replaying_the_tasks_of_two_overlapping_runs_changes_no_object(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The concurrent counterpart of test_workflow.py::test_replaying_every_task_of_a_run_changes_no_object:
    a retry or a redrive of either run, after both finished, must write the same bytes."""
    runs = overlapping_runs(local, monkeypatch, "replay-earlier", "replay-later")
    before = object_etags(local)
    summaries_before = {
        r.name: get_json(local.engine.client("s3"), BUCKET, _summary_key(local, r.name)) for r in runs
    }

    for replayed in runs:
        for parameters in scheduled_tasks(replayed.history):
            if "Payload" in parameters:
                invoke(local, parameters)
    local.drain_notifications()

    after = object_etags(local)
    changed = sorted(k for k in before if after.get(k) != before[k])
    if changed:
        drift = {
            k: (
                summaries_before[k]["drift"]["previous_run_id"],
                get_json(local.engine.client("s3"), BUCKET, _summary_key(local, k))["drift"][
                    "previous_run_id"
                ],
            )
            for k in summaries_before
        }
        raise ProductBug(f"replaying changed {changed}; drift baseline before/after: {drift}")
    assert latest_run_id(local) == "replay-later"


def _summary_key(local: LocalDeployment, run_id: str) -> str:
    [key] = [k for k in report_keys(local, run_id) if k.endswith("/summary.json")]
    return key


def test_overlapping_persists_leave_the_latest_pointer_on_the_later_started_run(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both runs read the pointer before either writes it; the later-started run writes first."""
    local.engine.serialize_invocations = False
    both_decided = threading.Barrier(2, timeout=30)
    later_wrote = threading.Event()
    first_writes: set[str] = set()

    def before_pointer_write(key: str, params: dict[str, Any]) -> None:
        if key != layout.LATEST_RUN_KEY:
            return
        run_id = json.loads(params["Body"])["run_id"]
        if run_id in first_writes:
            return
        first_writes.add(run_id)
        both_decided.wait()  # each run has read the pointer and is about to write it
        if run_id == "race-earlier":
            assert later_wrote.wait(30), "the later run never wrote the pointer"

    def after_pointer_write(key: str, status: int) -> None:
        if key == layout.LATEST_RUN_KEY and "race-later" in first_writes and status == 200:
            later_wrote.set()

    with s3_calls() as s3:
        s3.on("PutObject", before_pointer_write)
        s3.on_done("PutObject", after_pointer_write)
        logs = io.StringIO()
        with contextlib.redirect_stdout(logs):
            arns = [local.start(EXECUTION_INPUT, name=name) for name in ("race-earlier", "race-later")]
            runs = [collect(local, arn, logs) for arn in arns]

    assert [r.status for r in runs] == ["SUCCEEDED", "SUCCEEDED"]
    assert first_writes == {"race-earlier", "race-later"}
    for r in runs:
        assert summary_reader(local, r.name) == "whole"
    latest = latest_run_id(local)
    if latest != "race-later":
        raise ProductBug(f"the latest-run pointer names {latest}, started before race-later")


# The object keys the persist-report role may write (IAM wildcards): cdk/tagwarden_cdk/functions.py,
# statement "WriteReport", pinned by tests/infra/test_functions.py. The embedded engine enforces no
# IAM, so the test applies it; keep the three in step.
PERSIST_ROLE_WRITES = ("reports/*", "state/*", "staging/*/report/*")


def test_persist_report_writes_only_where_its_role_allows_in_a_normal_and_a_dry_run(
    local: LocalDeployment,
) -> None:
    with s3_calls() as s3:
        s3.fail(
            "PutObject",
            lambda key: not any(fnmatch.fnmatchcase(key, pattern) for pattern in PERSIST_ROLE_WRITES),
            code="AccessDenied",
            status=403,
            function="tagwarden-persist-report-local",
        )
        normal = run(local, "role-normal-run")
        dry = run(local, "role-dry-run", {"regions": [REGION], "notify": "never", "dry_run": True})

    assert normal.status == "SUCCEEDED", normal.error
    assert summary_reader(local, "role-normal-run") == "whole"
    if dry.status != "SUCCEEDED":
        raise ProductBug(f"the dry run ended {dry.status} with {dry.error}: {dry.dead_letters}")
