"""Policy patterns run on RE2: catastrophic backtracking is impossible, not detected.

The scenarios are the ones the hardening review reproduced on the backtracking engine. The ones
that used to take minutes or gigabytes run in a child process under a CPU-time and address-space
limit far above what RE2 needs (a hang guard with a wide margin, not a speed goal: the speed is
measured in benchmarks): on the old engine the child was killed, so each test failed.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.cli import main
from workflow.policy import compile_policy, validate_policy
from workflow.policy.convert import to_v1
from workflow.policy.patterns import (
    MAX_PATTERN_MEMORY,
    NEVER_MATCHES,
    PatternRefused,
    compile_pattern,
    escape,
    glob_to_pattern,
    pattern_problem,
)

ROOT = Path(__file__).resolve().parents[2]
CPU_SECONDS = 30
ADDRESS_SPACE = 2 * 1024 * 1024 * 1024


def bounded_python(code: str, *, cpu_seconds: int = CPU_SECONDS) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child Python with a CPU-time and address-space limit (killed past them)."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        preexec_fn=limits,
        check=False,
        timeout=10 * cpu_seconds,
    )


def policy(*rules: dict[str, object], **extra: object) -> dict[str, object]:
    return {"version": 1, "name": "p", "rules": list(rules), **extra}


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"^(a)\1$", "not supported: a backreference (\\1)"),
        (r"(?=prod)\w+", "not supported: a lookahead (?=...)"),
        (r"(?!test)\w+", "not supported: a negative lookahead (?!...)"),
        (r"(?<=x)y", "not supported: a lookbehind (?<=...)"),
        (r"(?<!x)y", "not supported: a negative lookbehind (?<!...)"),
        (r"(?>a+)b", "not supported: an atomic group (?>...)"),
        (r"(?P<n>a)(?P=n)", "not supported: a named backreference (?P=name)"),
        (r"a++", "not supported: a possessive quantifier (++)"),
        (r"ab\Z", "not supported: \\Z; RE2 writes the end of the value \\z"),
        (r"a{,3}", "not supported: {,3}; write {0,3}"),
        (r"\C", "not supported: \\C"),
        (r"[a-", "not a valid regular expression: missing ]"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_with_one_line_saying_why(pattern: str, why: str) -> None:
    [problem] = validate_policy(policy({"key": "K", "pattern": pattern}))
    assert problem.path == "$.rules[0].pattern"
    assert problem.message.startswith(why)
    assert "\n" not in problem.message


def test_the_34_character_repetition_bomb_is_refused_with_exit_2_not_killed(tmp_path: Path) -> None:
    bomb = "(?:(?:(?:a{100}){100}){100}){100}"
    path = tmp_path / "bomb.json"
    path.write_text(json.dumps(policy({"key": "K", "pattern": bomb})))
    child = bounded_python(
        f"from workflow.cli import main; raise SystemExit(main(['validate', {str(path)!r}]))"
    )
    assert child.returncode == 2, child.stderr[-2000:]
    [line] = child.stderr.splitlines()
    assert line.startswith(
        f"{path}: $.rules[0].pattern: not a valid regular expression: invalid repetition size"
    )


def test_a_pattern_over_the_program_budget_is_refused_as_too_large() -> None:
    message = pattern_problem(r"\pL{1000}", ignore_case=False)
    assert message is not None
    assert message.startswith(
        f"too large: compiled, it needs more than RE2's {MAX_PATTERN_MEMORY // 1024} KiB"
    )
    assert pattern_problem(r"\pL{1,40}", ignore_case=True) is None  # a real pattern fits


def test_probe_evading_patterns_evaluate_hostile_values_with_the_right_verdicts() -> None:
    # 50 rules of each shape, 40 instances of the hostile values: on the backtracking engine
    # 10 instances took 50 s (each match stopped by a 0.1 s timeout and counted "no match").
    child = bounded_python(
        r"""
        from workflow.policy import compile_policy
        from workflow.evaluator import evaluate_instance
        shapes = [r"^(?:[^\x00-\x7f]|[^\x00-\x40])+$", r"^(?:qwertuio)?(?:xz|x|zx|z)+$"]
        rules = [{"key": f"K{i}", "pattern": shapes[i % 2]} for i in range(100)]
        policy = compile_policy({"version": 1, "name": "p", "rules": rules})
        hostile = ["é" * 30 + "…!", "xz" * 120 + "!", "é" * 200, "zx" * 128, "qwertuio" + "x" * 200]
        # What each shape means, written without a regular expression:
        expected = [lambda v: all(c > "@" for c in v),
                    lambda v: set(v.removeprefix("qwertuio")) <= {"x", "z"} and v != "qwertuio"]
        wrong = 0
        for n in range(40):
            values = {f"K{i}": hostile[(n + i) % len(hostile)] for i in range(100)}
            doc = {"InstanceId": f"i-{n:017x}", "State": {"Name": "running"},
                   "Tags": [{"Key": k, "Value": v} for k, v in values.items()],
                   "LaunchTime": "2026-01-01T00:00:00+00:00", "Placement": {"AvailabilityZone": "us-east-1a"}}
            failed = {v["key"] for v in evaluate_instance(doc, policy)["violations"]}
            want = {k for i, (k, v) in enumerate(values.items()) if not expected[i % 2](v)}
            wrong += failed != want
        print("instances with a wrong verdict:", wrong)
        """
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "instances with a wrong verdict: 0"


def test_two_hundred_counted_dot_patterns_validate_promptly_and_always_the_same_way() -> None:
    # (?:.?.?){100}: four rules took 60 s on the old probe, and the verdict depended on load.
    child = bounded_python(
        r"""
        from workflow.policy import validate_policy
        doc = {"version": 1, "name": "p",
               "rules": [{"key": f"K{i}", "pattern": "(?:.?.?){%d}" % (100 + i)} for i in range(200)]}
        print([validate_policy(doc) == [] for _ in range(3)])
        """
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "[True, True, True]"


def test_prohibited_globs_match_a_100000_character_key_in_linear_time() -> None:
    child = bounded_python(
        r"""
        from workflow.policy import compile_policy
        policy = compile_policy({"version": 1, "name": "p", "rules": [{"key": "Owner"}],
                                 "prohibited_keys": ["*a*b", "tmp*"]})
        print(policy.is_prohibited("a" * 100_000), policy.is_prohibited("A" * 99_999 + "B"),
              policy.is_prohibited("TMP-x"))
        """
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ["None", "*a*b", "tmp*"]


def test_allowed_value_globs_and_case_insensitive_patterns_keep_their_meaning() -> None:
    compiled = compile_policy(
        policy(
            {"key": "Env", "allowed_values": ["prod", "dev-*", "*-sandbox"], "value_case": "insensitive"},
            {"key": "Team", "pattern": "[a-z]+(?:-[a-z]+)*"},
        )
    )
    env, team = compiled.rules
    assert env.allowed is not None
    assert [env.allowed.matches(v) for v in ("PROD", "dev-ana", "Dev-", "x-SANDBOX", "dev", "sandbox")] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]
    assert (
        team.pattern_matches("pay-ments") and not team.pattern_matches("Pay") and not team.pattern_matches("")
    )


def test_a_lone_surrogate_value_is_no_match_not_a_crash() -> None:
    rule = compile_policy(policy({"key": "K", "pattern": ".*"})).rules[0]
    assert rule.pattern_matches("ok")
    assert rule.pattern_matches("a\ud800b") in {True, False}  # defined, and no UnicodeEncodeError
    assert compile_pattern("[a-z]+", ignore_case=False).fullmatch("\udfff") is False


def test_a_lone_surrogate_in_a_pattern_is_one_line() -> None:
    with pytest.raises(PatternRefused, match="lone surrogate"):
        compile_pattern("a\ud800", ignore_case=False)


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(TEXT, TEXT)
def test_escape_matches_exactly_the_text_for_any_string(text: str, other: str) -> None:
    compiled = compile_pattern(escape(text), ignore_case=False)
    assert compiled.fullmatch(text)
    assert compiled.fullmatch(other) == (other == text)


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=4), TEXT)
def test_a_glob_is_literal_apart_from_its_stars(parts: list[str], filler: str) -> None:
    parts = [p.replace("*", "") for p in parts]
    compiled = compile_pattern(glob_to_pattern("*".join(parts)), ignore_case=False)
    assert compiled.fullmatch(filler.join(parts))


def test_never_matches_compiles_and_matches_nothing() -> None:
    compiled = compile_pattern(NEVER_MATCHES, ignore_case=True)
    assert not any(compiled.fullmatch(v) for v in ("", "a", "\x00", "\U0010ffff", "*"))


def test_converters_emit_patterns_that_re2_accepts() -> None:
    config_rule = {
        "InputParameters": json.dumps(
            {"tag1Key": "CostCenter", "tag1Value": "CC-*,(legacy)+$", "tag2Key": "Env", "tag2Value": "a"}
        ),
    }
    converted = to_v1(config_rule)
    assert validate_policy(converted) == []
    rule = compile_policy(converted).rules[0]
    assert (
        rule.pattern_matches("CC-*")
        and rule.pattern_matches("(legacy)+$")
        and not rule.pattern_matches("CC-1")
    )
    organizations = {"tags": {"env": {"tag_key": {"@@assign": "Env"}, "tag_value": {"@@assign": []}}}}
    converted = to_v1(organizations)
    assert validate_policy(converted) == []
    rule = compile_policy(converted).rules[0]
    assert not rule.pattern_matches("anything")


def test_validate_cli_refuses_a_lookaround_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(policy({"key": "K", "pattern": "(?!x).*"})))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"{path}: $.rules[0].pattern: not supported: a negative lookahead (?!...): Tagwarden matches "
        "patterns with RE2, in linear time, which cannot express them\n"
    )


def test_prohibited_key_verdicts_are_remembered_and_stay_right() -> None:
    compiled = compile_policy(policy({"key": "Owner"}, prohibited_keys=["tmp*", "*secret*", "legacy"]))
    keys = ["TMP-1", "My-Secret", "legacy", "Owner", "tmp", "x" * 200, "Temp"]
    first = [compiled.is_prohibited(k) for k in keys]
    assert first == ["tmp*", "*secret*", "legacy", None, "tmp*", None, None]
    assert [compiled.is_prohibited(k) for k in keys] == first  # now from the remembered verdicts
    assert compiled.prohibited_verdicts  # literals are looked up, globs remembered
