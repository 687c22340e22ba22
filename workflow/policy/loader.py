"""From a file or a parsed document, whatever its format, to a validated version 1 policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workflow.errors import PolicyError
from workflow.policy.compiler import CompiledPolicy, compile_policy
from workflow.policy.document import read_policy_file, validate_policy


def load_policy_document(doc: Any, *, source: str | None = None, name: str | None = None) -> dict[str, Any]:
    """Convert ``doc`` to version 1 if it is an Organizations or Config policy, then validate it.

    Raises :class:`PolicyError` with every problem, tagged with ``source``.

    >>> load_policy_document({"tag1Key": "CostCenter"}, name="cc")["rules"][0]["key"]
    'CostCenter'
    """
    from workflow.policy.convert import to_v1

    try:
        converted = to_v1(doc, name=name or "converted")
        problems = validate_policy(converted)
    except PolicyError as err:
        raise PolicyError(err.problems, source=source) from None
    if problems:
        raise PolicyError(problems, source=source)
    return converted


def load_policy(path: str | Path) -> CompiledPolicy:
    """Read, convert, validate and compile a policy file in one step."""
    doc = read_policy_file(path)
    return compile_policy(load_policy_document(doc, source=str(path), name=Path(path).stem))
