"""The fuzz harnesses' checks, run by pytest: on the seed corpus and on a short hypothesis run.

This keeps the harnesses from rotting and is the fallback fuzzer where atheris cannot be installed:
``TAGWARDEN_FUZZ_EXAMPLES=50000 pytest tests/fuzz`` runs the same properties much longer.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import checks

EXAMPLES = int(os.environ.get("TAGWARDEN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("kind", ["policy", "fleet"])
def test_every_seed_of_the_corpus_passes_its_check(kind: str) -> None:
    """The seeds include the converter fixtures that are refused on purpose (an @@append policy,
    a custom Config rule): both outcomes are fine, and the shipped documents are valid."""
    outcomes = [checks.CHECKS[kind](b"\x00" + seed) for seed in checks.seeds(kind)]
    assert set(outcomes) <= {"valid", "refused"}
    shipped = (
        [p.read_bytes() for p in sorted((checks.ROOT / "policies").glob("*.json"))]
        if kind == "policy"
        else checks.seeds("fleet")
    )
    assert {checks.CHECKS[kind](b"\x00" + seed) for seed in shipped} == {"valid"}


def test_every_pattern_seed_passes_and_the_issue_patterns_give_their_outcome() -> None:
    outcomes = [checks.check_pattern_bytes(seed) for seed in checks.seeds("pattern")]
    assert outcomes == [
        "valid",
        "valid",
        "valid",  # ^(a|aa)+$: exponential for backtracking, linear for RE2
        "refused",  # the repetition bomb
        "valid",
        "valid",
        "valid",
        "refused",  # a backreference
        "refused",  # a lookahead
        "refused",  # too large
        "refused",  # *a*b is a glob, not a pattern (missing argument to repetition operator)
    ]


def test_a_refusal_quoting_a_newline_of_the_pattern_stays_one_line() -> None:
    # Found by fuzz_pattern.py: RE2's "missing )" message quotes the pattern, newline included.
    assert checks.check_pattern_bytes(b"(\ni\x00\x00*") == "refused"


@FUZZ
@given(st.binary(max_size=512))
def test_any_bytes_make_a_pattern_or_a_one_line_refusal(data: bytes) -> None:
    checks.check_pattern_bytes(data)


REGEX_ALPHABET = st.sampled_from(
    [
        "a",
        "b",
        ".",
        "*",
        "+",
        "?",
        "|",
        "(",
        ")",
        "(?:",
        "(?=",
        "(?<",
        "[",
        "]",
        "^",
        "-",
        "{",
        "}",
        ",",
        "0",
        "1",
        "9",
        "\\",
        "\\d",
        "\\pL",
        "\\1",
        "$",
        "é",
        "\x00",
        "{1000}",
        "{,3}",
        "(?i)",
    ]
)


@FUZZ
@given(st.lists(REGEX_ALPHABET, max_size=30).map("".join), st.text(max_size=64), st.booleans())
def test_regex_shaped_patterns_compile_or_are_refused_and_match_any_value(
    pattern: str, value: str, ignore_case: bool
) -> None:
    data = pattern.encode("utf-8", "surrogateescape") + b"\x00" + value.encode("utf-8", "surrogatepass")
    checks.check_pattern_bytes(data + (b"\x01" if ignore_case else b"\x02"))


def _spin_forever() -> None:
    with checks.bounded(0.2):
        while True:
            time.sleep(0.01)


def test_a_hang_is_reported_once_the_per_input_bound_is_over() -> None:
    started = time.monotonic()
    with pytest.raises(checks.Hang):
        _spin_forever()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("kind", "data", "outcome"),
    [
        ("policy", b"\x00{", "refused"),
        ("policy", b"\x00" + b"[" * 100_000, "refused"),  # nested too deeply
        ("policy", b'\x00{"version": 1, "version": 1}', "refused"),  # a duplicate member
        ("policy", b'\x00{"tag1Key": "CostCenter"}', "valid"),  # AWS Config required-tags
        ("fleet", b"\x00{}", "refused"),
        ("fleet", b'\x00{"Reservations": [{"Instances": [{}]}]}', "refused"),
        ("fleet", b'\x00{"Reservations": []}', "valid"),
    ],
)
def test_known_inputs_give_the_expected_outcome(kind: str, data: bytes, outcome: str) -> None:
    assert checks.CHECKS[kind](data) == outcome


@FUZZ
@given(st.binary(max_size=4096))
def test_any_bytes_make_a_valid_policy_or_an_invalid_input(data: bytes) -> None:
    checks.check_policy_bytes(data)


@FUZZ
@given(st.sampled_from(checks.seeds("policy")), st.data())
def test_a_mutated_real_policy_makes_a_valid_policy_or_an_invalid_input(
    seed: bytes, data: st.DataObject
) -> None:
    document = json.loads(seed)
    path = data.draw(st.lists(st.integers(0, 50), max_size=3))
    value = data.draw(checks_values())
    checks.check_policy_object(_replace(document, path, value))


@FUZZ
@given(st.binary(max_size=4096))
def test_any_bytes_make_a_fleet_or_an_invalid_input(data: bytes) -> None:
    checks.check_fleet_bytes(data)


@FUZZ
@given(st.sampled_from(checks.seeds("fleet")), st.data())
def test_a_mutated_real_fleet_makes_a_fleet_or_an_invalid_input(seed: bytes, data: st.DataObject) -> None:
    document = json.loads(seed)
    path = data.draw(st.lists(st.integers(0, 50), max_size=5))
    value = data.draw(checks_values())
    checks.check_fleet_object(_replace(document, path, value))


def checks_values() -> st.SearchStrategy[object]:
    words = st.sampled_from(checks.POLICY_WORDS + checks.FLEET_WORDS)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63)
        | st.floats(allow_nan=False)
        | words
        | st.text()
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(words, inner, max_size=4),
        max_leaves=12,
    )


def _replace(document: object, path: list[int], value: object) -> object:
    """``document`` with the node reached by following ``path`` (indices into the keys or items
    met on the way, modulo their count) replaced by ``value``."""
    if not path:
        return value
    step, rest = path[0], path[1:]
    if isinstance(document, dict) and document:
        key = sorted(document)[step % len(document)]
        return {**document, key: _replace(document[key], rest, value)}
    if isinstance(document, list) and document:
        index = step % len(document)
        return [*document[:index], _replace(document[index], rest, value), *document[index + 1 :]]
    return value
