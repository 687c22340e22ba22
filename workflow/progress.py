"""Following an execution state by state: a live display on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from rich.console import Console

from workflow.iteration_names import item_name, own_account, target_error

_ENTERED = "StateEntered"
_EXITED = "StateExited"


def _state_name(event: dict[str, Any]) -> str | None:
    for key in ("stateEnteredEventDetails", "stateExitedEventDetails"):
        if key in event:
            return str(event[key].get("name"))
    return None


@dataclass(frozen=True)
class _Entry:
    key: int  # the id of its StateEntered event
    name: str
    item: str | None
    started: datetime | None
    parent: int | None  # the entry the event before it belonged to


class ExecutionProgress:
    """Turns history events into one line per finished state, with retries and failures.

    Events are tied to the state they belong to through ``previousEventId``, so the concurrent
    iterations of a Map each get their duration, and a state inside a Map is named with the
    iteration's item, as ``tagwarden history`` and ``graph.html`` name it
    (:mod:`workflow.iteration_names`).

    >>> lines = []
    >>> progress = ExecutionProgress(sink=lines.append)
    >>> at = lambda s: datetime(2026, 1, 1, 0, 0, s)
    >>> for event in [
    ...     {"id": 1, "previousEventId": 0, "type": "MapIterationStarted", "timestamp": at(0),
    ...      "mapIterationStartedEventDetails": {"name": "Scan regions", "index": 0}},
    ...     {"id": 2, "previousEventId": 1, "type": "TaskStateEntered", "timestamp": at(0),
    ...      "stateEnteredEventDetails": {"name": "List EC2 instances",
    ...          "input": '{"target": {"account_id": "123456789012", "region": "eu-west-1"}}'}},
    ...     {"id": 3, "previousEventId": 2, "type": "TaskStateExited", "timestamp": at(1),
    ...      "stateExitedEventDetails": {"name": "List EC2 instances"}}]:
    ...     progress(event)
    >>> lines
    ['  ok      List EC2 instances  123456789012/eu-west-1  1.00s']
    """

    def __init__(self, *, sink: Any = None, stream: IO[str] | None = None) -> None:
        self._entries: dict[int, _Entry] = {}
        self._entry_of: dict[int, int] = {}  # event id -> the StateEntered event it belongs to
        self._iteration_starts: set[int] = set()
        self._account: str | None = None
        self._current: str | None = None
        self._stream = stream or sys.stderr
        self._console = Console(file=self._stream, highlight=False) if sink is None else None
        self._sink = sink or self._print
        self._status: Any = None
        if self._console is not None and self._console.is_terminal:
            self._status = self._console.status("starting execution")
            self._status.start()

    def _print(self, line: str) -> None:
        assert self._console is not None
        from workflow.render import terminal_text

        self._console.print(terminal_text(line), soft_wrap=True)  # one event, one line

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _entered(self, event_id: int, previous: int, name: str, event: dict[str, Any]) -> None:
        details = event.get("stateEnteredEventDetails") or {}
        if previous in self._iteration_starts:
            item = item_name(details.get("input"), self._account)
        else:
            before = self._entries.get(self._entry_of.get(previous, -1))
            item = before.item if before is not None else None
        stamp = event.get("timestamp")
        self._entries[event_id] = _Entry(
            event_id, name, item, stamp if isinstance(stamp, datetime) else None, self._entry_of.get(previous)
        )
        self._entry_of[event_id] = event_id

    def _exited(self, previous: int, name: str) -> _Entry | None:
        """The entry a StateExited closes: up the chain to the StateEntered of the same name."""
        entry_id = self._entry_of.get(previous)
        while entry_id is not None and self._entries[entry_id].name != name:
            entry_id = self._entries[entry_id].parent
        return self._entries.get(entry_id) if entry_id is not None else None

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        name = _state_name(event)
        stamp = event.get("timestamp")
        event_id, previous = int(event.get("id", 0)), int(event.get("previousEventId") or 0)
        if previous in self._entry_of:
            self._entry_of[event_id] = self._entry_of[previous]
        if kind == "ExecutionStarted":
            self._account = own_account([event])
        elif kind == "MapIterationStarted":
            self._iteration_starts.add(event_id)
        if kind.endswith(_ENTERED) and name:
            self._current = name
            self._entered(event_id, previous, name, event)
            if self._status is not None:
                from workflow.render import terminal_text

                self._status.update(terminal_text(f"{name} ..."))
        elif kind.endswith(_EXITED) and name:
            entry = self._exited(previous, name)
            if entry is not None:
                self._entry_of[event_id] = entry.key
            item = f"  {entry.item}" if entry is not None and entry.item else ""
            took = (
                f"  {(stamp - entry.started).total_seconds():.2f}s"
                if entry is not None and isinstance(stamp, datetime) and entry.started
                else ""
            )
            reason = target_error((event.get("stateExitedEventDetails") or {}).get("output"))
            if reason:  # anything not scanned is loud
                self._sink(f"  NOT SCANNED  {name}{item}{took}: {reason[:300]}")
            else:
                self._sink(f"  ok      {name}{item}{took}")
        elif kind in {"TaskFailed", "LambdaFunctionFailed", "TaskTimedOut", "LambdaFunctionTimedOut"}:
            details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            entry = self._entries.get(self._entry_of.get(event_id, -1))
            where = f"{entry.name}  {entry.item}" if entry is not None and entry.item else self._current
            self._sink(f"  error   {where}: {details.get('error')} (Retry or Catch decides what follows)")
        elif kind in {"FailStateEntered", "ExecutionFailed"}:
            details = event.get("executionFailedEventDetails", {})
            if details:
                self._sink(f"  FAILED  {details.get('error')}: {str(details.get('cause'))[:300]}")
        elif kind == "ExecutionSucceeded":
            self._sink("  execution succeeded")
