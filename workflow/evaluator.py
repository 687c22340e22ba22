"""The compliance evaluator: a pure function from describe-instances dicts and a compiled policy
to findings. No AWS SDK here; the workflow steps feed it what they listed.

>>> from datetime import datetime, timezone
>>> from workflow.policy import compile_policy
>>> policy = compile_policy({"version": 1, "name": "p", "rules": [{"key": "Owner"}]})
>>> instance = {"InstanceId": "i-0123456789abcdef0", "State": {"Name": "running"},
...             "Placement": {"AvailabilityZone": "eu-west-1a"}, "Tags": [{"Key": "owner", "Value": "ana"}]}
>>> finding = evaluate_instance(instance, policy, account_id="111122223333",
...                             now=datetime(2026, 1, 1, tzinfo=timezone.utc))
>>> finding["compliant"], [v["code"] for v in finding["violations"]], finding["region"]
(False, ['key_case'], 'eu-west-1')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from workflow.policy.compiler import CompiledExemption, CompiledPolicy, CompiledRule
from workflow.resources import RESOURCE_TYPES

VIOLATION_CODES: Final = (
    "missing",
    "key_case",
    "empty_value",
    "invalid_value",
    "pattern_mismatch",
    "prohibited",
    "too_many_tags",
    "not_inherited",
)
_AWS_PREFIX: Final = "aws:"
# us-east-1a, us-west-2-lax-1a (Local Zone), us-east-1-wl1-bos-wlz-1 (Wavelength): the region leads.
_REGION_OF_ZONE: Final = re.compile(r"^([a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d+)")
_SHOWN_VALUE_LIMIT: Final = 80

Finding = dict[str, Any]


@lru_cache(maxsize=1024)
def region_of_zone(zone: str | None) -> str | None:
    """The region an availability zone belongs to.

    >>> region_of_zone("us-west-2-lax-1a")
    'us-west-2'
    """
    if not zone:
        return None
    match = _REGION_OF_ZONE.match(zone)
    return match.group(1) if match else None


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN_VALUE_LIMIT else value[:_SHOWN_VALUE_LIMIT] + "…")


def _violation(code: str, key: str, message: str, value: str | None = None) -> dict[str, Any]:
    violation: dict[str, Any] = {"code": code, "key": key, "message": message}
    if value is not None:
        violation["value"] = value
    return violation


def _near_miss_hint(rule_key: str, near: list[str]) -> str:
    """A hint for a missing key: the tags whose key differs from it only by whitespace (and case),
    such as ``"Environment "``, which AWS, cost allocation and this policy treat as another key.
    ``near`` are those keys (:meth:`CompiledPolicy.near_rules` finds them once per key).

    >>> _near_miss_hint("Environment", ["Environment "])
    "; tag 'Environment ' differs from it only by whitespace: rename it"
    """
    if not near:
        return ""
    near = sorted(near)
    names = ", ".join(repr(k) for k in near[:3])
    case = "" if all("".join(k.split()) == "".join(rule_key.split()) for k in near) else " and case"
    return f"; tag {names} differs from it only by whitespace{case}: rename it"


def _value_outcome(rule: CompiledRule, value: str | None) -> tuple[dict[str, Any], ...]:
    """The violations a tag spelled for ``rule`` gets for its value alone (``()`` when it passes;
    ``None``: the key is absent, with no near miss to hint at), built once per distinct value and
    shared by every finding that has them."""
    outcome = rule.outcomes.get(value)
    if outcome is not None:
        return outcome
    if value is None:
        missing = (_violation("missing", rule.key, f"required tag {rule.key!r} is missing"),)
        return rule.outcomes.remember(None, missing if rule.required else ())
    found: list[dict[str, Any]] = []
    if not rule.allow_empty and not value.strip():
        # Users want blank values treated as missing; allow_empty makes blank an ordinary value
        # (the AWS Config and Organizations semantics) that allowed values and pattern still judge.
        if rule.required:
            found.append(_violation("empty_value", rule.key, f"tag {rule.key!r} is blank", value))
        return rule.outcomes.remember(value, tuple(found))
    if rule.allowed is not None and not rule.allowed.matches(value):
        found.append(
            _violation(
                "invalid_value",
                rule.key,
                f"value {_shown(value)} of {rule.key!r} is not one of: {rule.allowed.shown}",
                value,
            )
        )
    if rule.pattern is not None and not rule.pattern_matches(value):
        found.append(
            _violation(
                "pattern_mismatch",
                rule.key,
                f"value {_shown(value)} of {rule.key!r} does not match {rule.pattern.pattern}",
                value,
            )
        )
    return rule.outcomes.remember(value, tuple(found))


def _check_rule(
    rule: CompiledRule,
    tags: dict[str, str],
    misspelled: dict[str, list[str]],
    near_misses: dict[str, list[str]],
    keys_insensitive: bool,
    out: list[dict[str, Any]],
) -> None:
    value = tags.get(rule.key)
    # Sorted so the outcome never depends on the order AWS happened to return the tags in.
    spellings = misspelled.get(rule.folded_key)
    variants: list[str] | tuple[()] = sorted(spellings) if spellings else ()
    if variants and not keys_insensitive:
        # Another capitalisation splits cost allocation and search even beside the right one,
        # as AWS Organizations tag policies also judge it.
        found = ", ".join(repr(v) for v in variants)
        out.append(
            _violation("key_case", rule.key, f"tag {found} should be spelled {rule.key!r}", tags[variants[0]])
        )
        if value is None:
            return
    if value is None:
        if not variants:
            hint = _near_miss_hint(rule.key, near_misses.get(rule.key, []))
            out.extend({**v, "message": v["message"] + hint} for v in _value_outcome(rule, None))
            return
        value = tags[variants[0]]
    out.extend(_value_outcome(rule, value))


def _check_tags(tags: dict[str, str], policy: CompiledPolicy, out: list[dict[str, Any]]) -> None:
    """Every check, for an instance with a key that needs attention of its own (another
    spelling, a near miss or a prohibited key) or more tags than ``max_tags`` might allow.

    One pass over the keys that are not plain (:meth:`CompiledPolicy.all_plain`), each judged
    once per policy (:meth:`CompiledPolicy.key_kind`, ``near_rules``, ``is_prohibited``
    remember their verdicts): keys repeat across a fleet.
    """
    misspelled: dict[str, list[str]] = {}
    near_misses: dict[str, list[str]] = {}
    prohibited: list[tuple[str, str]] = []
    plain = policy.plain_keys
    for key in tags:
        if key in plain:
            continue
        for rule_key in policy.near_rules(key):
            near_misses.setdefault(rule_key, []).append(key)
        kind = policy.key_kind(key)
        if kind == _AWS_PREFIX:
            continue  # reserved: no rule reads it and it is never prohibited
        if kind:
            misspelled.setdefault(kind, []).append(key)
        entry = policy.is_prohibited(key)
        if entry is not None:
            prohibited.append((key, entry))
    for rule in policy.rules:
        if rule.folded_key in misspelled or rule.key in near_misses:
            _check_rule(rule, tags, misspelled, near_misses, policy.keys_insensitive, out)
        else:  # no other spelling of its key among the tags: its value alone decides
            out += _value_outcome(rule, tags.get(rule.key))
    for key, entry in prohibited:
        out.append(_violation("prohibited", key, f"tag {key!r} is prohibited (matches {entry!r})", tags[key]))
    if policy.max_tags is not None:
        # Reserved tags (``aws:`` keys, the remediation mark) do not count against the limit.
        user_count = sum(1 for key in tags if policy.key_kind(key) != _AWS_PREFIX)
        if user_count > policy.max_tags:
            out.append(
                _violation(
                    "too_many_tags",
                    "*",
                    f"{user_count} user tags; the policy allows at most {policy.max_tags}",
                )
            )


def _tag_dict(tag_list: Any) -> dict[str, str]:
    if not tag_list:
        return {}
    try:
        return {tag["Key"]: tag["Value"] for tag in tag_list}
    except KeyError:  # a tag without a value (AWS prints "", a dump may leave it out)
        return {tag["Key"]: tag.get("Value", "") for tag in tag_list}


def _tag_violations(tags: dict[str, str], policy: CompiledPolicy) -> list[dict[str, Any]]:
    violations: list[dict[str, Any]] = []
    max_tags = policy.max_tags
    if (tags.keys() <= policy.plain_keys or policy.all_plain(tags)) and (
        max_tags is None or len(tags) <= max_tags
    ):
        # The common case, specialised: no key needs a check of its own, so each rule is one
        # lookup of its key and one of its remembered outcome for the value (or its absence).
        get = tags.get
        for rule, key, outcomes in policy.rule_lookups:
            value = get(key)
            outcome = outcomes.get(value)
            if outcome is None:
                outcome = _value_outcome(rule, value)
            if outcome:
                violations += outcome
    else:
        _check_tags(tags, policy, violations)
    return violations


def _launched_at(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _is_exempt(resource_id: str, tags: dict[str, str], policy: CompiledPolicy) -> bool:
    """Whether any exemption (expired or not) names the resource: the quick check."""
    if resource_id in policy.exempt_ids:
        return True
    for key, expected in policy.exempt_tags:
        value = tags.get(key)
        if value is not None and (expected is None or value == expected):
            return True
    return False


def _exemption(
    resource_id: str, tags: dict[str, str], policy: CompiledPolicy, now: datetime
) -> tuple[bool, dict[str, Any] | None]:
    """Whether an exemption exempts the resource now, and which: the first in force, else the
    first that names it but has expired (its last day, UTC, is before ``now``)."""
    expired = None
    today = now.astimezone(UTC).date()
    for exemption in policy.exemptions:
        if not exemption.matches(resource_id, tags):
            continue
        if exemption.expires is None or today <= exemption.expires:
            return True, _exemption_info(exemption, expired=False)
        expired = expired or exemption
    return False, _exemption_info(expired, expired=True) if expired is not None else None


def _exemption_info(exemption: CompiledExemption, *, expired: bool) -> dict[str, Any]:
    expires = exemption.expires.isoformat() if exemption.expires else None
    return {"id": exemption.label, "expires": expires, "expired": expired}


def _exempt_or_young(
    resource_id: str, tags: dict[str, str], since: Any, policy: CompiledPolicy, now: datetime
) -> tuple[bool, bool, dict[str, Any] | None]:
    """Whether an exemption applies (and which, or which expired), and (if none applies) whether
    the resource is still in its grace period, counted from ``since`` (launch, creation or
    attachment time)."""
    exempt, exemption = False, None
    if (policy.exempt_ids or policy.exempt_tags) and _is_exempt(resource_id, tags, policy):
        exempt, exemption = _exemption(resource_id, tags, policy, now)
    if exempt or not policy.grace_period_seconds:
        return exempt, False, exemption
    started = _launched_at(since)
    young = started is not None and (now - started).total_seconds() < policy.grace_period_seconds
    return False, young, exemption


def _expired_exemption(violations: list[dict[str, Any]], exemption: dict[str, Any] | None) -> None:
    """An expired exemption is a violation of its own, on top of the real ones (a resource that
    needs no exemption any more is not made noncompliant by its lapse)."""
    if violations and exemption is not None and exemption["expired"]:
        violations.append(
            _violation(
                "exemption_expired",
                "*",
                f"exemption {exemption['id']!r} expired on {exemption['expires']}; renew it or fix the tags",
                exemption["expires"],
            )
        )


def _owner(tags: dict[str, str], policy: CompiledPolicy) -> str | None:
    """The owner tag's value (any capitalisation for ``key_case: insensitive``); blank is none."""
    owner = _tag_value(tags, policy.owner_key, policy)
    return owner if owner and not owner.isspace() else None


def _tag_value(tags: dict[str, str], key: str, policy: CompiledPolicy) -> str | None:
    """A tag's value by its key; for ``key_case: insensitive`` policies, in any capitalisation."""
    value = tags.get(key)
    if value is None and policy.keys_insensitive:
        value = _any_case(tags, key)
    return value


def _any_case(tags: dict[str, str], key: str) -> str | None:
    """The tag ``key`` in another capitalisation (the first in key order), never an ``aws:`` one."""
    folded = key.casefold()
    return next(
        (v for k, v in sorted(tags.items()) if k.casefold() == folded and not k.startswith(_AWS_PREFIX)),
        None,
    )


# Everything evaluate_instance reads of an instance; the List step stages only these.
EVALUATED_FIELDS: Final = ("InstanceId", "State", "Placement", "LaunchTime", "InstanceType", "Tags")


def project_instance(instance: dict[str, Any]) -> dict[str, Any]:
    """The part of a describe-instances dict that a finding is made of, and nothing else.

    A full instance is about 3 KB of JSON; this keeps its id, state name, zone, launch time, type
    and tags, so a staged page is a third of the size and evaluating it gives the same finding.

    >>> project_instance({"InstanceId": "i-1", "State": {"Code": 16, "Name": "running"},
    ...                   "Placement": {"AvailabilityZone": "eu-west-1a", "Tenancy": "default"},
    ...                   "Tags": [], "ImageId": "ami-1"})["State"]
    {'Name': 'running'}
    """
    projected: dict[str, Any] = {}
    for field in EVALUATED_FIELDS:
        if field not in instance:
            continue
        value = instance[field]
        if field == "State" and isinstance(value, dict):
            value = {"Name": value["Name"]} if "Name" in value else {}
        elif field == "Placement" and isinstance(value, dict):
            value = {"AvailabilityZone": value["AvailabilityZone"]} if "AvailabilityZone" in value else {}
        projected[field] = value
    return projected


def in_scope(instance: dict[str, Any], policy: CompiledPolicy) -> bool:
    """Whether the policy applies to an instance at all (its state is in ``scope.states``)."""
    return (instance.get("State") or {}).get("Name") in policy.states


def evaluate_instance(
    instance: dict[str, Any],
    policy: CompiledPolicy,
    *,
    region: str | None = None,
    account_id: str | None = None,
    now: datetime | None = None,
) -> Finding:
    """One finding for one instance (in scope or not; see :func:`evaluate_instances`).

    ``region`` is used when the instance has no availability zone; ``account_id`` is the
    reservation's ``OwnerId``. Violation dicts are shared by every finding with the same one (a
    rule's outcome for a value is built once per policy): read them, never change them.
    """
    state = (instance.get("State") or {}).get("Name")
    return _finding(instance, state, policy, region, account_id, now or datetime.now(UTC))


def _finding(
    instance: dict[str, Any],
    state: str | None,
    policy: CompiledPolicy,
    region: str | None,
    account_id: str | None,
    now: datetime,
) -> Finding:
    # The hot loop of a scan (100,000 instances a region): plain local lookups, positional calls.
    tag_list = instance.get("Tags")
    tags: dict[str, str] = {}
    if tag_list:
        try:
            tags = {tag["Key"]: tag["Value"] for tag in tag_list}
        except KeyError:  # a tag without a value (AWS prints "", a dump may leave it out)
            tags = _tag_dict(tag_list)
    violations = _tag_violations(tags, policy)
    get = instance.get
    instance_id = get("InstanceId", "")
    launch_time = get("LaunchTime")
    if policy.exempts_or_waits:
        exempt, in_grace, exemption = _exempt_or_young(instance_id, tags, launch_time, policy, now)
        if exemption is not None:
            _expired_exemption(violations, exemption)
    else:
        exempt = in_grace = False
        exemption = None
    # _owner and _iso, inlined: calling them cost 3-4% of the benchmark's evaluation time.
    owner = tags.get(policy.owner_key)
    if owner is None and policy.keys_insensitive:
        owner = _any_case(tags, policy.owner_key)
    placement = get("Placement")
    finding: Finding = {
        "resource_type": "instance",
        "resource_id": instance_id,
        "instance_id": instance_id,
        "region": (placement and region_of_zone(placement.get("AvailabilityZone"))) or region,
        "account_id": account_id,
        "state": state,
        "launch_time": launch_time if type(launch_time) is str else _iso(launch_time),
        "instance_type": get("InstanceType"),
        "name": tags.get("Name"),
        "owner": owner if owner and not owner.isspace() else None,
        "tags": tags,
        "compliant": exempt or in_grace or not violations,
        "exempt": exempt,
        "in_grace_period": in_grace,
        "violations": violations,
    }
    if exemption is not None:
        finding["exemption"] = exemption
    return finding


# parent type -> parent id -> the parent's values of the keys its children inherit (None: absent),
# in the order of CompiledPolicy.parent_keys: all a join needs to remember of a parent.
ParentValues = dict[str, dict[str, tuple[str | None, ...]]]


def inherited_values(
    resource_type: str, resource: dict[str, Any], policy: CompiledPolicy
) -> tuple[str | None, ...] | None:
    """What a child must copy from this resource, or None when no child inherits from its type.

    >>> from workflow.policy import compile_policy
    >>> policy = compile_policy({"version": 1, "name": "p", "resource_types": ["instance", "volume"],
    ...     "rules": [{"key": "Owner"}], "inherit": [{"keys": ["CostCenter"], "from": "instance",
    ...     "to": ["volume"]}]})
    >>> inherited_values("instance", {"Tags": [{"Key": "CostCenter", "Value": "CC-1"}]}, policy)
    ('CC-1',)
    """
    keys = policy.parent_keys(resource_type)
    if not keys:
        return None
    tags = _tag_dict(RESOURCE_TYPES[resource_type].tags(resource))
    return tuple(_tag_value(tags, key, policy) for key in keys)


def _not_inherited(
    resource_type: str,
    resource: dict[str, Any],
    tags: dict[str, str],
    policy: CompiledPolicy,
    parents: ParentValues,
    out: list[dict[str, Any]],
) -> None:
    """A child attached to (or made from) a listed parent must carry the parent's value of each
    inherited key; a parent without the key asks nothing (its own finding reports it)."""
    spec = RESOURCE_TYPES[resource_type]
    parent_ids = spec.parents(resource)
    if not parent_ids:
        return
    for inheritance in policy.inherited.get(resource_type, ()):
        listed = parents.get(inheritance.parent_type)
        if not listed:
            continue
        position = policy.parent_keys(inheritance.parent_type).index(inheritance.key)
        actual = _tag_value(tags, inheritance.key, policy)
        for parent_id in parent_ids:
            values = listed.get(parent_id)
            expected = values[position] if values is not None else None
            if expected is None:
                continue
            if actual is not None and (
                actual.casefold() == expected.casefold() if inheritance.ignore_case else actual == expected
            ):
                continue
            found = "is missing" if actual is None else f"is {_shown(actual)}"
            out.append(
                {
                    "code": "not_inherited",
                    "key": inheritance.key,
                    "value": actual,
                    "message": f"tag {inheritance.key!r} {found}; {inheritance.parent_type} {parent_id} "
                    f"has {_shown(expected)}, which this {resource_type} must carry too",
                    "parent_id": parent_id,
                    "expected": expected,
                }
            )


def _iso(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    return value.isoformat() if isinstance(value, datetime) else str(value)


def evaluate_resource(
    resource_type: str,
    resource: dict[str, Any],
    policy: CompiledPolicy,
    *,
    region: str | None = None,
    account_id: str | None = None,
    now: datetime | None = None,
    parents: ParentValues | None = None,
) -> Finding:
    """One finding for a volume, snapshot, image or network interface (an instance: see
    :func:`evaluate_instance`, whose finding this one extends).

    ``parents`` holds the listed parents' inherited values (:func:`inherited_values`) for the
    ``not_inherited`` checks. Volumes and interfaces take their region from their zone, the others
    from ``region``; ``account_id`` is used when the resource names no owner (volumes).

    >>> from workflow.policy import compile_policy
    >>> policy = compile_policy({"version": 1, "name": "p", "resource_types": ["instance", "volume"],
    ...     "rules": [{"key": "CostCenter"}], "inherit": [{"keys": ["CostCenter"], "from": "instance",
    ...     "to": ["volume"]}]})
    >>> volume = {"VolumeId": "vol-1", "Size": 100, "AvailabilityZone": "eu-west-1a",
    ...           "Attachments": [{"InstanceId": "i-1"}], "Tags": [{"Key": "CostCenter", "Value": "CC-2"}]}
    >>> finding = evaluate_resource("volume", volume, policy, parents={"instance": {"i-1": ("CC-1",)}})
    >>> [v["code"] for v in finding["violations"]], finding["size_gib"], finding["region"]
    (['not_inherited'], 100, 'eu-west-1')
    """
    spec = RESOURCE_TYPES[resource_type]
    view = policy.for_type(resource_type)
    current = now or datetime.now(UTC)
    tags = _tag_dict(spec.tags(resource))
    violations = _tag_violations(tags, view)
    if parents and policy.inherited.get(resource_type):
        _not_inherited(resource_type, resource, tags, policy, parents, violations)
    resource_id = spec.resource_id(resource)
    created = spec.time(resource)
    exempt, in_grace, exemption = _exempt_or_young(resource_id, tags, created, policy, current)
    if exemption is not None:
        _expired_exemption(violations, exemption)
    finding: Finding = {
        "resource_type": resource_type,
        "resource_id": resource_id,
        "instance_id": None,
        "region": region_of_zone(resource.get("AvailabilityZone")) or region,
        "account_id": resource.get("OwnerId") or account_id,
        "state": spec.state(resource),
        "created_at": _iso(created),
        "name": tags.get("Name"),
        "owner": _owner(tags, policy),
        "tags": tags,
        "compliant": exempt or in_grace or not violations,
        "exempt": exempt,
        "in_grace_period": in_grace,
        "violations": violations,
    }
    for column, read in spec.columns:
        finding[column] = read(resource)
    if exemption is not None:
        finding["exemption"] = exemption
    return finding


def evaluate_instances(
    instances: Iterable[dict[str, Any]],
    policy: CompiledPolicy,
    *,
    region: str | None = None,
    account_id: str | None = None,
    now: datetime | None = None,
) -> Iterator[Finding]:
    """Findings for the in-scope instances, lazily, so a caller can stream a huge region."""
    current = now or datetime.now(UTC)
    states = policy.states
    for instance in instances:
        state = (instance.get("State") or {}).get("Name")
        if state in states:
            yield _finding(instance, state, policy, region, account_id, current)


def evaluate_reservations(
    document: dict[str, Any],
    policy: CompiledPolicy,
    *,
    region: str | None = None,
    now: datetime | None = None,
) -> Iterator[Finding]:
    """Findings for a whole ``describe-instances`` document (``{"Reservations": [...]}``)."""
    current = now or datetime.now(UTC)
    for reservation in document.get("Reservations") or ():
        yield from evaluate_instances(
            reservation.get("Instances") or (),
            policy,
            region=region,
            account_id=reservation.get("OwnerId"),
            now=current,
        )
