"""Compile a validated version 1 policy once into matchers the evaluator applies per instance."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from workflow.errors import PolicyError
from workflow.policy.document import MARK_KEY, validate_policy
from workflow.policy.patterns import CompiledPattern, compile_glob_alternation, compile_pattern
from workflow.resources import ORDER

DEFAULT_STATES = ("pending", "running", "stopping", "stopped")
DEFAULT_OWNER_KEY = "Owner"
# The reserved kind of a key no rule reads (``aws:`` keys and Tagwarden's remediation mark).
RESERVED = "aws:"


# Tag values and keys repeat across a fleet (a few environments, tens of cost centers, hundreds of
# owners): each rule remembers its outcome per value, and the policy its verdict per key, so most
# tags cost a lookup, not regex work. Bounded so memory stays flat.
_VERDICT_CACHE_SIZE = 4096

Violations = tuple[dict[str, Any], ...]


class _Outcomes(dict[str | None, Violations]):
    """value (``None``: the key is absent) -> violations of one rule; cleared when full (cheap,
    and fair to every value)."""

    def remember(self, value: str | None, violations: Violations) -> Violations:
        if len(self) >= _VERDICT_CACHE_SIZE:
            self.clear()
        self[value] = violations
        return violations


@dataclass(frozen=True, slots=True)
class ValueMatcher:
    """Allowed values of a rule: a set lookup for plain values, one regex for the globs."""

    literals: frozenset[str]
    globs: CompiledPattern | None
    ignore_case: bool
    shown: str

    def matches(self, value: str) -> bool:
        probe = value.casefold() if self.ignore_case else value
        if probe in self.literals:
            return True
        if self.globs is None:
            return False
        return self.globs.fullmatch(value)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    key: str
    folded_key: str
    required: bool
    allow_empty: bool
    allowed: ValueMatcher | None
    pattern: CompiledPattern | None
    # value -> the violations a correctly spelled tag with that value gets (``()`` when it passes
    # every value check; key ``None``: the key is absent and no tag nearly matches it),
    # remembered by the evaluator: the violation dicts are built once and shared, read-only, by
    # every finding that has them.
    outcomes: _Outcomes = field(default_factory=_Outcomes, compare=False, repr=False)

    def pattern_matches(self, value: str) -> bool:
        """Whole-value match of the rule's pattern (RE2, linear time)."""
        assert self.pattern is not None
        return self.pattern.fullmatch(value)


@dataclass(frozen=True, slots=True)
class Inheritance:
    """One key a child type must carry with its parent's value."""

    parent_type: str
    key: str
    ignore_case: bool


@dataclass(frozen=True, slots=True)
class CompiledExemption:
    """One exemption: the resources it names (ids, or a tag and optional value), its name in
    summaries and findings, and the last day (UTC) it exempts (None: no end)."""

    label: str
    ids: frozenset[str]
    tag: tuple[str, str | None] | None
    expires: date | None

    def matches(self, resource_id: str, tags: dict[str, str]) -> bool:
        if resource_id in self.ids:
            return True
        if self.tag is None:
            return False
        value = tags.get(self.tag[0])
        return value is not None and (self.tag[1] is None or value == self.tag[1])


@dataclass(frozen=True)
class RemediationSettings:
    """A policy's staged remediation (``remediation``): mark, notify, stop, unmark.

    >>> RemediationSettings.of({"stop_after_days": 3})  # doctest: +NORMALIZE_WHITESPACE
    RemediationSettings(mark_after_days=0, notify_owner=True, stop_after_days=3, dry_run=True,
                        max_stops_per_run=10)
    """

    mark_after_days: int = 0
    notify_owner: bool = True
    stop_after_days: int = 7
    dry_run: bool = True
    max_stops_per_run: int = 10

    @classmethod
    def of(cls, raw: dict[str, Any]) -> RemediationSettings:
        return cls(**{name: raw[name] for name in cls.__dataclass_fields__ if name in raw})


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A policy ready to evaluate; build it with :func:`compile_policy`."""

    name: str
    sha256: str
    document: dict[str, Any] = field(repr=False)
    rules: tuple[CompiledRule, ...]
    keys_insensitive: bool
    prohibited_literals: dict[str, str]
    prohibited_globs: CompiledPattern | None
    max_tags: int | None
    exempt_ids: frozenset[str]
    exempt_tags: tuple[tuple[str, str | None], ...]
    states: frozenset[str]
    grace_period_seconds: int
    owner_key: str
    prohibited_wildcards: tuple[str, ...] = ()
    rule_keys: frozenset[str] = frozenset()
    folded_rule_keys: frozenset[str] = frozenset()
    # Tag keys repeat across a fleet even more than values: remember each key's glob verdict.
    prohibited_verdicts: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)
    # is_prohibited by the key as written: one lookup per tag, no case folding.
    prohibited_by_key: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)
    # Each rule key squeezed (no whitespace, case-folded), for the hint on a missing key.
    squeezed_rule_keys: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    # near_rules per tag key, remembered.
    near_rule_cache: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    # What each tag key is to the rules (see key_kind), remembered: one lookup per tag.
    key_kinds: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)
    # Tag keys known to need no attention of their own: a rule's exact key or any other key that
    # is no other spelling of a rule key, no near miss of one and not prohibited. An instance
    # whose keys are all plain skips the per-key pass (a set comparison in C).
    plain_keys: set[str] = field(default_factory=set, compare=False, repr=False)
    # The resource types the policy covers, parents first (workflow.resources.ORDER).
    resource_types: tuple[str, ...] = ("instance",)
    # The policy as each other covered type sees it: the rules that apply to that type (see
    # for_type); the compiled policy itself is the instances' view.
    type_views: dict[str, CompiledPolicy] = field(default_factory=dict, compare=False, repr=False)
    # child type -> (parent type, key, compare ignoring case) for each key it must inherit.
    inherited: dict[str, tuple[Inheritance, ...]] = field(default_factory=dict, compare=False, repr=False)
    include_service_managed_interfaces: bool = False
    # Every exemption, in policy order. exempt_ids and exempt_tags hold all of them too (a quick
    # "does any match" before the evaluator asks which, and whether it has expired).
    exemptions: tuple[CompiledExemption, ...] = ()
    # Staged remediation of noncompliant instances, when the policy asks for it.
    remediation: RemediationSettings | None = None
    # (rule, key, outcomes) per rule: the evaluator's common case reads these three per rule.
    rule_lookups: tuple[tuple[CompiledRule, str, dict[str | None, Violations]], ...] = ()
    # Whether any exemption or a grace period can change a verdict (else neither is looked at).
    exempts_or_waits: bool = True

    def for_type(self, resource_type: str) -> CompiledPolicy:
        """The policy with only the rules that apply to ``resource_type`` (instances: itself).

        >>> policy = compile_policy({"version": 1, "name": "p", "resource_types": ["instance", "volume"],
        ...     "rules": [{"key": "Owner"}, {"key": "Name", "resource_types": ["instance"]}]})
        >>> [r.key for r in policy.for_type("volume").rules], [r.key for r in policy.rules]
        (['Owner'], ['Owner', 'Name'])
        """
        if resource_type == "instance":
            return self
        return self.type_views[resource_type]

    def parent_keys(self, parent_type: str) -> tuple[str, ...]:
        """The keys some child inherits from ``parent_type``: what to remember of each parent."""
        keys = {
            i.key for inherited in self.inherited.values() for i in inherited if i.parent_type == parent_type
        }
        return tuple(sorted(keys))

    def all_plain(self, keys: Iterable[str]) -> bool:
        """Whether every key in ``keys`` is plain (see ``plain_keys``), learning the new ones.

        >>> policy = compile_policy({"version": 1, "name": "p", "rules": [{"key": "Owner"}],
        ...                          "prohibited_keys": ["tmp*"]})
        >>> [policy.all_plain(keys) for keys in (["Owner", "Team", "aws:x"], ["owner"], ["tmp1"])]
        [True, False, False]
        """
        plain = self.plain_keys
        verdict = True
        for key in keys:
            if key in plain:
                continue
            kind = self.key_kind(key)
            if (
                kind in ("", RESERVED)
                and not self.near_rules(key)
                and (kind == RESERVED or self.is_prohibited(key) is None)
            ):
                if len(plain) >= _VERDICT_CACHE_SIZE:
                    plain.clear()
                plain.add(key)
            else:
                verdict = False
        return verdict

    def near_rules(self, key: str) -> tuple[str, ...]:
        """The rule keys that ``key`` differs from only by whitespace and case (``"Owner "``).

        >>> policy = compile_policy({"version": 1, "name": "p", "rules": [{"key": "Owner"}]})
        >>> policy.near_rules("owner "), policy.near_rules("Owner"), policy.near_rules("Team")
        (('Owner',), (), ())
        """
        cache = self.near_rule_cache
        near = cache.get(key)
        if near is None:
            squeezed = squeezed_key(key)
            near = tuple(
                rule_key for rule_key in self.squeezed_rule_keys.get(squeezed, ()) if rule_key != key
            )
            if len(cache) >= _VERDICT_CACHE_SIZE:
                cache.clear()
            cache[key] = near
        return near

    def key_kind(self, key: str) -> str | None:
        """What a tag key is to the rules: ``""`` for a rule's exact key or any other user key,
        ``"aws:"`` for a reserved key (an ``aws:`` key or Tagwarden's remediation mark: no rule
        reads it, it does not count as a user tag), or the folded rule key that ``key`` spells with
        another capitalisation.

        >>> policy = compile_policy({"version": 1, "name": "p", "rules": [{"key": "Owner"}]})
        >>> [policy.key_kind(k) for k in ("Owner", "owner", "aws:x", "Team", "tagwarden:marked-for-stop")]
        ['', 'owner', 'aws:', '', 'aws:']
        """
        kinds = self.key_kinds
        kind = kinds.get(key)
        if kind is None:
            if key in self.rule_keys:
                kind = ""
            elif key.startswith("aws:") or key == MARK_KEY:
                kind = RESERVED
            else:
                folded = key.casefold()
                kind = folded if folded in self.folded_rule_keys else ""
            if len(kinds) >= _VERDICT_CACHE_SIZE:
                kinds.clear()
            kinds[key] = kind
        return kind

    def is_prohibited(self, key: str) -> str | None:
        """The prohibited_keys entry that ``key`` matches (case-insensitively), if any."""
        if key in self.prohibited_by_key:
            return self.prohibited_by_key[key]
        entry = self._prohibited_entry(key)
        if len(self.prohibited_by_key) >= _VERDICT_CACHE_SIZE:
            self.prohibited_by_key.clear()
        self.prohibited_by_key[key] = entry
        return entry

    def _prohibited_entry(self, key: str) -> str | None:
        folded = key.casefold()
        literal = self.prohibited_literals.get(folded)
        if literal is not None:
            return literal
        if self.prohibited_globs is None:
            return None
        verdicts = self.prohibited_verdicts
        if folded in verdicts:
            return verdicts[folded]
        group = self.prohibited_globs.fullmatch_group(folded)
        entry = self.prohibited_wildcards[int(group[1:])] if group is not None else None
        if len(verdicts) >= _VERDICT_CACHE_SIZE:
            verdicts.clear()
        verdicts[folded] = entry
        return entry


def squeezed_key(key: str) -> str:
    """A tag key without whitespace, case-folded: keys equal so differ only by blanks and case.

    >>> squeezed_key(" Cost Center")
    'costcenter'
    """
    return "".join(key.split()).casefold()


def _squeezed_rule_keys(keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
    squeezed: dict[str, list[str]] = {}
    for key in keys:
        squeezed.setdefault(squeezed_key(key), []).append(key)
    return {k: tuple(v) for k, v in squeezed.items()}


def policy_sha256(doc: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a policy: same policy, same hash, whatever the formatting."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _value_matcher(values: list[str], *, ignore_case: bool) -> ValueMatcher:
    literals = [v for v in values if "*" not in v]
    globs = [v for v in values if "*" in v]
    glob_pattern = compile_glob_alternation(globs, ignore_case=ignore_case) if globs else None
    shown = ", ".join(values[:8]) + (f", ... ({len(values)} values)" if len(values) > 8 else "")
    return ValueMatcher(
        literals=frozenset(v.casefold() if ignore_case else v for v in literals),
        globs=glob_pattern,
        ignore_case=ignore_case,
        shown=shown,
    )


def compile_policy(doc: dict[str, Any]) -> CompiledPolicy:
    """Validate a version 1 policy and compile it; raises :class:`PolicyError` listing every problem.

    >>> policy = compile_policy({"version": 1, "name": "p", "rules": [{"key": "Owner"}]})
    >>> policy.rules[0].key, policy.rules[0].required
    ('Owner', True)
    """
    problems = validate_policy(doc)
    if problems:
        raise PolicyError(problems)
    covered = doc.get("resource_types", ["instance"])
    ordered_types = tuple(t for t in ORDER if t in covered)
    rules_by_type: dict[str, list[CompiledRule]] = {t: [] for t in ordered_types}
    case_of_key: dict[str, bool] = {}
    for raw in doc["rules"]:
        ignore_case = raw.get("value_case", "sensitive") == "insensitive"
        case_of_key[raw["key"]] = ignore_case
        rule = CompiledRule(
            key=raw["key"],
            folded_key=raw["key"].casefold(),
            required=raw.get("required", True),
            allow_empty=raw.get("allow_empty", False),
            allowed=_value_matcher(raw["allowed_values"], ignore_case=ignore_case)
            if "allowed_values" in raw
            else None,
            pattern=compile_pattern(raw["pattern"], ignore_case=ignore_case) if "pattern" in raw else None,
        )
        for resource_type in raw.get("resource_types", ordered_types):
            rules_by_type[resource_type].append(rule)
    inherited: dict[str, list[Inheritance]] = {}
    for entry in doc.get("inherit", []):
        for child in entry["to"]:
            inherited.setdefault(child, []).extend(
                Inheritance(entry["from"], key, case_of_key.get(key, False)) for key in entry["keys"]
            )
    prohibited = doc.get("prohibited_keys", [])
    prohibited_wildcards = tuple(glob for glob in prohibited if "*" in glob)
    scope = doc.get("scope", {})
    exemptions = doc.get("exemptions", [])

    def view(rules: list[CompiledRule], **extra: Any) -> CompiledPolicy:
        return CompiledPolicy(
            name=doc["name"],
            sha256=policy_sha256(doc),
            document=doc,
            rules=tuple(rules),
            keys_insensitive=doc.get("key_case", "exact") == "insensitive",
            prohibited_literals={g.casefold(): g for g in prohibited if "*" not in g},
            # RE2, so a 100,000-character key against ``*a*b`` takes linear time, not seconds.
            prohibited_globs=compile_glob_alternation(
                [g.casefold() for g in prohibited_wildcards], ignore_case=True
            )
            if prohibited_wildcards
            else None,
            prohibited_wildcards=prohibited_wildcards,
            max_tags=doc.get("max_tags"),
            exempt_ids=frozenset(
                i for e in exemptions for i in (*e.get("instance_ids", ()), *e.get("resource_ids", ()))
            ),
            exempt_tags=tuple((e["tag"]["key"], e["tag"].get("value")) for e in exemptions if "tag" in e),
            exemptions=tuple(
                CompiledExemption(
                    label=e.get("id") or f"exemptions[{index}]",
                    ids=frozenset((*e.get("instance_ids", ()), *e.get("resource_ids", ()))),
                    tag=(e["tag"]["key"], e["tag"].get("value")) if "tag" in e else None,
                    expires=date.fromisoformat(e["expires"]) if "expires" in e else None,
                )
                for index, e in enumerate(exemptions)
            ),
            states=frozenset(scope.get("states", DEFAULT_STATES)),
            grace_period_seconds=60 * scope.get("grace_period_minutes", 0),
            owner_key=doc.get("owner_key", DEFAULT_OWNER_KEY),
            rule_keys=frozenset(rule.key for rule in rules),
            folded_rule_keys=frozenset(rule.folded_key for rule in rules),
            squeezed_rule_keys=_squeezed_rule_keys(rule.key for rule in rules),
            resource_types=ordered_types,
            inherited={child: tuple(found) for child, found in inherited.items()},
            remediation=RemediationSettings.of(doc["remediation"]) if "remediation" in doc else None,
            rule_lookups=tuple((rule, rule.key, rule.outcomes) for rule in rules),
            exempts_or_waits=bool(exemptions) or bool(scope.get("grace_period_minutes", 0)),
            include_service_managed_interfaces=bool(
                scope.get("network_interfaces", {}).get("include_service_managed", False)
            ),
            **extra,
        )

    return view(
        rules_by_type.get("instance", []),
        type_views={t: view(rules) for t, rules in rules_by_type.items() if t != "instance"},
    )
