"""Regular expressions from policies must never stall a scan.

Two defences, because neither alone is enough:

1. At validation, :func:`find_slow_input` probes a pattern with adversarial 256-character values
   built from the pattern's own alphabet (the classic ``aaaa…a!`` pumping strings for nested
   quantifiers such as ``(a+)+$``). A pattern that needs more than a few milliseconds on any of
   them is rejected, with the offending value, before it reaches the evaluator.
2. At evaluation, every match runs with the ``regex`` module's ``timeout``, so a pattern that slipped
   through still has a fixed time bound per value (:data:`MATCH_TIMEOUT_SECONDS`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from importlib import import_module
from typing import Any

import regex

# A legitimate anchored pattern matches a 256-character value in microseconds; the exponential
# ones take seconds. The gap is so wide that a loaded CI machine cannot blur it.
PROBE_TIMEOUT_SECONDS = 0.25
PROBE_CPU_SECONDS = 0.05
# Generous: a value is matched once per rule, and this only bounds the pathological case.
MATCH_TIMEOUT_SECONDS = 0.1
MAX_VALUE_LENGTH = 256
_MAX_ALPHABET = 12
_DEFAULT_ALPHABET = ("a", "0", " ", "-", ".", "@", "_", "A")
_MISMATCH_SUFFIXES = ("!", "\x00", "\n", "")


def _literal_alphabet(pattern: str) -> list[str]:
    """Characters the pattern mentions: the ones a pumping string should repeat."""
    alphabet: dict[str, None] = {}

    def walk(parsed: Any) -> None:
        for op, arg in parsed:
            name = str(op)
            if name == "LITERAL":
                alphabet[chr(arg)] = None
            elif name == "IN":
                for item_op, item_arg in arg:
                    item = str(item_op)
                    if item == "LITERAL":
                        alphabet[chr(item_arg)] = None
                    elif item == "RANGE":
                        alphabet[chr(item_arg[0])] = None
                    elif item == "CATEGORY":
                        alphabet.update(dict.fromkeys(_category_samples(str(item_arg))))
            elif name == "CATEGORY":
                alphabet.update(dict.fromkeys(_category_samples(str(arg))))
            elif name in {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}:
                walk(arg[2])
            elif name in {"SUBPATTERN", "ATOMIC_GROUP"}:
                walk(arg[-1])
            elif name == "BRANCH":
                for branch in arg[1]:
                    walk(branch)
            elif name in {"ASSERT", "ASSERT_NOT"}:
                walk(arg[1])

    # The stdlib's own parser gives the literal alphabet; patterns it cannot parse (the ``regex``
    # module accepts more syntax) still get the default alphabet.
    with contextlib.suppress(Exception):
        walk(import_module("re._parser").parse(pattern))
    alphabet.update(dict.fromkeys(_DEFAULT_ALPHABET))
    return list(alphabet)[: _MAX_ALPHABET + len(_DEFAULT_ALPHABET)]


def _category_samples(category: str) -> tuple[str, ...]:
    if "DIGIT" in category:
        return ("1",)
    if "SPACE" in category:
        return (" ",)
    return ("a",)


def _pumping_values(pattern: str) -> Iterator[str]:
    alphabet = _literal_alphabet(pattern)
    bases = list(alphabet)
    bases += [a + b for a in alphabet[:8] for b in alphabet[:8] if a != b]
    for base in bases:
        for suffix in _MISMATCH_SUFFIXES:
            repeats = (MAX_VALUE_LENGTH - len(suffix)) // len(base)
            yield base * repeats + suffix


def _is_slow(compiled: regex.Pattern[str], value: str, timeout: float) -> bool:
    # Thread CPU time, not wall time: other threads (a Map state's parallel iterations) must not
    # make an innocent pattern look slow. The wall-clock timeout only caps the probe itself.
    started = time.thread_time()
    try:
        compiled.fullmatch(value, timeout=timeout)
    except TimeoutError:
        return time.thread_time() - started > PROBE_CPU_SECONDS
    return time.thread_time() - started > PROBE_CPU_SECONDS


def find_slow_input(compiled: regex.Pattern[str]) -> str | None:
    """Return a 256-character value on which ``compiled`` backtracks catastrophically, else None.

    A probe that looks slow is tried again with more time before the pattern is blamed, so a busy
    machine cannot turn a good pattern into a rejected one.

    >>> find_slow_input(regex.compile(r"[a-z]+@example\\.com")) is None
    True
    >>> find_slow_input(regex.compile(r"^(a|aa)+$")) is not None
    True
    """
    for value in _pumping_values(compiled.pattern):
        if _is_slow(compiled, value, PROBE_TIMEOUT_SECONDS) and _is_slow(
            compiled, value, 4 * PROBE_TIMEOUT_SECONDS
        ):
            return value
    return None


def compile_user_pattern(pattern: str, *, ignore_case: bool) -> regex.Pattern[str]:
    """Compile a policy pattern with the flags the evaluator uses (raises ``regex.error``).

    >>> compile_user_pattern("^prod$", ignore_case=True).fullmatch("PROD") is not None
    True
    """
    flags = regex.VERSION0 | (regex.IGNORECASE | regex.FULLCASE if ignore_case else 0)
    return regex.compile(pattern, flags)


def describe_value(value: str) -> str:
    """A short, printable rendering of a probe value for an error message."""
    if len(value) > 12 and len(set(value[:-1])) <= 2:
        body = value[:-1] if value[-1] in _MISMATCH_SUFFIXES else value
        unit = body[:2] if len(set(body)) == 2 else body[:1]
        tail = value[len(body) :]
        return f"{unit!r} repeated to {MAX_VALUE_LENGTH} characters" + (f" then {tail!r}" if tail else "")
    return repr(value)
