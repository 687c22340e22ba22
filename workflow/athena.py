"""``tagwarden query --athena``: the named queries (or any SQL) on the deployed Athena workgroup.

:class:`AthenaBackend` is the Athena twin of :class:`workflow.local_query.LocalDuckDB`: it
implements :class:`~workflow.local_query.QueryBackend`, so :func:`~workflow.local_query.run_named_query`
hands it the very text of the ``.sql`` file (one source for both engines, and for the named
queries the CDK app saves) with the positional ``?`` values bound. One call:

1. ``StartQueryExecution`` in the stack's workgroup (``AthenaWorkGroupName``, which enforces the
   result location) with the Glue database (``GlueDatabaseName``) as context and the values as
   ``ExecutionParameters`` (Athena substitutes them for the ``?`` markers, in order);
2. ``GetQueryExecution`` until the query is ``SUCCEEDED``, ``FAILED`` or ``CANCELLED``, waiting
   0.25 s, then twice as long each time, at most 5 s between polls. ``FAILED`` and ``CANCELLED``
   raise :class:`~workflow.operate.OperationError` (exit 3) with Athena's ``StateChangeReason``
   on one line; a query still running after ``timeout`` seconds, or an interrupted wait, is
   stopped (``StopQueryExecution``) rather than left running in the account;
3. ``GetQueryResults`` through its paginator. Athena returns every value as text; the column types
   of ``ResultSetMetadata`` turn numbers and booleans back into numbers and booleans (what DuckDB
   returns locally), ``NULL`` into ``None``. For a ``SELECT`` the first row of the first page
   repeats the column names and is dropped.

AWS errors are left to the caller (the CLI wraps every command in
:func:`workflow.operate.aws_errors`).

>>> athena_value("42", "bigint"), athena_value("true", "boolean"), athena_value(None, "varchar")
(42, True, None)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from workflow.local_query import QueryResult
from workflow.operate import OperationError

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "TERMINAL_STATES",
    "AthenaBackend",
    "athena_parameter",
    "athena_value",
    "poll_delays",
]

TERMINAL_STATES: Final = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
#: Athena's own default limit for a DML query is 30 minutes.
DEFAULT_TIMEOUT_SECONDS: Final = 30 * 60.0
_FIRST_DELAY: Final = 0.25
_MAX_DELAY: Final = 5.0
_PAGE_SIZE: Final = 1000  # the most GetQueryResults returns per call

_INTEGERS: Final = frozenset({"tinyint", "smallint", "integer", "int", "bigint"})
_FLOATS: Final = frozenset({"double", "float", "real"})


def poll_delays(first: float = _FIRST_DELAY, most: float = _MAX_DELAY) -> Iterator[float]:
    """The waits between two ``GetQueryExecution`` calls: doubling from ``first`` up to ``most``.

    >>> import itertools
    >>> list(itertools.islice(poll_delays(), 7))
    [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    """
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, most)


def athena_parameter(value: Any) -> str:
    """An ``ExecutionParameters`` entry: Athena pastes it where the ``?`` is, so text is quoted.

    >>> athena_parameter(14), athena_parameter(True), athena_parameter("O'Brien")
    ('14', 'true', "'O''Brien'")
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def athena_value(text: str | None, athena_type: str) -> Any:
    """A result cell as Python: Athena sends text, its column type says what the text is.

    Numbers and booleans are converted; dates, timestamps, arrays, maps and rows stay as Athena
    prints them. A value that does not parse as its type is kept as text.

    >>> athena_value("2.5", "double"), athena_value("1.10", "decimal(10,2)"), athena_value("x", "integer")
    (2.5, Decimal('1.10'), 'x')
    >>> athena_value("[{code=missing, key=Owner}]", "array(row(code varchar, key varchar))")
    '[{code=missing, key=Owner}]'
    """
    if text is None:
        return None
    kind = athena_type.strip().lower().split("(", 1)[0]
    try:
        if kind in _INTEGERS:
            return int(text)
        if kind in _FLOATS:
            return float(text)
        if kind == "decimal":
            return Decimal(text)
    except (ValueError, InvalidOperation):
        return text
    if kind == "boolean" and text in {"true", "false"}:
        return text == "true"
    return text


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


class AthenaBackend:
    """Athena SQL with positional ``?`` parameters in one workgroup and database.

    ``athena`` is a boto3 Athena client; ``sleep`` and ``clock`` are there for tests.

    >>> import boto3
    >>> from botocore.stub import Stubber
    >>> client = boto3.client("athena", region_name="eu-west-1")
    >>> backend = AthenaBackend(client, workgroup="tagwarden", database="tagwarden", sleep=lambda s: None)
    >>> with Stubber(client) as stub:
    ...     stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
    ...     stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}})
    ...     stub.add_response("get_query_results", {"ResultSet": {
    ...         "Rows": [{"Data": [{"VarCharValue": "n"}]}, {"Data": [{"VarCharValue": "7"}]}],
    ...         "ResultSetMetadata": {"ColumnInfo": [{"Name": "n", "Type": "bigint"}]}}})
    ...     result = backend.execute("SELECT ? AS n", [7])
    >>> result.columns, result.rows, backend.last_execution_id
    (('n',), [(7,)], 'q-1')
    """

    def __init__(
        self,
        athena: Any,
        *,
        workgroup: str,
        database: str,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        page_size: int = _PAGE_SIZE,
    ) -> None:
        self.athena = athena
        self.workgroup = workgroup
        self.database = database
        self.timeout = timeout
        self.page_size = page_size
        self._sleep = sleep
        self._clock = clock
        self.last_execution_id: str | None = None

    def execute(self, sql: str, parameters: Sequence[Any]) -> QueryResult:
        """Run ``sql`` to its end and return every row; FAILED/CANCELLED raise OperationError."""
        request: dict[str, Any] = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.workgroup,
        }
        if parameters:  # Athena refuses an empty list
            request["ExecutionParameters"] = [athena_parameter(v) for v in parameters]
        execution_id = str(self.athena.start_query_execution(**request)["QueryExecutionId"])
        self.last_execution_id = execution_id
        try:
            execution = self._wait(execution_id)
        except BaseException:
            self._stop(execution_id)
            raise
        state = execution.get("Status", {}).get("State")
        if state != "SUCCEEDED":
            raise OperationError(f"Athena query {execution_id} {state}: {self._reason(execution)}")
        columns, rows = self._results(execution_id)
        return QueryResult(columns, rows, sql, tuple(parameters))

    def _wait(self, execution_id: str) -> dict[str, Any]:
        deadline = self._clock() + self.timeout
        delays = poll_delays()
        while True:
            execution: dict[str, Any] = self.athena.get_query_execution(QueryExecutionId=execution_id)[
                "QueryExecution"
            ]
            state = execution.get("Status", {}).get("State")
            if state in TERMINAL_STATES:
                return execution
            if self._clock() >= deadline:
                raise OperationError(
                    f"Athena query {execution_id} still {state} after {self.timeout:g} s; stopped it"
                )
            self._sleep(next(delays))

    def _stop(self, execution_id: str) -> None:
        """Best effort: a query nobody waits for any more should not keep scanning (and costing)."""
        with contextlib.suppress(Exception):  # the original error is what the user needs to see
            self.athena.stop_query_execution(QueryExecutionId=execution_id)

    @staticmethod
    def _reason(execution: dict[str, Any]) -> str:
        status = execution.get("Status", {})
        reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage")
        return _one_line(reason) if reason else "Athena gave no reason"

    def _results(self, execution_id: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        paginator = self.athena.get_paginator("get_query_results")
        pages = paginator.paginate(
            QueryExecutionId=execution_id, PaginationConfig={"PageSize": self.page_size}
        )
        columns: tuple[str, ...] = ()
        types: list[str] = []
        rows: list[tuple[Any, ...]] = []
        for number, page in enumerate(pages):
            result_set = page.get("ResultSet", {})
            if number == 0:
                info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = tuple(str(c.get("Name") or c.get("Label") or "") for c in info)
                types = [str(c.get("Type") or "varchar") for c in info]
            page_rows = result_set.get("Rows", [])
            for index, row in enumerate(page_rows):
                texts = [cell.get("VarCharValue") for cell in row.get("Data", [])]
                if number == 0 and index == 0 and columns and tuple(texts) == columns:
                    continue  # a SELECT's first row is its header
                rows.append(
                    tuple(
                        athena_value(text, types[i] if i < len(types) else "varchar")
                        for i, text in enumerate(texts)
                    )
                )
        return columns, rows
