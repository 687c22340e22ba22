"""Reading and writing the report bucket: JSON documents and gzip JSON Lines, streamed.

Writes go through a spooled temporary file and ``upload_fileobj``: an object appears whole or not
at all (a multipart upload is invisible until completed), so readers never see half a report, and
memory stays flat however many findings a run has.

JSON goes through orjson (several times faster than :mod:`json` both ways, the same compact
output). Staging objects, read once by the next step and deleted with the run's staging, are
compressed at gzip level 1; findings, which become the report that Athena scans and bills by the
byte, at level 6, once: Persist report copies their compressed bytes instead of re-encoding them.
"""

from __future__ import annotations

import gzip
import io
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import IO, Any, Final

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from workflow.aws import aws_call, error_code, translate
from workflow.errors import ReportNotFound

_SPOOL_BYTES: Final = 32 * 1024 * 1024
_BATCH_BYTES: Final = 256 * 1024
# Staged pages live for one run; the report's findings are kept and scanned by Athena.
STAGING_GZIP_LEVEL: Final = 1
REPORT_GZIP_LEVEL: Final = 6
# 412 when the ETag no longer matches; 409 when another conditional write is in flight.
_CONFLICT_CODES: Final = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps_line(document: Any) -> str:
    """Compact one-line JSON: what Athena's JSON SerDe needs (pretty-printed JSON fails there).

    >>> dumps_line({"b": 1, "t": datetime(2026, 1, 1)})
    '{"b":1,"t":"2026-01-01T00:00:00"}'
    """
    return dumps_bytes(document).decode("utf-8")


def dumps_bytes(document: Any) -> bytes:
    """:func:`dumps_line` as UTF-8 bytes, by orjson; :mod:`json` for what orjson refuses (an
    integer beyond 64 bits in a dump, a dict with non-string keys), so nothing valid is lost.

    >>> dumps_bytes({"k": "v", "n": 2**70})
    b'{"k":"v","n":1180591620717411303424}'
    """
    try:
        return orjson.dumps(document, default=_json_default)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=_json_default)
        return text.encode("utf-8")


def loads(data: bytes | str) -> Any:
    """Parse JSON (orjson; it rejects NaN and Infinity, which no step ever writes).

    >>> loads(b'{"a":[1,"x"]}')
    {'a': [1, 'x']}
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # Integers beyond 64 bits are valid JSON; anything else raises the same ValueError here.
        return json.loads(data)


def put_json(s3: Any, bucket: str, key: str, document: Any) -> None:
    body = dumps_bytes(document) + b"\n"
    with aws_call(f"PutObject s3://{bucket}/{key}"):
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    """Whether ``key`` exists, asked as a listing of that exact prefix.

    A GetObject of a missing key answers 404 only to a caller that may list the bucket, and
    whether a prefix-scoped ``s3:ListBucket`` grant counts for that hidden check is not
    documented: a role scoped to its own prefixes could get 403 (AccessDenied) on its very first
    run. A ListObjectsV2 with ``Prefix=key`` is an explicit ListBucket call whose ``s3:prefix`` is
    the key itself, so a prefix-scoped grant covers it by IAM's documented rules. Listings are
    strongly consistent, so a key just written is seen.
    """
    with aws_call(f"ListObjectsV2 s3://{bucket}/{key}"):
        response = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    # The exact key sorts before every longer key it is a prefix of.
    return any(item.get("Key") == key for item in response.get("Contents", []))


def get_json_and_etag(s3: Any, bucket: str, key: str) -> tuple[Any | None, str | None]:
    """The parsed document and its ETag, or ``(None, None)`` when the object does not exist
    (asked with :func:`object_exists` first, never inferred from a 404)."""
    if not object_exists(s3, bucket, key):
        return None, None
    try:
        with aws_call(f"GetObject s3://{bucket}/{key}"):
            response = s3.get_object(Bucket=bucket, Key=key)
            body = response["Body"].read()
    except ReportNotFound:
        return None, None
    return loads(body), str(response["ETag"])


def put_json_if_unchanged(s3: Any, bucket: str, key: str, document: Any, etag: str | None) -> bool:
    """Write only if the object still has ``etag`` (with None: still does not exist), an S3
    conditional write; False when another writer got there first."""
    body = dumps_bytes(document) + b"\n"
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **condition)
    except ClientError as err:
        if error_code(err) in _CONFLICT_CODES:
            return False
        raise translate(err, f"PutObject s3://{bucket}/{key}") from err
    except BotoCoreError as err:
        raise translate(err, f"PutObject s3://{bucket}/{key}") from err
    return True


def get_json(s3: Any, bucket: str, key: str) -> Any:
    """The parsed document, or :class:`ReportNotFound` when the object does not exist."""
    with aws_call(f"GetObject s3://{bucket}/{key}"):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return loads(body)


def get_json_if_exists(s3: Any, bucket: str, key: str) -> Any | None:
    """The parsed document, or None when the object does not exist (see :func:`object_exists`)."""
    if not object_exists(s3, bucket, key):
        return None
    try:
        return get_json(s3, bucket, key)
    except ReportNotFound:  # deleted between the listing and the read
        return None


class JsonLinesWriter:
    """Gzip JSON Lines into a spooled temp file; :meth:`upload` publishes the object in one go.

    The object is a sequence of gzip members (RFC 1952 allows any number; gzip, zlib, Athena and
    DuckDB read them as one stream): :meth:`append_member` adds a member already compressed
    elsewhere, byte for byte, so a report is assembled without re-encoding what was staged.

    >>> writer = JsonLinesWriter(compresslevel=1)
    >>> writer.write({"a": 1})
    >>> writer.append_member(gzip.compress(b'{"b":2}\\n'))
    >>> gzip.decompress(writer.finish().read())
    b'{"a":1}\\n{"b":2}\\n'
    """

    def __init__(self, *, compresslevel: int = REPORT_GZIP_LEVEL) -> None:
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        self._level = compresslevel
        self._gzip: gzip.GzipFile | None = None
        self._members = 0
        self.lines = 0
        # Lines are compressed a batch at a time: one call to zlib per line cost more than the
        # compression itself, and zlib lets other threads run while it compresses a batch.
        self._batch: list[bytes] = []
        self._batch_bytes = 0

    def _member(self) -> gzip.GzipFile:
        if self._gzip is None:
            self._gzip = gzip.GzipFile(fileobj=self._spool, mode="wb", compresslevel=self._level, mtime=0)
            self._members += 1
        return self._gzip

    def _flush_batch(self) -> None:
        if self._batch:
            self._member().write(b"".join(self._batch))
            self._batch.clear()
            self._batch_bytes = 0

    def _close_member(self) -> None:
        self._flush_batch()
        if self._gzip is not None:
            self._gzip.close()
            self._gzip = None

    def write(self, document: Any) -> None:
        self.write_line(dumps_bytes(document))

    def write_line(self, line: bytes) -> None:
        """Write one line already serialised (without its newline), as it was read."""
        self._batch.append(line)
        self._batch.append(b"\n")
        self._batch_bytes += len(line) + 1
        self.lines += 1
        if self._batch_bytes >= _BATCH_BYTES:
            self._flush_batch()

    def write_all(self, documents: Iterable[Any]) -> None:
        for document in documents:
            self.write(document)

    def append_member(self, compressed: bytes, lines: int = 0) -> None:
        """Append gzip data (one or more complete members) as it is; ``lines`` it holds."""
        self._close_member()
        self._spool.write(compressed)
        self._members += 1
        self.lines += lines

    def finish(self) -> IO[bytes]:
        """Close the gzip stream; returns the compressed bytes' file, rewound."""
        if self._members == 0:
            self._member()  # an empty report is still one valid (empty) gzip member
        self._close_member()
        self._spool.seek(0)
        return self._spool

    def upload(self, s3: Any, bucket: str, key: str, *, metadata: Mapping[str, str] | None = None) -> None:
        """Publish the object; ``metadata`` (ASCII, 2 KB in all) rides along as S3 user metadata."""
        self.finish()
        extra: dict[str, Any] = {"ContentType": "application/x-ndjson", "ContentEncoding": "gzip"}
        if metadata:
            extra["Metadata"] = dict(metadata)
        with aws_call(f"PutObject s3://{bucket}/{key}"):
            s3.upload_fileobj(self._spool, bucket, key, ExtraArgs=extra)
        self._spool.close()

    def close(self) -> None:
        self._spool.close()


def put_jsonl_gz(s3: Any, bucket: str, key: str, documents: Iterable[Any]) -> int:
    """Write documents as gzip JSON Lines; returns how many lines were written."""
    writer = JsonLinesWriter()
    try:
        writer.write_all(documents)
        writer.upload(s3, bucket, key)
    finally:
        writer.close()
    return writer.lines


def iter_jsonl_gz(s3: Any, bucket: str, key: str, *, containing: bytes | None = None) -> Iterator[Any]:
    """Stream the documents of a gzip JSON Lines object without holding it in memory.

    With ``containing``, only the lines that hold those bytes are parsed: a cheap filter before
    the parse (the Notify step reads the noncompliant findings of a report that is mostly
    compliant), which the caller still checks each parsed document against.
    """
    _, documents = open_jsonl_gz(s3, bucket, key, containing=containing)
    yield from documents


def open_jsonl_gz(
    s3: Any, bucket: str, key: str, *, containing: bytes | None = None
) -> tuple[dict[str, str], Iterator[Any]]:
    """The object's user metadata, and its documents as a stream (one GetObject for both)."""
    with aws_call(f"GetObject s3://{bucket}/{key}"):
        response = s3.get_object(Bucket=bucket, Key=key)

    def documents() -> Iterator[Any]:
        with (
            aws_call(f"GetObject s3://{bucket}/{key}"),
            gzip.GzipFile(fileobj=response["Body"], mode="rb") as unzipped,
        ):
            for line in unzipped:
                if line.strip() and (containing is None or containing in line):
                    yield loads(line)

    return dict(response.get("Metadata") or {}), documents()


def get_gz_bytes(s3: Any, bucket: str, key: str) -> tuple[dict[str, str], bytes]:
    """The object's user metadata and its compressed bytes, as stored (one GetObject)."""
    with aws_call(f"GetObject s3://{bucket}/{key}"):
        response = s3.get_object(Bucket=bucket, Key=key)
        body = response["Body"].read()
    return dict(response.get("Metadata") or {}), body


def gz_lines(compressed: bytes) -> Iterator[bytes]:
    """The non-blank lines of gzip JSON Lines data, undecoded, decompressed as they are read.

    >>> list(gz_lines(gzip.compress(b'{"a":1}\\n\\n{"b":2}\\n')))
    [b'{"a":1}', b'{"b":2}']
    """
    with gzip.GzipFile(fileobj=io.BytesIO(compressed), mode="rb") as unzipped:
        for line in unzipped:
            stripped = line.rstrip(b"\r\n")
            if stripped.strip():
                yield stripped


def put_json_gz(s3: Any, bucket: str, key: str, document: Any) -> None:
    """A staging document, compressed fast (:data:`STAGING_GZIP_LEVEL`): read once, then deleted."""
    body = gzip.compress(dumps_bytes(document), compresslevel=STAGING_GZIP_LEVEL, mtime=0)
    with aws_call(f"PutObject s3://{bucket}/{key}"):
        s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType="application/json", ContentEncoding="gzip"
        )


def get_json_gz(s3: Any, bucket: str, key: str) -> Any:
    with aws_call(f"GetObject s3://{bucket}/{key}"):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return loads(gzip.decompress(body))


def list_keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    """Every key under ``prefix`` (ListObjectsV2 through its paginator, 1,000 keys a call)."""
    with aws_call(f"ListObjectsV2 s3://{bucket}/{prefix}"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"])
