"""Tiny Lambda handlers for the embedded engine's functional tests.

The engine runs them in-process, so module state (the attempt counter) is shared with the tests;
counters are keyed by execution name and item so tests never see each other's attempts.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_attempts: Counter[tuple[str, Any]] = Counter()
_attempts_lock = threading.Lock()


class FlakyError(Exception):
    """Fails the first N attempts of an item, then the item succeeds."""


class PermanentError(Exception):
    """No retry can fix this one."""


def attempts(execution: str, item: Any) -> int:
    """How many times ``flaky`` ran for this item of this execution."""
    with _attempts_lock:
        return _attempts[(execution, item)]


def succeed(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"item": event["item"], "doubled": event["item"] * 2}


def flaky(event: dict[str, Any], context: Any) -> dict[str, Any]:
    key = (event["execution"], event["item"])
    with _attempts_lock:
        _attempts[key] += 1
        attempt = _attempts[key]
    if attempt <= event["fail_times"]:
        raise FlakyError(f"item {event['item']} failed attempt {attempt}")
    return {"item": event["item"], "attempts": attempt}


def permanent(event: dict[str, Any], context: Any) -> None:
    raise PermanentError(f"item {event['item']} is broken for good")


def sleepy(event: dict[str, Any], context: Any) -> str:
    """Sleeps ``item`` seconds."""
    time.sleep(event["item"])
    return "finished too late"


_barriers: dict[str, threading.Barrier] = {}


def rendezvous(event: dict[str, Any], context: Any) -> str:
    """Waits until ``item`` invocations of this execution are inside the handler at once.

    Invocations that run one after the other never meet: the first one's wait times out.
    """
    with _attempts_lock:
        barrier = _barriers.setdefault(event["execution"], threading.Barrier(event["item"]))
    barrier.wait(timeout=20)
    return "met"


def unserialisable(event: dict[str, Any], context: Any) -> set[int]:
    return {1, 2, 3}


def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Report what the handler sees: its configuration and its context."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        colour_in_thread = pool.submit(os.environ.get, "COLOUR").result()
    return {
        "colour_in_thread": colour_in_thread,
        "item": event.get("item"),
        "colour": os.environ.get("COLOUR"),
        "other": os.environ.get("ONLY_ON_OTHER"),
        "function_name_env": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        "function_name": context.function_name,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
