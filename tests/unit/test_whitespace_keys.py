"""A key that differs from a rule's only by whitespace ("Environment ") is named in the finding,
and the HTML report keeps whitespace visible instead of collapsing it."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.unit.builders import instance
from tests.unit.test_render import finding, summary
from workflow.evaluator import evaluate_instance
from workflow.policy import compile_policy
from workflow.render import report_html

POLICY = compile_policy(
    {"version": 1, "name": "p", "rules": [{"key": "Environment"}, {"key": "CostCenter"}, {"key": "Owner"}]}
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def violations(tags: dict[str, str]) -> dict[str, tuple[str, str]]:
    found = evaluate_instance(instance(tags), POLICY, account_id="111122223333", now=NOW)
    return {v["key"]: (v["code"], v["message"]) for v in found["violations"]}


def test_a_key_with_a_trailing_space_is_missing_with_a_hint_naming_it() -> None:
    found = violations({"Environment ": "prod", "Cost Center": "CC-1", "Owner": "ana@corp.com"})
    assert found["Environment"] == (
        "missing",
        "required tag 'Environment' is missing; tag 'Environment ' differs from it only by whitespace: rename it",
    )
    assert found["CostCenter"][1].endswith("tag 'Cost Center' differs from it only by whitespace: rename it")


def test_whitespace_and_case_together_are_named_too_and_a_plain_missing_key_has_no_hint() -> None:
    found = violations({" environment": "prod", "Owner": "ana@corp.com"})
    assert found["Environment"][1].endswith("differs from it only by whitespace and case: rename it")
    assert found["CostCenter"] == ("missing", "required tag 'CostCenter' is missing")


def test_case_only_differences_stay_key_case() -> None:
    assert (
        violations({"environment": "prod", "CostCenter": "c", "Owner": "o"})["Environment"][0] == "key_case"
    )


def test_the_html_report_keeps_edge_whitespace_visible() -> None:
    owner = " alice@corp.com "
    page = report_html(summary(), [finding("i-1", owner)])
    assert '<bdi class="ws" title="leading or trailing whitespace"> alice@corp.com </bdi>' in page
    assert "bdi { white-space: pre-wrap; }" in page
    assert "<bdi>alice@corp.com</bdi>" not in page
