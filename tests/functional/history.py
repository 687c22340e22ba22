"""Reading an execution history the way a person debugging it would."""

from __future__ import annotations

from typing import Any


def states_entered(history: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


def task_errors(history: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(state, error) for every failed task attempt; the state is the last one entered."""
    current = ""
    out = []
    for event in history:
        if "stateEnteredEventDetails" in event:
            current = event["stateEnteredEventDetails"]["name"]
        if event["type"] in {"TaskFailed", "TaskTimedOut"}:
            details = event.get("taskFailedEventDetails") or event.get("taskTimedOutEventDetails") or {}
            out.append((current, details.get("error", "")))
    return out


def payload_sizes(history: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(event type, state, bytes) of every state input and output in the history."""
    sizes = []
    for event in history:
        for key, field in (("stateEnteredEventDetails", "input"), ("stateExitedEventDetails", "output")):
            details = event.get(key)
            if details and details.get(field) is not None:
                sizes.append((event["type"], details["name"], len(details[field].encode("utf-8"))))
    return sizes
