"""Whatever users or instances contain: one clear error or a valid result, never a crash or a hang."""

from __future__ import annotations

import gzip
import io
import json
import logging
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.builders import NOW, instance
from workflow.errors import InvalidInput, PolicyError
from workflow.evaluator import evaluate_instance
from workflow.fleet import iter_fleet_document
from workflow.notifications import build_message, clean, subject
from workflow.policy import compile_policy, load_policy_document, parse_policy_text, validate_policy
from workflow.steps.validate_input import input_problems
from workflow.storage import JsonLinesWriter

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
POLICY_KEYS = [
    "version",
    "name",
    "rules",
    "key",
    "pattern",
    "allowed_values",
    "required",
    "scope",
    "states",
    "exemptions",
    "tag",
    "instance_ids",
    "prohibited_keys",
    "max_tags",
    "key_case",
    "value_case",
    "tags",
    "tag_key",
    "tag_value",
    "@@assign",
    "tag1Key",
    "tag1Value",
    "report_required_tag_for",
]
POLICY_LIKE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | st.text(max_size=12)
    | st.sampled_from(["(", "*", "a+", "1"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(POLICY_KEYS), children, max_size=6)
    ),
    max_leaves=25,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.one_of(JSON, POLICY_LIKE))
def test_policy_validation_and_conversion_never_crash(document: Any) -> None:
    started = time.monotonic()
    try:
        doc = load_policy_document(document)
    except PolicyError as err:
        assert err.problems and all(p.path.startswith("$") for p in err.problems)
    else:
        assert validate_policy(doc) == []
        compile_policy(doc)
    assert time.monotonic() - started < 5


@FUZZ
@given(st.text(max_size=200))
def test_policy_text_parses_or_gives_one_clear_error(text: str) -> None:
    try:
        parse_policy_text(text)
    except PolicyError as err:
        assert len(err.problems) == 1 and "\n" not in err.problems[0].message


@FUZZ
@given(st.one_of(JSON, st.fixed_dictionaries({"Reservations": st.lists(JSON, max_size=3)})))
def test_fleet_documents_load_or_give_clear_errors(document: Any) -> None:
    try:
        list(iter_fleet_document(document))
    except InvalidInput as err:
        assert err.problems


@FUZZ
@given(JSON)
def test_execution_input_of_any_shape_gives_problems_not_exceptions(document: Any) -> None:
    problems = input_problems(document)
    assert all(p.path.startswith("$") for p in problems)


def test_a_pattern_exponential_for_backtracking_is_matched_by_re2() -> None:
    doc = {"version": 1, "name": "p", "rules": [{"key": "K", "pattern": "^(a|aa)+$"}]}
    assert validate_policy(doc) == []
    rule = compile_policy(doc).rules[0]
    assert rule.pattern_matches("a" * 256)
    assert not rule.pattern_matches("a" * 255 + "!")


HOSTILE = [
    "<script>alert(1)</script>",
    '=HYPERLINK("http://x")',
    "line\nSubject: forged",
    "\u202egnp.exe",
    "zero\u200bwidth",
    "emoji 🎉",
    "\x00nul",
    "a" * 256,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_tag_values_round_trip_into_the_report_unchanged(value: str) -> None:
    policy = compile_policy({"version": 1, "name": "p", "rules": [{"key": "Owner", "allowed_values": ["x"]}]})
    finding = evaluate_instance(instance({"Owner": value, value[:128] or "k": value}), policy, now=NOW)
    writer = JsonLinesWriter()
    writer.write(finding)
    lines = gzip.decompress(writer.finish().read()).decode("utf-8").splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == json.loads(json.dumps(finding))
    assert json.loads(lines[0])["tags"]["Owner"] == value


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.integers(0, 10**9), st.integers(0, 10**9))
def test_sns_subject_stays_valid(environment: str, total: int, noncompliant: int) -> None:
    text = subject(environment, {"total": total, "noncompliant": noncompliant})
    assert 0 < len(text) < 100
    assert text.isascii()
    assert all(ch.isprintable() for ch in text)


@pytest.mark.parametrize("value", HOSTILE)
def test_notification_body_cannot_be_forged_by_tag_values(value: str) -> None:
    summary = {
        "run_id": "r",
        "evaluated_at": "2026-01-01T00:00:00+00:00",
        "policy": {"name": value},
        "totals": {
            "total": 2,
            "compliant": 1,
            "noncompliant": 1,
            "exempt": 0,
            "in_grace_period": 0,
            "compliance_percentage": 50.0,
        },
        "by_rule": {f"{value}:missing": 1},
        "noncompliant_by_owner": {value: 1},
        "by_region": {"us-east-1": {"noncompliant": 1}},
        "drift": {"newly_noncompliant": None},
    }
    message = build_message(
        summary, environment=value, report_uri="s3://b/k", execution_arn="arn", console_region=None
    )
    for line in message["body"].splitlines():
        assert "Subject: forged" not in line or line.startswith(("Tag policy", "  "))
    assert all(ch.isprintable() or ch == "\n" for ch in message["body"])
    assert "\u202e" not in message["body"] and "\x00" not in message["body"]
    assert clean(value).count("\n") == 0


@settings(max_examples=500)
@given(
    st.text(
        alphabet=st.characters(codec="utf-8") | st.sampled_from("\u202e\u200b\ue000\x85\u2028 "), max_size=40
    )
)
def test_clean_strips_every_format_surrogate_and_private_use_character_and_keeps_the_rest(value: str) -> None:
    import re
    import unicodedata

    controls_as_spaces = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", value)
    expected = "".join(
        c for c in controls_as_spaces if unicodedata.category(c) not in {"Cf", "Cs", "Co"} or c == " "
    )
    assert clean(value, limit=1000) == expected


def test_log_lines_cannot_be_forged_with_newlines() -> None:
    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    logger = Logger(service="tagwarden-test", stream=stream)
    logger.info("evaluated", extra={"owner": 'ana\n{"level":"ERROR","message":"forged"}'})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["owner"].startswith("ana\n")
    logging.getLogger("tagwarden-test").handlers.clear()
