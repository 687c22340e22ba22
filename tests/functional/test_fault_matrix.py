"""Every Lambda Task of the real workflow under every kind of fault, on the embedded engine.

The matrix is (Task state) x (fault):

- ``transient-recovers``: ``Throttled``/``ServiceUnavailable`` as many times as the state's Retry
  budget allows, then success (the last allowed attempt succeeds);
- ``timeout-after-work``: the step does its work, then overruns its Lambda timeout once
  (``Sandbox.Timedout``; the retry repeats writes that already happened);
- ``transient-exhausts``: one transient failure more than the budget;
- ``permanent``: ``PermanentError``, never retried;
- ``timeout``: the handler hangs past its Lambda timeout on every attempt.

A run either completes with a whole report after its retries, or ends FAILED with exactly one
dead-letter message that carries what ``tagwarden dlq`` needs to restart it, and with the signals
the alarms watch (a FAILED execution = AWS/States ExecutionsFailed, failed invocations = AWS/Lambda
Errors, a visible dead letter = ApproximateNumberOfMessagesVisible). Register partitions never fails the
run. Retry budgets are read from the ASL, so the matrix follows the definition; the first test pins
the numbers README documents.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.functional.history import states_entered, task_errors
from workflow import cli, config, deployment, layout, operate
from workflow.engine.local import BUCKET, DEFAULT_POLICY, LocalDeployment
from workflow.errors import PermanentError, ServiceUnavailable, Throttled
from workflow.fleet import FleetInstance, demo_fleet, iter_fleet_document
from workflow.storage import get_json, get_json_if_exists, iter_jsonl_gz

REGION = "eu-west-1"
EXECUTION_INPUT = {"regions": [REGION], "notify": "always"}
TRANSIENT = (Throttled, ServiceUnavailable)
TIMEOUT_ERROR = "Sandbox.Timedout"
HANG_SECONDS = 5.0  # a hung call: the engine interrupts it at the 1 s function timeout
ASL = json.loads(deployment.read_definition())


@dataclass(frozen=True)
class Step:
    state: str
    function: str  # the moto Lambda function of the local deployment
    module: str  # lambdas.<module> holds the step function its handler calls
    failed_state: str | None  # "failed_state" of the dead letter; None: never fails the run

    @property
    def id(self) -> str:
        return self.function.removeprefix("tagwarden-").removesuffix("-local")


def _step(state: str, name: str, failed_state: str | None) -> Step:
    [function] = [f for f in deployment.STEP_FUNCTIONS if f.name == name]
    module = function.handler.rsplit(".", 1)[0]
    return Step(state, f"tagwarden-{name}-local", module, failed_state)


STEPS = [
    _step("Validate input", "validate-input", "Validate input"),
    _step("List EC2 instances", "list-instances", "Scan regions"),
    _step("Evaluate tag compliance", "evaluate-tags", "Scan regions"),
    _step("Persist report", "persist-report", "Persist report"),
    _step("Register partitions", "register-partitions", None),
    _step("Import to Security Hub", "import-security-hub", None),
    _step("Notify", "notify", "Notify"),
]
FAILING_STEPS = [s for s in STEPS if s.failed_state is not None]
[REGISTER_PARTITIONS] = [s for s in STEPS if s.state == "Register partitions"]
[SECURITY_HUB] = [s for s in STEPS if s.state == "Import to Security Hub"]
RECOVERABLE = ["transient-recovers", "timeout-after-work"]
FATAL = ["transient-exhausts", "permanent", "timeout"]


def _all_states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _all_states(processor["States"])


ASL_STATES = dict(_all_states(ASL["States"]))


def retry_budget(state: str, error: str) -> int:
    """How many retries the state's first matching retrier allows for ``error``."""
    for retrier in ASL_STATES[state].get("Retry", []):
        if error in retrier["ErrorEquals"] or "States.ALL" in retrier["ErrorEquals"]:
            return int(retrier.get("MaxAttempts", 3))
    return 0


# -- faults ----------------------------------------------------------------------------------------


def _hang() -> None:
    # Short sleeps: the engine's interrupt lands between two of them, right after the deadline.
    deadline = time.monotonic() + HANG_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.02)


@dataclass
class Fault:
    """Replaces a step function; ``errors`` are the error names its failed attempts produce."""

    kind: str
    step: Step
    errors: list[str]
    calls: int = 0
    # Called once the first attempt of ``timeout-after-work`` has done its writes.
    after_work: Callable[[], None] | None = None

    @classmethod
    def make(cls, kind: str, step: Step) -> Fault:
        transient = retry_budget(step.state, "Throttled")
        if kind == "transient-recovers":
            errors = [TRANSIENT[i % 2].__name__ for i in range(transient)]
        elif kind == "transient-exhausts":
            errors = [TRANSIENT[i % 2].__name__ for i in range(transient + 1)]
        elif kind == "permanent":
            errors = ["PermanentError"]
        elif kind == "timeout":
            errors = [TIMEOUT_ERROR] * (retry_budget(step.state, TIMEOUT_ERROR) + 1)
        elif kind == "timeout-after-work":
            errors = [TIMEOUT_ERROR]
        else:
            raise ValueError(kind)
        return cls(kind, step, errors)

    def wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            attempt = self.calls
            message = f"{self.step.state}: injected {self.kind} fault, attempt {attempt}"
            if self.kind == "transient-recovers" and attempt <= len(self.errors):
                raise TRANSIENT[(attempt - 1) % 2](message)
            if self.kind == "transient-exhausts":
                raise TRANSIENT[(attempt - 1) % 2](message)
            if self.kind == "permanent":
                raise PermanentError(message)
            if self.kind == "timeout":
                _hang()  # the engine stops the handler at its deadline; this line is not reached
                raise AssertionError("a handler ran past its Lambda timeout")
            if self.kind == "timeout-after-work" and attempt == 1:
                result = original(*args, **kwargs)
                if self.after_work is not None:
                    self.after_work()
                _hang()
                return result
            return original(*args, **kwargs)

        return faulty


@contextmanager
def injected(local: LocalDeployment, monkeypatch: pytest.MonkeyPatch, fault: Fault) -> Iterator[Fault]:
    module = importlib.import_module(fault.step.module)
    function_name = fault.step.module.rsplit(".", 1)[1]
    monkeypatch.setattr(module, function_name, fault.wrap(getattr(module, function_name)))
    if fault.kind not in {"timeout", "timeout-after-work"}:
        yield fault
        return
    lambda_client = local.engine.client("lambda")
    configured = lambda_client.get_function_configuration(FunctionName=fault.step.function)["Timeout"]
    # UpdateFunctionConfiguration, as an operator would; the engine reads Timeout per invocation.
    lambda_client.update_function_configuration(FunctionName=fault.step.function, Timeout=1)
    try:
        yield fault
    finally:
        lambda_client.update_function_configuration(FunctionName=fault.step.function, Timeout=configured)


# -- the deployment and what a run left behind ---------------------------------------------------------


def small_fleet() -> list[FleetInstance]:
    return [i for i in iter_fleet_document(demo_fleet(instances_per_region=4, seed=7)) if i.region == REGION]


def in_scope_ids() -> set[str]:
    """The instances the deployment's default policy (policies/baseline.json) evaluates."""
    states = set(json.loads(DEFAULT_POLICY.read_text())["scope"]["states"])
    return {i.instance["InstanceId"] for i in small_fleet() if i.instance["State"]["Name"] in states}


@pytest.fixture(scope="module")
def local() -> Iterator[LocalDeployment]:
    """One small deployment for the whole matrix; a clean scan first warms every handler up."""
    # Security Hub on: its import is a step of every run here, with its own faults.
    with LocalDeployment(
        small_fleet(), regions=[REGION], retry_wait_scale=0, extra_environment={config.SECURITY_HUB: "true"}
    ) as deployed:
        warm = deployed.run(EXECUTION_INPUT, name="matrix-warm-up")
        assert warm.status == "SUCCEEDED", warm.cause
        yield deployed


@dataclass
class Outcome:
    name: str
    arn: str
    status: str
    error: str | None
    history: list[dict[str, Any]]
    output: dict[str, Any] | None
    dead_letter_depth: int
    dead_letters: list[dict[str, Any]]  # raw SQS messages, with attributes
    invocations: list[Any]  # this run's Lambda invocations, all functions
    logs: str  # what the handlers printed during this run: their CloudWatch log, EMF lines included
    notifications: list[dict[str, Any]]


def dead_letter_depth(local: LocalDeployment) -> int:
    """The queue attribute behind ApproximateNumberOfMessagesVisible, the metric of the
    dead-letter-queue-not-empty alarm."""
    attributes = local.engine.client("sqs").get_queue_attributes(
        QueueUrl=local.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def take_dead_letters(local: LocalDeployment) -> list[dict[str, Any]]:
    sqs = local.engine.client("sqs")
    taken = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=local.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return taken
        for message in batch:
            sqs.delete_message(QueueUrl=local.queue_url, ReceiptHandle=message["ReceiptHandle"])
            taken.append(message)


def run(local: LocalDeployment, name: str, execution_input: dict[str, Any] = EXECUTION_INPUT) -> Outcome:
    invocations_before = len(local.engine.invocations)
    # A Lambda's stdout is its CloudWatch log (EMF lines included); pytest swaps sys.stdout per
    # test, so collect this run's handler output here rather than in the deployment's log.
    lambda_stdout = io.StringIO()
    with contextlib.redirect_stdout(lambda_stdout):
        arn = local.start(execution_input, name=name)
        description = local.engine.wait(arn, timeout=120)
    depth = dead_letter_depth(local)
    letters = take_dead_letters(local)
    output = json.loads(description["output"]) if description.get("output") else None
    return Outcome(
        name=name,
        arn=arn,
        status=description["status"],
        error=description.get("error"),
        history=local.engine.history(arn),
        output=output,
        dead_letter_depth=depth,
        dead_letters=letters,
        invocations=list(local.engine.invocations[invocations_before:]),
        logs=lambda_stdout.getvalue(),
        notifications=local.drain_notifications(),
    )


def object_etags(local: LocalDeployment, prefix: str = "") -> dict[str, str]:
    s3 = local.engine.client("s3")
    etags = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            etags[item["Key"]] = item["ETag"]
    return etags


def run_objects(local: LocalDeployment, run_id: str) -> dict[str, str]:
    """ETags of the run's objects: staging, report, and the latest-run pointer while it names the run."""
    etags = object_etags(local)
    own = {k: v for k, v in etags.items() if k.startswith(f"staging/{run_id}/") or f"/run={run_id}/" in k}
    if latest_run_id(local) == run_id:
        own[layout.LATEST_RUN_KEY] = etags[layout.LATEST_RUN_KEY]
    return own


def report_keys(local: LocalDeployment, run_id: str) -> set[str]:
    """Every object of the run under the crawled reports/ prefix."""
    return {k for k in object_etags(local, "reports/") if f"/run={run_id}/" in k}


def latest_run_id(local: LocalDeployment) -> str | None:
    pointer = get_json_if_exists(local.engine.client("s3"), BUCKET, layout.LATEST_RUN_KEY)
    return None if pointer is None else str(pointer["run_id"])


def assert_whole_report(local: LocalDeployment, run_id: str) -> dict[str, Any]:
    """The run's findings and summary both exist and agree with each other and with the fleet."""
    s3 = local.engine.client("s3")
    keys = report_keys(local, run_id)
    [summary_key] = [k for k in keys if k.endswith("/summary.json")]
    dt = summary_key.split("dt=", 1)[1].split("/", 1)[0]
    assert keys == {layout.findings_key(dt, run_id), layout.summary_key(dt, run_id)}
    summary = get_json(s3, BUCKET, summary_key)
    findings = list(iter_jsonl_gz(s3, BUCKET, layout.findings_key(dt, run_id)))
    assert (summary["run_id"], summary["status"], summary["partial"]) == (run_id, "complete", False)
    assert summary["totals"]["total"] == len(findings)
    assert {f["instance_id"] for f in findings} == in_scope_ids()
    assert {f["run_id"] for f in findings} == {run_id}
    assert sum(1 for f in findings if not f["compliant"]) == summary["totals"]["noncompliant"]
    return dict(summary)


def emf_documents(logs: str) -> list[dict[str, Any]]:
    documents = []
    for line in logs.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def assert_compliance_metrics_match(logs: str, summary: dict[str, Any]) -> int:
    """Every EMF document printed matches the summary; returns how many times the set was emitted."""
    documents = emf_documents(logs)
    totals = [d for d in documents if "region" not in d]
    assert totals, "no compliance metrics were emitted"
    for document in documents:
        assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Tagwarden"
        assert document["environment"] == "local"
    for document in totals:
        assert document["CompliancePercentage"] == [summary["totals"]["compliance_percentage"]]
        assert document["NoncompliantInstances"] == [float(summary["totals"]["noncompliant"])]
        assert document["InstancesEvaluated"] == [float(summary["totals"]["total"])]
    per_region = [d for d in documents if d.get("region") == REGION]
    assert len(per_region) == len(totals)
    return len(totals)


def errors_of(outcome: Outcome, step: Step) -> list[str]:
    """The Lambda Errors metric of the step's function for this run, one entry per failed invocation."""
    return [str(i.error_type) for i in outcome.invocations if i.function_name == step.function and not i.ok]


def task_attempt_errors(outcome: Outcome, step: Step) -> list[str]:
    return [error for state, error in task_errors(outcome.history) if state == step.state]


def run_name(step: Step, kind: str) -> str:
    return f"{step.id}-{kind}"


# -- the matrix ------------------------------------------------------------------------------------------


def test_the_matrix_covers_every_lambda_task_and_the_documented_retry_budgets() -> None:
    lambda_tasks = {
        name
        for name, state in ASL_STATES.items()
        if state["Type"] == "Task"
        and state["Resource"] == "arn:aws:states:::lambda:invoke"
        # The Distributed Map's copies; tests/unit proves them identical to the inline Map's.
        and not name.endswith(" (at scale)")
    }
    # Remediate retries only the Lambda service's own errors (a step that may have stopped
    # instances never runs again on their new state): its faults are in test_remediation_faults.
    assert lambda_tasks == {s.state for s in STEPS} | {"Remediate"}
    assert retry_budget("Remediate", "Throttled") == retry_budget("Remediate", TIMEOUT_ERROR) == 0
    assert retry_budget("Remediate", "Lambda.ServiceException") == 4
    for step in STEPS:
        assert retry_budget(step.state, "Throttled") == retry_budget(step.state, "ServiceUnavailable") == 5
        assert retry_budget(step.state, "Lambda.ServiceException") == 4
        assert retry_budget(step.state, TIMEOUT_ERROR) == 1
        assert retry_budget(step.state, "PermanentError") == 0
        assert ASL_STATES[step.state]["Catch"][0]["ErrorEquals"] == ["States.ALL"]


@pytest.mark.parametrize("kind", RECOVERABLE)
@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.id)
def test_a_fault_within_the_retry_budget_is_retried_and_the_run_completes_with_a_whole_report(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch, step: Step, kind: str
) -> None:
    fault = Fault.make(kind, step)
    name = run_name(step, kind)
    written_by_first_attempt: dict[str, str] = {}
    fault.after_work = lambda: written_by_first_attempt.update(run_objects(local, name))
    with injected(local, monkeypatch, fault):
        outcome = run(local, name)

    assert outcome.status == "SUCCEEDED", outcome.error
    assert task_attempt_errors(outcome, step) == fault.errors
    assert [e for s, e in task_errors(outcome.history) if s != step.state] == []
    assert states_entered(outcome.history).count(step.state) == 1  # retried within the state
    assert errors_of(outcome, step) == fault.errors  # AWS/Lambda Errors counts every failed try
    assert outcome.dead_letter_depth == 0 and outcome.dead_letters == []
    summary = assert_whole_report(local, outcome.name)
    assert latest_run_id(local) == outcome.name
    assert outcome.output is not None and outcome.output["result"]["report"]["totals"] == summary["totals"]
    emitted = assert_compliance_metrics_match(outcome.logs, summary)
    # At least once: a Persist report attempt that timed out after its writes emitted them already.
    assert emitted == (2 if (step.id, kind) == ("persist-report", "timeout-after-work") else 1)
    # Notify is at least once as well: a timed-out Notify that had published publishes again.
    published = 2 if (step.id, kind) == ("notify", "timeout-after-work") else 1
    assert len(outcome.notifications) == published
    assert len({n["subject"] for n in outcome.notifications}) == 1
    if written_by_first_attempt:
        # The retry after the timeout rewrote what the first attempt had written: same keys,
        # same bytes (the latest-run pointer included).
        now = run_objects(local, name)
        assert {k: now.get(k) for k in written_by_first_attempt} == written_by_first_attempt
    if step is REGISTER_PARTITIONS:
        assert outcome.output is not None
        catalog = outcome.output["catalog"]
        # The retry after a timeout finds what the first attempt registered.
        assert sorted(catalog["registered"] + catalog["existing"]) == ["findings", "runs"]


@pytest.mark.parametrize("kind", FATAL)
@pytest.mark.parametrize("step", FAILING_STEPS, ids=lambda s: s.id)
def test_a_fault_beyond_the_retry_budget_fails_the_run_into_exactly_one_redrivable_dead_letter(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch, step: Step, kind: str
) -> None:
    fault = Fault.make(kind, step)
    previous_latest = latest_run_id(local)
    with injected(local, monkeypatch, fault):
        outcome = run(local, run_name(step, kind))

    error = fault.errors[-1]
    assert outcome.status == "FAILED"  # AWS/States ExecutionsFailed
    assert outcome.error == error
    assert task_attempt_errors(outcome, step) == fault.errors
    assert errors_of(outcome, step) == fault.errors  # AWS/Lambda Errors
    failed = local.engine.client("stepfunctions").list_executions(
        stateMachineArn=local.state_machine_arn, statusFilter="FAILED"
    )["executions"]
    assert outcome.arn in {e["executionArn"] for e in failed}
    assert states_entered(outcome.history)[-2:] == ["Send to dead-letter queue", "Scan failed permanently"]

    assert outcome.dead_letter_depth == 1  # the dead-letter-queue-not-empty alarm's metric
    [message] = outcome.dead_letters
    letter = json.loads(message["Body"])
    assert letter["execution_id"] == outcome.arn
    assert letter["execution_name"] == outcome.name
    assert letter["state_machine_id"] == local.state_machine_arn
    assert letter["failed_state"] == step.failed_state
    assert letter["error"] == error
    assert letter["input"] == EXECUTION_INPUT
    assert datetime.fromisoformat(letter["failed_at"].replace("Z", "+00:00")) <= datetime.now(UTC)
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {"error": error, "failed_state": step.failed_state}
    cause = json.loads(letter["cause"])
    if step.failed_state == "Scan regions":
        # The Map's cause names the inner state and the target, with the Lambda's own cause inside.
        assert (cause["state"], cause["target"]["region"], cause["error"]) == (step.state, REGION, error)
        cause = json.loads(cause["cause"])
    assert cause["errorType"] == error
    expected_message = "Task timed out after 1.00 seconds" if kind == "timeout" else f"injected {kind} fault"
    assert expected_message in cause["errorMessage"]
    # Everything `tagwarden dlq` needs to redrive or restart it.
    parsed = operate.parse_dead_letter(message)
    assert (parsed.source, parsed.execution_arn, parsed.state_machine_arn) == (
        "state machine",
        outcome.arn,
        local.state_machine_arn,
    )
    assert json.loads(parsed.input or "null") == EXECUTION_INPUT

    if step.state == "Notify":
        # The report was persisted before Notify failed: whole, and the latest run.
        summary = assert_whole_report(local, outcome.name)
        assert_compliance_metrics_match(outcome.logs, summary)
        assert latest_run_id(local) == outcome.name
        assert outcome.notifications == []
    else:
        assert report_keys(local, outcome.name) == set()
        assert latest_run_id(local) == previous_latest
        assert emf_documents(outcome.logs) == []
        assert outcome.notifications == []


@pytest.mark.parametrize("kind", FATAL)
def test_partition_registration_failing_beyond_its_retries_still_completes_the_run_without_a_dead_letter(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    fault = Fault.make(kind, REGISTER_PARTITIONS)
    with injected(local, monkeypatch, fault):
        outcome = run(local, run_name(REGISTER_PARTITIONS, kind))

    error = fault.errors[-1]
    assert outcome.status == "SUCCEEDED", outcome.error
    assert task_attempt_errors(outcome, REGISTER_PARTITIONS) == fault.errors
    # The register-partitions errors alarm still sees the failures.
    assert errors_of(outcome, REGISTER_PARTITIONS) == fault.errors
    assert outcome.output is not None
    assert outcome.output["catalog"]["registered"] == []
    assert outcome.output["catalog"]["error"] == error
    assert "Partitions not registered" in states_entered(outcome.history)
    assert outcome.dead_letter_depth == 0 and outcome.dead_letters == []
    summary = assert_whole_report(local, outcome.name)
    assert assert_compliance_metrics_match(outcome.logs, summary) == 1
    assert latest_run_id(local) == outcome.name
    [notification] = outcome.notifications
    assert f"registering its partitions failed ({error}" in notification["body"]


@pytest.mark.parametrize("kind", FATAL)
def test_a_security_hub_import_failing_beyond_its_retries_still_completes_the_run_and_says_so(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    fault = Fault.make(kind, SECURITY_HUB)
    with injected(local, monkeypatch, fault):
        outcome = run(local, run_name(SECURITY_HUB, kind))

    error = fault.errors[-1]
    assert outcome.status == "SUCCEEDED", outcome.error
    assert task_attempt_errors(outcome, SECURITY_HUB) == fault.errors
    assert errors_of(outcome, SECURITY_HUB) == fault.errors  # the import-security-hub-errors alarm
    assert outcome.output is not None and outcome.output["securityhub"]["error"] == error
    assert "Security Hub import failed" in states_entered(outcome.history)
    assert outcome.dead_letter_depth == 0 and outcome.dead_letters == []
    assert_whole_report(local, outcome.name)
    [notification] = outcome.notifications
    assert f"Security Hub: the import failed ({error}" in notification["body"]


# -- redriving dead letters with `tagwarden dlq` --------------------------------------------------------------


class _ByThread(io.TextIOBase):
    """stdout split by thread: the CLI prints in the main thread, the executions it starts run
    their handlers (and print their EMF lines) in the interpreter's threads."""

    def __init__(self) -> None:
        self.main = io.StringIO()
        self.others = io.StringIO()

    def write(self, text: str) -> int:
        is_main = threading.current_thread() is threading.main_thread()
        return (self.main if is_main else self.others).write(text)


def tagwarden(argv: list[str]) -> tuple[int, str]:
    """`tagwarden ARGS` in this process: exit status and what it printed."""
    out = _ByThread()
    with contextlib.redirect_stdout(out):
        status = cli.main(argv)
    return status, out.main.getvalue()


def test_dead_letters_restarted_with_tagwarden_dlq_complete_the_runs_they_describe(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto has no RedriveExecution; past the redrive window `dlq --restart-unredrivable` starts
    each failed execution again with its original input, which needs no RedriveExecution call.
    (The RedriveExecution path itself is tested with botocore's Stubber in test_operate.py.)"""
    failed: dict[str, str] = {}
    for step in FAILING_STEPS:
        fault = Fault.make("permanent", step)
        with monkeypatch.context() as patch, injected(local, patch, fault):
            name = f"redrive-{step.id}"
            arn = local.start(EXECUTION_INPUT, name=name)
            assert local.engine.wait(arn, timeout=120)["status"] == "FAILED"
            failed[arn] = name
    assert dead_letter_depth(local) == len(FAILING_STEPS)
    # SQS delivers at least once: a duplicate of one message must not start a second run.
    sqs = local.engine.client("sqs")
    first = sqs.receive_message(QueueUrl=local.queue_url, MaxNumberOfMessages=1)["Messages"][0]
    sqs.change_message_visibility(
        QueueUrl=local.queue_url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )
    sqs.send_message(QueueUrl=local.queue_url, MessageBody=first["Body"])

    # The operator works through the queue 15 days later, past the 14-day redrive window.
    later = datetime.now(UTC) + timedelta(days=15)
    monkeypatch.setattr(
        operate, "redrive_dead_letters", functools.partial(operate.redrive_dead_letters, now=later)
    )
    dlq = [
        "dlq",
        "--state-machine-arn",
        local.state_machine_arn,
        "--queue-url",
        local.queue_url,
        "--restart-unredrivable",
        "--purge-after-redrive",
        "--json",
    ]
    status, printed = tagwarden(dlq)
    assert status == 0
    outcomes = json.loads(printed)

    assert len(outcomes) == len(FAILING_STEPS) + 1
    assert {(o["action"], o["deleted"]) for o in outcomes} == {("restarted", True)}
    assert {o["execution_arn"] for o in outcomes} == set(failed)
    restarted = {o["new_execution_arn"] for o in outcomes}
    assert len(restarted) == len(FAILING_STEPS)  # the duplicate message started nothing more
    sfn = local.engine.client("stepfunctions")
    for arn, name in failed.items():
        new_arn = operate.execution_arn(f"{name}-restart1", local.state_machine_arn)
        assert new_arn in restarted
        assert local.engine.wait(new_arn, timeout=120)["status"] == "SUCCEEDED"
        assert json.loads(sfn.describe_execution(executionArn=new_arn)["input"]) == EXECUTION_INPUT
        assert sfn.describe_execution(executionArn=arn)["status"] == "FAILED"  # history kept as it was
        assert_whole_report(local, f"{name}-restart1")
    assert dead_letter_depth(local) == 0

    # Working through the (now empty) queue again changes nothing.
    executions_before = len(sfn.list_executions(stateMachineArn=local.state_machine_arn)["executions"])
    assert tagwarden(dlq) == (0, "[]\n")
    assert (
        len(sfn.list_executions(stateMachineArn=local.state_machine_arn)["executions"]) == executions_before
    )
