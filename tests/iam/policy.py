"""IAM's policy language, evaluated: actions, resources, principals and conditions.

Implemented from the IAM User Guide's "Policy evaluation logic" and "IAM JSON policy elements:
Condition operators": Action/NotAction and Resource/NotResource with ``*``/``?`` wildcards
(actions case-insensitive, ARNs case-sensitive), Principal (AWS account, role ARN, ``*``,
Service), Condition with the String*, Arn*, Bool, Null, Numeric*, IpAddress-free operators used
here, the ``...IfExists`` suffix and the ``ForAnyValue:``/``ForAllValues:`` set qualifiers.
An operator this module does not know is an error, never a silent match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Context = Mapping[str, Any]  # key (case-insensitive) -> str, bool, number or list of them


class UnsupportedPolicy(ValueError):
    """A policy element this evaluator does not implement."""


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    return bool(_wildcard(pattern, ignore_case=True).fullmatch(action))


def arn_matches(pattern: str, arn: str) -> bool:
    """ArnLike semantics: field by field (the six colon-separated fields), wildcards within each.

    ``arn:aws:iam::*:role/X`` matches ``arn:aws:iam::111122223333:role/X``; a plain ``*`` matches all.
    """
    if pattern == "*":
        return True
    pattern_fields = pattern.split(":", 5)
    arn_fields = arn.split(":", 5)
    if len(pattern_fields) != 6 or len(arn_fields) != 6:
        return bool(_wildcard(pattern, ignore_case=False).fullmatch(arn))
    return all(
        _wildcard(p, ignore_case=False).fullmatch(a) for p, a in zip(pattern_fields, arn_fields, strict=True)
    )


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a role session (``arn`` is the role ARN) or an AWS service."""

    kind: str  # "role" or "service"
    arn: str = ""  # role ARN
    account: str = ""
    service: str = ""  # e.g. events.amazonaws.com

    @property
    def label(self) -> str:
        return self.arn if self.kind == "role" else self.service


def principal_matches(element: Any, principal: Principal) -> bool:
    """Whether a statement's Principal names ``principal``.

    ``{"AWS": "arn:aws:iam::123456789012:root"}`` (or the bare account id) names every principal of
    that account, as IAM reads it for the purpose of this statement; ``"*"`` names everyone.
    """
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        raise UnsupportedPolicy(f"Principal {element!r}")
    for kind, values in element.items():
        for value in as_list(values):
            if kind == "AWS":
                if value == "*":
                    return True
                if principal.kind != "role":
                    continue
                if value in {principal.account, f"arn:aws:iam::{principal.account}:root"}:
                    return True
                if value == principal.arn:
                    return True
            elif kind == "Service":
                if principal.kind == "service" and value == principal.service:
                    return True
            elif kind in {"Federated", "CanonicalUser"}:
                continue
            else:
                raise UnsupportedPolicy(f"Principal type {kind!r}")
    return False


def names_account_root(element: Any, account: str) -> bool:
    """A key policy statement naming the account root delegates to the account's IAM policies."""
    if not isinstance(element, Mapping):
        return False
    return any(
        value in {account, f"arn:aws:iam::{account}:root"} for value in as_list(element.get("AWS", []))
    )


# -- policy variables -----------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_ESCAPES = {"*": "\x00star", "?": "\x00question", "$": "$"}


class _Unresolved(Exception):
    pass


def substitute_variables(text: str, context: Context) -> str:
    """``${aws:PrincipalOrgID}`` and the like replaced by the request's value (IAM's policy
    variables); ``${*}``, ``${?}``, ``${$}`` are the literal characters. A variable the request does
    not carry makes the element not match (``_Unresolved``), as IAM documents."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _ESCAPES:
            return _ESCAPES[name]
        default = None
        if ", " in name:  # ${aws:username, 'default'}
            name, default = (part.strip() for part in name.split(",", 1))
            default = default.strip("'")
        present, values = _lookup(context, name)
        if not present or len(values) != 1:
            if default is not None:
                return default
            raise _Unresolved(name)
        return _text(values[0])

    return _VARIABLE.sub(replace, text)


def _compile_with_escapes(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    out = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("\x00star", index):
            out.append(re.escape("*"))
            index += len("\x00star")
        elif pattern.startswith("\x00question", index):
            out.append(re.escape("?"))
            index += len("\x00question")
        else:
            c = pattern[index]
            out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
            index += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


# -- conditions -----------------------------------------------------------------------------------


def _lookup(context: Context, key: str) -> tuple[bool, list[Any]]:
    for name, value in context.items():
        if name.lower() == key.lower():
            return True, as_list(value)
    return False, []


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any) -> float:
    return float(value)


def _single(operator: str, policy_value: Any, request_value: Any, context: Context | None = None) -> bool:
    if isinstance(policy_value, str) and "${" in policy_value and context is not None:
        if operator.startswith("String") and "Like" not in operator:
            policy_value = (
                substitute_variables(policy_value, context)
                .replace("\x00star", "*")
                .replace("\x00question", "?")
            )
        elif operator.startswith(("String", "Arn")):
            substituted = substitute_variables(policy_value, context)
            matched = bool(
                _compile_with_escapes(substituted, ignore_case=False).fullmatch(_text(request_value))
            )
            return matched if "Not" not in operator else not matched
    if operator == "StringEquals":
        return _text(request_value) == _text(policy_value)
    if operator == "StringNotEquals":
        return _text(request_value) != _text(policy_value)
    if operator == "StringEqualsIgnoreCase":
        return _text(request_value).lower() == _text(policy_value).lower()
    if operator == "StringNotEqualsIgnoreCase":
        return _text(request_value).lower() != _text(policy_value).lower()
    if operator == "StringLike":
        return bool(_wildcard(_text(policy_value), ignore_case=False).fullmatch(_text(request_value)))
    if operator == "StringNotLike":
        return not _wildcard(_text(policy_value), ignore_case=False).fullmatch(_text(request_value))
    if operator in {"ArnEquals", "ArnLike"}:
        return arn_matches(_text(policy_value), _text(request_value))
    if operator in {"ArnNotEquals", "ArnNotLike"}:
        return not arn_matches(_text(policy_value), _text(request_value))
    if operator == "Bool":
        return _text(request_value).lower() == _text(policy_value).lower()
    numeric = {
        "NumericEquals": lambda a, b: a == b,
        "NumericNotEquals": lambda a, b: a != b,
        "NumericLessThan": lambda a, b: a < b,
        "NumericLessThanEquals": lambda a, b: a <= b,
        "NumericGreaterThan": lambda a, b: a > b,
        "NumericGreaterThanEquals": lambda a, b: a >= b,
    }
    if operator in numeric:
        return bool(numeric[operator](_number(request_value), _number(policy_value)))
    raise UnsupportedPolicy(f"condition operator {operator!r}")


_NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "ArnNotEquals",
    "ArnNotLike",
    "NumericNotEquals",
}


def condition_matches(operator: str, key: str, policy_values: Any, context: Context) -> bool:
    """One operator/key pair of a Condition block against the request context."""
    qualifier = ""
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
        if qualifier not in {"ForAnyValue", "ForAllValues"}:
            raise UnsupportedPolicy(f"condition qualifier {qualifier!r}")
    if_exists = operator.endswith("IfExists")
    if if_exists:
        operator = operator[: -len("IfExists")]
    present, request_values = _lookup(context, key)
    values = as_list(policy_values)
    if operator == "Null":
        # "true": the key must be absent; "false": present (with any value).
        return all((_text(v).lower() == "true") == (not present) for v in values)
    if not present:
        if if_exists:
            return True
        if qualifier == "ForAllValues":
            return True  # vacuously true for an empty set, as IAM documents
        # A negated operator on a missing key matches (nothing equals), per the IAM guide.
        return operator in _NEGATED and qualifier == ""
    negated = operator in _NEGATED

    def compare(policy_value: Any, request_value: Any) -> bool:
        try:
            return _single(operator, policy_value, request_value, context)
        except _Unresolved:
            return False

    def one(request_value: Any) -> bool:
        if negated:
            return all(compare(v, request_value) for v in values)
        return any(compare(v, request_value) for v in values)

    if qualifier == "ForAllValues":
        return all(one(r) for r in request_values)
    if qualifier == "ForAnyValue":
        return any(one(r) for r in request_values)
    if len(request_values) != 1:
        # A multivalued key without a set qualifier: IAM compares each value; any match counts.
        return any(one(r) for r in request_values)
    return one(request_values[0])


def conditions_match(condition: Mapping[str, Mapping[str, Any]] | None, context: Context) -> bool:
    if not condition:
        return True
    return all(
        condition_matches(operator, key, values, context)
        for operator, block in condition.items()
        for key, values in block.items()
    )


# -- statements -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One resolved statement (intrinsics already replaced by values) and where it came from."""

    document: Mapping[str, Any]
    source: str  # "<logical id> <Sid or index>"
    kind: str = "identity"  # identity, resource, trust, key

    @property
    def effect(self) -> str:
        return str(self.document["Effect"])

    def action_applies(self, action: str) -> bool:
        if "NotAction" in self.document:
            return not any(action_matches(p, action) for p in as_list(self.document["NotAction"]))
        return any(action_matches(p, action) for p in as_list(self.document.get("Action", [])))

    def resource_applies(self, resource: str, context: Context | None = None) -> bool:
        def matches(pattern: str) -> bool:
            if "${" in pattern and context is not None:
                try:
                    pattern = substitute_variables(pattern, context)
                except _Unresolved:
                    return False
                return bool(_compile_with_escapes(pattern, ignore_case=False).fullmatch(resource))
            return arn_matches(pattern, resource)

        if "NotResource" in self.document:
            return not any(matches(p) for p in as_list(self.document["NotResource"]))
        if "Resource" not in self.document:
            return True  # trust policies have none: the role itself
        return any(matches(p) for p in as_list(self.document["Resource"]))

    def principal_applies(self, principal: Principal) -> bool:
        if "NotPrincipal" in self.document:
            raise UnsupportedPolicy("NotPrincipal")
        if "Principal" not in self.document:
            return True  # identity policies: the attached principal
        return principal_matches(self.document["Principal"], principal)

    def applies(self, principal: Principal, action: str, resource: str, context: Context) -> bool:
        return (
            self.action_applies(action)
            and self.resource_applies(resource, context)
            and self.principal_applies(principal)
            and conditions_match(self.document.get("Condition"), context)
        )


@dataclass
class Decision:
    allowed: bool
    reason: str
    allowed_by: list[Statement] = field(default_factory=list)


def matching(
    statements: Iterable[Statement],
    principal: Principal,
    action: str,
    resource: str,
    context: Context,
    effect: str,
) -> list[Statement]:
    return [s for s in statements if s.effect == effect and s.applies(principal, action, resource, context)]


def decide(
    principal: Principal,
    action: str,
    resource: str,
    context: Context,
    *,
    identity: Iterable[Statement],
    resource_policy: Iterable[Statement] = (),
    resource_account: str = "",
    key_policy: Iterable[Statement] | None = None,
    trust_policy: Iterable[Statement] | None = None,
) -> Decision:
    """IAM's evaluation for one request (no SCPs, permission boundaries or session policies).

    * An explicit Deny anywhere wins.
    * KMS: the key policy must allow the principal, or name the account root (then the identity
      policy must allow too).
    * sts:AssumeRole: the role's trust policy must allow the caller; a role session must also be
      allowed by its identity policy unless the trust names the role itself in the same account.
    * Same account: an identity Allow or a resource-policy Allow naming the principal suffices.
      Cross account: both sides must allow.
    """
    identity = list(identity)
    resource_statements = list(resource_policy)
    key_statements = list(key_policy) if key_policy is not None else None
    trust_statements = list(trust_policy) if trust_policy is not None else None
    every = [*identity, *resource_statements, *(key_statements or []), *(trust_statements or [])]
    denies = matching(every, principal, action, resource, context, "Deny")
    if denies:
        return Decision(False, f"explicitly denied by {denies[0].source}")
    identity_allows = (
        matching(identity, principal, action, resource, context, "Allow") if principal.kind == "role" else []
    )
    if key_statements is not None:
        direct = [
            s
            for s in matching(key_statements, principal, action, resource, context, "Allow")
            if not (
                principal.kind == "role"
                and names_account_root(s.document.get("Principal"), principal.account)
            )
        ]
        if direct:
            return Decision(True, "key policy", direct)
        delegated = [
            s
            for s in matching(key_statements, principal, action, resource, context, "Allow")
            if principal.kind == "role" and names_account_root(s.document.get("Principal"), principal.account)
        ]
        if delegated and identity_allows:
            return Decision(True, "key policy (account) and identity policy", identity_allows)
        if not delegated:
            return Decision(False, "the key policy allows neither the principal nor its account")
        return Decision(False, "the key policy delegates to IAM, and no identity policy allows it")
    if trust_statements is not None:
        trusted = matching(trust_statements, principal, action, resource, context, "Allow")
        if not trusted:
            return Decision(False, "the role's trust policy does not admit the caller with this context")
        if principal.kind == "service":
            return Decision(True, "trust policy", trusted)
        if identity_allows:
            return Decision(True, "identity and trust policies", identity_allows)
        return Decision(False, "the trust policy admits the caller, but no identity policy allows it")
    resource_allows = matching(resource_statements, principal, action, resource, context, "Allow")
    same_account = (
        principal.kind == "service" or not resource_account or resource_account == principal.account
    )
    if same_account:
        if identity_allows:
            return Decision(True, "identity policy", identity_allows)
        explicit = [
            s
            for s in resource_allows
            if principal.kind == "service"
            or not names_account_root(s.document.get("Principal"), principal.account)
        ]
        if explicit:
            return Decision(True, "resource policy", explicit)
        return Decision(False, "no identity or resource policy allows it")
    if identity_allows and resource_allows:
        return Decision(True, "identity and resource policies", identity_allows)
    return Decision(False, "cross-account: needs both an identity and a resource policy Allow")
