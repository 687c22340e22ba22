"""Invariants of the evaluator over generated instances and policies (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.builders import NOW, instance
from workflow.evaluator import evaluate_instance
from workflow.policy import compile_policy

KEYS = ["Owner", "owner", "OWNER", "CostCenter", "costcenter", "Environment", "Team", "temp", "aws:x", "Name"]
VALUES = st.sampled_from(
    ["", " ", "prod", "Prod", "dev-1", "CC-0042", "ana@example.com", "x" * 256, "é", "\u202eevil"]
)
TAGS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8)

POLICY = compile_policy(
    {
        "version": 1,
        "name": "p",
        "rules": [
            {"key": "Owner", "pattern": "^[a-z]+@example\\.com$"},
            {"key": "CostCenter", "pattern": "^CC-[0-9]{4}$"},
            {"key": "Environment", "allowed_values": ["prod", "dev*"]},
            {"key": "Team", "required": False},
        ],
        "prohibited_keys": ["temp"],
        "max_tags": 6,
    }
)
INSENSITIVE = compile_policy({**POLICY.document, "key_case": "insensitive"})
SATISFYING = {"Owner": "ana@example.com", "CostCenter": "CC-0042", "Environment": "prod", "Team": "x"}


def violations(tags: dict[str, str], policy: Any = POLICY) -> list[tuple[str, str]]:
    return sorted(
        (v["code"], v["key"]) for v in evaluate_instance(instance(tags), policy, now=NOW)["violations"]
    )


@given(TAGS)
def test_key_order_never_matters(tags: dict[str, str]) -> None:
    reversed_tags = dict(reversed(list(tags.items())))
    for policy in (POLICY, INSENSITIVE):
        assert violations(tags, policy) == violations(reversed_tags, policy)


@given(TAGS, st.sampled_from(sorted(SATISFYING)))
def test_adding_a_satisfying_tag_never_adds_a_rule_violation(tags: dict[str, str], key: str) -> None:
    before = {v for v in violations(tags) if v[0] != "too_many_tags"}
    after = {v for v in violations({**tags, key: SATISFYING[key]}) if v[0] != "too_many_tags"}
    assert after <= before


@given(TAGS)
def test_compliant_exactly_when_no_violation_without_exemptions(tags: dict[str, str]) -> None:
    finding = evaluate_instance(instance(tags), POLICY, now=NOW)
    assert finding["compliant"] is (not finding["violations"])


@given(TAGS)
def test_aws_prefixed_tags_never_change_the_outcome(tags: dict[str, str]) -> None:
    with_aws = {**tags, "aws:cloudformation:stack-name": "s", "aws:autoscaling:groupName": ""}
    assert violations(tags) == violations(with_aws)


@given(TAGS)
def test_insensitive_keys_never_report_more_than_exact(tags: dict[str, str]) -> None:
    exact = {v for v in violations(tags) if v[0] != "key_case"}
    insensitive = set(violations(tags, INSENSITIVE))
    assert not any(code == "key_case" for code, _ in insensitive)
    assert {v for v in insensitive if v[0] == "missing"} <= {v for v in exact if v[0] == "missing"}


@settings(max_examples=50)
@given(st.text(max_size=256))
def test_values_round_trip_into_the_finding_unchanged(value: str) -> None:
    finding = evaluate_instance(instance({"Owner": value}), POLICY, now=NOW)
    assert finding["tags"]["Owner"] == value


# Keys of every kind the evaluator tells apart: exact, another case, a near miss (whitespace),
# prohibited in any case, reserved, and ordinary.
EVERY_KIND_OF_KEY = [*KEYS, "Owner ", " cost center", "Temp", "TEMP", "aws:owner", "Project"]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(EVERY_KIND_OF_KEY), VALUES, max_size=8), min_size=1, max_size=40
    ),
    st.sampled_from([POLICY, INSENSITIVE]),
    st.integers(1, 6),
)
def test_remembered_verdicts_never_change_a_finding(
    fleet: list[dict[str, str]], policy: Any, cache_size: int
) -> None:
    """The evaluator remembers per policy which keys need no check of their own and each rule's
    outcome per value, and clears those memories when full: a finding must be the one a policy
    with nothing remembered gives, whatever was evaluated before it."""
    from workflow.policy import compiler

    warm = compile_policy(policy.document)
    original = compiler._VERDICT_CACHE_SIZE
    compiler._VERDICT_CACHE_SIZE = cache_size  # tiny: memories are cleared again and again
    try:
        for tags in fleet:
            cold = compile_policy(policy.document)
            assert evaluate_instance(instance(tags), warm, now=NOW) == evaluate_instance(
                instance(tags), cold, now=NOW
            )
    finally:
        compiler._VERDICT_CACHE_SIZE = original
