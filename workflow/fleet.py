"""Fleets as ``aws ec2 describe-instances`` prints them, and the deterministic demo fleet.

A fleet file is the JSON document of the AWS CLI (``{"Reservations": [...]}``). Loading checks the
shape of every instance the evaluator reads, so a bad file gives clear lines, never a traceback.

A file is read as a stream, one reservation at a time: only what a finding is made of is kept of
each instance (:func:`workflow.evaluator.project_instance`), never the whole text nor a parse tree
of it, so a 100,000-instance dump (about 700 MB as the CLI prints it) costs the memory of its
instances' ids, states, zones, launch times, types and tags.

Two readers, one result. The fast one is orjson, a piece of the ``"Reservations"`` array at a
time (about 256 KB of whole reservations); it takes the common shape only: a regular UTF-8 file
that is ``{"Reservations": [...]}`` and nothing else. The array is cut between two reservations
(``}``, a comma, ``{``, at bracket depth zero; in the CLI's indented output the cut learned
first is found again with one ``rfind``), and a cut is trusted only because the piece parses:
a cut inside a string leaves that string unterminated and a cut at another depth leaves a
bracket open, so a wrong cut never parses and the piece grows instead. orjson refuses what
``json.loads`` would read differently (lone surrogate escapes, numbers out of a double's range,
nesting past its limit), and the one thing it reads differently without refusing, an integer
beyond 64 bits (a float), is refused where it could show: the account id, launch time and type.
Anything else, and any error at all, goes to the exact reader below it, which mirrors
``json.loads`` (its error messages at its positions, any encoding it detects, integers of any size
it reads).
"""

from __future__ import annotations

import codecs
import io
import json
import random
import re
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from workflow.errors import FleetError, Problem
from workflow.evaluator import project_instance, region_of_zone
from workflow.resources import INSTANCE, RESOURCE_TYPES
from workflow.text import lone_surrogate_paths

# The loader streams and keeps of each instance only what a finding reads (projected, repeated
# strings shared), so a run's memory grows with the instances, not with the text: a
# 100,000-instance dump with every field the sample fixture has is about 740 MB (more with the
# fields newer CLI versions print) and its whole run peaks near 780 MiB of RSS (BENCHMARKS.md,
# "Large describe-instances dump"). 1.5 GiB of text, about 200,000 such instances, still fits a
# laptop; beyond it, splitting by region keeps each run bounded.
MAX_FLEET_BYTES = 1536 * 1024 * 1024
_MAX_PROBLEMS = 20
# Bytes read at a time; the text window grows past this only for a reservation larger than it.
_READ_BYTES = 1024 * 1024
# A decoding error this close to the end of the window may only mean the value goes on in the
# next read: read more and decode again before calling the file broken.
_SLACK = 4096
# Values up to this length are shared: states, zones, types, small tag values; not the ids,
# addresses and timestamps, which are mostly unique and would only grow the memo.
_SHARED_VALUE_CHARS = 16
# Tag keys repeat across a fleet far more than values do: share them up to AWS's key limit.
_SHARED_TAG_CHARS = 128
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# Values that end with their own closing character, so the window cannot have cut them short.
_CLOSED = (dict, list, str)
DEMO_ACCOUNT_ID = "123456789012"
# What AWS allows, so what a real describe-instances prints: 50 user tags per resource (tags with
# the reserved "aws:" prefix do not count), keys of 128 characters, values of 256. An instance
# beyond them is refused, with the limit named; it can only come from a forged or corrupt dump, and
# keeping it would let one instance make the run and its findings arbitrarily large.
MAX_USER_TAGS = 50
MAX_TAG_KEY_CHARS = 128
MAX_TAG_VALUE_CHARS = 256
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
# Python refuses to parse integers longer than this (sys.get_int_max_str_digits).
_MAX_INT_DIGITS = 4300
# The fast reader parses this much of the file at a time (whole reservations, so a little more or
# less); a piece that will not parse grows by as much again, up to the limit, past which the file
# goes to the exact reader.
_PIECE_BYTES = 256 * 1024
_MAX_PIECE_BYTES = 64 * 1024 * 1024
_JSON_BLANK = rb"[ \t\n\r]*"
_PLAIN_START = re.compile(rb"\A" + _JSON_BLANK.join([rb"", rb"\{", rb'"Reservations"', rb":", rb"\["]))
_PLAIN_END = re.compile(rb"\]" + _JSON_BLANK + rb"\}" + _JSON_BLANK + rb"\Z")
_BETWEEN_OBJECTS = re.compile(rb"\}" + _JSON_BLANK + rb"," + _JSON_BLANK + rb"\{")
_CUT_WINDOW_BYTES = 64 * 1024
# A lone surrogate, decoded or still a JSON escape: only such text can hold one.
_SURROGATE_TEXT = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
DEMO_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


@dataclass(frozen=True, slots=True)
class FleetInstance:
    """An instance with the account it belongs to (the reservation's ``OwnerId``)."""

    account_id: str | None
    region: str
    instance: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FleetResource:
    """A volume, snapshot, image or network interface of a dump, with its account and region
    (``account_id`` None: a volume whose account comes from its instance, see local_run)."""

    resource_type: str
    account_id: str | None
    region: str
    resource: dict[str, Any]


def _tag_limit_problems(
    tags: list[Any], path: str, field: str = "Tags", noun: str = "instance"
) -> Iterator[Problem]:
    """At most one problem per instance: the first limit it breaks, and how many more tags do."""
    found: list[Problem] = []
    user_tags = 0
    for index, tag in enumerate(tags):
        key, value = tag["Key"], tag.get("Value", "")
        if not key.startswith("aws:"):
            user_tags += 1
        if len(key) > MAX_TAG_KEY_CHARS:
            found.append(
                Problem(
                    f"{path}.{field}[{index}].Key",
                    f"{len(key)} characters, more than AWS allows in a tag key ({MAX_TAG_KEY_CHARS})",
                )
            )
        elif len(value) > MAX_TAG_VALUE_CHARS:
            found.append(
                Problem(
                    f"{path}.{field}[{index}].Value",
                    f"{len(value)} characters, more than AWS allows in a tag value ({MAX_TAG_VALUE_CHARS})",
                )
            )
    if user_tags > MAX_USER_TAGS:
        found.insert(
            0,
            Problem(
                f"{path}.{field}",
                f"{user_tags} user tags, more than AWS allows on a resource ({MAX_USER_TAGS})",
            ),
        )
    if found:
        more = f" (and {len(found) - 1} more over the limits)" if len(found) > 1 else ""
        yield Problem(found[0].path, f"{found[0].message}{more}; the {noun} is refused")


def _instance_problems(instance: Any, path: str, *, check_text: bool = True) -> Iterator[Problem]:
    if not isinstance(instance, dict):
        yield Problem(path, "must be an object (an instance as describe-instances prints it)")
        return
    if not isinstance(instance.get("InstanceId"), str) or not instance["InstanceId"]:
        yield Problem(f"{path}.InstanceId", "missing or not a string")
    state = instance.get("State")
    if not isinstance(state, dict) or not isinstance(state.get("Name"), str):
        yield Problem(f"{path}.State.Name", "missing or not a string")
    zone = (
        (instance.get("Placement") or {}).get("AvailabilityZone")
        if isinstance(instance.get("Placement"), dict)
        else None
    )
    if not isinstance(zone, str) or region_of_zone(zone) is None:
        yield Problem(
            f"{path}.Placement.AvailabilityZone", "missing or not an availability zone like us-east-1a"
        )
    yield from _tags_and_text_problems(instance, path, "Tags", check_text=check_text)


def _tags_and_text_problems(
    resource: dict[str, Any], path: str, field: str, *, check_text: bool = True, noun: str = "instance"
) -> Iterator[Problem]:
    tags = resource.get(field, [])
    if not isinstance(tags, list):
        yield Problem(f"{path}.{field}", "must be a list of {Key, Value} objects")
        return
    well_formed = True
    for index, tag in enumerate(tags):
        if not isinstance(tag, dict) or not isinstance(tag.get("Key"), str):
            yield Problem(f"{path}.{field}[{index}].Key", "missing or not a string")
            well_formed = False
        elif not isinstance(tag.get("Value", ""), str):
            yield Problem(f"{path}.{field}[{index}].Value", "not a string")
            well_formed = False
    if well_formed:
        yield from _tag_limit_problems(tags, path, field, noun)
    if check_text:
        for where, surrogate in lone_surrogate_paths(resource, path):
            yield Problem(where, f"holds a lone surrogate ({surrogate}), which is not Unicode text")
            break


def _check_reservation(
    reservation: Any,
    r_index: int,
    problems: list[Problem],
    instances: list[FleetInstance],
    *,
    check_text: bool = True,
    memo: dict[str, str] | None = None,
) -> None:
    """Append the reservation's instances to ``instances``, or what is wrong with them to ``problems``.

    ``memo`` makes one string object of each short value across the file (see :func:`_compact`).

    ``check_text=False`` skips the search for lone surrogates, for a reservation whose JSON text is
    known to hold none (the streaming reader looks at the text, which is much cheaper).
    """
    path = f"$.Reservations[{r_index}]"
    if not isinstance(reservation, dict) or not isinstance(reservation.get("Instances"), list):
        problems.append(Problem(f"{path}.Instances", "missing or not a list"))
        return
    owner = reservation.get("OwnerId")
    if owner is not None and not (isinstance(owner, str) and _ACCOUNT_ID.fullmatch(owner)):
        # Account ids name targets, S3 keys and summary rows: anything but 12 digits (a ':' in an
        # organisation run) would silently drop or misfile the instances.
        shown = json.dumps(owner, ensure_ascii=True)[:40]
        problems.append(Problem(f"{path}.OwnerId", f"must be a 12-digit AWS account id, got {shown}"))
        return
    # One string object per account and region, not one per instance.
    account = sys.intern(owner) if owner is not None else None
    for i_index, instance in enumerate(reservation["Instances"]):
        found = list(_instance_problems(instance, f"{path}.Instances[{i_index}]", check_text=check_text))
        if found:
            problems.extend(found)
            continue
        region = region_of_zone(instance["Placement"]["AvailabilityZone"])
        assert region is not None  # checked above
        kept = project_instance(instance)
        if memo is not None:
            _compact(kept, memo)
        instances.append(FleetInstance(account, sys.intern(region), kept))


def _compact(instance: dict[str, Any], memo: dict[str, str]) -> None:
    """Share what repeats across a fleet: one string object per distinct short value (tag keys,
    common tag values, states, zones, types) and the literal ``Key``/``Value`` names in every tag,
    where a parser makes new ones for each. A 100,000-instance fleet is about a fifth smaller.

    >>> memo = {}
    >>> a = {"Tags": [{"Key": "Owner", "Value": "ana"}], "InstanceType": "t3.micro"}
    >>> b = {"Tags": [{"Key": "Owner"[:], "Value": "an" + "a"}], "InstanceType": "t3." + "micro"}
    >>> _compact(a, memo); _compact(b, memo)
    >>> a["Tags"][0]["Value"] is b["Tags"][0]["Value"], a["InstanceType"] is b["InstanceType"]
    (True, True)
    """
    share = memo.setdefault
    for field in ("InstanceType", "LaunchTime"):
        value = instance.get(field)
        if type(value) is str and len(value) <= _SHARED_VALUE_CHARS:
            instance[field] = share(value, value)
    state = instance.get("State")
    if isinstance(state, dict) and type(state.get("Name")) is str:
        state["Name"] = share(state["Name"], state["Name"])
    placement = instance.get("Placement")
    if isinstance(placement, dict) and type(placement.get("AvailabilityZone")) is str:
        zone = placement["AvailabilityZone"]
        placement["AvailabilityZone"] = share(zone, zone)
    tags = instance.get("Tags")
    if isinstance(tags, list):
        shared_tags = []
        for tag in tags:  # every tag is a {Key, Value?} of strings: checked before
            key = tag["Key"]
            entry = {"Key": share(key, key) if len(key) <= _SHARED_TAG_CHARS else key}
            if "Value" in tag:
                value = tag["Value"]
                entry["Value"] = share(value, value) if len(value) <= _SHARED_VALUE_CHARS else value
            shared_tags.append(entry)
        instance["Tags"] = shared_tags


def _not_describe_instances(source: str | None) -> FleetError:
    return FleetError(
        [
            Problem(
                "$",
                'expected the output of "aws ec2 describe-instances" (an object with "Reservations"), '
                "or of describe-volumes, describe-snapshots, describe-images or "
                "describe-network-interfaces",
            )
        ],
        source=source,
    )


def _checked(problems: list[Problem], source: str | None) -> None:
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        if len(problems) > _MAX_PROBLEMS:
            shown.append(Problem("$", "more problems not shown; fix these first"))
        raise FleetError(shown, source=source)


def iter_fleet_document(document: Any, *, source: str | None = None) -> Iterator[FleetInstance]:
    """Check a describe-instances document and yield its instances with account and region.

    >>> doc = {"Reservations": [{"OwnerId": "111122223333", "Instances": [{"InstanceId": "i-1",
    ...        "State": {"Name": "running"}, "Placement": {"AvailabilityZone": "us-east-1a"}}]}]}
    >>> [(i.account_id, i.region) for i in iter_fleet_document(doc)]
    [('111122223333', 'us-east-1')]
    """
    if not isinstance(document, dict) or not isinstance(document.get("Reservations"), list):
        raise _not_describe_instances(source)
    problems: list[Problem] = []
    instances: list[FleetInstance] = []
    for r_index, reservation in enumerate(document["Reservations"]):
        _check_reservation(reservation, r_index, problems, instances)
        if len(problems) >= _MAX_PROBLEMS:
            break
    _checked(problems, source)
    yield from instances


def _sharing_decoder() -> json.JSONDecoder:
    """A decoder that makes one string object per distinct key and per distinct short value.

    ``json.loads`` of a whole file shares the keys of all its objects; decoding reservation by
    reservation shares them only within each. A full instance has about 150 keys, and short values
    repeat too (states, zones, types, "attached", "default", tag values): sharing both across the
    file makes a fleet about a quarter smaller than ``json.loads`` made it. Use one per file.

    >>> decoder = _sharing_decoder()
    >>> a, b = decoder.decode('{"Tags": {"Key": "prod"}}'), decoder.decode('{"Tags": {"Key": "prod"}}')
    >>> next(iter(a)) is next(iter(b)), a["Tags"]["Key"] is b["Tags"]["Key"]
    (True, True)
    """
    memo: dict[str, str] = {}
    share = memo.setdefault

    def shared(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # Called by the C scanner for every object; strings in lists are rare and left alone.
        return {
            share(key, key): share(value, value)
            if type(value) is str and len(value) <= _SHARED_VALUE_CHARS
            else value
            for key, value in pairs
        }

    return json.JSONDecoder(object_pairs_hook=shared, parse_int=_bounded_int)


class _HugeInteger(ValueError):
    """An integer literal longer than Python parses (``sys.get_int_max_str_digits``)."""

    def __init__(self, digits: int) -> None:
        super().__init__(
            f"an integer literal of {digits} digits (Python reads at most {_MAX_INT_DIGITS}); "
            "describe-instances never prints one"
        )


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > _MAX_INT_DIGITS:
        raise _HugeInteger(digits)
    return int(text)


class _InvalidJson(Exception):
    """Where and why the text is not JSON, in the words and positions of ``json.loads``."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"invalid JSON at line {line}, column {column}: {message}")


class _NotText(Exception):
    """Bytes that do not decode in the file's encoding (the message of ``json.loads`` on bytes)."""


class _TooLarge(Exception):
    """More than :data:`MAX_FLEET_BYTES` bytes came out of the file (a pipe, or a file that grew)."""


class _Text:
    """The decoded text of a byte stream, held as a window that the parser moves through.

    Encoding as ``json.loads`` detects it on bytes (UTF-8, with or without a BOM, UTF-16, UTF-32),
    and errors placed by line and column of the whole text, as ``json.loads`` places them.
    """

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._bytes = 0
        self._decoder: codecs.IncrementalDecoder | None = None
        self._json = _sharing_decoder()
        self.buf = ""
        self.pos = 0
        self.eof = False
        # Whether the text of the last value decoded could hold a lone surrogate (see value()).
        self.last_value_may_hold_surrogates = True
        # Line number of buf[0], and how many characters precede it on that line.
        self._line = 1
        self._column = 0

    def more(self) -> None:
        """Read the next bytes; the window keeps what the parser has not consumed yet."""
        # A value larger than a read doubles the window each time, so decoding it again after
        # each read stays linear in its size; at least 4 bytes, what json.detect_encoding reads.
        raw = self._stream.read(max(_READ_BYTES, len(self.buf) - self.pos, 4))
        self._bytes += len(raw)
        if self._bytes > self._limit:
            raise _TooLarge
        if self._decoder is None:
            # The first bytes tell the encoding, as json.loads(bytes) finds it.
            self._decoder = codecs.getincrementaldecoder(json.detect_encoding(raw[:4]))("surrogatepass")
        pending = len(self._decoder.getstate()[0])
        self.eof = not raw
        try:
            decoded = self._decoder.decode(raw, final=self.eof)
        except UnicodeDecodeError as err:
            # Positions of the whole file, as json.loads(bytes) reports them.
            offset = self._bytes - len(raw) - pending
            start, end = offset + err.start, offset + err.end
            where = (
                f"byte 0x{err.object[err.start]:02x} in position {start}"
                if end - start == 1
                else f"bytes in position {start}-{end - 1}"
            )
            raise _NotText(f"'{err.encoding}' codec can't decode {where}: {err.reason}") from None
        cut = self.pos
        newlines = self.buf.count("\n", 0, cut)
        if newlines:
            self._line += newlines
            self._column = cut - self.buf.rfind("\n", 0, cut) - 1
        else:
            self._column += cut
        self.buf = self.buf[cut:] + decoded
        self.pos = 0

    def invalid(self, message: str, pos: int) -> _InvalidJson:
        """The error for ``buf[pos]``: line and column in the whole text, 1-based."""
        newlines = self.buf.count("\n", 0, pos)
        if newlines:
            return _InvalidJson(message, self._line + newlines, pos - self.buf.rfind("\n", 0, pos))
        return _InvalidJson(message, self._line, self._column + pos + 1)

    def peek(self) -> str:
        """The character after any whitespace, or ``""`` at the end of the text."""
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos : self.pos + 1]
            self.more()

    def expect(self, allowed: str, message: str) -> str:
        """Consume the next non-blank character, one of ``allowed``; else fail with ``message``."""
        char = self.peek()
        if not char or char not in allowed:
            raise self.invalid(message, self.pos)
        self.pos += 1
        return char

    def value(self) -> Any:
        """Decode the JSON value that starts at the next non-blank character."""
        self.peek()
        while True:
            try:
                value, end = self._json.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as err:
                truncated = err.pos >= len(self.buf) - _SLACK or err.msg.startswith("Unterminated string")
                if truncated and not self.eof:
                    self.more()
                    continue
                raise self.invalid(err.msg, err.pos) from None
            if not self.eof and type(value) not in _CLOSED and len(self.buf) - end < _SLACK:
                # A number near the end of the window may go on in the next read ("1." then "5").
                self.more()
                continue
            # A C-speed search of the value's text: only text with a surrogate (or its escape) can
            # decode to a lone one, so the slow walk of the decoded value runs only for those.
            self.last_value_may_hold_surrogates = _SURROGATE_TEXT.search(self.buf, self.pos, end) is not None
            self.pos = end
            return value

    def array(self, each: Callable[[Any], None]) -> None:
        """Decode the elements of the array whose ``[`` was just consumed, one at a time."""
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            each(self.value())
            if self.expect(",]", "Expecting ',' delimiter") == "]":
                return

    def end(self) -> None:
        """Only whitespace may follow the document."""
        if self.peek():
            raise self.invalid("Extra data", self.pos)


class _Reservations:
    """Collects instances and problems reservation by reservation, as :func:`iter_fleet_document`."""

    def __init__(self, text: _Text | None = None, *, text_has_no_surrogates: bool = False) -> None:
        self._text = text
        self._text_has_no_surrogates = text_has_no_surrogates
        self._memo: dict[str, str] = {}
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.problems: list[Problem] = []
        self.instances: list[FleetInstance] = []

    def add(self, reservation: Any) -> None:
        index = self.count
        self.count += 1
        # Past the limit the rest is still decoded, so broken JSON further on wins as it did
        # when the whole file was parsed first; it is no longer checked nor kept.
        if len(self.problems) < _MAX_PROBLEMS:
            if self._text is not None:
                check_text = self._text.last_value_may_hold_surrogates
            else:
                check_text = not self._text_has_no_surrogates
            _check_reservation(
                reservation, index, self.problems, self.instances, check_text=check_text, memo=self._memo
            )


class _Collector(Protocol):
    problems: list[Problem]

    def reset(self) -> None: ...

    def add(self, item: Any) -> None: ...


def _read_fleet(text: _Text, source: str) -> list[FleetInstance]:
    """Parse ``{"Reservations": [...]}`` from ``text`` reservation by reservation.

    Mirrors ``json.loads``: the same error messages at the same positions, and a key given twice
    counts with its last value.
    """
    reservations = _Reservations(text)
    _read_listing(text, source, "Reservations", reservations)
    return reservations.instances


def _read_listing(text: _Text, source: str, list_key: str, collector: _Collector) -> None:
    """Stream the elements of the top-level ``list_key`` array of ``text`` into ``collector``."""
    if text.peek() != "{":
        if text.peek() == "[":
            # e.g. the output of --query 'Reservations[].Instances[]': still check it is JSON, but
            # element by element, never the whole array at once.
            text.pos += 1
            text.array(lambda _: None)
        else:
            text.value()
        text.end()
        raise _not_describe_instances(source)
    text.pos += 1
    found = False
    if text.peek() == "}":
        text.pos += 1
    else:
        while True:
            if text.peek() != '"':
                raise text.invalid("Expecting property name enclosed in double quotes", text.pos)
            key = text.value()
            text.expect(":", "Expecting ':' delimiter")
            if key == list_key:
                collector.reset()
                found = text.peek() == "["
                if found:
                    text.pos += 1
                    text.array(collector.add)
                else:
                    text.value()
            else:
                text.value()
            if text.expect(",}", "Expecting ',' delimiter") == "}":
                break
    text.end()
    if not found:
        raise _not_describe_instances(source)
    _checked(collector.problems, source)


def _too_large(source: str, size: str) -> FleetError:
    limit = MAX_FLEET_BYTES // 2**20
    return FleetError(
        [
            Problem(
                "$",
                f"{size} above the {limit} MiB limit; "
                "split it by region (aws ec2 describe-instances --region ...)",
            )
        ],
        source=source,
    )


class _NotPlain(Exception):
    """The file is not of the shape the fast reader takes; the exact reader reads it."""


def _bracket_balance(text: bytes, start: int = 0, end: int | None = None) -> int:
    stop = len(text) if end is None else end
    return (
        text.count(b"{", start, stop)
        + text.count(b"[", start, stop)
        - text.count(b"}", start, stop)
        - text.count(b"]", start, stop)
    )


def _balanced_cut(text: bytes) -> re.Match[bytes] | None:
    """The last ``}, {`` of ``text`` at bracket depth zero (``text`` starts with a reservation),
    looked for near the end first. Brackets inside strings can only hide a cut or suggest a wrong
    one, which then does not parse."""
    window = _CUT_WINDOW_BYTES
    while True:
        start = max(0, len(text) - window)
        balance = _bracket_balance(text, 0, start)
        position, found = start, None
        for between in _BETWEEN_OBJECTS.finditer(text, start):
            end = between.start() + 1
            balance += _bracket_balance(text, position, end)
            position = end
            if balance == 0:
                found = between
        if found is not None or start == 0:
            return found
        window *= 4


def _reservation_pieces(handle: IO[bytes]) -> Iterator[list[Any]]:
    """The reservations of a plain ``{"Reservations": [...]}`` file, a parsed piece at a time."""
    head = handle.read(_PIECE_BYTES)
    opening = _PLAIN_START.match(head)
    if opening is None:
        raise _NotPlain("not a plain describe-instances document")
    text = head[opening.end() :]
    separator = b""  # the cut between reservations as this file writes it, once one has parsed
    # After a piece fails to parse, the next read doubles the text, so text that never parses
    # costs a few reads and parses of at most _MAX_PIECE_BYTES, not one per _PIECE_BYTES.
    wanted = _PIECE_BYTES
    while block := handle.read(wanted):
        text += block
        wanted = _PIECE_BYTES
        at = text.rfind(separator) if separator else -1
        if at >= 0:
            end, following = at + 1, at + len(separator) - 1
        else:
            cut = _balanced_cut(text)
            if cut is None:
                continue
            end, following = cut.start() + 1, cut.end() - 1
        try:
            parsed = orjson.loads(b"[" + text[:end] + b"]")
        except orjson.JSONDecodeError:
            if len(text) > _MAX_PIECE_BYTES:
                raise _NotPlain("a piece that does not parse") from None
            separator, wanted = b"", len(text)
            continue
        if not separator and b"\n" in text[end - 1 : following + 1]:
            # An indented separator marks one depth only; "},{" in compact JSON marks every depth.
            separator = text[end - 1 : following + 1]
        text = text[following:]
        yield parsed
    closing = _PLAIN_END.search(text)
    if closing is None:
        raise _NotPlain("more than the Reservations array, or not JSON")
    yield orjson.loads(b"[" + text[: closing.start()] + b"]")


def _number_where_text_belongs(reservation: Any) -> bool:
    """Whether orjson's reading of a number could show: a number (maybe an integer beyond 64 bits,
    which orjson reads as a float) where a finding or a message shows the value."""
    if not isinstance(reservation, dict):
        return False
    if type(reservation.get("OwnerId")) in (int, float):
        return True
    instances = reservation.get("Instances")
    return isinstance(instances, list) and any(
        isinstance(instance, dict)
        and (
            type(instance.get("LaunchTime")) in (int, float)
            or type(instance.get("InstanceType")) in (int, float)
        )
        for instance in instances
    )


def _read_fleet_fast(path: str | Path, source: str) -> list[FleetInstance] | None:
    """The instances of a regular file by orjson, a piece at a time, or None to leave it to the
    exact reader (the module's docstring says which files, and why)."""
    # orjson refuses invalid UTF-8 and lone surrogate escapes: what it read holds no surrogate.
    reservations = _Reservations(text_has_no_surrogates=True)
    with open(path, "rb") as handle:
        try:
            for piece in _reservation_pieces(handle):
                for reservation in piece:
                    if _number_where_text_belongs(reservation):
                        return None
                    reservations.add(reservation)
        except (_NotPlain, orjson.JSONDecodeError):
            return None
    if reservations.count == 0:
        return None  # "Reservations" empty: the exact reader says so
    _checked(reservations.problems, source)
    return reservations.instances


def load_fleet_file(path: str | Path) -> list[FleetInstance]:
    """Read a describe-instances JSON file; any problem raises :class:`FleetError`.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     dump = Path(folder) / "dump.json"
    ...     _ = dump.write_text('{"Reservations": [{"OwnerId": "111122223333", "Instances": [{"InstanceId": '
    ...                         '"i-1", "State": {"Name": "running"}, "Placement": {"AvailabilityZone": '
    ...                         '"eu-west-1b"}}]}]}')
    ...     [(i.account_id, i.region, i.instance["InstanceId"]) for i in load_fleet_file(dump)]
    [('111122223333', 'eu-west-1', 'i-1')]
    """
    source = str(path)
    try:
        info = Path(path).stat()
        if info.st_size > MAX_FLEET_BYTES:
            raise _too_large(source, f"file is {info.st_size // 2**20} MiB,")
        # A regular file only: the fast reader may read it twice (once, then the exact reader).
        fast = _read_fleet_fast(path, source) if stat.S_ISREG(info.st_mode) else None
        if fast is not None:
            return fast
        with open(path, "rb") as handle:
            stream: IO[bytes] = handle
            if not stat.S_ISREG(info.st_mode):
                # stat() says 0 for a pipe or a device: read it (bounded) before parsing, so an
                # endless stream is refused by its size whatever its first bytes are.
                raw = handle.read(MAX_FLEET_BYTES + 1)
                if len(raw) > MAX_FLEET_BYTES:
                    raise _TooLarge
                stream = io.BytesIO(raw)
            return _read_fleet(_Text(stream, MAX_FLEET_BYTES), source)
    except FleetError:
        raise
    except _TooLarge:
        raise _too_large(source, f"more than {MAX_FLEET_BYTES // 2**20} MiB:") from None
    except OSError as err:
        raise FleetError([Problem("$", f"cannot read file: {err.strerror or err}")], source=source) from None
    except (_InvalidJson, _HugeInteger) as err:
        raise FleetError([Problem("$", str(err))], source=source) from None
    except (_NotText, RecursionError) as err:
        raise FleetError([Problem("$", f"not a JSON text: {err}")], source=source) from None


# The top-level key of each describe-* output Tagwarden reads, and its resource type.
DUMP_KEYS: dict[str, str] = {spec.list_key: name for name, spec in RESOURCE_TYPES.items()}
_FIRST_KEY = re.compile(rb'\A(?:\xef\xbb\xbf)?[ \t\n\r]*\{[ \t\n\r]*"([A-Za-z]+)"')
_FLEET_PREFIX = re.compile(
    r"\A(?:([0-9]{12}):)?(?:([a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-[0-9]+):)?(.+)\Z", re.S
)


def dump_type(path: str | Path) -> str:
    """The resource type of a dump, by its first top-level key; ``instance`` for anything else
    (the describe-instances reader then says what is wrong with it).

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
    ...     _ = f.write('{ "Volumes": []}'); f.flush(); dump_type(f.name)
    'volume'
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return INSTANCE  # the reader reports why it cannot be read
    match = _FIRST_KEY.match(head)
    return DUMP_KEYS.get(match.group(1).decode(), INSTANCE) if match else INSTANCE


def parse_fleet_argument(text: str) -> tuple[str | None, str | None, str]:
    """``[ACCOUNT:][REGION:]FILE`` -> (account, region, file); a file that exists is taken whole.

    >>> parse_fleet_argument("111122223333:us-east-1:volumes.json")
    ('111122223333', 'us-east-1', 'volumes.json')
    >>> parse_fleet_argument("eu-west-1:snapshots.json"), parse_fleet_argument("dump.json")
    ((None, 'eu-west-1', 'snapshots.json'), (None, None, 'dump.json'))
    """
    if Path(text).exists():
        return None, None, text
    match = _FLEET_PREFIX.match(text)
    assert match is not None  # ``.+`` matches any non-empty text
    return match.group(1), match.group(2), match.group(3)


def _resource_problems(
    resource_type: str, resource: Any, path: str, *, check_text: bool
) -> Iterator[Problem]:
    spec = RESOURCE_TYPES[resource_type]
    if not isinstance(resource, dict):
        yield Problem(path, f"must be an object (a {resource_type} as the AWS CLI prints it)")
        return
    if not isinstance(resource.get(spec.id_field), str) or not resource[spec.id_field]:
        yield Problem(f"{path}.{spec.id_field}", "missing or not a string")
    if "AvailabilityZone" in spec.fields:
        zone = resource.get("AvailabilityZone")
        if not isinstance(zone, str) or region_of_zone(zone) is None:
            yield Problem(f"{path}.AvailabilityZone", "missing or not an availability zone like us-east-1a")
    owner = resource.get("OwnerId")
    if owner is not None and not (isinstance(owner, str) and _ACCOUNT_ID.fullmatch(owner)):
        shown = json.dumps(owner, ensure_ascii=True)[:40]
        yield Problem(f"{path}.OwnerId", f"must be a 12-digit AWS account id, got {shown}")
    yield from _tags_and_text_problems(
        resource, path, spec.tags_field, check_text=check_text, noun=resource_type
    )


class _Resources:
    """Collects one dump's resources and problems, element by element."""

    def __init__(
        self, text: _Text, resource_type: str, account: str | None, region: str | None, source: str
    ) -> None:
        self._text = text
        self._type = resource_type
        self._spec = RESOURCE_TYPES[resource_type]
        self._account = account
        self._region = region
        self._source = source
        self._memo: dict[str, str] = {}
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.problems: list[Problem] = []
        self.resources: list[FleetResource] = []

    def add(self, resource: Any) -> None:
        path = f"$.{self._spec.list_key}[{self.count}]"
        self.count += 1
        if len(self.problems) >= _MAX_PROBLEMS:
            return
        found = list(
            _resource_problems(
                self._type, resource, path, check_text=self._text.last_value_may_hold_surrogates
            )
        )
        if found:
            self.problems.extend(found)
            return
        region = region_of_zone(resource.get("AvailabilityZone")) or self._region
        if region is None:
            raise FleetError(
                [
                    Problem(
                        path,
                        f"a {self._type} has no availability zone: give the file's region as a prefix "
                        f"(--fleet eu-west-1:{Path(self._source).name})",
                    )
                ],
                source=self._source,
            )
        kept = self._spec.project(resource)
        share = self._memo.setdefault
        tags = kept.get(self._spec.tags_field)
        if tags:
            kept[self._spec.tags_field] = [
                {k: share(v, v) if len(v) <= _SHARED_TAG_CHARS else v for k, v in tag.items()} for tag in tags
            ]
        owner = resource.get("OwnerId") or self._account
        self.resources.append(
            FleetResource(self._type, sys.intern(owner) if owner else None, sys.intern(region), kept)
        )


def load_resource_file(
    path: str | Path, resource_type: str, *, account: str | None = None, region: str | None = None
) -> list[FleetResource]:
    """Read a describe-volumes, -snapshots, -images or -network-interfaces JSON file, streamed.

    ``account`` and ``region`` come from a ``--fleet`` prefix: the region of resources without an
    availability zone (snapshots, images), the account of resources that do not name theirs.
    """
    source = str(path)
    try:
        info = Path(path).stat()
        if info.st_size > MAX_FLEET_BYTES:
            raise _too_large(source, f"file is {info.st_size // 2**20} MiB,")
        with open(path, "rb") as handle:
            text = _Text(handle, MAX_FLEET_BYTES)
            collector = _Resources(text, resource_type, account, region, source)
            _read_listing(text, source, RESOURCE_TYPES[resource_type].list_key, collector)
            return collector.resources
    except FleetError:
        raise
    except _TooLarge:
        raise _too_large(source, f"more than {MAX_FLEET_BYTES // 2**20} MiB:") from None
    except OSError as err:
        raise FleetError([Problem("$", f"cannot read file: {err.strerror or err}")], source=source) from None
    except (_InvalidJson, _HugeInteger) as err:
        raise FleetError([Problem("$", str(err))], source=source) from None
    except (_NotText, RecursionError) as err:
        raise FleetError([Problem("$", f"not a JSON text: {err}")], source=source) from None


_TEAMS = ("payments", "search", "platform", "data", "mobile", "growth")
_PEOPLE = ("ana", "bo", "chen", "dana", "eli", "fatima", "gus", "hana", "ivan", "jo")
_ENVIRONMENTS = ("prod", "staging", "dev")
_ENV_TYPOS = ("Production", "prd", "PROD", "stage", "development", "qa ")
_TYPES = ("t3.micro", "t3.large", "m6g.large", "c7g.xlarge", "r6i.2xlarge")


def demo_fleet(
    *, instances_per_region: int = 120, seed: int = 7, now: datetime | None = None
) -> dict[str, Any]:
    """A deterministic describe-instances document with the mistakes real fleets have.

    Missing tags, wrong key capitalisation, blank values, made-up environment names, owners that
    are not e-mail addresses, temporary tags, never-tagged instances, exemptions and fresh launches.

    >>> doc = demo_fleet(instances_per_region=10)
    >>> sum(len(r["Instances"]) for r in doc["Reservations"])
    30
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible demo, not a secret
    current = (now or datetime(2026, 11, 1, 12, 0, tzinfo=UTC)).replace(microsecond=0)
    reservations = []
    counter = 0
    for region in DEMO_REGIONS:
        for _ in range(instances_per_region):
            counter += 1
            team = rng.choice(_TEAMS)
            person = rng.choice(_PEOPLE)
            tags = [
                {"Key": "Name", "Value": f"{team}-{rng.choice(('api', 'worker', 'db', 'batch'))}-{counter}"},
                {"Key": "Owner", "Value": f"{person}@example.com"},
                {"Key": "CostCenter", "Value": f"CC-{rng.randint(1, 40):04d}"},
                {"Key": "Environment", "Value": rng.choice(_ENVIRONMENTS)},
                {"Key": "Team", "Value": team},
            ]
            roll = rng.random()
            if roll < 0.08:
                tags = [t for t in tags if t["Key"] != "Owner"]
            elif roll < 0.14:
                tags = [{"Key": "owner", "Value": t["Value"]} if t["Key"] == "Owner" else t for t in tags]
            elif roll < 0.19:
                tags = [{"Key": "CostCenter", "Value": "  "} if t["Key"] == "CostCenter" else t for t in tags]
            elif roll < 0.26:
                tags = [
                    {"Key": "Environment", "Value": rng.choice(_ENV_TYPOS)}
                    if t["Key"] == "Environment"
                    else t
                    for t in tags
                ]
            elif roll < 0.30:
                tags = [{"Key": "Owner", "Value": person} if t["Key"] == "Owner" else t for t in tags]
            elif roll < 0.33:
                tags.append({"Key": "temp", "Value": "delete-me"})
            elif roll < 0.36:
                tags = []
            elif roll < 0.38:
                tags = [t for t in tags if t["Key"] != "CostCenter"]
                tags.append({"Key": "compliance:exempt", "Value": "true"})
            if rng.random() < 0.3:
                tags.append({"Key": "aws:cloudformation:stack-name", "Value": f"{team}-stack"})
            launched = current - timedelta(
                minutes=rng.choices((5, 30, 600, 4000, 90000), weights=(2, 3, 20, 30, 45))[0]
            )
            state = rng.choices(("running", "stopped", "terminated", "pending"), weights=(80, 14, 4, 2))[0]
            instance: dict[str, Any] = {
                "InstanceId": f"i-{rng.getrandbits(68):017x}",
                "InstanceType": rng.choice(_TYPES),
                "LaunchTime": launched.isoformat(),
                "Placement": {"AvailabilityZone": f"{region}{rng.choice('abc')}"},
                "State": {
                    "Code": {"running": 16, "stopped": 80, "terminated": 48, "pending": 0}[state],
                    "Name": state,
                },
            }
            if tags:
                rng.shuffle(tags)
                instance["Tags"] = tags
            reservations.append(
                {
                    "OwnerId": DEMO_ACCOUNT_ID,
                    "ReservationId": f"r-{rng.getrandbits(68):017x}",
                    "Groups": [],
                    "Instances": [instance],
                }
            )
    return {"Reservations": reservations}


def demo_resources(fleet: dict[str, Any], *, seed: int = 11) -> list[FleetResource]:
    """Volumes, snapshots, images and network interfaces for the instances of a demo fleet, with
    the inheritance mistakes real accounts have.

    Each instance has a root volume and a primary interface that copy its tags, except that some
    volumes lost CostCenter or carry another one, some interfaces were never tagged; there are
    unattached volumes nobody tagged, snapshots that missed the volume's CostCenter (and some of
    volumes since deleted), service-managed interfaces (NAT gateway, load balancer, Lambda) and a
    few images.

    >>> resources = demo_resources(demo_fleet(instances_per_region=10))
    >>> sorted({r.resource_type for r in resources})
    ['image', 'network-interface', 'snapshot', 'volume']
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible demo, not a secret
    resources: list[FleetResource] = []

    def add(resource_type: str, region: str, resource: dict[str, Any]) -> None:
        resources.append(FleetResource(resource_type, DEMO_ACCOUNT_ID, region, resource))

    volumes_by_region: dict[str, list[dict[str, Any]]] = {}
    for reservation in fleet["Reservations"]:
        for instance in reservation["Instances"]:
            if instance["State"]["Name"] == "terminated":
                continue
            zone = instance["Placement"]["AvailabilityZone"]
            region = region_of_zone(zone) or ""
            inherited = [t for t in instance.get("Tags", []) if not t["Key"].startswith("aws:")]
            volume_tags = list(inherited)
            roll = rng.random()
            if roll < 0.12:
                volume_tags = [t for t in volume_tags if t["Key"] != "CostCenter"]
            elif roll < 0.17:
                volume_tags = [
                    {"Key": "CostCenter", "Value": "CC-9999"} if t["Key"] == "CostCenter" else t
                    for t in volume_tags
                ]
            attached = instance["LaunchTime"]
            volume = {
                "VolumeId": f"vol-{rng.getrandbits(68):017x}",
                "AvailabilityZone": zone,
                "CreateTime": attached,
                "Size": rng.choice((8, 20, 50, 100, 500)),
                "VolumeType": rng.choice(("gp3", "gp3", "gp2", "io2")),
                "State": "in-use",
                "Attachments": [
                    {"InstanceId": instance["InstanceId"], "State": "attached", "AttachTime": attached}
                ],
                "Tags": volume_tags,
            }
            add("volume", region, volume)
            volumes_by_region.setdefault(region, []).append(volume)
            interface_tags = [] if rng.random() < 0.2 else list(inherited)
            add(
                "network-interface",
                region,
                {
                    "NetworkInterfaceId": f"eni-{rng.getrandbits(68):017x}",
                    "AvailabilityZone": zone,
                    "OwnerId": DEMO_ACCOUNT_ID,
                    "InterfaceType": "interface",
                    "RequesterManaged": False,
                    "Status": "in-use",
                    "Attachment": {"InstanceId": instance["InstanceId"], "AttachTime": attached},
                    "TagSet": interface_tags,
                },
            )
    for region, volumes in sorted(volumes_by_region.items()):
        for number in range(max(2, len(volumes) // 12)):
            add(
                "volume",
                region,
                {
                    "VolumeId": f"vol-{rng.getrandbits(68):017x}",
                    "AvailabilityZone": f"{region}a",
                    "CreateTime": "2026-03-02T09:00:00+00:00",
                    "Size": rng.choice((100, 500, 1000)),
                    "VolumeType": "gp2",
                    "State": "available",
                    "Attachments": [],
                    "Tags": [] if number % 2 else [{"Key": "Name", "Value": f"old-data-{number}"}],
                },
            )
        for volume in volumes[:: max(1, len(volumes) // 10)]:
            tags = volume["Tags"] if rng.random() < 0.6 else [{"Key": "Name", "Value": "nightly"}]
            add(
                "snapshot",
                region,
                {
                    "SnapshotId": f"snap-{rng.getrandbits(68):017x}",
                    "OwnerId": DEMO_ACCOUNT_ID,
                    "StartTime": "2026-10-30T02:00:00+00:00",
                    "State": "completed",
                    "VolumeId": volume["VolumeId"],
                    "VolumeSize": volume["Size"],
                    "Tags": tags,
                },
            )
        add(
            "snapshot",
            region,
            {
                "SnapshotId": f"snap-{rng.getrandbits(68):017x}",
                "OwnerId": DEMO_ACCOUNT_ID,
                "StartTime": "2025-01-15T02:00:00+00:00",
                "State": "completed",
                "VolumeId": f"vol-{rng.getrandbits(68):017x}",  # deleted since: its own rules only
                "VolumeSize": 200,
                "Tags": [],
            },
        )
        for kind in ("nat_gateway", "network_load_balancer", "lambda"):
            add(
                "network-interface",
                region,
                {
                    "NetworkInterfaceId": f"eni-{rng.getrandbits(68):017x}",
                    "AvailabilityZone": f"{region}b",
                    "OwnerId": DEMO_ACCOUNT_ID,
                    "InterfaceType": kind,
                    "RequesterManaged": kind != "nat_gateway",
                    "Status": "in-use",
                    "TagSet": [],
                },
            )
        for number, team in enumerate(_TEAMS[:3]):
            tags = [{"Key": "Name", "Value": f"{team}-base"}, {"Key": "Team", "Value": team}]
            if number:
                tags += [
                    {"Key": "CostCenter", "Value": f"CC-{number:04d}"},
                    {"Key": "Owner", "Value": "jo@example.com"},
                ]
            add(
                "image",
                region,
                {
                    "ImageId": f"ami-{rng.getrandbits(68):017x}",
                    "OwnerId": DEMO_ACCOUNT_ID,
                    "CreationDate": "2026-09-01T10:00:00.000Z",
                    "Name": f"{team}-base-2026-09",
                    "State": "available",
                    "Tags": tags,
                },
            )
    return resources
