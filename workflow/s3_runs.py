"""``tagwarden report --stack``: the runs the deployed workflow left in its report bucket.

The twin of :class:`workflow.local_query.LocalRuns` for S3. The layout is
:mod:`workflow.layout`'s: a run's summary at ``reports/runs/dt=YYYY-MM-DD/run=<run id>/summary.json``,
its findings as one gzip JSON Lines object at ``reports/findings/dt=.../run=.../findings.jsonl.gz``
and the newest run in the pointer ``state/latest-run.json`` (``{"run_id", "started_at",
"summary_key", "previous"}``). Dry runs never reach ``reports/``, so they are never reported here.

* :meth:`S3Runs.latest` follows the pointer (one GetObject);
* :meth:`S3Runs.get` finds a run by id by listing ``reports/runs/`` (the dt partition is not in
  the id), page by page;
* :meth:`S3Runs.summaries` reads the most recent summaries, for the HTML report's trend.

:class:`S3Run` implements :class:`~workflow.local_query.RunSource`: ``summary()`` is read once,
``findings()`` streams the gzip object line by line, so memory does not grow with the object.

A missing pointer, run or summary, or a malformed document, is :class:`InvalidInput` (one line,
exit 2). Every other AWS error (no credentials, access denied, throttling) is raised as botocore's
own exception, for :func:`workflow.operate.aws_errors` to word in one line.

>>> summary_location("reports/runs/dt=2026-11-28/run=nightly-2026-11-28/summary.json")
('2026-11-28', 'nightly-2026-11-28')
>>> summary_location("reports/runs/dt=2026-11-28/run=x/other.json") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from workflow import layout
from workflow.errors import InvalidInput, Problem, ReportNotFound, WorkflowError
from workflow.storage import get_json, iter_jsonl_gz

__all__ = ["DEFAULT_TREND_RUNS", "RunKey", "S3Run", "S3Runs", "summary_location"]

#: How many runs the HTML report's trend shows by default.
DEFAULT_TREND_RUNS: Final = 30
_SUMMARY_KEY: Final = re.compile(
    "^" + re.escape(layout.RUNS_PREFIX) + r"dt=(?P<dt>\d{4}-\d{2}-\d{2})/run=(?P<run>[^/]+)/summary\.json$"
)
_READERS: Final = 8


def summary_location(key: str) -> tuple[str, str] | None:
    """``(dt, run_id)`` of a summary key written by the workflow, or None for any other key."""
    match = _SUMMARY_KEY.match(key)
    return (match["dt"], match["run"]) if match else None


@contextmanager
def _botocore_errors() -> Iterator[None]:
    """:mod:`workflow.storage` words AWS errors for the state machine's Retry/Catch; a person at a
    terminal gets botocore's original error back, for :func:`workflow.operate.aws_errors`."""
    try:
        yield
    except WorkflowError as err:
        cause = err.__cause__
        if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise cause from None  # not a missing run: a wrong --bucket (or stack output)
        if isinstance(err, ReportNotFound):
            raise  # a missing object: the caller says which one, in its own words
        if isinstance(cause, ClientError | BotoCoreError):
            raise cause from None
        raise


def _uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _read_json(s3: Any, bucket: str, key: str) -> Any | None:
    """The parsed object, None when it does not exist; unreadable JSON is one InvalidInput line."""
    try:
        with _botocore_errors():
            return get_json(s3, bucket, key)
    except ReportNotFound:
        return None
    except (ClientError, BotoCoreError):
        raise
    except ValueError as err:  # not JSON, or not UTF-8
        raise InvalidInput([Problem(_uri(bucket, key), f"not a JSON document: {err}")]) from None


@dataclass(frozen=True)
class RunKey:
    """One run found by listing ``reports/runs/``: where its summary is, and when it was written."""

    dt: str
    run_id: str
    key: str
    last_modified: datetime | None = None

    @property
    def order(self) -> tuple[str, str, str]:
        """Oldest first: by partition day, then upload time (run ids are free-form names)."""
        return (self.dt, self.last_modified.isoformat() if self.last_modified else "", self.run_id)


class S3Run:
    """One run in the report bucket: its summary (read once) and its findings (streamed).

    >>> run = S3Run(None, "reports", "2026-11-28", "r1")
    >>> run.summary_key
    'reports/runs/dt=2026-11-28/run=r1/summary.json'
    >>> run.findings_key
    'reports/findings/dt=2026-11-28/run=r1/findings.jsonl.gz'
    """

    def __init__(self, s3: Any, bucket: str, dt: str, run_id: str, summary_key: str | None = None) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.dt = dt
        self._run_id = run_id
        self.summary_key = summary_key or layout.summary_key(dt, run_id)
        self.findings_key = layout.findings_key(dt, run_id)
        self._summary: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        return self._run_id

    def summary(self) -> dict[str, Any]:
        """The run's ``summary.json``; a missing or malformed one is an InvalidInput line."""
        if self._summary is None:
            document = _read_json(self.s3, self.bucket, self.summary_key)
            where = _uri(self.bucket, self.summary_key)
            if document is None:
                raise InvalidInput([Problem("report", f"run {self._run_id!r} has no summary at {where}")])
            if not isinstance(document, dict) or not isinstance(document.get("run_id"), str):
                raise InvalidInput([Problem(where, "not a run summary (no run_id)")])
            self._summary = document
        return dict(self._summary)

    def findings(self) -> Iterator[dict[str, Any]]:
        """The findings, streamed from the gzip JSON Lines object."""
        where = _uri(self.bucket, self.findings_key)
        number = 0
        try:
            with _botocore_errors():
                for number, finding in enumerate(iter_jsonl_gz(self.s3, self.bucket, self.findings_key), 1):
                    if not isinstance(finding, dict):
                        raise InvalidInput([Problem(f"{where} line {number}", "not a JSON object")])
                    yield finding
        except ReportNotFound:
            raise InvalidInput(
                [Problem("report", f"run {self._run_id!r} has no findings at {where}")]
            ) from None
        except (ClientError, BotoCoreError):
            raise  # some of botocore's network errors are OSErrors too
        except (ValueError, EOFError, OSError) as err:  # bad JSON, UTF-8 or gzip
            raise InvalidInput(
                [Problem(f"{where} line {number + 1}", f"not gzip JSON Lines: {err}")]
            ) from None


class S3Runs:
    """The runs in a report bucket.

    ``s3`` is a boto3 S3 client; ``page_size`` is the ``MaxKeys`` of each listing call.

    >>> import boto3
    >>> from botocore.stub import Stubber
    >>> s3 = boto3.client("s3", region_name="eu-west-1")
    >>> key = "reports/runs/dt=2026-11-28/run=r2/summary.json"
    >>> with Stubber(s3) as stub:
    ...     stub.add_response("list_objects_v2", {"Contents": [{"Key": key}], "IsTruncated": False})
    ...     S3Runs(s3, "reports").get("r1")
    Traceback (most recent call last):
    ...
    workflow.errors.InvalidInput: --run: no run 'r1' in s3://reports (latest runs: r2)
    """

    def __init__(self, s3: Any, bucket: str, *, page_size: int = 1000) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.page_size = page_size

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}"

    def run_keys(self) -> list[RunKey]:
        """Every run under ``reports/runs/``, oldest first (one ListObjectsV2 call per 1,000 runs)."""
        paginator = self.s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=layout.RUNS_PREFIX, PaginationConfig={"PageSize": self.page_size}
        )
        found = []
        for page in pages:
            for item in page.get("Contents", []):
                location = summary_location(str(item.get("Key", "")))
                if location:
                    found.append(RunKey(*location, key=item["Key"], last_modified=item.get("LastModified")))
        return sorted(found, key=lambda r: r.order)

    def _run(self, key: RunKey) -> S3Run:
        return S3Run(self.s3, self.bucket, key.dt, key.run_id, key.key)

    def latest(self) -> S3Run:
        """The run ``state/latest-run.json`` points at: the newest finished, non-dry run."""
        pointer = _read_json(self.s3, self.bucket, layout.LATEST_RUN_KEY)
        where = _uri(self.bucket, layout.LATEST_RUN_KEY)
        if pointer is None:
            raise InvalidInput(
                [Problem("--latest", f"no finished run in {self.where} yet ({where} does not exist)")]
            )
        run_id = pointer.get("run_id") if isinstance(pointer, dict) else None
        key = pointer.get("summary_key") if isinstance(pointer, dict) else None
        location = summary_location(key) if isinstance(key, str) else None
        if not isinstance(run_id, str) or location is None or location[1] != run_id:
            raise InvalidInput([Problem(where, "not a latest-run pointer (run_id and summary_key)")])
        return S3Run(self.s3, self.bucket, location[0], run_id, key)

    def get(self, run_id: str) -> S3Run:
        """The run called ``run_id``; an unknown one is one InvalidInput line naming recent runs."""
        keys = self.run_keys()
        matches = [k for k in keys if k.run_id == run_id]
        if matches:
            return self._run(matches[-1])
        if not keys:
            raise InvalidInput([Problem("--run", f"no run {run_id!r}: {self.where} holds no runs yet")])
        known = ", ".join(k.run_id for k in keys[-10:])
        raise InvalidInput([Problem("--run", f"no run {run_id!r} in {self.where} (latest runs: {known})")])

    def summaries(self, limit: int = DEFAULT_TREND_RUNS) -> list[dict[str, Any]]:
        """The summaries of the ``limit`` most recent runs, oldest first (by ``evaluated_at``).

        Runs whose summary disappeared between listing and reading are left out.
        """
        keys = self.run_keys()[-limit:] if limit > 0 else []

        def read(key: RunKey) -> Any | None:
            return _read_json(self.s3, self.bucket, key.key)

        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            documents = list(pool.map(read, keys))
        found = [d for d in documents if isinstance(d, dict) and isinstance(d.get("run_id"), str)]
        return sorted(found, key=lambda s: (str(s.get("evaluated_at") or ""), s["run_id"]))
