"""Text that cannot be written: lone surrogates.

JSON can escape a lone surrogate (``"\\ud800"``) and Python decodes it into a ``str``, but it is
not Unicode text: encoding it as UTF-8 (a report, an S3 object, a log line, a hash) raises. Every
document that enters Tagwarden (a policy, a describe-instances dump) is checked with
:func:`lone_surrogate_paths` where it enters, so the error is one line naming the place.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")

__all__ = ["lone_surrogate_paths"]


def lone_surrogate_paths(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """``(path, surrogate)`` of every string (key or value) under ``value`` that holds a lone surrogate.

    JSON can escape one (``"\\ud800"``); it is not Unicode text, so it cannot be written as UTF-8
    (a report, an S3 object, a log line) and is refused where it enters.

    >>> list(lone_surrogate_paths({"Tags": [{"Key": "a", "Value": "x\\ud800"}]}, "$"))
    [('$.Tags[0].Value', '\\\\ud800')]
    """
    if isinstance(value, str):
        found = _lone_surrogate(value)
        if found:
            yield path, found
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate(key) if isinstance(key, str) else None
            if found:
                yield f"{path} (a key)", found
            yield from lone_surrogate_paths(item, f"{path}.{key}" if not found else f"{path}[?]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from lone_surrogate_paths(item, f"{path}[{index}]")


def _lone_surrogate(text: str) -> str | None:
    # A str holds surrogates only unpaired: JSON decoding joins an escaped pair into one character.
    match = _LONE_SURROGATE.search(text)
    return f"\\u{ord(match.group()):04x}" if match else None
