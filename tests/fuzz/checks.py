"""What every fuzzed input must satisfy, shared by the atheris harnesses and their pytest smoke test.

Each check takes raw bytes (what a user can put in a file or an execution input) and accepts
exactly two outcomes: a valid result, or :class:`workflow.errors.InvalidInput` with at least one
problem. Anything else (another exception, an invalid result, more than ``PER_INPUT_SECONDS`` on
one input) is a finding. The workflow modules are imported lazily so that the atheris harnesses
can import them under coverage instrumentation.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PER_INPUT_SECONDS = 5.0
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class Hang(Exception):
    """One input ran longer than PER_INPUT_SECONDS."""


@contextmanager
def bounded(seconds: float = PER_INPUT_SECONDS) -> Iterator[None]:
    """Raise :class:`Hang` in the block after ``seconds`` (SIGALRM: main thread, POSIX)."""

    def expire(*_: Any) -> None:
        raise Hang(f"one input took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _refused(err: Exception) -> None:
    from workflow.errors import InvalidInput

    assert isinstance(err, InvalidInput), f"{type(err).__name__} instead of InvalidInput: {err}"
    assert err.problems, "an InvalidInput without a problem"
    for line in err.lines():
        assert isinstance(line, str) and line, "an empty problem line"


def check_policy_text(data: bytes) -> str:
    """``parse_policy_text`` then ``load_policy_document`` on any bytes; returns the outcome."""
    from workflow.errors import InvalidInput
    from workflow.policy import compile_policy, load_policy_document, parse_policy_text, validate_policy

    text = data.decode("utf-8", errors="replace")
    with bounded():
        try:
            document = parse_policy_text(text, source="fuzz")
            policy = load_policy_document(document, source="fuzz", name="fuzz")
        except InvalidInput as err:
            _refused(err)
            return "refused"
        # A valid result: a version 1 document that validates, compiles and serialises.
        assert isinstance(policy, dict) and policy.get("version") == 1
        assert validate_policy(policy) == []
        compiled = compile_policy(policy)
        assert compiled.rules, "a valid policy without rules"
        json.dumps(policy)
    return "valid"


def check_policy_object(document: Any) -> str:
    """``load_policy_document`` on any JSON value (the converters included)."""
    return check_policy_text(json.dumps(document).encode())


def check_policy_bytes(data: bytes) -> str:
    """The atheris entry: an odd first byte builds a policy-shaped document from the rest (to
    reach the validator and the converters), an even one sends the bytes as text (the parser)."""
    if data[:1] and data[0] % 2:
        return check_policy_object(structured(data[1:], POLICY_WORDS))
    return check_policy_text(data[1:])


def check_fleet_text(data: bytes) -> str:
    """``iter_fleet_document`` on any bytes that parse as JSON, then every instance evaluated."""
    from workflow.errors import InvalidInput
    from workflow.evaluator import evaluate_instance
    from workflow.fleet import iter_fleet_document

    try:
        document = json.loads(data.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return "not json"
    with bounded():
        try:
            instances = list(iter_fleet_document(document, source="fuzz"))
        except InvalidInput as err:
            _refused(err)
            return "refused"
        policy = _baseline()
        for item in instances:
            assert isinstance(item.region, str) and item.region
            assert isinstance(item.instance["InstanceId"], str) and item.instance["InstanceId"]
            finding = evaluate_instance(
                item.instance, policy, region=item.region, account_id=item.account_id, now=NOW
            )
            assert isinstance(finding["compliant"], bool)
            json.dumps(finding, default=str)
    return "valid"


def check_fleet_object(document: Any) -> str:
    return check_fleet_text(json.dumps(document).encode())


def check_fleet_bytes(data: bytes) -> str:
    """The atheris entry: an odd first byte builds a describe-instances-shaped document."""
    if data[:1] and data[0] % 2:
        return check_fleet_object(structured(data[1:], FLEET_WORDS))
    return check_fleet_text(data[1:])


def check_pattern_bytes(data: bytes) -> str:
    """A policy pattern and a tag value from any bytes (split at the first NUL): the pattern compiles
    with RE2 or is refused with one line; a compiled pattern answers ``fullmatch`` on the value with
    a bool; ``escape`` of the value matches exactly the value; a glob matches the text it was made
    from; and the validator agrees with the engine."""
    from workflow.policy import validate_policy
    from workflow.policy.patterns import PatternRefused, compile_pattern, escape, glob_to_pattern

    raw_pattern, _, raw_value = data.partition(b"\x00")
    pattern = raw_pattern.decode("utf-8", errors="surrogateescape")  # lone surrogates included
    value = raw_value.decode("utf-8", errors="surrogateescape")
    ignore_case = bool(data[-1:] and data[-1] % 2)
    with bounded():
        try:
            compiled = compile_pattern(pattern, ignore_case=ignore_case)
        except PatternRefused as err:
            message = str(err)
            assert message and "\n" not in message, f"a refusal that is not one line: {message!r}"
            outcome = "refused"
        else:
            assert compiled.fullmatch(value) in (True, False)
            outcome = "valid"
        rule = {"key": "K", "pattern": pattern, "value_case": "insensitive" if ignore_case else "sensitive"}
        problems = [
            p
            for p in validate_policy({"version": 1, "name": "p", "rules": [rule]})
            if p.path.endswith(".pattern")
        ]
        if 0 < len(pattern) <= 2048:  # outside the schema's length bounds the schema speaks instead
            assert (outcome == "refused") == bool(problems), (outcome, problems)
        if not any(0xD800 <= ord(c) <= 0xDFFF for c in value):  # a lone surrogate cannot be a pattern
            literal = compile_pattern(escape(value), ignore_case=False)
            assert literal.fullmatch(value), f"escape({value!r}) does not match itself"
            assert not literal.fullmatch(value + "x")
            glob = compile_pattern(glob_to_pattern(value), ignore_case=False)
            assert glob.fullmatch(value.replace("*", "")), f"glob {value!r} does not match its own text"
    return outcome


# -- structure from bytes -------------------------------------------------------------------------

POLICY_WORDS = (
    "version",
    "name",
    "description",
    "owner_key",
    "rules",
    "key",
    "required",
    "allowed_values",
    "pattern",
    "value_case",
    "allow_empty",
    "key_case",
    "prohibited_keys",
    "max_tags",
    "exemptions",
    "tag",
    "value",
    "instance_ids",
    "reason",
    "scope",
    "states",
    "grace_period_minutes",
    "exact",
    "insensitive",
    "sensitive",
    "Owner",
    "CostCenter",
    "Environment",
    "running",
    "stopped",
    "*",
    "tmp*",
    "^CC-[0-9]{4}$",
    "(a+)+$",
    "[a-",
    "prod",
    "tags",
    "tag_key",
    "tag_value",
    "@@assign",
    "@@append",
    "@@remove",
    "@@operators_allowed_for_child_policies",
    "enforced_for",
    "report_required_tag_for",
    "ec2:instance",
    "ec2:*",
    "tag1Key",
    "tag1Value",
    "tag2Key",
    "ConfigRuleName",
    "InputParameters",
    "ConfigRules",
    "Source",
    "i-0abc12345678def00",
    "",
)
FLEET_WORDS = (
    "Reservations",
    "Instances",
    "OwnerId",
    "InstanceId",
    "State",
    "Name",
    "Code",
    "Placement",
    "AvailabilityZone",
    "Tags",
    "Key",
    "Value",
    "LaunchTime",
    "InstanceType",
    "aws:autoscaling",
    "Owner",
    "CostCenter",
    "Environment",
    "running",
    "stopped",
    "terminated",
    "pending",
    "us-east-1a",
    "eu-west-1b",
    "ap-southeast-2c",
    "use1-az1",
    "i-0123456789abcdef0",
    "2026-11-28T09:00:00+00:00",
    "2026-11-28T08:59:00.000Z",
    "not a date",
    "123456789012",
    "t3.micro",
    "compliance:exempt",
    "true",
    "=cmd|' /C calc'!A0",
    "<script>",
    "",
)


class _Source:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            return 0
        self.at += 1
        return self.data[self.at - 1]

    def text(self, words: tuple[str, ...]) -> str:
        choice = self.byte()
        if choice < 200:
            return words[choice % len(words)]
        size = self.byte() % 40
        raw = bytes(self.byte() for _ in range(size))
        return raw.decode("utf-8", errors="replace")


def structured(data: bytes, words: tuple[str, ...], depth: int = 0, source: _Source | None = None) -> Any:
    """A JSON value built from ``data``: objects keyed by ``words``, nested at most 6 deep."""
    src = source or _Source(data)
    kind = src.byte() % (10 if depth < 6 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return bool(src.byte() % 2)
    if kind == 2:
        return int.from_bytes(bytes(src.byte() for _ in range(2)), "big", signed=True)
    if kind == 3:
        return [-1, 0, 1, 45, 200, 201, 10**6, 1.5, float(2**53)][src.byte() % 9]
    if kind in (4, 5):
        return src.text(words)
    if kind in (6, 7):
        return [structured(data, words, depth + 1, src) for _ in range(src.byte() % 6)]
    return {src.text(words): structured(data, words, depth + 1, src) for _ in range(src.byte() % 8)}


_compiled: list[Any] = []


def _baseline() -> Any:
    if not _compiled:
        from workflow.policy import load_policy

        _compiled.append(load_policy(ROOT / "policies" / "baseline.json"))
    return _compiled[0]


def seeds(kind: str) -> list[bytes]:
    """The starting corpus: the repository's own policies or describe-instances documents."""
    if kind == "policy":
        paths = sorted((ROOT / "policies").glob("*.json")) + sorted(
            (ROOT / "tests" / "unit" / "fixtures" / "convert").glob("*.json")
        )
    elif kind == "pattern":
        return list(PATTERN_SEEDS)
    elif kind == "fleet":
        from workflow.fleet import demo_fleet

        paths = sorted((ROOT / "tests" / "fixtures").glob("describe-instances*.json"))
        return [p.read_bytes() for p in paths] + [json.dumps(demo_fleet(instances_per_region=2)).encode()]
    else:
        raise ValueError(kind)
    return [p.read_bytes() for p in paths]


# Patterns and values: the shipped policies' kind, and the ones that broke the backtracking engine.
PATTERN_SEEDS: tuple[bytes, ...] = (
    b"^[a-z0-9._%+-]+@example\\.com$\x00ana@example.com",
    b"^CC-[0-9]{4}$\x00CC-0001",
    b"^(a|aa)+$\x00" + b"a" * 255 + b"!",
    b"(?:(?:(?:a{100}){100}){100}){100}\x00aaaa",
    b"^(?:[^\\x00-\\x7f]|[^\\x00-\\x40])+$\x00" + "\u00e9".encode() * 30 + "\u2026!".encode(),
    b"^(?:qwertuio)?(?:xz|x|zx|z)+$\x00" + b"xz" * 120 + b"!",
    b"(?:.?.?){100}\x00" + b"x" * 256,
    b"(a)\\1\x00aa",
    b"(?=a)a\x00a",
    b"\\pL{1000}\x00x",
    b"*a*b\x00" + b"a" * 1000,
)

CHECKS: dict[str, Callable[[bytes], str]] = {
    "policy": check_policy_bytes,
    "fleet": check_fleet_bytes,
    "pattern": check_pattern_bytes,
}


def run(kind: str, argv: list[str]) -> None:
    """The atheris main loop for one check: ``argv`` is libFuzzer's (corpus directories, flags).

    An empty corpus directory given first is seeded with :func:`seeds`, so a fresh run starts
    from real documents instead of from nothing.
    """
    import atheris

    check = CHECKS[kind]
    directories = [a for a in argv[1:] if not a.startswith("-")]
    if directories and not Path(directories[0]).is_file():  # a file: replaying one input
        corpus = Path(directories[0])
        corpus.mkdir(parents=True, exist_ok=True)
        if not any(corpus.iterdir()):
            for index, seed in enumerate(seeds(kind)):
                # An even first byte: the seed is sent as text, as it is (patterns are raw already).
                (corpus / f"seed-{index:03d}").write_bytes(seed if kind == "pattern" else b"\x00" + seed)

    def one_input(data: bytes) -> None:
        check(data)

    atheris.Setup(argv, one_input)
    atheris.Fuzz()
