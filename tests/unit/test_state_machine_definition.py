"""Contracts between the ASL file, the handlers and the exception hierarchy."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from workflow import deployment, errors

DEFINITION = deployment.read_definition()
ASL = json.loads(DEFINITION)
# Errors raised by Step Functions or the Lambda service, not by our handlers.
SERVICE_ERRORS = {
    "States.ALL",
    "States.Timeout",
    "Sandbox.Timedout",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def all_states(states: dict[str, Any] = ASL["States"]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from all_states(processor["States"])
        for branch in state.get("Branches", []):
            yield from all_states(branch["States"])


def test_definition_uses_jsonpath_not_jsonata() -> None:
    assert ASL["QueryLanguage"] == "JSONPath"
    assert "{%" not in DEFINITION


def test_every_state_has_a_comment() -> None:
    assert [name for name, state in all_states() if not state.get("Comment")] == []


def test_every_error_name_in_retry_and_catch_is_raised_by_a_handler_or_the_service() -> None:
    ours = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, errors.WorkflowError)
    }
    used = {
        error
        for _, state in all_states()
        for clause in state.get("Retry", []) + state.get("Catch", [])
        for error in clause["ErrorEquals"]
    }
    assert used - SERVICE_ERRORS <= ours
    assert {"Throttled", "ServiceUnavailable"} <= used


def test_every_placeholder_has_a_substitution_and_every_task_its_handler() -> None:
    expected = {s.placeholder for s in deployment.STEP_FUNCTIONS} | {
        deployment.DEAD_LETTER_QUEUE_PLACEHOLDER,
        deployment.REPORT_BUCKET_PLACEHOLDER,
    }
    assert deployment.placeholders(DEFINITION) == expected
    lambda_tasks = {
        state["Parameters"]["FunctionName"]
        for _, state in all_states()
        if state.get("Resource") == "arn:aws:states:::lambda:invoke"
    }
    assert lambda_tasks == {f"${{{s.placeholder}}}" for s in deployment.STEP_FUNCTIONS}
    for step in deployment.STEP_FUNCTIONS:
        module, function = step.handler.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), function)), step.handler


def test_every_lambda_task_retries_transient_errors_with_jitter_and_catches_everything() -> None:
    for name, state in all_states():
        if state.get("Resource") != "arn:aws:states:::lambda:invoke":
            continue
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        if name == "Remediate":
            # A step that may have stopped instances never runs again on their new state: only
            # the Lambda service's own errors (the function did not run) are retried.
            assert retried == {e for e in SERVICE_ERRORS if e.startswith("Lambda.")} & retried, name
            assert "Lambda.TooManyRequestsException" in retried and "Throttled" not in retried, name
        else:
            assert {"Throttled", "ServiceUnavailable", "Lambda.TooManyRequestsException"} <= retried, name
        assert all(
            r.get("JitterStrategy") == "FULL" and r.get("BackoffRate", 1) > 1 for r in state["Retry"]
        ), name
        assert "States.ALL" not in retried, f"{name} must not retry permanent errors"
        assert [c["ErrorEquals"] for c in state["Catch"]] == [["States.ALL"]], name
        assert state["TimeoutSeconds"] >= next(
            s.timeout_seconds
            for s in deployment.STEP_FUNCTIONS
            if f"${{{s.placeholder}}}" == state["Parameters"]["FunctionName"]
        ), f"{name}: the Lambda timeout must fire before the Task's"


def test_every_failure_path_except_invalid_input_partitions_and_security_hub_reaches_the_dead_letter_queue() -> (
    None
):
    states = ASL["States"]
    for name in ("Validate input", "Scan regions", "Scan regions at scale", "Persist report", "Notify"):
        handler = states[states[name]["Catch"][0]["Next"]]
        assert handler["Parameters"]["state"] == name
        assert handler["Next"] == "Send to dead-letter queue"
    assert states["Register partitions"]["Catch"][0]["Next"] == "Partitions not registered"
    assert states["Partitions not registered"]["Next"] == "Security Hub?"
    # Like the partitions: the report is persisted, so an import failure is told, never a failed run.
    assert states["Import to Security Hub"]["Catch"][0]["Next"] == "Security Hub import failed"
    assert states["Security Hub import failed"]["Next"] == "Notify?"
    body = states["Send to dead-letter queue"]["Parameters"]["MessageBody"]
    assert {"execution_id.$", "execution_name.$", "failed_state.$", "error.$", "cause.$", "input.$"} <= set(
        body
    )


def test_substitute_refuses_a_missing_value() -> None:
    with pytest.raises(KeyError, match="DeadLetterQueueUrl"):
        deployment.substitute(DEFINITION, {s.placeholder: "arn" for s in deployment.STEP_FUNCTIONS})


SCALE_SUFFIX = " (at scale)"


def _without_scale_suffix(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {
            _without_scale_suffix(k): (
                v.removesuffix(SCALE_SUFFIX)
                if k in {"Next", "StartAt", "Default"}
                else _without_scale_suffix(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_without_scale_suffix(x) for x in obj]
    return obj.removesuffix(SCALE_SUFFIX) if isinstance(obj, str) else obj


def test_state_names_are_unique_across_the_whole_definition_as_step_functions_requires() -> None:
    names = [name for name, _ in all_states()]
    assert len(names) == len(set(names))


def test_the_distributed_map_runs_the_same_steps_as_the_inline_map() -> None:
    inline = ASL["States"]["Scan regions"]["ItemProcessor"]
    distributed = ASL["States"]["Scan regions at scale"]["ItemProcessor"]
    assert inline["ProcessorConfig"] == {"Mode": "INLINE"}
    assert distributed["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    strip = {k: v for k, v in distributed.items() if k != "ProcessorConfig"}
    assert _without_scale_suffix(strip) == {k: v for k, v in inline.items() if k != "ProcessorConfig"}


def test_many_targets_go_to_the_distributed_map_reading_the_manifest_from_s3() -> None:
    choice = ASL["States"]["Many targets?"]
    assert ASL["States"]["Input valid?"]["Default"] == "Many targets?"
    assert choice["Choices"] == [
        {"Variable": "$.run.fanout", "StringEquals": "distributed", "Next": "Scan regions at scale"}
    ]
    assert choice["Default"] == "Scan regions"
    scale = ASL["States"]["Scan regions at scale"]
    assert scale["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert scale["ItemReader"]["ReaderConfig"] == {"InputType": "JSON"}
    assert scale["ItemReader"]["Parameters"] == {"Bucket.$": "$.run.bucket", "Key.$": "$.run.targets_key"}
    assert scale["ToleratedFailurePercentagePath"] == "$.run.tolerated_failure_percentage"
    assert scale["MaxConcurrencyPath"] == "$.run.distributed_max_concurrency"
    # Results of up to 10,000 children would exceed the 256 KiB state limit: they go to S3.
    assert scale["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject"
    assert scale["ResultPath"] is None
    assert scale["Catch"][0]["Next"] == "Scan at scale failed"
    assert ASL["States"]["Scan regions"]["ItemsPath"] == "$.targets"
    for mode in ("Scan regions", "Scan regions at scale"):
        assert ASL["States"][mode]["ItemSelector"] == {"target.$": "$$.Map.Item.Value", "run.$": "$.run"}
        assert ASL["States"][mode]["Next"] == "Persist report"


def test_a_target_that_cannot_be_listed_ends_its_iteration_without_failing_the_map() -> None:
    processor = ASL["States"]["Scan regions"]["ItemProcessor"]["States"]
    first = processor["Listing complete?"]["Choices"][0]
    assert first == {
        "Variable": "$.result.listing.target_error",
        "IsNull": False,
        "Next": "Target not scanned",
    }
    assert processor["Target not scanned"]["Type"] == "Pass"
    assert processor["Target not scanned"]["End"] is True
