"""The policy language: what validates, and the one line per problem for what does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workflow.errors import PolicyError
from workflow.policy import compile_policy, load_policy, policy_schema, read_policy_file, validate_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def minimal(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {"version": 1, "name": "p", "rules": [{"key": "Owner"}]}
    doc.update(overrides)
    return doc


def messages(doc: object) -> list[str]:
    return [str(p) for p in validate_policy(doc)]


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*.json")), ids=lambda p: p.name)
def test_shipped_policies_are_valid(path: Path) -> None:
    assert load_policy(path).rules


def test_schema_is_draft_2020_12_and_ships_in_the_package() -> None:
    assert policy_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_minimal_policy_has_no_problems() -> None:
    assert messages(minimal()) == []


def test_version_other_than_1_is_rejected_with_its_path() -> None:
    assert messages(minimal(version=2)) == ["$.version: must be 1 (got 2); this is policy language version 1"]


def test_missing_required_fields_point_at_the_field() -> None:
    assert messages({"version": 1}) == [
        "$.name: required field is missing",
        "$.rules: required field is missing",
    ]


def test_unknown_field_is_rejected_and_allowed_fields_listed() -> None:
    problems = messages(minimal(rules=[{"key": "Owner", "requird": True}]))
    assert len(problems) == 1
    assert problems[0].startswith("$.rules[0].requird: unknown field; allowed fields here: allow_empty,")


def test_rule_count_is_bounded() -> None:
    assert messages(minimal(rules=[])) == ["$.rules: [] should be non-empty"]
    too_many = [{"key": f"K{i}"} for i in range(201)]
    assert len(messages(minimal(rules=too_many))) == 1


def test_invalid_regex_is_reported_with_its_path() -> None:
    problems = messages(minimal(rules=[{"key": "A"}, {"key": "B"}, {"key": "C", "pattern": "[a-"}]))
    assert len(problems) == 1
    assert problems[0].startswith("$.rules[2].pattern: not a valid regular expression:")


def test_patterns_re2_cannot_run_in_linear_time_are_refused_with_one_line() -> None:
    problems = messages(minimal(rules=[{"key": "Owner", "pattern": "^(a)\\1$"}]))
    assert problems == [
        "$.rules[0].pattern: not supported: a backreference (\\1): Tagwarden matches patterns with RE2, "
        "in linear time, which cannot express them"
    ]


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[a-z0-9._-]+@example\.com$",
        r"^([a-z]+\.)*[a-z]+$",
        r"^CC-[0-9]{4}$",
        r"^(prod|dev|staging)$",
        "^(a|aa)+$",  # exponential for a backtracking engine, linear for RE2
    ],
)
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    assert messages(minimal(rules=[{"key": "Owner", "pattern": pattern}])) == []


def test_duplicate_rule_keys_are_rejected_exact_and_by_case() -> None:
    rules = [{"key": "Owner"}, {"key": "Owner"}, {"key": "OWNER"}]
    assert messages(minimal(rules=rules)) == [
        "$.rules[1].key: duplicate rule for 'Owner' ($.rules[0]); keep one rule per key",
        "$.rules[2].key: differs only by case from 'Owner' ($.rules[0]); keep one rule per key",
    ]


def test_rule_on_reserved_aws_prefix_is_rejected() -> None:
    assert messages(minimal(rules=[{"key": "aws:cloudformation:stack-name"}])) == [
        "$.rules[0].key: keys beginning with 'aws:' are reserved for AWS and never evaluated"
    ]


def test_prohibited_key_that_a_rule_requires_is_a_contradiction() -> None:
    assert messages(minimal(prohibited_keys=["own*"])) == [
        "$.prohibited_keys[0]: prohibits 'Owner', which $.rules[0] asks for; remove one of them"
    ]


def test_exemption_needs_exactly_one_selector() -> None:
    problems = messages(minimal(exemptions=[{"reason": "x"}]))
    assert problems == [
        "$.exemptions[0]: an exemption needs exactly one of 'tag', 'instance_ids' or 'resource_ids'"
    ]


def test_all_problems_are_reported_at_once() -> None:
    doc = {
        "version": 3,
        "name": "",
        "rules": [{"key": "A", "pattern": "("}, {"key": "A"}],
        "key_case": "loose",
    }
    problems = messages(doc)
    paths = {p.split(":")[0] for p in problems}
    assert {"$.version", "$.name", "$.key_case", "$.rules[0].pattern", "$.rules[1].key"} <= paths


@pytest.mark.parametrize("doc", [None, [], "policy", 1, {"rules": "x"}, {"rules": [1, {"key": 2}]}])
def test_wrong_types_anywhere_give_problems_not_exceptions(doc: object) -> None:
    assert messages(doc)


def test_compile_raises_policy_error_listing_every_problem() -> None:
    with pytest.raises(PolicyError) as caught:
        compile_policy({"version": 1, "name": "p", "rules": [{"key": "A", "pattern": "("}], "max_tags": 99})
    assert [p.path for p in caught.value.problems] == ["$.max_tags", "$.rules[0].pattern"]


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"version": 1,\n "name": }')
    with pytest.raises(PolicyError) as caught:
        read_policy_file(path)
    assert caught.value.lines() == [f"{path}: $: invalid JSON at line 2, column 10: Expecting value"]


def test_duplicate_json_members_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"version": 1, "name": "a", "name": "b", "rules": []}')
    with pytest.raises(PolicyError, match="member 'name' appears twice"):
        read_policy_file(path)


def test_unreadable_and_oversized_files_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read file: No such file or directory"):
        read_policy_file(tmp_path / "missing.json")
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"description": "x" * (2 * 1024 * 1024)}))
    with pytest.raises(PolicyError, match="larger than 1024 KiB"):
        read_policy_file(big)


def test_policy_hash_ignores_formatting_but_not_content() -> None:
    a = compile_policy(json.loads('{"version": 1, "name": "p", "rules": [{"key": "Owner"}]}'))
    b = compile_policy(json.loads('{"rules":[{"key":"Owner"}],"name":"p","version":1}'))
    c = compile_policy(minimal(rules=[{"key": "Team"}]))
    assert a.sha256 == b.sha256 != c.sha256
