"""Contracts of the event workflow's ASL file: JSONPath, comments, error names our handlers
raise, a substitution for every placeholder, a handler for every Task, and the wait it honours."""

from __future__ import annotations

import importlib
import json

from tests.unit.test_state_machine_definition import SERVICE_ERRORS, all_states
from workflow import deployment, errors

DEFINITION = deployment.read_events_definition()
ASL = json.loads(DEFINITION)
# The scheduled workflow's Lambdas the event workflow reuses, and its own.
REUSED = {"list-instances", "evaluate-tags", "persist-report", "remediate", "register-partitions", "notify"}
STEPS = [s for s in deployment.STEP_FUNCTIONS if s.name in REUSED] + list(deployment.EVENT_STEP_FUNCTIONS)


def test_the_event_definition_uses_jsonpath_and_every_state_says_why() -> None:
    assert ASL["QueryLanguage"] == "JSONPath" and "{%" not in DEFINITION
    assert [name for name, state in all_states(ASL["States"]) if not state.get("Comment")] == []


def test_every_error_name_is_raised_by_a_handler_or_the_service() -> None:
    ours = {n for n, o in vars(errors).items() if isinstance(o, type) and issubclass(o, errors.WorkflowError)}
    used = {
        error
        for _, state in all_states(ASL["States"])
        for clause in state.get("Retry", []) + state.get("Catch", [])
        for error in clause["ErrorEquals"]
    }
    assert used - SERVICE_ERRORS <= ours


def test_every_placeholder_has_a_substitution_and_every_task_its_handler() -> None:
    assert deployment.placeholders(DEFINITION) == {s.placeholder for s in STEPS} | {
        deployment.DEAD_LETTER_QUEUE_PLACEHOLDER
    }
    tasks = {
        state["Parameters"]["FunctionName"]
        for _, state in all_states(ASL["States"])
        if state.get("Resource") == "arn:aws:states:::lambda:invoke"
    }
    assert tasks == {f"${{{s.placeholder}}}" for s in STEPS}
    for step in (*STEPS, deployment.STORE_EVENT_BATCH):
        module, function = step.handler.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), function)), step.handler


def test_every_lambda_task_retries_with_jitter_and_catches_into_the_dead_letter_path() -> None:
    for name, state in all_states(ASL["States"]):
        if state.get("Resource") != "arn:aws:states:::lambda:invoke":
            continue
        assert any(r.get("JitterStrategy") == "FULL" for r in state["Retry"]), name
    top = ASL["States"]
    for name in ("Plan event run", "Check named resources", "Persist report", "Notify"):
        assert [c["ErrorEquals"] for c in top[name]["Catch"]] == [["States.ALL"]], name


def test_the_wait_comes_from_the_plan_and_stays_within_the_executions_timeout() -> None:
    from workflow.event_plan import MAX_WAIT_SECONDS

    wait = ASL["States"]["Wait out the grace period"]
    assert wait["Type"] == "Wait" and wait["SecondsPath"] == "$.wait_seconds"
    assert ASL["TimeoutSeconds"] >= MAX_WAIT_SECONDS + 7200
