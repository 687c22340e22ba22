"""Functional tests of workflow.engine.embedded: real ASL on moto's interpreter, handlers in-process."""

from __future__ import annotations

import importlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from workflow.engine.embedded import EmbeddedEngine, ExecutionTimeout, MockConfigError

# "toy_handlers" with rootdir-style imports, "tests.functional.toy_handlers" once the directory is
# a package; the engine imports handlers by the same name, so both layouts work.
toy_handlers = importlib.import_module(f"{__package__}.toy_handlers" if __package__ else "toy_handlers")
HANDLERS = toy_handlers.__name__


def pipeline(function: str, queue_url: str, *, retry: dict[str, Any] | None = None) -> dict[str, Any]:
    """Map over items calling ``function``; retry FlakyError; on failure report to SQS and fail."""
    return {
        "StartAt": "ProcessItems",
        "States": {
            "ProcessItems": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 4,
                "ItemSelector": {
                    "item.$": "$$.Map.Item.Value",
                    "execution.$": "$$.Execution.Name",
                    "fail_times.$": "$.fail_times",
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Process",
                    "States": {
                        "Process": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": function, "Payload.$": "$"},
                            "ResultSelector": {"result.$": "$.Payload"},
                            "Retry": [
                                retry
                                or {
                                    "ErrorEquals": ["FlakyError"],
                                    "IntervalSeconds": 2,
                                    "BackoffRate": 2,
                                    "MaxAttempts": 3,
                                    "JitterStrategy": "FULL",
                                }
                            ],
                            "End": True,
                        }
                    },
                },
                "ResultPath": "$.results",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ReportFailure"}],
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
            "ReportFailure": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageBody": {
                        "error.$": "$.error.Error",
                        "cause.$": "$.error.Cause",
                        "input.$": "$$.Execution.Input",
                    },
                },
                "ResultPath": None,
                "Next": "Failed",
            },
            "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
        },
    }


def task_failures(history: list[dict[str, Any]]) -> list[str]:
    return [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]


def messages(engine: EmbeddedEngine, queue_url: str) -> list[dict[str, Any]]:
    received = engine.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in received.get("Messages", [])]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


MOCK_CONFIG = {
    "StateMachines": {
        "mocked-pipeline": {
            "TestCases": {
                "FlakyTwiceThenOk": {"Process": "FlakyTwiceThenOk"},
                "BrokenAndReportMocked": {"Process": "Broken", "ReportFailure": "MessageSent"},
            }
        }
    },
    "MockedResponses": {
        "FlakyTwiceThenOk": {
            "0-1": {"Throw": {"Error": "FlakyError", "Cause": "mocked flake"}},
            "2": {"Return": {"StatusCode": 200, "Payload": {"mocked": True}}},
        },
        "Broken": {"0": {"Throw": {"Error": "PermanentError", "Cause": "mocked"}}},
        "MessageSent": {"0": {"Return": {"MessageId": "mocked-message"}}},
    },
}


@pytest.fixture(scope="class")
def engine() -> Iterator[EmbeddedEngine]:
    with EmbeddedEngine(retry_wait_scale=0) as engine:
        engine.create_function("succeed", f"{HANDLERS}.succeed")
        engine.create_function("flaky", f"{HANDLERS}.flaky")
        engine.create_function("permanent", f"{HANDLERS}.permanent")
        engine.create_function("sleepy", f"{HANDLERS}.sleepy", timeout=1)
        engine.create_function("rendezvous", f"{HANDLERS}.rendezvous", timeout=30)
        engine.create_function("unserialisable", f"{HANDLERS}.unserialisable")
        engine.create_function("probe-red", f"{HANDLERS}.probe", {"COLOUR": "red"}, memory=512)
        engine.create_function("probe-blue", f"{HANDLERS}.probe", {"COLOUR": "blue", "ONLY_ON_OTHER": "x"})
        engine.load_mock_config(MOCK_CONFIG)
        yield engine


@pytest.fixture
def queue_url(engine: EmbeddedEngine) -> str:
    return str(engine.client("sqs").create_queue(QueueName=unique("failures"))["QueueUrl"])


def run(
    engine: EmbeddedEngine, definition: dict[str, Any], execution_input: Any
) -> tuple[dict[str, Any], str]:
    machine = engine.create_state_machine(unique("machine"), definition)
    execution = engine.start_execution(machine, execution_input)
    return engine.wait(execution, timeout=15), execution


class TestPipelineOnEmbeddedEngine:
    """One engine for the class: retry waits scaled to 0, toy functions created once."""

    def test_flaky_map_items_are_retried_with_backoff_until_they_succeed(
        self, engine: EmbeddedEngine, queue_url: str
    ) -> None:
        waits_before = len(engine.retry_waits)

        result, execution = run(engine, pipeline("flaky", queue_url), {"items": [1, 2, 3], "fail_times": 2})

        assert result["status"] == "SUCCEEDED"
        output = json.loads(result["output"])
        assert [r["result"] for r in output["results"]] == [{"item": i, "attempts": 3} for i in (1, 2, 3)]
        assert task_failures(engine.history(execution)) == ["FlakyError"] * 6
        # Two retries per item; FULL jitter draws each wait between 0 and 2 s, then 0 and 4 s.
        waits = engine.retry_waits[waits_before:]
        assert len(waits) == 6
        assert all(0 <= w <= 4 for w in waits)
        assert messages(engine, queue_url) == []

    def test_permanent_error_is_not_retried_and_is_reported_to_sqs_before_failing(
        self, engine: EmbeddedEngine, queue_url: str
    ) -> None:
        execution_input = {"items": [1], "fail_times": 0}

        result, execution = run(engine, pipeline("permanent", queue_url), execution_input)

        assert result["status"] == "FAILED"
        assert result["error"] == "PermanentError"
        assert task_failures(engine.history(execution)) == ["PermanentError"]
        [message] = messages(engine, queue_url)
        assert message["error"] == "PermanentError"
        assert message["input"] == execution_input
        cause = json.loads(message["cause"])
        assert cause["errorType"] == "PermanentError"
        assert cause["errorMessage"] == "item 1 is broken for good"
        assert any("toy_handlers.py" in line for line in cause["stackTrace"])

    def test_flaky_error_past_max_attempts_fails_the_execution_after_four_attempts(
        self, engine: EmbeddedEngine, queue_url: str
    ) -> None:
        result, execution = run(engine, pipeline("flaky", queue_url), {"items": [7], "fail_times": 10})

        assert result["status"] == "FAILED"
        assert result["error"] == "FlakyError"
        assert task_failures(engine.history(execution)) == ["FlakyError"] * 4
        assert toy_handlers.attempts(execution.rsplit(":", 1)[1], 7) == 4
        [message] = messages(engine, queue_url)
        assert message["error"] == "FlakyError"
        assert json.loads(message["cause"])["errorMessage"] == "item 7 failed attempt 4"

    def test_handler_running_past_its_timeout_fails_with_sandbox_timedout_at_the_deadline(
        self, engine: EmbeddedEngine, queue_url: str
    ) -> None:
        result, execution = run(engine, pipeline("sleepy", queue_url), {"items": [1.3], "fail_times": 0})

        assert result["status"] == "FAILED"
        assert result["error"] == "Sandbox.Timedout"
        assert task_failures(engine.history(execution)) == ["Sandbox.Timedout"]
        [message] = messages(engine, queue_url)
        assert "Task timed out after 1.00 seconds" in json.loads(message["cause"])["errorMessage"]
        [invocation] = engine.invocations_of("sleepy")
        assert invocation.error_type == "Sandbox.Timedout"
        assert invocation.duration < 1.5  # reported at the 1 s deadline, not when the sleep ends

    def test_retry_wait_scale_zero_makes_an_interval_of_five_seconds_instant(
        self, engine: EmbeddedEngine, queue_url: str
    ) -> None:
        retry = {"ErrorEquals": ["FlakyError"], "IntervalSeconds": 5, "BackoffRate": 2, "MaxAttempts": 2}
        machine = engine.create_state_machine(unique("machine"), pipeline("flaky", queue_url, retry=retry))
        waits_before = len(engine.retry_waits)
        started = time.monotonic()

        result = engine.wait(engine.start_execution(machine, {"items": [1], "fail_times": 2}))

        assert result["status"] == "SUCCEEDED"
        assert time.monotonic() - started < 1.0  # 5 s + 10 s of backoff unscaled
        assert engine.retry_waits[waits_before:] == (5.0, 10.0)

    def test_retry_wait_scale_shrinks_real_backoff_without_changing_the_definition(
        self, engine: EmbeddedEngine, queue_url: str
    ) -> None:
        retry = {"ErrorEquals": ["FlakyError"], "IntervalSeconds": 2, "BackoffRate": 2, "MaxAttempts": 3}
        engine.retry_wait_scale = 0.02  # 2 + 4 + 8 s become 0.28 s
        try:
            started = time.monotonic()
            result, _ = run(
                engine, pipeline("flaky", queue_url, retry=retry), {"items": [1], "fail_times": 3}
            )
            elapsed = time.monotonic() - started
        finally:
            engine.retry_wait_scale = 0

        assert result["status"] == "SUCCEEDED"
        assert 0.28 <= elapsed < 2.0

    def test_each_function_sees_its_own_environment_and_context_even_in_a_concurrent_map(
        self,
        engine: EmbeddedEngine,
    ) -> None:
        definition = {
            "StartAt": "Probe",
            "States": {
                "Probe": {
                    "Type": "Map",
                    "ItemsPath": "$.calls",
                    "ItemProcessor": {
                        "StartAt": "Call",
                        "States": {
                            "Call": {
                                "Type": "Task",
                                "Resource": "arn:aws:states:::lambda:invoke",
                                "Parameters": {"FunctionName.$": "$.function", "Payload.$": "$"},
                                "OutputPath": "$.Payload",
                                "End": True,
                            }
                        },
                    },
                    "End": True,
                }
            },
        }
        calls = [{"function": f"probe-{c}", "item": i} for i in range(6) for c in ("red", "blue")]

        result, _ = run(engine, definition, {"calls": calls})

        assert result["status"] == "SUCCEEDED"
        seen = json.loads(result["output"])
        assert [(s["function_name"], s["colour"], s["colour_in_thread"], s["other"]) for s in seen] == [
            ("probe-red", "red", "red", None)
            if c["function"] == "probe-red"
            else ("probe-blue", "blue", "blue", "x")
            for c in calls
        ]
        red = seen[0]
        assert red["function_name_env"] == "probe-red"
        assert red["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:probe-red"
        assert red["memory"] == "512"  # a string, as the Lambda Python runtime hands it over
        assert 25_000 < red["remaining_ms"] <= 30_000  # counts down from the 30 s default timeout
        assert len({s["request_id"] for s in seen}) == len(calls)
        assert "COLOUR" not in os.environ

    def test_map_iterations_run_their_lambda_handlers_concurrently_when_not_serialized(
        self, engine: EmbeddedEngine, queue_url: str
    ) -> None:
        machine = engine.create_state_machine(unique("machine"), pipeline("rendezvous", queue_url))
        engine.serialize_invocations = False
        try:
            # Each of the 4 invocations waits for the other 3 inside the handler.
            result = engine.wait(engine.start_execution(machine, {"items": [4] * 4, "fail_times": 0}))
        finally:
            engine.serialize_invocations = True

        assert result["status"] == "SUCCEEDED", result.get("cause")
        assert json.loads(result["output"])["results"] == [{"result": "met"}] * 4

    def test_unserialisable_result_fails_with_runtime_marshal_error(self, engine: EmbeddedEngine) -> None:
        definition = {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "unserialisable", "Payload": {}},
                    "End": True,
                }
            },
        }

        result, _ = run(engine, definition, {})

        assert result["status"] == "FAILED"
        assert result["error"] == "Runtime.MarshalError"
        assert "Object of type set is not JSON serializable" in json.loads(result["cause"])["errorMessage"]

    def test_on_event_receives_every_history_event_once_in_order(
        self, engine: EmbeddedEngine, queue_url: str
    ) -> None:
        machine = engine.create_state_machine(unique("machine"), pipeline("succeed", queue_url))
        execution = engine.start_execution(machine, {"items": [1, 2], "fail_times": 0})
        streamed: list[dict[str, Any]] = []

        result = engine.wait(execution, on_event=streamed.append)

        assert result["status"] == "SUCCEEDED"
        assert streamed == engine.history(execution)
        assert [e["id"] for e in streamed] == list(range(1, len(streamed) + 1))
        assert streamed[-1]["type"] == "ExecutionSucceeded"

    def test_wait_wakes_when_the_execution_ends_instead_of_sleeping_out_its_poll_interval(
        self, engine: EmbeddedEngine
    ) -> None:
        definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}}
        machine = engine.create_state_machine(unique("machine"), definition)
        describes: list[str] = []
        sfn = engine.client("stepfunctions")
        sfn.meta.events.register("before-call.sfn.DescribeExecution", lambda **_: describes.append("call"))
        engine.poll_interval = 60
        try:
            execution = engine.start_execution(machine, {})
            started = time.monotonic()
            result = engine.wait(execution, timeout=120)
            waited = time.monotonic() - started
        finally:
            engine.poll_interval = 0.25

        assert result["status"] == "SUCCEEDED"
        # One look while running, one after the end woke it: not a poll every 20 ms, and not
        # the 60 s a poll without the wake-up would have slept.
        assert len(describes) == 2
        assert waited < 30

    def test_wait_gives_up_on_an_execution_that_is_still_running(self, engine: EmbeddedEngine) -> None:
        definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": True}}}
        machine = engine.create_state_machine(unique("machine"), definition)
        execution = engine.start_execution(machine, {})

        with pytest.raises(ExecutionTimeout):
            engine.wait(execution, timeout=0.2)
        engine.client("stepfunctions").stop_execution(executionArn=execution)

    def test_aws_sdk_errors_carry_the_pascal_case_service_name_like_aws(self, engine: EmbeddedEngine) -> None:
        definition = {
            "StartAt": "Crawl",
            "States": {
                "Crawl": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:glue:startCrawler",
                    "Parameters": {"Name": "no-such-crawler"},
                    "End": True,
                }
            },
        }

        result, _ = run(engine, definition, {})

        assert result["error"] == "Glue.EntityNotFoundException"

    def test_mock_test_case_replaces_lambda_results_by_retry_number(
        self, engine: EmbeddedEngine, queue_url: str
    ) -> None:
        machine = engine.create_state_machine("mocked-pipeline", pipeline("flaky", queue_url))

        execution = engine.start_execution(
            machine, {"items": [1, 2], "fail_times": 0}, test_case="FlakyTwiceThenOk"
        )
        result = engine.wait(execution)

        assert result["status"] == "SUCCEEDED"
        assert json.loads(result["output"])["results"] == [{"result": {"mocked": True}}] * 2
        assert task_failures(engine.history(execution)) == ["FlakyError"] * 4
        name = execution.rsplit(":", 1)[1]
        assert [i for i in engine.invocations if i.event.get("execution") == name] == []

        # Without a test case the same machine calls the real function.
        real = engine.wait(engine.start_execution(machine, {"items": [1], "fail_times": 0}))
        assert json.loads(real["output"])["results"][0]["result"]["attempts"] == 1

    def test_mock_test_case_can_mock_a_service_integration(
        self, engine: EmbeddedEngine, queue_url: str
    ) -> None:
        machine = engine.create_state_machine(unique("report"), pipeline("permanent", queue_url))
        engine.load_mock_config(
            {
                "StateMachines": {
                    machine.rsplit(":", 1)[1]: {"TestCases": {"Mocked": {"ReportFailure": "Sent"}}}
                },
                "MockedResponses": {"Sent": {"0": {"Return": {"MessageId": "mocked-message"}}}},
            }
        )
        try:
            execution = engine.start_execution(machine, {"items": [1], "fail_times": 0}, test_case="Mocked")
            result = engine.wait(execution)
        finally:
            engine.load_mock_config(MOCK_CONFIG)

        assert result["status"] == "FAILED"
        assert result["error"] == "PermanentError"  # the real handler ran
        assert messages(engine, queue_url) == []  # sendMessage was mocked

    def test_unknown_mock_test_case_is_refused_at_start(self, engine: EmbeddedEngine) -> None:
        machine = engine.create_state_machine(
            unique("other"), {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}
        )

        with pytest.raises(ClientError) as refused:
            engine.start_execution(machine, {}, test_case="FlakyTwiceThenOk")

        assert refused.value.response["Error"]["Code"] == "InvalidName"

    def test_mock_config_with_a_gap_in_retry_numbers_is_rejected_when_loaded(
        self, engine: EmbeddedEngine
    ) -> None:
        broken = {
            "StateMachines": {"m": {"TestCases": {"T": {"S": "R"}}}},
            "MockedResponses": {"R": {"0": {"Return": {}}, "2": {"Return": {}}}},
        }

        with pytest.raises(MockConfigError, match="consecutively"):
            engine.load_mock_config(broken)


def test_engine_reads_sfn_mock_config_and_restores_environment_and_moto_on_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.awslambda.models import LambdaFunction
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    config_file = tmp_path / "MockConfigFile.json"
    config_file.write_text(json.dumps(MOCK_CONFIG))
    monkeypatch.setenv("SFN_MOCK_CONFIG", str(config_file))
    environment_before = dict(os.environ)
    invoke_before = LambdaFunction.invoke

    with EmbeddedEngine(region="eu-west-1", retry_wait_scale=0) as engine:
        assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"
        assert engine.client("s3").meta.region_name == "eu-west-1"
        assert LambdaFunction.invoke is not invoke_before
        queue = engine.client("sqs").create_queue(QueueName="q")["QueueUrl"]
        machine = engine.create_state_machine("mocked-pipeline", pipeline("not-even-created", queue))
        execution = engine.start_execution(
            machine, {"items": [1], "fail_times": 0}, test_case="FlakyTwiceThenOk"
        )
        assert engine.wait(execution)["status"] == "SUCCEEDED"

    assert dict(os.environ) == environment_before
    assert LambdaFunction.invoke is invoke_before
    assert retrier_decl.time is time
