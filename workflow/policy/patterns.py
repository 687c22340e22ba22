"""Policy patterns, matched in linear time by RE2.

A tag value is chosen by whoever can tag an instance; a policy pattern by whoever writes the
policy. With a backtracking engine (Python's ``re``/``regex``) a pattern such as ``(a|aa)+$``
takes exponential time on the right value, and no probe finds every such pattern. RE2 (PyPI
``google-re2``) compiles a pattern to an automaton and matches in time linear in the value's
length, whatever the pattern, so catastrophic backtracking is impossible rather than detected:

* Patterns RE2 cannot run in linear time (backreferences ``\\1``, lookarounds ``(?=`` ``(?!``
  ``(?<=`` ``(?<!``, atomic groups, possessive quantifiers) are refused when the policy is
  validated, with one line saying why (:func:`pattern_problem`).
* A compiled pattern may use at most :data:`MAX_PATTERN_MEMORY` bytes (RE2's ``max_mem``): a
  counted-repetition bomb such as ``(?:\\pL{1000}){1000}`` is refused in milliseconds instead of
  taking gigabytes. The same budget bounds the lazily built DFA, so matching memory is bounded too.
* Values are matched as UTF-8 bytes; a value Python cannot encode (a lone surrogate) is encoded
  with ``surrogatepass`` rather than raising, so no value can crash a match.

Semantics are RE2's (https://github.com/google/re2/wiki/Syntax), which differ from Python's in a
few places a policy author may notice: ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII-only
(use ``\\pN``, ``\\pL`` for other scripts), case-insensitive matching uses simple case folding
(``ß`` does not match ``SS``), ``\\Z`` is written ``\\z``, and ``{,n}`` is refused (write
``{0,n}``: RE2 would read it as literal text).

>>> compile_pattern("[a-z]+@example\\\\.com", ignore_case=False).fullmatch("ana@example.com")
True
>>> pattern_problem("(a)\\\\1", ignore_case=False)  # doctest: +ELLIPSIS
'not supported: a backreference (\\\\1): Tagwarden matches patterns with RE2, in linear time, ...'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import re2

__all__ = [
    "MAX_PATTERN_MEMORY",
    "NEVER_MATCHES",
    "CompiledPattern",
    "PatternRefused",
    "compile_glob_alternation",
    "compile_pattern",
    "escape",
    "glob_to_pattern",
    "pattern_problem",
]

# RE2's ``max_mem`` per compiled pattern: the program and its DFA cache. 1 MiB holds every pattern
# a tag policy needs (``.{0,256}`` uses 37 KiB, an e-mail pattern 1 KiB, ``\pL{1,50}`` most of it)
# and keeps the worst policy (200 rules) under 200 MiB of matcher memory in the 1 GiB Evaluate
# Lambda. A pattern over it is refused at validation.
MAX_PATTERN_MEMORY: Final = 1 << 20

# A pattern nothing matches (an empty character class), for converters: RE2 has no ``(?!)``.
NEVER_MATCHES: Final = r"[^\x00-\x{10FFFF}]"

_REFUSED_OPERATORS: Final = (
    ("(?<=", "a lookbehind (?<=...)"),
    ("(?<!", "a negative lookbehind (?<!...)"),
    ("(?=", "a lookahead (?=...)"),
    ("(?!", "a negative lookahead (?!...)"),
    ("(?>", "an atomic group (?>...)"),
    ("(?P=", "a named backreference (?P=name)"),
    ("(?(", "a conditional group (?(...)...)"),
)
_WHY: Final = "Tagwarden matches patterns with RE2, in linear time, which cannot express them"


class PatternRefused(ValueError):
    """A pattern RE2 cannot compile or Tagwarden will not run; ``str()`` is one line saying why."""


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    """One compiled RE2 pattern; :meth:`fullmatch` is the only operation the evaluator needs."""

    pattern: str
    ignore_case: bool
    _verdict: Any  # compiled without capture (RE2's never_capture): answers yes/no from its DFA
    _groups: Any = None  # compiled with capture, for fullmatch_group (glob alternations only)

    def fullmatch(self, value: str) -> bool:
        """Does the whole of ``value`` match? Linear in ``len(value)``; never raises for a str.

        >>> compile_pattern("prod|dev", ignore_case=True).fullmatch("PROD")
        True
        """
        return self._verdict.fullmatch(_utf8(value)) is not None

    def fullmatch_group(self, value: str) -> str | None:
        """The name of the named group that matched the whole value (for alternations of globs)."""
        encoded = _utf8(value)
        # Most values match none: RE2 answers that from its DFA, without tracking the groups.
        if self._verdict.fullmatch(encoded) is None:
            return None
        assert self._groups is not None, "compiled without its groups: use compile_glob_alternation"
        match = self._groups.fullmatch(encoded)
        if match is None:
            return None
        for name, text in match.groupdict().items():
            if text is not None:
                return name.decode() if isinstance(name, bytes) else str(name)
        return None


def _utf8(value: str) -> bytes:
    # surrogatepass: a lone surrogate (possible in JSON) becomes bytes RE2 treats as invalid
    # UTF-8, which no ordinary pattern matches, instead of a UnicodeEncodeError mid-scan.
    return value.encode("utf-8", "surrogatepass")


def _options(ignore_case: bool, *, capture: bool = True) -> Any:
    options = re2.Options()
    options.max_mem = MAX_PATTERN_MEMORY
    options.case_sensitive = not ignore_case
    options.never_capture = not capture
    options.log_errors = False  # RE2 logs to stderr; the caller reports one line instead
    return options


def _unsupported_syntax(pattern: str) -> str | None:
    """Python syntax that RE2 rejects with an unhelpful message, or accepts with another meaning."""
    index = 0
    in_class = False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            following = pattern[index + 1 : index + 2]
            if following.isdigit() and following != "0" and not in_class:
                return f"not supported: a backreference (\\{following}): {_WHY}"
            if following == "C":
                return "not supported: \\C (one byte of a UTF-8 character); use . instead"
            if following == "Z":
                return "not supported: \\Z; RE2 writes the end of the value \\z"
            index += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            # ']' right after '[' or '[^' is a literal member, not the end of the class
            if pattern[index + 1 : index + 2] == "^":
                index += 1
            if pattern[index + 1 : index + 2] == "]":
                index += 1
        elif char == "(":
            for operator, what in _REFUSED_OPERATORS:
                if pattern.startswith(operator, index):
                    return f"not supported: {what}: {_WHY}"
        elif char == "{" and pattern[index + 1 : index + 2] == ",":
            closing = pattern.find("}", index)
            if closing > 0 and pattern[index + 2 : closing].isdigit():
                bounds = pattern[index + 1 : closing + 1]
                return f"not supported: {{{bounds}; write {{0{bounds}"
        elif char in "*+?}" and pattern[index + 1 : index + 2] == "+":
            return f"not supported: a possessive quantifier ({char}+): {_WHY}"
        index += 1
    return None


def _one_line(text: str) -> str:
    """RE2 quotes the offending part of the pattern, which may hold a newline or a control character."""
    return "".join(c if c.isprintable() else f"\\x{{{ord(c):x}}}" for c in text)


def _explain(pattern: str, err: Exception) -> str:
    message = err.args[0] if err.args else str(err)
    text = _one_line(message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message))
    if text.startswith("pattern too large"):
        return (
            f"too large: compiled, it needs more than RE2's {MAX_PATTERN_MEMORY // 1024} KiB budget "
            "per pattern; counted repetitions multiply the size ({1000} of a large class), "
            "so use + or * (tag values are at most 256 characters anyway)"
        )
    if text.startswith("invalid repetition size") or text.startswith("bad repetition operator"):
        return (
            f"not a valid regular expression: {text} (RE2 allows counts up to 1000, "
            "nested counts multiplied together)"
        )
    return f"not a valid regular expression: {text}"


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str, *, ignore_case: bool, capture: bool = False) -> CompiledPattern:
    """Compile a policy pattern with RE2; raises :class:`PatternRefused` with one line.

    Compiling is cached, so validation and the compiler share the work. ``capture=True`` also
    compiles the groups, for :meth:`CompiledPattern.fullmatch_group`.

    >>> compile_pattern("(?:(?:(?:a{100}){100}){100}){100}", ignore_case=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    workflow.policy.patterns.PatternRefused: not a valid regular expression: invalid repetition size: ...
    """
    refused = _unsupported_syntax(pattern)
    if refused is not None:
        raise PatternRefused(refused)
    try:
        encoded = pattern.encode("utf-8")
    except UnicodeEncodeError as err:
        raise PatternRefused(
            f"not valid text: a lone surrogate (\\u{ord(pattern[err.start]):04x}) at character {err.start}"
        ) from None
    try:
        verdict = re2.compile(encoded, _options(ignore_case, capture=False))
        groups = re2.compile(encoded, _options(ignore_case)) if capture else None
    except re2.error as err:
        raise PatternRefused(_explain(pattern, err)) from None
    return CompiledPattern(pattern=pattern, ignore_case=ignore_case, _verdict=verdict, _groups=groups)


def pattern_problem(pattern: str, *, ignore_case: bool) -> str | None:
    """Why ``pattern`` is refused (one line), or None when it compiles.

    >>> pattern_problem("^(?:qwertuio)?(?:xz|x|zx|z)+$", ignore_case=False) is None
    True
    >>> pattern_problem("(?=x)x", ignore_case=False)  # doctest: +ELLIPSIS
    'not supported: a lookahead (?=...): Tagwarden matches patterns with RE2, in linear time, ...'
    """
    try:
        compile_pattern(pattern, ignore_case=ignore_case)
    except PatternRefused as err:
        return str(err)
    return None


def escape(text: str) -> str:
    """``text`` as an RE2 pattern that matches exactly it.

    ASCII punctuation gets a backslash, ASCII control characters become ``\\x{..}``; letters,
    digits and every non-ASCII character stand for themselves.

    >>> escape("a.b*c")
    'a\\\\.b\\\\*c'
    >>> compile_pattern(escape("cost (EUR) $*\\n"), ignore_case=False).fullmatch("cost (EUR) $*\\n")
    True
    """
    out = []
    for char in text:
        code = ord(char)
        if code >= 0x80 or char.isalnum() or char == "_":
            out.append(char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{{{code:x}}}")
        else:
            out.append("\\" + char)
    return "".join(out)


def glob_to_pattern(glob: str) -> str:
    """Translate a value or key glob, where ``*`` matches any run of characters, to RE2.

    >>> glob_to_pattern("dev-*")
    'dev\\\\-(?s:.*)'
    """
    return "(?s:.*)".join(escape(part) for part in glob.split("*"))


def compile_glob_alternation(globs: list[str], *, ignore_case: bool) -> CompiledPattern:
    """One RE2 pattern for several globs; group ``g<i>`` names the glob (``fullmatch_group``).

    >>> compiled = compile_glob_alternation(["tmp*", "*secret*"], ignore_case=True)
    >>> compiled.fullmatch_group("MY-SECRET-KEY")
    'g1'
    """
    alternation = "|".join(f"(?P<g{index}>{glob_to_pattern(glob)})" for index, glob in enumerate(globs))
    return compile_pattern(alternation, ignore_case=ignore_case, capture=True)
