"""Every evaluation rule and violation code of policy version 1, on plain fixtures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.unit.builders import NOW, instance
from workflow.evaluator import VIOLATION_CODES, evaluate_instance, evaluate_instances, evaluate_reservations
from workflow.policy import compile_policy


def policy(*rules: dict[str, Any], **top: Any) -> Any:
    return compile_policy({"version": 1, "name": "t", "rules": list(rules) or [{"key": "Owner"}], **top})


def codes(finding: dict[str, Any]) -> list[tuple[str, str]]:
    return [(v["code"], v["key"]) for v in finding["violations"]]


def evaluate(tags: dict[str, str] | None, pol: Any, **kwargs: Any) -> dict[str, Any]:
    return evaluate_instance(instance(tags, **kwargs), pol, account_id="111122223333", now=NOW)


def test_instance_with_every_required_tag_is_compliant() -> None:
    finding = evaluate({"Owner": "ana"}, policy())
    assert finding["compliant"] is True
    assert finding["violations"] == []


def test_missing_required_tag_is_a_missing_violation() -> None:
    finding = evaluate({"Team": "x"}, policy())
    assert codes(finding) == [("missing", "Owner")]
    assert finding["violations"][0]["message"] == "required tag 'Owner' is missing"
    assert "value" not in finding["violations"][0]
    assert finding["compliant"] is False


def test_instance_without_tags_field_is_treated_as_untagged() -> None:
    assert codes(evaluate(None, policy())) == [("missing", "Owner")]


def test_optional_rule_absent_is_fine() -> None:
    assert evaluate({}, policy({"key": "Owner", "required": False}))["compliant"] is True


def test_wrong_case_key_is_key_case_violation_even_for_optional_rules() -> None:
    for required in (True, False):
        finding = evaluate({"owner": "ana"}, policy({"key": "Owner", "required": required}))
        assert codes(finding) == [("key_case", "Owner")]
        assert finding["violations"][0]["value"] == "ana"


def test_insensitive_key_case_uses_the_variant_value() -> None:
    pol = policy({"key": "Environment", "allowed_values": ["prod"]}, key_case="insensitive")
    assert evaluate({"environment": "prod"}, pol)["compliant"] is True
    assert codes(evaluate({"ENVIRONMENT": "dev"}, pol)) == [("invalid_value", "Environment")]


def test_variant_beside_the_exact_key_is_still_a_key_case_violation() -> None:
    finding = evaluate(
        {"Owner": "ana", "owner": "bo", "OWNER": ""}, policy({"key": "Owner", "allowed_values": ["x"]})
    )
    assert codes(finding) == [("key_case", "Owner"), ("invalid_value", "Owner")]
    assert finding["violations"][0]["message"] == "tag 'OWNER', 'owner' should be spelled 'Owner'"


def test_several_variants_with_insensitive_keys_use_the_first_in_sorted_order() -> None:
    pol = policy({"key": "Owner"}, key_case="insensitive")
    assert codes(evaluate({"owner": "", "OWNER": "ana"}, pol)) == []
    assert codes(evaluate({"OWNER": "", "owner": "ana"}, pol)) == [("empty_value", "Owner")]


@pytest.mark.parametrize("blank", ["", " ", "\t  "])
def test_blank_value_on_required_rule_is_empty_value(blank: str) -> None:
    assert codes(evaluate({"Owner": blank}, policy())) == [("empty_value", "Owner")]


def test_blank_value_on_optional_rule_counts_as_absent() -> None:
    pol = policy({"key": "Team", "required": False, "allowed_values": ["a"]})
    assert evaluate({"Team": "  "}, pol)["compliant"] is True


def test_allow_empty_makes_blank_an_ordinary_value() -> None:
    assert evaluate({"Owner": ""}, policy({"key": "Owner", "allow_empty": True}))["compliant"] is True
    pol = policy({"key": "Owner", "allow_empty": True, "allowed_values": ["a"]})
    assert codes(evaluate({"Owner": ""}, pol)) == [("invalid_value", "Owner")]


def test_allowed_values_with_wildcards() -> None:
    pol = policy({"key": "Env", "allowed_values": ["prod", "dev*", "*-sandbox"]})
    for ok in ("prod", "dev", "dev-42", "team-sandbox", "-sandbox"):
        assert evaluate({"Env": ok}, pol)["compliant"] is True, ok
    for bad in ("Prod", "production", "xdev", "sandbox", "prod "):
        finding = evaluate({"Env": bad}, pol)
        assert codes(finding) == [("invalid_value", "Env")], bad
        assert finding["violations"][0]["value"] == bad


def test_wildcard_characters_other_than_star_are_literal() -> None:
    pol = policy({"key": "Env", "allowed_values": ["a.c", "x?", "[ab]*"]})
    assert evaluate({"Env": "a.c"}, pol)["compliant"] is True
    assert evaluate({"Env": "abc"}, pol)["compliant"] is False
    assert evaluate({"Env": "xy"}, pol)["compliant"] is False
    assert evaluate({"Env": "[ab]zz"}, pol)["compliant"] is True


def test_value_case_insensitive_applies_to_allowed_values_and_pattern() -> None:
    pol = policy(
        {"key": "Env", "allowed_values": ["prod", "dev*"], "value_case": "insensitive"},
        {"key": "Owner", "pattern": "^[a-z]+@example\\.com$", "value_case": "insensitive"},
    )
    assert evaluate({"Env": "PROD", "Owner": "ANA@Example.com"}, pol)["compliant"] is True
    assert evaluate({"Env": "Dev-1", "Owner": "ana@example.com"}, pol)["compliant"] is True


def test_pattern_must_match_the_whole_value() -> None:
    pol = policy({"key": "CostCenter", "pattern": "CC-[0-9]{4}"})
    assert evaluate({"CostCenter": "CC-0042"}, pol)["compliant"] is True
    assert codes(evaluate({"CostCenter": "CC-00421"}, pol)) == [("pattern_mismatch", "CostCenter")]
    assert codes(evaluate({"CostCenter": "xCC-0042"}, pol)) == [("pattern_mismatch", "CostCenter")]


def test_invalid_value_and_pattern_mismatch_can_both_occur() -> None:
    pol = policy({"key": "Env", "allowed_values": ["prod"], "pattern": "^[a-z]+$"})
    assert codes(evaluate({"Env": "Prod1"}, pol)) == [("invalid_value", "Env"), ("pattern_mismatch", "Env")]


def test_prohibited_keys_match_case_insensitively_with_wildcards() -> None:
    pol = policy(prohibited_keys=["temp", "test*"])
    finding = evaluate({"Owner": "a", "TEMP": "1", "Testing": "2", "contest": "3"}, pol)
    assert codes(finding) == [("prohibited", "TEMP"), ("prohibited", "Testing")]
    assert finding["violations"][1]["message"] == "tag 'Testing' is prohibited (matches 'test*')"


def test_too_many_tags_counts_user_tags_only() -> None:
    pol = policy(max_tags=2)
    tags = {"Owner": "a", "B": "b", "aws:autoscaling:groupName": "g", "aws:cloudformation:stack-id": "s"}
    assert evaluate(tags, pol)["compliant"] is True
    finding = evaluate({**tags, "C": "c"}, pol)
    assert codes(finding) == [("too_many_tags", "*")]
    assert finding["violations"][0]["message"] == "3 user tags; the policy allows at most 2"


def test_aws_prefixed_keys_are_never_prohibited_or_case_mismatches() -> None:
    pol = policy({"key": "Owner"}, prohibited_keys=["aws*"], max_tags=1)
    finding = evaluate({"Owner": "a", "aws:owner": "x", "aws:autoscaling:groupName": "g"}, pol)
    assert finding["compliant"] is True
    assert finding["tags"]["aws:autoscaling:groupName"] == "g"


def test_exemption_by_tag_with_and_without_value() -> None:
    pol = policy(
        exemptions=[{"tag": {"key": "compliance:exempt", "value": "true"}}, {"tag": {"key": "Legacy"}}]
    )
    exempt = evaluate({"compliance:exempt": "true"}, pol)
    assert exempt["exempt"] is True
    assert exempt["compliant"] is True
    assert codes(exempt) == [("missing", "Owner")]  # still visible in the report
    assert evaluate({"compliance:exempt": "false"}, pol)["compliant"] is False
    assert evaluate({"Legacy": ""}, pol)["exempt"] is True


def test_exemption_by_instance_id() -> None:
    pol = policy(exemptions=[{"instance_ids": ["i-0123456789abcdef0"]}])
    assert evaluate({}, pol)["exempt"] is True
    assert evaluate({}, pol, instance_id="i-0fffffffffffffff0")["exempt"] is False


def test_grace_period_makes_fresh_instances_compliant_but_reported() -> None:
    pol = policy(scope={"grace_period_minutes": 30})
    fresh = evaluate({}, pol, launched=(NOW - timedelta(minutes=10)).isoformat())
    old = evaluate({}, pol, launched=(NOW - timedelta(minutes=31)).isoformat())
    assert (fresh["in_grace_period"], fresh["compliant"], codes(fresh)) == (
        True,
        True,
        [("missing", "Owner")],
    )
    assert (old["in_grace_period"], old["compliant"]) == (False, False)


def test_scope_states_filter_instances_out_of_the_findings() -> None:
    pol = policy()
    fleet = [
        instance({}, state=s, instance_id=f"i-{n:017x}")
        for n, s in enumerate(["pending", "running", "shutting-down", "terminated", "stopping", "stopped"])
    ]
    assert [f["state"] for f in evaluate_instances(fleet, pol, now=NOW)] == [
        "pending",
        "running",
        "stopping",
        "stopped",
    ]
    only_running = policy(scope={"states": ["running"]})
    assert [f["state"] for f in evaluate_instances(fleet, only_running, now=NOW)] == ["running"]


def test_finding_carries_the_documented_fields() -> None:
    pol = policy({"key": "Owner"}, owner_key="Owner")
    finding = evaluate({"Owner": "ana", "Name": "web-1"}, pol, zone="eu-central-1b")
    assert set(finding) >= {
        "instance_id",
        "region",
        "account_id",
        "state",
        "launch_time",
        "instance_type",
        "name",
        "owner",
        "tags",
        "compliant",
        "exempt",
        "in_grace_period",
        "violations",
    }
    assert (finding["region"], finding["name"], finding["owner"]) == ("eu-central-1", "web-1", "ana")
    assert finding["account_id"] == "111122223333"


def test_owner_key_defaults_to_owner_and_blank_owner_is_none() -> None:
    assert evaluate({"Owner": "bo"}, policy())["owner"] == "bo"
    assert evaluate({"Owner": " "}, policy())["owner"] is None
    assert evaluate({"team": "x"}, policy(owner_key="Team", key_case="insensitive"))["owner"] == "x"


def test_reservations_document_gives_account_and_region_per_instance(shared_sample: dict[str, Any]) -> None:
    pol = policy()
    findings = list(evaluate_reservations(shared_sample, pol, now=NOW))
    assert [(f["instance_id"], f["account_id"], f["region"]) for f in findings] == [
        ("i-0a00000000000001", "111122223333", "us-east-1"),
        ("i-0a00000000000002", "111122223333", "us-east-1"),
        ("i-0b00000000000001", "444455556666", "eu-west-1"),
    ]


def test_every_violation_code_is_documented() -> None:
    assert VIOLATION_CODES == (
        "missing",
        "key_case",
        "empty_value",
        "invalid_value",
        "pattern_mismatch",
        "prohibited",
        "too_many_tags",
        "not_inherited",
    )
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert [code for code in VIOLATION_CODES if f"`{code}`" not in readme] == []


@pytest.fixture
def shared_sample() -> dict[str, Any]:
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "fixtures" / "describe-instances.two-regions.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data
