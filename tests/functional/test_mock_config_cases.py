"""The named test cases of state_machines/MockConfigFile.json, on the embedded engine and, where a
Docker engine runs, on AWS Step Functions Local: the same definition, the same expectations.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.functional.history import states_entered, task_errors
from workflow import deployment
from workflow.engine.embedded import EmbeddedEngine

MOCK_CONFIG = deployment.ROOT / "state_machines" / "MockConfigFile.json"
STATE_MACHINE = "tagwarden"
SFN_LOCAL_IMAGE = "amazon/aws-stepfunctions-local"
SFN_LOCAL_PORT = 8083

TAIL = [
    "Persist report",
    "Dry run?",
    "Remediation?",
    "Remediation not used",
    "Register partitions",
    "Security Hub?",
    "Security Hub not used",
    "Notify?",
]
SCAN = [
    "Validate input",
    "Input valid?",
    "Many targets?",
    "Scan regions",
    "List EC2 instances",
    "Listing complete?",
    "Evaluate tag compliance",
]


@dataclass(frozen=True)
class Expected:
    status: str
    states: list[str]
    errors: list[tuple[str, str]]
    error: str | None = None
    dead_letters: int = 0


CASES = {
    "HappyPath": Expected("SUCCEEDED", [*SCAN, *TAIL, "Notify", "Scan complete"], []),
    "ThrottledThenSucceeds": Expected(
        "SUCCEEDED", [*SCAN, *TAIL, "Notify", "Scan complete"], [("List EC2 instances", "Throttled")] * 2
    ),
    "PersistFailsToDeadLetterQueue": Expected(
        "FAILED",
        [*SCAN, "Persist report", "Persist failed", "Send to dead-letter queue", "Scan failed permanently"],
        [("Persist report", "AccessDenied")],
        error="AccessDenied",
        dead_letters=1,
    ),
    "InvalidInput": Expected(
        "FAILED", ["Validate input", "Input valid?", "Reject invalid input"], [], error="InvalidInput"
    ),
    "NoViolations": Expected("SUCCEEDED", [*SCAN, *TAIL, "Scan complete"], []),
    "PartitionsAlreadyRegistered": Expected("SUCCEEDED", [*SCAN, *TAIL, "Notify", "Scan complete"], []),
}


def placeholders_for(queue_url: str) -> dict[str, str]:
    values = {
        s.placeholder: f"arn:aws:lambda:us-east-1:123456789012:function:tagwarden-{s.name}"
        for s in deployment.STEP_FUNCTIONS
    }
    values[deployment.DEAD_LETTER_QUEUE_PLACEHOLDER] = queue_url
    values[deployment.REPORT_BUCKET_PLACEHOLDER] = "tagwarden-reports-local"
    return values


Runner = Callable[[str], tuple[str, str | None, list[dict[str, Any]], int]]


@pytest.fixture(scope="module")
def embedded() -> Iterator[Runner]:
    with EmbeddedEngine(retry_wait_scale=0, mock_config=MOCK_CONFIG) as engine:
        sqs = engine.client("sqs")
        queue_url = sqs.create_queue(QueueName="tagwarden-dead-letters")["QueueUrl"]
        definition = deployment.substitute(deployment.read_definition(), placeholders_for(queue_url))
        machine = engine.create_state_machine(STATE_MACHINE, definition)

        def run(case: str) -> tuple[str, str | None, list[dict[str, Any]], int]:
            arn = engine.start_execution(machine, {}, name=f"{case}-{uuid.uuid4().hex[:6]}", test_case=case)
            description = engine.wait(arn)
            history = engine.history(arn)
            return description["status"], description.get("error"), history, dead_letters_sent(history)

        yield run


@pytest.mark.parametrize("case", sorted(CASES))
def test_mock_config_case_on_the_embedded_engine(embedded: Runner, case: str) -> None:
    assert_case(embedded, case)


def dead_letters_sent(history: list[dict[str, Any]]) -> int:
    """Dead-letter messages the execution sent (the test cases mock SQS; test_workflow reads the real queue)."""
    return sum(
        1
        for e in history
        if e["type"] == "TaskSucceeded" and "sqs" in e["taskSucceededEventDetails"]["resourceType"]
    )


def assert_case(run: Runner, case: str) -> None:
    expected = CASES[case]
    status, error, history, letters = run(case)
    assert status == expected.status
    assert error == expected.error
    assert states_entered(history) == expected.states
    assert task_errors(history) == expected.errors
    assert letters == expected.dead_letters


def test_mock_config_names_exactly_the_cases_tested() -> None:
    config = json.loads(MOCK_CONFIG.read_text())
    assert set(config["StateMachines"][STATE_MACHINE]["TestCases"]) == set(CASES)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0


@pytest.fixture(scope="module")
def sfn_local() -> Iterator[Runner]:
    if not docker_available():
        pytest.skip(
            "no Docker engine: Step Functions Local cannot run here (make sfn-local-test where Docker runs)"
        )
    import boto3

    name = f"tagwarden-sfn-local-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--rm",
            "--name",
            name,
            "-p",
            f"{SFN_LOCAL_PORT}:8083",
            "-v",
            f"{MOCK_CONFIG}:/home/StepFunctionsLocal/MockConfigFile.json:ro",
            "-e",
            "SFN_MOCK_CONFIG=/home/StepFunctionsLocal/MockConfigFile.json",
            SFN_LOCAL_IMAGE,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    try:
        sfn = boto3.client(
            "stepfunctions",
            endpoint_url=f"http://localhost:{SFN_LOCAL_PORT}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        for _ in range(60):
            try:
                sfn.list_state_machines()
                break
            except Exception:
                time.sleep(1)
        queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/tagwarden-dead-letters"
        definition = deployment.substitute(deployment.read_definition(), placeholders_for(queue_url))
        machine = sfn.create_state_machine(
            name=STATE_MACHINE, definition=definition, roleArn="arn:aws:iam::123456789012:role/DummyRole"
        )["stateMachineArn"]

        def run(case: str) -> tuple[str, str | None, list[dict[str, Any]], int]:
            arn = sfn.start_execution(
                stateMachineArn=f"{machine}#{case}", name=f"{case}-{uuid.uuid4().hex[:6]}"
            )["executionArn"]
            while (description := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
                time.sleep(0.5)
            history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
            # Step Functions Local cannot reach SQS: count the attempts to send instead.
            letters = sum(
                1
                for e in history
                if e["type"] == "TaskStateEntered"
                and e["stateEnteredEventDetails"]["name"] == "Send to dead-letter queue"
            )
            return description["status"], description.get("error"), history, letters

        yield run
    finally:
        subprocess.run(["docker", "stop", name], capture_output=True, timeout=120, check=False)


@pytest.mark.docker
@pytest.mark.parametrize("case", sorted(CASES))
def test_mock_config_case_on_step_functions_local(sfn_local: Runner, case: str) -> None:
    assert_case(sfn_local, case)
