"""`tagwarden history`: an execution history, written by hand the way GetExecutionHistory returns it,
read back as one timeline row per state run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workflow.operate import TimelineRow, timeline

T0 = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)


class History:
    """Builds events with ids, previousEventId links and timestamps in seconds after T0."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, kind: str, at: float, after: int | None = None, **details: Any) -> int:
        event_id = len(self.events) + 1
        previous = self.events[-1]["id"] if after is None and self.events else (after or 0)
        event: dict[str, Any] = {
            "id": event_id,
            "previousEventId": previous,
            "type": kind,
            "timestamp": T0 + timedelta(seconds=at),
        }
        if details:
            event[_details_key(kind)] = details
        self.events.append(event)
        return event_id


def _details_key(kind: str) -> str:
    if kind.endswith("StateEntered"):
        return "stateEnteredEventDetails"
    if kind.endswith("StateExited"):
        return "stateExitedEventDetails"
    return kind[0].lower() + kind[1:] + "EventDetails"


def by_label(rows: list[TimelineRow]) -> dict[str, TimelineRow]:
    return {row.label: row for row in rows}


def scan_with_retries_a_caught_error_and_a_map() -> History:
    """Validate (throttled once), a Map over two regions whose iterations interleave, then Persist
    fails with AccessDenied, is caught, and the execution ends in a Fail state."""
    h = History()
    h.add("ExecutionStarted", 0, input="{}", roleArn="arn:aws:iam::123456789012:role/states")
    h.add("TaskStateEntered", 0, name="Validate input")
    h.add("TaskScheduled", 0.1)
    h.add("TaskStarted", 0.1)
    h.add("TaskFailed", 0.5, error="Throttled", cause="RequestLimitExceeded")
    h.add("TaskScheduled", 1.5)
    h.add("TaskStarted", 1.5)
    h.add("TaskSucceeded", 2.0)
    h.add("TaskStateExited", 2.0, name="Validate input")
    map_entered = h.add("MapStateEntered", 2.0, name="Scan regions")
    map_started = h.add("MapStateStarted", 2.0, after=map_entered, length=2)
    it0 = h.add("MapIterationStarted", 2.1, after=map_started, name="Scan regions", index=0)
    list0 = h.add(
        "TaskStateEntered",
        2.1,
        after=it0,
        name="List EC2 instances",
        input='{"target": {"account_id": "111122223333", "region": "eu-west-1"}}',
    )
    it1 = h.add("MapIterationStarted", 2.2, after=map_started, name="Scan regions", index=1)
    list1 = h.add(
        "TaskStateEntered",
        2.2,
        after=it1,
        name="List EC2 instances",
        input='{"target": {"account_id": "self", "region": "us-east-1"}}',
    )
    s0 = h.add("TaskScheduled", 2.3, after=list0)
    s1 = h.add("TaskScheduled", 2.3, after=list1)
    f1 = h.add("TaskFailed", 2.4, after=s1, error="Throttled", cause="slow down")
    ok0 = h.add("TaskSucceeded", 3.0, after=s0)
    s1b = h.add("TaskScheduled", 4.4, after=f1)
    exit0 = h.add("TaskStateExited", 3.1, after=ok0, name="List EC2 instances")
    done0 = h.add("MapIterationSucceeded", 3.2, after=exit0, name="Scan regions", index=0)
    ok1 = h.add("TaskSucceeded", 6.0, after=s1b)
    exit1 = h.add("TaskStateExited", 6.0, after=ok1, name="List EC2 instances")
    done1 = h.add("MapIterationSucceeded", 6.1, after=exit1, name="Scan regions", index=1)
    h.add("MapStateSucceeded", 6.2, after=done1)
    h.add("MapStateExited", 6.2, after=done1, name="Scan regions")
    assert done0
    h.add("TaskStateEntered", 6.2, name="Persist report")
    h.add("TaskScheduled", 6.3)
    h.add("TaskStarted", 6.3)
    h.add("TaskFailed", 7.0, error="AccessDenied", cause="PutObject s3://reports/...: AccessDenied")
    h.add("TaskStateExited", 7.0, name="Persist report")
    h.add("PassStateEntered", 7.0, name="Persist failed")
    h.add("PassStateExited", 7.0, name="Persist failed")
    h.add("FailStateEntered", 7.1, name="Scan failed permanently")
    h.add("ExecutionFailed", 7.1, error="AccessDenied", cause="PutObject s3://reports/...: AccessDenied")
    return h


def test_a_task_retried_after_an_error_shows_its_attempts_and_the_error_it_got_past() -> None:
    row = by_label(timeline(scan_with_retries_a_caught_error_and_a_map().events))["Validate input"]
    assert (row.outcome, row.attempts, row.retries, row.attempt_errors) == ("succeeded", 2, 1, ("Throttled",))
    assert (row.error, row.cause) == ("Throttled", "RequestLimitExceeded")
    assert row.duration == 2.0
    assert row.state_type == "Task"


def test_states_inside_a_map_are_named_by_their_item_account_and_region_even_when_events_interleave() -> None:
    rows = timeline(scan_with_retries_a_caught_error_and_a_map().events)
    labels = [row.label for row in rows]
    assert labels == [
        "Validate input",
        "Scan regions",
        "List EC2 instances  111122223333/eu-west-1",
        "List EC2 instances  123456789012/us-east-1",
        "Persist report",
        "Persist failed",
        "Scan failed permanently",
    ]
    rows_by = by_label(rows)
    first, second = (
        rows_by["List EC2 instances  111122223333/eu-west-1"],
        rows_by["List EC2 instances  123456789012/us-east-1"],
    )
    assert (first.attempts, first.retries, first.error, first.duration) == (1, 0, None, 1.0)
    assert (second.attempts, second.retries, second.attempt_errors) == (2, 1, ("Throttled",))
    assert second.duration == 3.8
    assert first.iteration == "Scan regions[0]" and first.state == "List EC2 instances"
    # Account "self" is the execution's own account, named from its role ARN.
    assert (first.item, second.item) == ("111122223333/eu-west-1", "123456789012/us-east-1")
    the_map = rows_by["Scan regions"]
    assert (the_map.state_type, the_map.outcome, the_map.duration, the_map.attempts) == (
        "Map",
        "succeeded",
        4.2,
        0,
    )


def test_an_error_caught_by_catch_is_caught_and_the_fail_state_carries_the_execution_error() -> None:
    rows = by_label(timeline(scan_with_retries_a_caught_error_and_a_map().events))
    persist = rows["Persist report"]
    assert (persist.outcome, persist.attempts, persist.retries) == ("caught", 1, 0)
    assert persist.error == "AccessDenied"
    assert persist.cause == "PutObject s3://reports/...: AccessDenied"
    assert persist.duration == 0.8
    assert rows["Persist failed"].outcome == "succeeded"
    fail = rows["Scan failed permanently"]
    assert (fail.state_type, fail.outcome, fail.error) == ("Fail", "failed", "AccessDenied")


def test_a_failed_map_iteration_fails_its_state_aborts_its_sibling_and_gives_the_map_its_error() -> None:
    h = History()
    h.add("ExecutionStarted", 0)
    entered = h.add("MapStateEntered", 0, name="Scan regions")
    started = h.add("MapStateStarted", 0, after=entered, length=2)
    it0 = h.add("MapIterationStarted", 0, after=started, name="Scan regions", index=0)
    it1 = h.add("MapIterationStarted", 0, after=started, name="Scan regions", index=1)
    e0 = h.add("TaskStateEntered", 1, after=it0, name="List EC2 instances")
    e1 = h.add("TaskStateEntered", 1, after=it1, name="List EC2 instances")
    s0 = h.add("TaskScheduled", 1, after=e0)
    h.add("TaskScheduled", 1, after=e1)
    f0 = h.add("TaskFailed", 2, after=s0, error="AccessDenied", cause="ec2:DescribeInstances")
    failed = h.add("MapIterationFailed", 2, after=f0, name="Scan regions", index=0)
    h.add("MapIterationAborted", 2, after=started, name="Scan regions", index=1)
    h.add("MapStateFailed", 2, after=failed)
    h.add("ExecutionFailed", 2, error="AccessDenied", cause="ec2:DescribeInstances")
    rows = by_label(timeline(h.events))
    # Inputs without a target: the iteration keeps its index as its name.
    failing = rows["List EC2 instances  Scan regions[0]"]
    assert (failing.outcome, failing.error, failing.duration) == ("failed", "AccessDenied", 1.0)
    assert rows["List EC2 instances  Scan regions[1]"].outcome == "aborted"
    the_map = rows["Scan regions"]
    assert (the_map.outcome, the_map.error, the_map.cause) == (
        "failed",
        "AccessDenied",
        "ec2:DescribeInstances",
    )


def test_a_running_execution_shows_its_current_state_as_running_without_a_duration() -> None:
    h = History()
    h.add("ExecutionStarted", 0)
    h.add("TaskStateEntered", 0, name="Validate input")
    h.add("TaskScheduled", 0)
    rows = timeline(h.events)
    assert [(r.label, r.outcome, r.duration, r.attempts) for r in rows] == [
        ("Validate input", "running", None, 1)
    ]


def test_a_redriven_execution_shows_the_failure_then_a_redrive_marker_then_the_new_attempt() -> None:
    h = History()
    h.add("ExecutionStarted", 0)
    h.add("TaskStateEntered", 0, name="Notify")
    h.add("TaskScheduled", 0)
    h.add("TaskTimedOut", 60, error="States.Timeout")
    h.add("ExecutionFailed", 60, error="States.Timeout")
    h.add("ExecutionRedriven", 100, redriveCount=1)
    h.add("TaskStateEntered", 100, name="Notify")
    h.add("TaskScheduled", 100)
    h.add("TaskSucceeded", 101)
    h.add("TaskStateExited", 101, name="Notify")
    h.add("ExecutionSucceeded", 101)
    rows = timeline(h.events)
    assert [(r.label, r.outcome, r.error) for r in rows] == [
        ("Notify", "failed", "States.Timeout"),
        ("(execution redriven)", "redriven #1", None),
        ("Notify", "succeeded", None),
    ]
    assert rows[2].duration == 1.0


def test_a_history_saved_as_json_with_iso_timestamps_reads_the_same() -> None:
    events = scan_with_retries_a_caught_error_and_a_map().events
    saved = [dict(e, timestamp=e["timestamp"].isoformat()) for e in events]
    assert [r.to_json() for r in timeline(saved)] == [r.to_json() for r in timeline(events)]


def test_timeline_rows_as_json_carry_every_column_of_the_table() -> None:
    row = by_label(timeline(scan_with_retries_a_caught_error_and_a_map().events))["Validate input"]
    assert row.to_json() == {
        "state": "Validate input",
        "type": "Task",
        "iteration": None,
        "item": None,
        "entered": "2026-11-28T09:00:00Z",
        "ended": "2026-11-28T09:00:02Z",
        "duration_seconds": 2.0,
        "attempts": 2,
        "retries": 1,
        "attempt_errors": ["Throttled"],
        "outcome": "succeeded",
        "error": "Throttled",
        "cause": "RequestLimitExceeded",
    }


def test_a_target_not_scanned_is_its_own_outcome_with_the_reason_and_its_item() -> None:
    h = History()
    h.add("ExecutionStarted", 0, roleArn="arn:aws:iam::123456789012:role/states")
    entered = h.add("MapStateEntered", 0, name="Scan regions")
    started = h.add("MapStateStarted", 0, after=entered, length=1)
    it = h.add("MapIterationStarted", 0, after=started, name="Scan regions", index=0)
    target = '{"target": {"account_id": "999999999999", "region": "us-east-1"}}'
    h.add("TaskStateEntered", 0, after=it, name="List EC2 instances", input=target)
    h.add("TaskStateExited", 1, name="List EC2 instances", output="{}")
    h.add("PassStateEntered", 1, name="Target not scanned")
    h.add(
        "PassStateExited",
        1,
        name="Target not scanned",
        output='{"target_error": "AccessDenied: sts:AssumeRole"}',
    )
    rows = by_label(timeline(h.events))
    unscanned = rows["Target not scanned  999999999999/us-east-1"]
    assert (unscanned.outcome, unscanned.cause) == ("not scanned", "AccessDenied: sts:AssumeRole")
    assert rows["List EC2 instances  999999999999/us-east-1"].outcome == "succeeded"
