"""Reading and validating tag policy documents (version 1, or a foreign format converted to it).

Every problem is reported at once, one ``<JSON path>: <message>`` line each, so a policy author
fixes a file in one round trip; nothing here raises anything but :class:`PolicyError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from workflow.errors import PolicyError, Problem
from workflow.policy import patterns
from workflow.resources import INHERITS_FROM, RESOURCE_TYPES
from workflow.text import lone_surrogate_paths

# AWS Organizations caps tag policies at 10,000 characters; ours are plain JSON of at most 200
# rules, so 1 MiB is far above any honest policy and far below anything that could hurt memory.
MAX_POLICY_BYTES = 1024 * 1024
SCHEMA_RESOURCE = "policy-v1.schema.json"
# Tagwarden's own tag on an instance that staged remediation will stop (its value: the first day it
# may be stopped). Reserved like ``aws:`` keys: no rule reads it, it is never prohibited and never
# counts as a user tag, so the mark itself can never keep an instance noncompliant (and stop it).
MARK_KEY: Final = "tagwarden:marked-for-stop"


@cache
def policy_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of policy version 1, as shipped in the package."""
    text = resources.files("workflow.policy").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(policy_schema())
    return Draft202012Validator(policy_schema())


def json_path(parts: Any) -> str:
    """Render a jsonschema path deque as ``$.rules[2].pattern``.

    >>> json_path(["rules", 2, "pattern"])
    '$.rules[2].pattern'
    """
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.replace("_", "").isalnum():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def _reject_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateMember(key)
        seen[key] = value
    return seen


_MAX_INT_DIGITS: Final = 4300  # what Python's int() parses (sys.get_int_max_str_digits)


class _HugeInteger(ValueError):
    def __init__(self, digits: int) -> None:
        super().__init__(digits)
        self.digits = digits


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > _MAX_INT_DIGITS:
        raise _HugeInteger(digits)
    return int(text)


class _DuplicateMember(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_policy_text(text: str, *, source: str | None = None) -> Any:
    """Parse JSON text, turning syntax errors into a PolicyError with line and column.

    >>> parse_policy_text('{"version": 1}')
    {'version': 1}
    """
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_members, parse_int=_bounded_int)
    except _HugeInteger as huge:
        raise PolicyError(
            [
                Problem(
                    "$",
                    f"an integer literal of {huge.digits} digits (at most {_MAX_INT_DIGITS} can be read); "
                    "a tag policy never needs one",
                )
            ],
            source=source,
        ) from None
    except _DuplicateMember as dup:
        raise PolicyError(
            [Problem("$", f"member {dup.key!r} appears twice in one object; keep one")], source=source
        ) from None
    except json.JSONDecodeError as err:
        raise PolicyError(
            [Problem("$", f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}")],
            source=source,
        ) from None
    except RecursionError:
        raise PolicyError([Problem("$", "JSON nested too deeply")], source=source) from None


def read_policy_file(path: str | Path) -> Any:
    """Read and parse a policy file; unreadable, oversized or non-JSON files raise PolicyError."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as err:
        raise PolicyError([Problem("$", f"cannot read file: {err.strerror or err}")], source=source) from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(
            [
                Problem(
                    "$", f"file is larger than {MAX_POLICY_BYTES // 1024} KiB; a tag policy never needs that"
                )
            ],
            source=source,
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise PolicyError([Problem("$", f"not UTF-8 text (byte {err.start})")], source=source) from None
    return parse_policy_text(text, source=source)


def schema_problem(error: ValidationError) -> Problem:
    """One clear line for one JSON Schema error of a policy (or of a part of one)."""
    path = json_path(error.absolute_path)
    validator = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if validator == "additionalProperties":
        known = set(schema.get("properties", {}))
        extras = sorted(set(error.instance if isinstance(error.instance, dict) else ()) - known)
        allowed = ", ".join(sorted(known))
        field = extras[0] if extras else "?"
        return Problem(
            json_path([*error.absolute_path, field]), f"unknown field; allowed fields here: {allowed}"
        )
    if validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        return Problem(json_path([*error.absolute_path, missing]), "required field is missing")
    if validator == "const" and list(error.absolute_path) == ["version"]:
        return Problem(
            path, f"must be 1 (got {json.dumps(error.instance)}); this is policy language version 1"
        )
    if validator == "oneOf" and "exemptions" in error.absolute_path:
        return Problem(path, "an exemption needs exactly one of 'tag', 'instance_ids' or 'resource_ids'")
    if validator == "pattern" and list(error.absolute_path)[-1:] == ["name"]:
        return Problem(
            path, "must start with a letter or digit and hold only letters, digits, '.', '_', '-', ' '"
        )
    if validator == "pattern" and list(error.absolute_path)[-1:] == ["expires"]:
        return Problem(path, f"{error.instance!r} is not a date (YYYY-MM-DD, the last day it exempts)")
    if validator == "pattern" and list(error.absolute_path)[-1:] == ["id"]:
        return Problem(path, "must start with a letter or digit and hold only letters, digits and ._:/-")
    if validator == "uniqueItems":
        return Problem(path, "contains the same item twice; list each once")
    if validator in _SIZE_LIMITS and isinstance(error.instance, list | str | dict):
        # jsonschema's message quotes the whole value: a 10,000-rule list makes a 180 KB line.
        noun, bound = _SIZE_LIMITS[validator]
        return Problem(path, f"has {len(error.instance)} {noun}; {bound} {error.validator_value} allowed")
    return Problem(path, error.message)


_SIZE_LIMITS: Final = {
    "maxItems": ("items", "at most"),
    "maxLength": ("characters", "at most"),
    "maxProperties": ("fields", "at most"),
}


@cache
def _max_rules() -> int:
    return int(policy_schema()["properties"]["rules"]["maxItems"])


def _schema_problems(doc: Any) -> Iterator[Problem]:
    for error in sorted(
        _validator().iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message)
    ):
        yield schema_problem(error)


def _well_formed_rules(doc: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """Rules with a string key; the schema reports the others, this keeps the checks below safe."""
    rules = doc.get("rules")
    if not isinstance(rules, list):
        return []
    return [(i, r) for i, r in enumerate(rules) if isinstance(r, dict) and isinstance(r.get("key"), str)]


def _listed_types(doc: dict[str, Any]) -> list[str]:
    listed = doc.get("resource_types", ["instance"])
    return (
        [t for t in listed if isinstance(t, str) and t in RESOURCE_TYPES] if isinstance(listed, list) else []
    )


def _resource_type_problems(doc: dict[str, Any]) -> Iterator[Problem]:
    """Rule types and inheritance must name types the policy lists: a type it does not list is
    never listed, so a rule or an inheritance for it would silently check nothing."""
    listed = _listed_types(doc)
    shown = ", ".join(listed) or "none"
    for index, rule in _well_formed_rules(doc):
        types = rule.get("resource_types")
        for t_index, name in enumerate(types if isinstance(types, list) else ()):
            if isinstance(name, str) and name in RESOURCE_TYPES and name not in listed:
                yield Problem(
                    f"$.rules[{index}].resource_types[{t_index}]",
                    f"{name!r} is not in the policy's resource_types ({shown}); "
                    "add it there or remove it here",
                )
    inherit = doc.get("inherit")
    for index, entry in enumerate(inherit if isinstance(inherit, list) else ()):
        if not isinstance(entry, dict):
            continue
        parent = entry.get("from")
        if isinstance(parent, str) and parent in RESOURCE_TYPES and parent not in listed:
            yield Problem(
                f"$.inherit[{index}].from",
                f"{parent!r} is not in the policy's resource_types ({shown}): its values cannot be "
                "compared unless it is listed too; add it there",
            )
        children = entry.get("to")
        for c_index, child in enumerate(children if isinstance(children, list) else ()):
            path = f"$.inherit[{index}].to[{c_index}]"
            if not isinstance(child, str) or child not in INHERITS_FROM:
                continue
            if not isinstance(parent, str) or parent not in RESOURCE_TYPES:
                continue  # the schema reports the parent
            if INHERITS_FROM[child] != parent:
                yield Problem(
                    path,
                    f"a {child} inherits from {'an' if INHERITS_FROM[child] == 'instance' else 'a'} "
                    f'{INHERITS_FROM[child]}, not from {parent!r}; move it to an entry with that "from"',
                )
            elif child not in listed:
                yield Problem(
                    path, f"{child!r} is not in the policy's resource_types ({shown}); add it there"
                )
        keys = entry.get("keys")
        for k_index, key in enumerate(keys if isinstance(keys, list) else ()):
            if isinstance(key, str) and key.lower().startswith("aws:"):
                yield Problem(
                    f"$.inherit[{index}].keys[{k_index}]",
                    "keys beginning with 'aws:' are reserved for AWS and never evaluated",
                )


def _inherited_keys(doc: dict[str, Any]) -> Iterator[tuple[int, str]]:
    inherit = doc.get("inherit")
    for index, entry in enumerate(inherit if isinstance(inherit, list) else ()):
        keys = entry.get("keys") if isinstance(entry, dict) else None
        for key in keys if isinstance(keys, list) else ():
            if isinstance(key, str):
                yield index, key


_DATE: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _exemption_problems(doc: dict[str, Any]) -> Iterator[Problem]:
    """An ``expires`` that is no calendar date, and two exemptions with one ``id``."""
    exemptions = doc.get("exemptions")
    seen: dict[str, int] = {}
    for index, exemption in enumerate(exemptions if isinstance(exemptions, list) else []):
        if not isinstance(exemption, dict):
            continue
        expires = exemption.get("expires")
        if isinstance(expires, str) and _DATE.match(expires):  # the schema refuses other shapes
            try:
                date.fromisoformat(expires)
            except ValueError:
                yield Problem(f"$.exemptions[{index}].expires", f"{expires!r} is not a date (YYYY-MM-DD)")
        name = exemption.get("id")
        if isinstance(name, str):
            if name in seen:
                yield Problem(f"$.exemptions[{index}].id", f"{name!r} is already $.exemptions[{seen[name]}]")
            seen.setdefault(name, index)


def _semantic_problems(doc: dict[str, Any], *, check_patterns: bool) -> Iterator[Problem]:
    yield from _resource_type_problems(doc)
    yield from _exemption_problems(doc)
    rules = _well_formed_rules(doc)
    by_index = dict(rules)
    listed = set(_listed_types(doc))
    # Two rules may name one key only for disjoint resource types (required on volumes, optional
    # on instances); each type still sees one rule per key.
    seen_for: dict[str, list[tuple[int, set[str]]]] = {}
    for index, rule in rules:
        path = f"$.rules[{index}]"
        key = rule["key"]
        folded = key.casefold()
        types = rule.get("resource_types")
        covers = {t for t in types if isinstance(t, str)} if isinstance(types, list) else listed
        clash = next((other for other, theirs in seen_for.get(folded, []) if theirs & covers), None)
        if clash is not None:
            other_key = by_index[clash]["key"]
            reason = "duplicate rule for" if other_key == key else "differs only by case from"
            hint = " (or give the two rules resource_types that do not overlap)" if len(listed) > 1 else ""
            yield Problem(
                f"{path}.key", f"{reason} {other_key!r} ($.rules[{clash}]); keep one rule per key{hint}"
            )
        seen_for.setdefault(folded, []).append((index, covers))
        if key.lower().startswith("aws:"):
            yield Problem(
                f"{path}.key", "keys beginning with 'aws:' are reserved for AWS and never evaluated"
            )
        if key == MARK_KEY:
            yield Problem(
                f"{path}.key",
                f"{MARK_KEY!r} is Tagwarden's remediation mark, never evaluated; choose another key",
            )
        ignore_case = rule.get("value_case") == "insensitive"
        if not check_patterns:
            continue
        if isinstance(rule.get("pattern"), str):
            yield from _pattern_problems(rule["pattern"], f"{path}.pattern", ignore_case=ignore_case)
        values = rule.get("allowed_values")
        globs = [v for v in (values if isinstance(values, list) else []) if isinstance(v, str) and "*" in v]
        for value_index, value in enumerate(values if isinstance(values, list) else []):
            if isinstance(value, str) and "*" in value:
                yield from _pattern_problems(
                    glob_to_regex(value), f"{path}.allowed_values[{value_index}]", ignore_case=ignore_case
                )
        if len(globs) > 1:
            # The compiler matches all the globs of a rule with one pattern: it must fit too.
            yield from _alternation_problems(globs, f"{path}.allowed_values", ignore_case=ignore_case)
    prohibited = doc.get("prohibited_keys")
    if not check_patterns:
        return
    prohibited_globs = [g for g in (prohibited if isinstance(prohibited, list) else []) if isinstance(g, str)]
    for index, glob in enumerate(prohibited if isinstance(prohibited, list) else []):
        if not isinstance(glob, str):
            continue
        try:
            matcher = patterns.compile_pattern(glob_to_regex(glob), ignore_case=True)
        except patterns.PatternRefused as err:
            yield Problem(f"$.prohibited_keys[{index}]", str(err))
            continue
        for rule_index, rule in rules:
            if matcher.fullmatch(rule["key"]):
                yield Problem(
                    f"$.prohibited_keys[{index}]",
                    f"prohibits {rule['key']!r}, which $.rules[{rule_index}] asks for; remove one of them",
                )
        for entry_index, key in _inherited_keys(doc):
            if matcher.fullmatch(key):
                yield Problem(
                    f"$.prohibited_keys[{index}]",
                    f"prohibits {key!r}, which $.inherit[{entry_index}] asks children to carry; "
                    "remove one of them",
                )
    wildcards = [g.casefold() for g in prohibited_globs if "*" in g]
    if len(wildcards) > 1:
        yield from _alternation_problems(wildcards, "$.prohibited_keys", ignore_case=True)


def _pattern_problems(pattern: str, path: str, *, ignore_case: bool) -> Iterator[Problem]:
    problem = patterns.pattern_problem(pattern, ignore_case=ignore_case)
    if problem is not None:
        yield Problem(path, problem)


def _alternation_problems(globs: list[str], path: str, *, ignore_case: bool) -> Iterator[Problem]:
    try:
        patterns.compile_glob_alternation(globs, ignore_case=ignore_case)
    except patterns.PatternRefused as err:
        yield Problem(path, f"the {len(globs)} wildcard entries together: {err}")


def glob_to_regex(glob: str) -> str:
    """Translate a value or key glob, where ``*`` matches any run of characters, to an RE2 pattern.

    >>> glob_to_regex("dev*")
    'dev(?s:.*)'
    """
    return patterns.glob_to_pattern(glob)


def validate_policy(doc: Any) -> list[Problem]:
    """Every problem of a version 1 policy document, or an empty list when it is valid.

    Patterns are compiled with RE2 (:mod:`workflow.policy.patterns`): validation takes
    milliseconds per pattern whatever the pattern, so there is nothing to skip on a re-read.

    >>> validate_policy({"version": 1, "name": "p", "rules": [{"key": "Owner"}]})
    []
    >>> [str(p) for p in validate_policy({"version": 2, "name": "p", "rules": [{"key": "Owner"}]})]
    ['$.version: must be 1 (got 2); this is policy language version 1']
    """
    surrogates = [
        Problem(path, f"holds a lone surrogate ({found}), which is not Unicode text; remove it")
        for path, found in lone_surrogate_paths(doc, "$")
    ]
    if surrogates:
        # Nothing else can be checked or hashed: the document cannot even be written as UTF-8.
        return surrogates[:20]
    problems = list(_schema_problems(doc))
    if isinstance(doc, dict):
        # Past the schema's 200 rules, compiling every pattern would only make the rejection
        # slow: report the schema problems alone.
        rules = doc.get("rules")
        too_many = isinstance(rules, list) and len(rules) > _max_rules()
        problems.extend(_semantic_problems(doc, check_patterns=not too_many))
    return problems
