"""What a Map iteration is about, in the words an operator looks for: ``123456789012/eu-west-1``.

The scan's Map runs one iteration per (account, region) target; the target is in the input of the
iteration's first state (``{"target": {"account_id", "region"}, ...}``). ``tagwarden history``,
the ``run`` progress lines and ``graph.html`` all name iterations with :func:`item_name`, so the
slow or unscanned region has the same name everywhere. Account ``self`` (the account the state
machine runs in) is shown as that account's id when the history says it (:func:`own_account`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from workflow.layout import SELF_ACCOUNT

__all__ = ["item_name", "own_account", "target_error"]

_ARN_ACCOUNT: Final = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")
_MAX_NAME: Final = 80
_MAX_REASON: Final = 2000


def _document(state_input: Any) -> Any:
    if isinstance(state_input, str):
        try:
            return json.loads(state_input)
        except ValueError:
            return None
    return state_input


def _clean(value: Any, limit: int = _MAX_NAME) -> str:
    """One line of printable text: names and reasons come from the execution, which a caller fed."""
    text = "".join(c for c in str(value) if c.isprintable())
    return text[:limit]


def item_name(state_input: Any, account: str | None = None) -> str | None:
    """``account/region`` of the target a Map iteration works on, from its first state's input
    (JSON text or a parsed document); None when the input names no target.

    >>> item_name('{"target": {"account_id": "111122223333", "region": "eu-west-1"}, "run": {}}')
    '111122223333/eu-west-1'
    >>> item_name({"target": {"account_id": "self", "region": "us-east-1"}}, account="123456789012")
    '123456789012/us-east-1'
    >>> item_name({"region": "ap-south-1"}), item_name("not json"), item_name({"n": 1})
    ('ap-south-1', None, None)
    """
    document = _document(state_input)
    if not isinstance(document, Mapping):
        return None
    target = document.get("target")
    if not isinstance(target, Mapping):
        target = document
    region = target.get("region")
    if not isinstance(region, str) or not region:
        return None
    owner = target.get("account_id")
    if owner == SELF_ACCOUNT and account:
        owner = account
    return _clean(f"{owner}/{region}" if isinstance(owner, str) and owner else region)


def own_account(events: Iterable[Mapping[str, Any]]) -> str | None:
    """The account the execution runs in, from its ExecutionStarted event's role ARN.

    >>> own_account([{"type": "ExecutionStarted", "executionStartedEventDetails":
    ...     {"roleArn": "arn:aws:iam::123456789012:role/states"}}])
    '123456789012'
    """
    for event in events:
        if event.get("type") != "ExecutionStarted":
            continue
        details = event.get("executionStartedEventDetails")
        role = details.get("roleArn") if isinstance(details, Mapping) else None
        match = _ARN_ACCOUNT.match(role) if isinstance(role, str) else None
        return match.group(1) if match else None
    return None


def target_error(output: Any) -> str | None:
    """Why a target was not scanned, when a state's output (JSON text) says so at its top level
    (``{"target_error": "..."}``, as the "Target not scanned" state writes it); else None.

    >>> target_error('{"target_error": "AccessDenied: sts:AssumeRole"}'), target_error('{"n": 1}')
    ('AccessDenied: sts:AssumeRole', None)
    """
    if not isinstance(output, str) or '"target_error"' not in output:
        return None
    document = _document(output)
    reason = document.get("target_error") if isinstance(document, Mapping) else None
    return _clean(reason, _MAX_REASON) if reason else None
