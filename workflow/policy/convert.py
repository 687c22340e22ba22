"""Convert the tag policies users already have into Tagwarden policy version 1.

Two foreign formats are understood, each converted so that Tagwarden reaches the same
compliant/noncompliant verdict on an EC2 instance as the AWS service it came from:

**AWS Organizations tag policies** (``{"tags": {...}}``), as written (with inheritance operators),
as rendered by ``aws organizations describe-effective-policy`` (plain values, no operators), or
wrapped in that command's output (``{"EffectivePolicy": {"PolicyContent": "..."}}``) or in
``aws organizations describe-policy`` output (``{"Policy": {"Content": "..."}}``).

* The policy key is case-insensitive; ``tag_key`` is the one capitalization that complies, and
  defaults to the policy key in lowercase when absent (AWS: "If case treatment isn't defined,
  lowercase is the default case treatment for tag keys"). Other capitalizations are noncompliant,
  which v1 expresses with ``key_case: "exact"`` (a ``key_case`` violation).
* ``tag_value`` lists the compliant values, each with at most one ``*`` (any run of characters).
  Without ``tag_value`` any value complies, "including no value at all"; a ``"*"`` entry means
  the same. An empty list means no value complies (the AWS "prevent use of a tag key" example).
  Values are compared case-sensitively.
* A key is required on EC2 instances only when ``report_required_tag_for`` names them:
  ``ec2:instance``, or the service-wide forms ``ec2:ALL_SUPPORTED`` / ``ec2:*``. A wildcard for
  every service (``*``, ``*:*``, ``ALL_SUPPORTED``) is rejected: AWS documents that a wildcard
  cannot name all services. ``ec2:volume``, ``ec2:snapshot``, ``ec2:image`` and
  ``ec2:network-interface`` bring those types into the policy's ``resource_types`` with the key
  required on them (the service-wide forms name all five); where a key is required on some
  covered types and not others, it becomes two rules with disjoint ``resource_types``. Other
  services' types are valid but do not concern the EC2 family.
* ``enforced_for`` only blocks noncompliant tagging calls; it changes no verdict, so it is
  checked for shape and otherwise ignored.
* Inheritance operators: ``@@assign`` gives the value. ``@@operators_allowed_for_child_policies``
  only restricts child policies, so it is ignored. ``@@append`` and ``@@remove`` are *rejected*:
  they only mean something merged with inherited policies, and converting one document alone
  would silently drop what it inherits. The problem line tells the user to convert the
  account's effective policy instead.
* A policy as written (with operators) is at most 10,000 characters in AWS; a longer one is
  rejected. Effective policies are merges of several policies and are exempt.

**AWS Config managed rule required-tags** (``REQUIRED_TAGS``) parameters, either plain
(``{"tag1Key": "CostCenter", "tag1Value": "A,B"}``), or inside a rule as ``aws configservice
put-config-rule`` takes it and ``describe-config-rules`` prints it (``{"InputParameters":
"{...}"}``, optionally under ``{"ConfigRules": [...]}``).

* Up to six keys, all required, compared case-sensitively.
* ``tagNValue`` is a comma-separated list of allowed values. The documentation is silent on
  whitespace, so values are split on ``,`` and kept exactly, the way AWS's published sample
  required-tags Lambda rules do it: ``"A, B"`` allows ``"A"`` and ``" B"``. An empty
  ``tagNValue`` is treated as absent (any value).
* A key with an empty value counts as present (awslabs/aws-config-rules#333: the managed rule
  does not flag a blank ``Name`` tag), hence ``allow_empty: true``.
* There are no wildcards, so a literal ``*`` must stay literal: such a rule gets a v1 ``pattern``
  built with :func:`workflow.policy.patterns.escape` (RE2 syntax) instead of ``allowed_values``.
* The same key given twice must satisfy both lists: the converted rule allows the intersection.

Every converted rule has ``allow_empty: true`` because both services judge a blank value like any
other value (v1 then checks it against the allowed values). Rules come out sorted by key
(Organizations) or in ``tag1`` … ``tag6`` order (Config), so the same input always gives the same
document.

Known differences that v1 cannot express (reported to the lead, pinned by tests):

* AWS Organizations compliance reports never list untagged resources; Tagwarden reports a
  required key missing from an instance that has no tags at all.
* An instance carrying both ``CostCenter`` and ``costcenter`` is noncompliant in AWS (the
  alternate capitalization); the v1 evaluator only reports a capitalization when the exact key
  is absent.

Every function here raises :class:`~workflow.errors.PolicyError` listing every problem found, and
nothing else, whatever JSON it is given.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, Literal, cast

from workflow.errors import PolicyError, Problem
from workflow.policy import patterns
from workflow.resources import RESOURCE_TYPES

PolicyFormat = Literal["tagwarden", "organizations", "config"]

ORGANIZATIONS_MAX_CHARACTERS: Final = 10_000
CONFIG_MAX_TAGS: Final = 6
EC2_INSTANCE: Final = "ec2:instance"
# v1 limits (policy-v1.schema.json), checked here so a problem points at the foreign document.
MAX_RULES: Final = 200
MAX_KEY_LENGTH: Final = 128
MAX_VALUE_LENGTH: Final = 256
MAX_PATTERN_LENGTH: Final = 1024
MAX_ALLOWED_VALUES: Final = 1000
# Matches no string at all, not even the empty one: "no value is acceptable".
NEVER_MATCHES: Final = patterns.NEVER_MATCHES

_ASSIGN: Final = "@@assign"
_CHILD_CONTROL: Final = "@@operators_allowed_for_child_policies"
_MERGE_OPERATORS: Final = ("@@append", "@@remove")
_TAG_FIELDS: Final = ("tag_key", "tag_value", "enforced_for", "report_required_tag_for")
_EC2_FAMILY: Final = tuple(RESOURCE_TYPES)
# What each Organizations resource type names of the EC2 family that Tagwarden checks. The
# service-wide spellings are those AWS documents for enforced_for; if AWS accepts them in
# report_required_tag_for they cover every EC2 type, so honouring them can never contradict AWS.
_FAMILY_OF_TYPE: Final = {
    EC2_INSTANCE: ("instance",),
    "ec2:ALL_SUPPORTED": _EC2_FAMILY,
    "ec2:*": _EC2_FAMILY,
    "ec2:volume": ("volume",),
    "ec2:snapshot": ("snapshot",),
    "ec2:image": ("image",),
    "ec2:network-interface": ("network-interface",),
}
_ALL_SERVICES: Final = frozenset({"*", "all_supported"})
_CONFIG_PARAMETER: Final = re.compile(r"tag([1-9][0-9]{0,8})(Key|Value)")
_CONFIG_RULE_FIELDS: Final = frozenset({"InputParameters", "ConfigRuleName", "Source", "ConfigRules"})
_REQUIRED_TAGS: Final = "REQUIRED_TAGS"
_EC2_INSTANCE_CONFIG_TYPE: Final = "AWS::EC2::Instance"
_PLAIN_MEMBER: Final = re.compile(r"[A-Za-z0-9_@-]+")
_NAME_JUNK: Final = re.compile(r"[^A-Za-z0-9._ -]+")
_EFFECTIVE_POLICY_HINT: Final = (
    "convert the account's effective policy instead "
    "(aws organizations describe-effective-policy --policy-type TAG_POLICY --target-id ACCOUNT)"
)


# --------------------------------------------------------------------------------------------
# Small helpers shared by both converters
# --------------------------------------------------------------------------------------------


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _member(path: str, key: object) -> str:
    """``$.tags.costcenter``; keys with other characters are quoted: ``$.tags["cost center"]``."""
    if isinstance(key, str) and _PLAIN_MEMBER.fullmatch(key):
        return f"{path}.{key}"
    text = key if isinstance(key, str) else repr(key)
    return f"{path}[{json.dumps(text, ensure_ascii=False)}]"


def _policy_name(name: object) -> str:
    """A name v1 accepts (letters, digits, ``._ -``), derived from whatever the caller passed."""
    text = name if isinstance(name, str) else ""
    cleaned = _NAME_JUNK.sub("-", text).lstrip("._ -")[:MAX_KEY_LENGTH].rstrip()
    return cleaned or "converted"


def _decode_embedded(text: object, path: str, problems: list[Problem], *, what: str) -> Any:
    """Parse a JSON document carried as a string (CLI output, InputParameters); None on failure."""
    if isinstance(text, dict):
        # CloudFormation and some SDK dumps carry the document as an object already.
        return text
    if not isinstance(text, str):
        problems.append(Problem(path, f"must be {what} as a JSON string, not {_type_name(text)}"))
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        problems.append(
            Problem(
                path,
                f"not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); it must hold {what}",
            )
        )
    except RecursionError:
        problems.append(Problem(path, f"not valid JSON (nested too deeply); it must hold {what}"))
    except ValueError as err:  # e.g. an integer literal longer than Python converts
        problems.append(Problem(path, f"not valid JSON ({err}); it must hold {what}"))
    return None


def _minified_length(doc: object) -> int | None:
    try:
        return len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False))
    except (TypeError, ValueError, RecursionError):
        return None


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _check_tag_key(key: str, path: str, problems: list[Problem], *, source: str) -> bool:
    if not key:
        problems.append(Problem(path, f'{source} is empty; give the tag key to check, e.g. "CostCenter"'))
        return False
    if len(key) > MAX_KEY_LENGTH:
        problems.append(
            Problem(path, f"{source} is {len(key)} characters; AWS tag keys are at most {MAX_KEY_LENGTH}")
        )
        return False
    if key.casefold().startswith("aws:"):
        problems.append(
            Problem(
                path,
                f"{source} {key!r} begins with 'aws:'; those tags are reserved for AWS and Tagwarden never "
                "evaluates them, so this rule cannot be converted; remove it",
            )
        )
        return False
    return True


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


def detect_format(doc: object) -> PolicyFormat:
    """Which policy format ``doc`` is written in; raises :class:`PolicyError` when none fits.

    ``"tagwarden"`` when the document has ``version`` or ``rules``; ``"organizations"`` for an
    AWS Organizations tag policy (``tags``, or the ``EffectivePolicy``/``Policy`` CLI wrappers);
    ``"config"`` for AWS Config required-tags parameters (``tag1Key`` …, ``InputParameters``,
    ``ConfigRules``).

    >>> detect_format({"tags": {"costcenter": {"tag_key": {"@@assign": "CostCenter"}}}})
    'organizations'
    >>> detect_format({"tag1Key": "CostCenter"})
    'config'
    """
    if not isinstance(doc, dict):
        raise PolicyError([Problem("$", f"a tag policy must be a JSON object, not {_type_name(doc)}")])
    if "version" in doc or "rules" in doc:
        return "tagwarden"
    if "tags" in doc or "EffectivePolicy" in doc or "Policy" in doc:
        return "organizations"
    if any(isinstance(k, str) and (_CONFIG_PARAMETER.fullmatch(k) or k in _CONFIG_RULE_FIELDS) for k in doc):
        return "config"
    seen = ", ".join(sorted(repr(k) for k in doc)[:8]) or "none"
    raise PolicyError(
        [
            Problem(
                "$",
                'not a tag policy Tagwarden knows: expected a Tagwarden policy ("version", "rules"), an AWS '
                'Organizations tag policy ("tags") or AWS Config required-tags parameters ("tag1Key", '
                f'or a rule with "InputParameters"); top-level members found: {seen}',
            )
        ]
    )


def to_v1(doc: object, *, name: str = "converted") -> dict[str, Any]:
    """The document as a version 1 policy: unchanged if it is one, converted otherwise.

    The result of a conversion is a valid v1 document; a Tagwarden document is returned as is
    (the loader validates it).

    >>> to_v1({"tag1Key": "CostCenter"}, name="cc")["rules"]
    [{'key': 'CostCenter', 'required': True, 'allow_empty': True}]
    """
    fmt = detect_format(doc)
    obj = cast("dict[str, Any]", doc)  # detect_format raised unless doc is an object
    if fmt == "tagwarden":
        return obj
    if fmt == "organizations":
        return organizations_to_v1(obj, name=name)
    return config_required_tags_to_v1(obj, name=name)


# --------------------------------------------------------------------------------------------
# AWS Organizations tag policies
# --------------------------------------------------------------------------------------------


class _OrgReader:
    """Walks one tag policy document, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.saw_operator = False

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def setting(self, raw: object, path: str) -> tuple[bool, object, str]:
        """(present, value, path of the value) of one tag field, operator form or effective form."""
        if not isinstance(raw, dict):
            return True, raw, path  # the rendered effective policy: plain values, no operators
        self.saw_operator = True
        present, value, value_path = False, None, path
        for operator, operand in raw.items():
            operator_path = _member(path, operator)
            if operator == _ASSIGN:
                present, value, value_path = True, operand, operator_path
            elif operator == _CHILD_CONTROL:
                continue  # restricts child policies only; this document's own values are unchanged
            elif operator in _MERGE_OPERATORS:
                self.problem(
                    operator_path,
                    f"{operator} only has a meaning when merged with inherited policies, so this document "
                    f"alone does not say which values apply; {_EFFECTIVE_POLICY_HINT}, or use @@assign",
                )
            else:
                self.problem(
                    operator_path,
                    f"unknown operator {operator!r}; a tag policy setting takes @@assign "
                    f"(and {_CHILD_CONTROL}, which only restricts child policies)",
                )
        return present, value, value_path

    def strings(self, value: object, path: str, *, field: str) -> list[tuple[str, str]] | None:
        """The (item, path) pairs of a list of strings, or None after reporting what is wrong."""
        if not isinstance(value, list):
            self.problem(path, f"{field} must be a list of strings, not {_type_name(value)}")
            return None
        items: list[tuple[str, str]] = []
        ok = True
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if not isinstance(item, str):
                numeric = isinstance(item, int | float) and not isinstance(item, bool)
                hint = f'; write it in quotes: "{item}"' if numeric else ""
                self.problem(item_path, f"each {field} entry must be a string, not {_type_name(item)}{hint}")
                ok = False
            else:
                items.append((item, item_path))
        return items if ok else None

    def tag_key(self, policy_key: str, present: bool, raw: object, path: str) -> str | None:
        if not present:
            key = policy_key.lower()  # AWS: lowercase is the default case treatment
            return key if _check_tag_key(key, path, self.problems, source="policy key") else None
        if not isinstance(raw, str):
            self.problem(path, f"tag_key must be a string, not {_type_name(raw)}")
            return None
        if not _check_tag_key(raw, path, self.problems, source="tag_key"):
            return None
        if raw.casefold() != policy_key.casefold():
            self.problem(
                path,
                f"tag_key {raw!r} must equal its policy key {policy_key!r} apart from capitalization; "
                "rename the policy key or fix tag_key",
            )
            return None
        return raw

    def tag_values(self, raw: object, path: str) -> list[str] | None:
        """Allowed values, [] for "no value complies", None for "any value" (or a problem)."""
        items = self.strings(raw, path, field="tag_value")
        if items is None:
            return None
        values: list[str] = []
        ok = True
        for value, value_path in items:
            if value.count("*") > 1:
                self.problem(
                    value_path,
                    f"{value!r} has more than one '*' wildcard; AWS allows at most one per value "
                    '(e.g. "*@example.com", not "*@*.com"); split it into several values',
                )
                ok = False
            elif len(value) > MAX_VALUE_LENGTH:
                self.problem(
                    value_path,
                    f"value is {len(value)} characters; AWS tag values are at most {MAX_VALUE_LENGTH}",
                )
                ok = False
            else:
                values.append(value)
        if not ok:
            return None
        if "*" in values:
            return None  # "*" alone accepts every value, blank included
        unique = _unique(values)
        if len(unique) > MAX_ALLOWED_VALUES:
            self.problem(
                path, f"lists {len(unique)} values; a Tagwarden rule allows at most {MAX_ALLOWED_VALUES}"
            )
        return unique

    def required_for_ec2(self, raw: object, path: str) -> set[str]:
        """The EC2 family types (``instance``, ``volume``, ...) ``report_required_tag_for`` names."""
        items = self.strings(raw, path, field="report_required_tag_for")
        required: set[str] = set()
        for resource_type, item_path in items or ():
            service, _, kind = resource_type.partition(":")
            if resource_type.casefold() in _ALL_SERVICES or service == "*":
                self.problem(
                    item_path,
                    f"{resource_type!r} names every service, which AWS does not allow; list resource types "
                    f'such as "{EC2_INSTANCE}"',
                )
            elif not service or not kind:
                self.problem(
                    item_path,
                    f'{resource_type!r} is not a resource type; write "service:type", e.g. "{EC2_INSTANCE}"',
                )
            elif resource_type in _FAMILY_OF_TYPE:
                required.update(_FAMILY_OF_TYPE[resource_type])
            else:
                spelled = next((t for t in _FAMILY_OF_TYPE if t.casefold() == resource_type.casefold()), None)
                if spelled is not None:
                    self.problem(item_path, f'resource types are case sensitive: write "{spelled}"')
        return required

    def rule(self, policy_key: object, entry: object, path: str) -> dict[str, Any] | None:
        if not isinstance(policy_key, str) or not policy_key:
            self.problem(path, 'a policy key must be a non-empty tag key such as "costcenter"')
            return None
        if not isinstance(entry, dict):
            self.problem(path, f"the settings of a policy key must be an object, not {_type_name(entry)}")
            return None
        settings: dict[str, tuple[object, str]] = {}
        for field, raw in entry.items():
            field_path = _member(path, field)
            if field == _CHILD_CONTROL:
                continue
            if field not in _TAG_FIELDS:
                self.problem(
                    field_path, f"unknown tag policy field; allowed fields here: {', '.join(_TAG_FIELDS)}"
                )
                continue
            present, value, value_path = self.setting(raw, field_path)
            if present:
                settings[field] = (value, value_path)
        raw_key, key_path = settings.get("tag_key", (None, path))
        key = self.tag_key(policy_key, "tag_key" in settings, raw_key, key_path)
        values: list[str] | None = None
        values_ok = True
        if "tag_value" in settings:
            before = len(self.problems)
            values = self.tag_values(*settings["tag_value"])
            values_ok = len(self.problems) == before
        if "enforced_for" in settings:
            # Enforcement blocks noncompliant tagging calls; it does not change any verdict.
            self.strings(*settings["enforced_for"], field="enforced_for")
        required_on = (
            self.required_for_ec2(*settings["report_required_tag_for"])
            if "report_required_tag_for" in settings
            else set()
        )
        if key is None or not values_ok:
            return None
        notes = [f"AWS Organizations policy key {policy_key!r}"]
        if required_on:
            shown = ", ".join(t for t in _EC2_FAMILY if t in required_on)
            notes.append(f"required on EC2 {shown} (report_required_tag_for)")
        rule: dict[str, Any] = {"key": key, "required_on": sorted(required_on), "allow_empty": True}
        if values == []:
            rule["pattern"] = NEVER_MATCHES
            notes.append("no value is acceptable (tag_value is an empty list)")
        elif values is not None:
            rule["allowed_values"] = values
        rule["description"] = "; ".join(notes)
        return rule


def _unwrap_organizations(doc: object, reader: _OrgReader) -> tuple[object, str, bool, int | None]:
    """(policy body, its JSON path, is an effective policy, submitted length if known)."""
    if not isinstance(doc, dict):
        return doc, "$", False, None
    if "EffectivePolicy" in doc and "tags" not in doc:
        wrapper = doc["EffectivePolicy"]
        path = "$.EffectivePolicy"
        if not isinstance(wrapper, dict):
            reader.problem(
                path, f"must be an object as describe-effective-policy prints it, not {_type_name(wrapper)}"
            )
            return None, path, True, None
        policy_type = wrapper.get("PolicyType", "TAG_POLICY")
        if policy_type != "TAG_POLICY":
            reader.problem(f"{path}.PolicyType", f"is {policy_type!r}; only a TAG_POLICY can be converted")
            return None, path, True, None
        body = _decode_embedded(
            wrapper.get("PolicyContent"), f"{path}.PolicyContent", reader.problems, what="the tag policy"
        )
        return body, f"{path}.PolicyContent", True, None
    if "Policy" in doc and "tags" not in doc:
        wrapper = doc["Policy"]
        path = "$.Policy"
        if not isinstance(wrapper, dict):
            reader.problem(path, f"must be an object as describe-policy prints it, not {_type_name(wrapper)}")
            return None, path, False, None
        summary = wrapper.get("PolicySummary")
        policy_type = summary.get("Type", "TAG_POLICY") if isinstance(summary, dict) else "TAG_POLICY"
        if policy_type != "TAG_POLICY":
            reader.problem(
                f"{path}.PolicySummary.Type", f"is {policy_type!r}; only a TAG_POLICY can be converted"
            )
            return None, path, False, None
        content = wrapper.get("Content")
        body = _decode_embedded(content, f"{path}.Content", reader.problems, what="the tag policy")
        return body, f"{path}.Content", False, len(content) if isinstance(content, str) else None
    return doc, "$", False, None


def organizations_to_v1(doc: dict[str, Any], *, name: str) -> dict[str, Any]:
    """Convert an AWS Organizations tag policy to a version 1 policy (see the module docstring).

    >>> v1 = organizations_to_v1({"tags": {"costcenter": {
    ...     "tag_key": {"@@assign": "CostCenter"},
    ...     "tag_value": {"@@assign": ["100", "300*"]},
    ...     "report_required_tag_for": {"@@assign": ["ec2:instance"]}}}}, name="org")
    >>> v1["rules"][0]["key"], v1["rules"][0]["required"], v1["rules"][0]["allowed_values"]
    ('CostCenter', True, ['100', '300*'])
    """
    reader = _OrgReader()
    body, root, effective, submitted_length = _unwrap_organizations(doc, reader)
    if reader.problems:
        raise PolicyError(reader.problems)
    if not isinstance(body, dict):
        raise PolicyError([Problem(root, f"a tag policy must be a JSON object, not {_type_name(body)}")])
    for member in body:
        if member not in {"tags", _CHILD_CONTROL}:
            reader.problem(_member(root, member), "unknown top-level field; a tag policy has only 'tags'")
    tags_path = _member(root, "tags")
    tags = body.get("tags")
    if not isinstance(tags, dict):
        found = "missing" if "tags" not in body else f"{_type_name(tags)}, not an object"
        reader.problem(
            tags_path, f'must be an object of policy keys, e.g. {{"costcenter": {{...}}}} ({found})'
        )
        raise PolicyError(reader.problems)
    rules: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for policy_key, entry in tags.items():
        if policy_key == _CHILD_CONTROL:
            continue
        path = _member(tags_path, policy_key)
        if isinstance(policy_key, str) and policy_key.startswith("@@"):
            reader.problem(
                path, f"operator {policy_key!r} cannot stand for a policy key; put it inside a tag setting"
            )
            continue
        if isinstance(policy_key, str):
            folded = policy_key.casefold()
            if folded in seen:
                reader.problem(
                    path,
                    f"policy keys are not case sensitive, so this is the same key as {seen[folded]!r}; "
                    "merge the two entries",
                )
                continue
            seen[folded] = policy_key
        rule = reader.rule(policy_key, entry, path)
        if rule is not None:
            rules.append(rule)
    if not rules and not reader.problems:
        reader.problem(
            tags_path, "has no policy keys, so there is nothing to convert; add at least one tag key"
        )
    elif len(seen) > MAX_RULES:
        reader.problem(
            tags_path, f"has {len(seen)} tag keys; a Tagwarden policy holds at most {MAX_RULES} rules"
        )
    length = submitted_length if submitted_length is not None else _minified_length(body)
    if reader.saw_operator and not effective and length is not None and length > ORGANIZATIONS_MAX_CHARACTERS:
        reader.problem(
            root,
            f"the policy is {length} characters; AWS Organizations accepts tag policies of at most "
            f"{ORGANIZATIONS_MAX_CHARACTERS}, so AWS would not have this policy; split it",
        )
    if reader.problems:
        raise PolicyError(reader.problems)
    rules.sort(key=lambda r: (r["key"].casefold(), r["key"]))
    required = sum(1 for r in rules if "instance" in r["required_on"])
    covered = [t for t in _EC2_FAMILY if t == "instance" or any(t in r["required_on"] for r in rules)]
    kind = "effective tag policy" if effective or not reader.saw_operator else "tag policy"
    converted: dict[str, Any] = {
        "version": 1,
        "name": _policy_name(name),
        "description": (
            f"Converted by Tagwarden from an AWS Organizations {kind}: {len(rules)} tag key(s), "
            f"{required} required on EC2 instances (report_required_tag_for ec2:instance)."
        ),
        "key_case": "exact",
        "rules": [split for rule in rules for split in _per_type(rule, covered)],
    }
    if covered != ["instance"]:
        converted["resource_types"] = covered
    return converted


def _per_type(rule: dict[str, Any], covered: list[str]) -> list[dict[str, Any]]:
    """One rule for a key required on every covered type or on none; otherwise two, required on
    the types ``report_required_tag_for`` names and optional on the others (values still judged).

    >>> [(r["required"], r.get("resource_types")) for r in _per_type(
    ...     {"key": "CostCenter", "required_on": ["volume"]}, ["instance", "volume"])]
    [(True, ['volume']), (False, ['instance'])]
    """
    required_on = [t for t in covered if t in rule["required_on"]]
    base = {k: v for k, v in rule.items() if k != "required_on"}
    if not required_on or len(required_on) == len(covered):
        return [{"key": base["key"], "required": bool(required_on), **base}]
    optional_on = [t for t in covered if t not in required_on]
    return [
        {"key": base["key"], "required": True, **base, "resource_types": required_on},
        {"key": base["key"], "required": False, **base, "resource_types": optional_on},
    ]


# --------------------------------------------------------------------------------------------
# AWS Config managed rule required-tags
# --------------------------------------------------------------------------------------------


def _is_required_tags(rule: object) -> bool:
    source = rule.get("Source") if isinstance(rule, dict) else None
    return isinstance(source, dict) and source.get("SourceIdentifier") == _REQUIRED_TAGS


def _pick_config_rule(rules: object, problems: list[Problem]) -> tuple[dict[str, Any] | None, str]:
    """The one REQUIRED_TAGS rule of ``describe-config-rules`` output, with its path."""
    path = "$.ConfigRules"
    if not isinstance(rules, list) or not rules:
        problems.append(Problem(path, "must be a non-empty list of Config rules"))
        return None, path
    if len(rules) == 1:
        candidates = [(0, rules[0])]
    else:
        candidates = [(i, rule) for i, rule in enumerate(rules) if _is_required_tags(rule)]
    if len(candidates) != 1:
        problems.append(
            Problem(
                path,
                f"holds {len(candidates)} {_REQUIRED_TAGS} rules among {len(rules)}; convert exactly one "
                "(aws configservice describe-config-rules --config-rule-names NAME)",
            )
        )
        return None, path
    index, rule = candidates[0]
    if not isinstance(rule, dict):
        problems.append(
            Problem(f"{path}[{index}]", f"a Config rule must be an object, not {_type_name(rule)}")
        )
        return None, path
    return rule, f"{path}[{index}]"


def _check_config_source(source: object, path: str, problems: list[Problem]) -> bool:
    """Whether the rule is the AWS managed rule required-tags; reports it when not."""
    if not isinstance(source, dict):
        problems.append(Problem(path, f"must be an object, not {_type_name(source)}"))
        return False
    if source.get("Owner") != "AWS" or source.get("SourceIdentifier") != _REQUIRED_TAGS:
        problems.append(
            Problem(
                f"{path}.SourceIdentifier",
                f"this rule runs {source.get('SourceIdentifier')!r} (owner {source.get('Owner')!r}), not the "
                f"AWS managed rule {_REQUIRED_TAGS} (required-tags); only required-tags parameters convert",
            )
        )
        return False
    return True


def _check_config_scope(scope: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(scope, dict):
        problems.append(Problem(path, f"must be an object, not {_type_name(scope)}"))
        return
    types = scope.get("ComplianceResourceTypes")
    if isinstance(types, list) and types and _EC2_INSTANCE_CONFIG_TYPE not in types:
        problems.append(
            Problem(
                f"{path}.ComplianceResourceTypes",
                f"does not include {_EC2_INSTANCE_CONFIG_TYPE}, so AWS Config never evaluates EC2 instances "
                "with this rule and there is nothing to convert",
            )
        )
    for field in ("TagKey", "ComplianceResourceId"):
        if scope.get(field) is not None:
            problems.append(
                Problem(
                    f"{path}.{field}",
                    "the rule only evaluates some resources, which a Tagwarden policy cannot express; "
                    "remove the scope restriction or write a Tagwarden policy",
                )
            )


def _config_parameters(doc: object, problems: list[Problem]) -> tuple[object, str, str | None]:
    """(parameters, their JSON path, the rule name if known) from any accepted wrapping.

    The parameters are None when a problem was reported instead.
    """
    if not isinstance(doc, dict):
        return doc, "$", None
    path = "$"
    rule: dict[str, Any] | None = doc
    if "ConfigRules" in doc:
        rule, path = _pick_config_rule(doc["ConfigRules"], problems)
    elif not any(field in doc for field in ("InputParameters", "Source", "ConfigRuleName")):
        return doc, "$", None  # plain parameters
    if rule is None:
        return None, path, None
    if "Source" in rule and not _check_config_source(rule["Source"], f"{path}.Source", problems):
        return None, path, None  # another rule's parameters mean nothing to required-tags
    if "Scope" in rule:
        _check_config_scope(rule["Scope"], f"{path}.Scope", problems)
    params_path = f"{path}.InputParameters"
    if "InputParameters" not in rule:
        problems.append(
            Problem(
                params_path,
                'required-tags needs its parameters here, e.g. "{\\"tag1Key\\":\\"CostCenter\\"}"',
            )
        )
        return None, params_path, None
    params = _decode_embedded(rule["InputParameters"], params_path, problems, what="the rule parameters")
    rule_name = rule.get("ConfigRuleName")
    return params, params_path, rule_name if isinstance(rule_name, str) else None


def _config_values(raw: str, path: str, problems: list[Problem]) -> list[str] | None:
    """The allowed values of one tagNValue, split the way AWS splits them; None means any value."""
    if raw == "":
        return None
    values = raw.split(",")
    too_long = [v for v in values if len(v) > MAX_VALUE_LENGTH]
    if too_long:
        problems.append(
            Problem(
                path,
                f"value {too_long[0][:20]!r}... is {len(too_long[0])} characters; tag values are at most 256",
            )
        )
    return _unique(values)


def _check_config_members(params: dict[Any, Any], root: str, problems: list[Problem]) -> None:
    for member, value in params.items():
        path = _member(root, member)
        match = _CONFIG_PARAMETER.fullmatch(member) if isinstance(member, str) else None
        if match is None:
            problems.append(
                Problem(
                    path,
                    f"unknown parameter; required-tags takes tag1Key, tag1Value ... tag{CONFIG_MAX_TAGS}Key, "
                    f"tag{CONFIG_MAX_TAGS}Value (parameter names are case sensitive)",
                )
            )
        elif int(match.group(1)) > CONFIG_MAX_TAGS:
            problems.append(
                Problem(
                    path,
                    f"required-tags checks at most {CONFIG_MAX_TAGS} tags (tag1Key ... "
                    f"tag{CONFIG_MAX_TAGS}Key); move the rest into a second rule or write a Tagwarden policy",
                )
            )
        elif not isinstance(value, str):
            problems.append(Problem(path, f"must be a string, not {_type_name(value)}"))


def _config_entries(
    params: dict[Any, Any], root: str, problems: list[Problem]
) -> list[tuple[int, str, list[str] | None]]:
    """(N, tagNKey, allowed values or None for any) of each key to check, reporting every problem."""
    _check_config_members(params, root, problems)
    entries: list[tuple[int, str, list[str] | None]] = []
    for index in range(1, CONFIG_MAX_TAGS + 1):
        key_name, value_name = f"tag{index}Key", f"tag{index}Value"
        key, raw_values = params.get(key_name), params.get(value_name)
        key_path, value_path = _member(root, key_name), _member(root, value_name)
        if key is None or (key == "" and index > 1):
            # An unused optional parameter: AWS leaves it out, CloudFormation often passes "".
            if index == 1 and key is None:
                problems.append(
                    Problem(key_path, 'required-tags needs tag1Key (the AWS default is "CostCenter")')
                )
            elif isinstance(raw_values, str) and raw_values:
                problems.append(
                    Problem(value_path, f"has no {key_name}; add {key_name} or remove {value_name}")
                )
            continue
        if not isinstance(key, str) or not (raw_values is None or isinstance(raw_values, str)):
            continue  # reported by _check_config_members
        if not _check_tag_key(key, key_path, problems, source=key_name):
            continue
        values = None if raw_values is None else _config_values(raw_values, value_path, problems)
        entries.append((index, key, values))
    return entries


def _config_rule(
    key: str, values: list[str] | None, path: str, problems: list[Problem]
) -> dict[str, Any] | None:
    rule: dict[str, Any] = {"key": key, "required": True, "allow_empty": True}
    if values is None:
        return rule
    if not values:
        rule["pattern"] = NEVER_MATCHES
        rule["description"] = "the key is listed twice with no value in common, so no value complies"
        return rule
    if any("*" in v for v in values):
        # required-tags has no wildcards: '*' is an ordinary character, so escape every value.
        pattern = "(?:" + "|".join(patterns.escape(v) for v in values) + ")"
        if len(pattern) > MAX_PATTERN_LENGTH:
            problems.append(
                Problem(
                    path,
                    f"a value contains '*', which must match literally, and the {len(values)} values make a "
                    f"pattern of {len(pattern)} characters (at most {MAX_PATTERN_LENGTH}); shorten the list",
                )
            )
            return None
        rule["pattern"] = pattern
        rule["description"] = "values matched literally: required-tags has no wildcards"
        return rule
    if len(values) > MAX_ALLOWED_VALUES:
        problems.append(
            Problem(path, f"lists {len(values)} values; a Tagwarden rule allows at most {MAX_ALLOWED_VALUES}")
        )
        return None
    rule["allowed_values"] = values
    return rule


def config_required_tags_to_v1(doc: dict[str, Any], *, name: str) -> dict[str, Any]:
    """Convert AWS Config required-tags parameters to a version 1 policy (see the module docstring).

    >>> v1 = config_required_tags_to_v1({"tag1Key": "CostCenter", "tag1Value": "A,B",
    ...                                  "tag2Key": "Owner"}, name="cfg")
    >>> [(r["key"], r.get("allowed_values")) for r in v1["rules"]]
    [('CostCenter', ['A', 'B']), ('Owner', None)]
    """
    problems: list[Problem] = []
    params, root, rule_name = _config_parameters(doc, problems)
    if params is None and problems:
        raise PolicyError(problems)
    if not isinstance(params, dict):
        problems.append(
            Problem(root, f"the required-tags parameters must be a JSON object, not {_type_name(params)}")
        )
        raise PolicyError(problems)
    # key -> (allowed values or None, N of its first tagNKey)
    merged: dict[str, tuple[list[str] | None, int]] = {}
    for index, key, values in _config_entries(params, root, problems):
        clash = next((k for k in merged if k != key and k.casefold() == key.casefold()), None)
        if clash is not None:
            problems.append(
                Problem(
                    _member(root, f"tag{index}Key"),
                    f"{key!r} and {clash!r} (tag{merged[clash][1]}Key) differ only by capitalization; AWS "
                    "checks them as two keys, but a Tagwarden policy has one rule per key whatever its case",
                )
            )
        elif key in merged:
            # AWS checks each tagN pair on its own, so a value must satisfy both lists.
            earlier, first = merged[key]
            if earlier is None or values is None:
                combined = values if earlier is None else earlier
            else:
                combined = [v for v in earlier if v in values]
            merged[key] = (combined, first)
        else:
            merged[key] = (values, index)
    rules = []
    for key, (values, index) in merged.items():  # insertion order: tag1 ... tag6
        rule = _config_rule(key, values, _member(root, f"tag{index}Value"), problems)
        if rule is not None:
            rules.append(rule)
    if problems:
        raise PolicyError(problems)
    named = f" {rule_name!r}" if rule_name else ""
    description = (
        f"Converted by Tagwarden from the AWS Config managed rule required-tags ({_REQUIRED_TAGS}){named}: "
        f"{len(rules)} required tag key(s), keys and values case sensitive."
    )
    return {
        "version": 1,
        "name": _policy_name(name),
        "description": description[:2048],
        "key_case": "exact",
        "rules": rules,
    }
