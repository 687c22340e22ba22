"""Following an execution state by state: a live display on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import IO, Any

from rich.console import Console

_ENTERED = "StateEntered"
_EXITED = "StateExited"


def _state_name(event: dict[str, Any]) -> str | None:
    for key in ("stateEnteredEventDetails", "stateExitedEventDetails"):
        if key in event:
            return str(event[key].get("name"))
    return None


class ExecutionProgress:
    """Turns history events into one line per finished state, with retries and failures.

    >>> lines = []
    >>> progress = ExecutionProgress(sink=lines.append)
    >>> progress({"id": 1, "type": "TaskStateEntered", "timestamp": datetime(2026, 1, 1, 0, 0, 0),
    ...           "stateEnteredEventDetails": {"name": "Validate input"}})
    >>> progress({"id": 2, "type": "TaskStateExited", "timestamp": datetime(2026, 1, 1, 0, 0, 1),
    ...           "stateExitedEventDetails": {"name": "Validate input"}})
    >>> lines
    ['  ok      Validate input  1.00s']
    """

    def __init__(self, *, sink: Any = None, stream: IO[str] | None = None) -> None:
        self._entered: dict[str, datetime] = {}
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
        self._console.print(line, markup=False)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        name = _state_name(event)
        stamp = event.get("timestamp")
        if kind.endswith(_ENTERED) and name:
            self._current = name
            if isinstance(stamp, datetime):
                self._entered[name] = stamp
            if self._status is not None:
                self._status.update(f"{name} ...")
        elif kind.endswith(_EXITED) and name:
            started = self._entered.pop(name, None)
            took = (
                f"  {(stamp - started).total_seconds():.2f}s"
                if isinstance(stamp, datetime) and started
                else ""
            )
            self._sink(f"  ok      {name}{took}")
        elif kind in {"TaskFailed", "LambdaFunctionFailed", "TaskTimedOut", "LambdaFunctionTimedOut"}:
            details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            self._sink(
                f"  error   {self._current}: {details.get('error')} (Retry or Catch decides what follows)"
            )
        elif kind in {"FailStateEntered", "ExecutionFailed"}:
            details = event.get("executionFailedEventDetails", {})
            if details:
                self._sink(f"  FAILED  {details.get('error')}: {str(details.get('cause'))[:300]}")
        elif kind == "ExecutionSucceeded":
            self._sink("  execution succeeded")
