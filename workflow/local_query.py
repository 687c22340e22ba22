"""``tagwarden query`` and ``tagwarden report`` on the folders that ``tagwarden run`` writes.

A local run folder ``<DIR>/<run id>/`` holds ``findings.jsonl`` and ``summary.json`` (and
``actions.jsonl`` when it remediated): the same documents the deployed workflow puts under
``reports/findings/``, ``reports/runs/`` and ``reports/actions/`` (``dt=.../run=.../``).
:class:`LocalDuckDB` loads them into DuckDB tables ``findings``, ``runs`` and ``actions`` with the
column names and types of the Glue tables (:data:`FINDINGS_COLUMNS`, :data:`RUNS_COLUMNS`,
:data:`ACTIONS_COLUMNS`, the same Hive types as the CDK catalog) plus the partition columns ``dt``
(the UTC date of ``evaluated_at``) and ``run`` (the run id), so the Athena SQL of
:mod:`workflow.queries` runs unchanged. Dry runs are left out, as in Athena (a dry run's report
never lands under ``reports/``).

Dialect differences between Athena (Trino) and DuckDB are handled in one place,
:data:`DUCKDB_SESSION`: statements run on every new connection (UTC session time zone, integer
division, nulls last, and macros for the Trino functions DuckDB names differently). Nothing
rewrites SQL text.

Raw SQL only ever sees the two tables: once they are loaded, the connection loses file system
access (``enable_external_access = false``) and its configuration is locked, so a query cannot
read other files, write any, attach databases or install extensions. The one folder DuckDB may
still write (its temporary directory, ``<cwd>/.tmp`` by default) is a private ``0700`` folder made
for the connection and removed with it. Each query is bounded: ``memory_limit``
(:data:`DEFAULT_MEMORY_LIMIT`), at most :data:`TEMP_SPILL_LIMIT` spilled to that folder, and
:data:`DEFAULT_TIMEOUT_SECONDS` of wall time, after which the connection is interrupted; all set
before the configuration is locked.

Another backend (Athena) plugs in through :class:`QueryBackend`; a run store other than a local
folder (S3) through :class:`RunSource`.

>>> NAMED_QUERIES["noncompliant_by_owner"].title
'Noncompliant instances by owner (latest run)'
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from workflow.errors import InvalidInput, Problem
from workflow.queries import NAMED_QUERIES, NamedQuery, schema

__all__ = [
    "ACTIONS_COLUMNS",
    "DUCKDB_SESSION",
    "FINDINGS_COLUMNS",
    "NAMED_QUERIES",
    "PARTITION_KEYS",
    "RUNS_COLUMNS",
    "LocalDuckDB",
    "LocalRun",
    "LocalRuns",
    "QueryBackend",
    "QueryResult",
    "RunSource",
    "duckdb_type",
    "parse_params",
    "resolve_query",
    "run_named_query",
]

# -- the tables ------------------------------------------------------------------------------------

# One definition of the tables for the Glue catalog (CDK) and DuckDB: workflow/queries/schema.py.
FINDINGS_COLUMNS: Final = schema.FINDINGS_COLUMNS
RUNS_COLUMNS: Final = schema.RUNS_COLUMNS
ACTIONS_COLUMNS: Final = schema.ACTIONS_COLUMNS
PARTITION_KEYS: Final = schema.PARTITION_KEYS

_SCALARS: Final = {
    "string": "VARCHAR",
    "varchar": "VARCHAR",
    "boolean": "BOOLEAN",
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


def duckdb_type(hive: str) -> str:
    """The DuckDB type of a Hive (Glue) type string.

    >>> duckdb_type("array<struct<code:string,key:string>>")
    'STRUCT("code" VARCHAR, "key" VARCHAR)[]'
    >>> duckdb_type("map<string,struct<compliant:int,noncompliant:int>>")
    'MAP(VARCHAR, STRUCT("compliant" INTEGER, "noncompliant" INTEGER))'
    """
    parsed, rest = _parse_type(hive.replace(" ", ""))
    if rest:
        raise ValueError(f"unexpected {rest!r} in type {hive!r}")
    return parsed


def _split_top(text: str) -> tuple[list[str], str]:
    """Comma-separated parts up to the matching '>' and what follows it."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "<":
            depth += 1
        elif c == ">":
            if depth == 0:
                parts.append(text[start:i])
                return parts, text[i + 1 :]
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    raise ValueError(f"unbalanced '<' in {text!r}")


def _parse_type(text: str) -> tuple[str, str]:
    match = re.match(r"[a-z]+", text)
    if not match:
        raise ValueError(f"not a type: {text!r}")
    word, rest = match.group(), text[match.end() :]
    if word in {"array", "map", "struct"}:
        if not rest.startswith("<"):
            raise ValueError(f"{word} needs <...>: {text!r}")
        parts, rest = _split_top(rest[1:])
        if word == "array":
            (element,) = parts
            return f"{duckdb_type(element)}[]", rest
        if word == "map":
            key, value = parts
            return f"MAP({duckdb_type(key)}, {duckdb_type(value)})", rest
        fields = []
        for part in parts:
            name, _, kind = part.partition(":")
            fields.append(f'"{name}" {duckdb_type(kind)}')
        return f"STRUCT({', '.join(fields)})", rest
    if word not in _SCALARS:
        raise ValueError(f"unknown type {word!r}")
    return _SCALARS[word], rest


#: Every Athena (Trino) versus DuckDB difference the local backend knows, run on each connection.
DUCKDB_SESSION: Final[tuple[str, ...]] = (
    # Athena's session time zone is UTC: current_date, dt and timestamp casts agree with it.
    "SET TimeZone = 'UTC'",
    # Trino: 7 / 2 = 3 for integers; DuckDB's '/' would give 3.5.
    "SET integer_division = true",
    # Trino sorts NULLs last in both directions.
    "SET default_null_order = 'nulls_last'",
    # Trino functions DuckDB spells differently.
    "CREATE MACRO regexp_like(s, p) AS regexp_matches(s, p)",
    "CREATE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)",
    "CREATE MACRO from_iso8601_date(s) AS CAST(s AS DATE)",
    "CREATE MACRO array_join(a, sep) AS array_to_string(a, sep)",
    "CREATE MACRO approx_distinct(x) AS approx_count_distinct(x)",
    # element_at(map, key): Trino returns the value (NULL if absent), DuckDB a list. Maps only;
    # for arrays write a[i] (both engines index from 1).
    "CREATE TEMP MACRO element_at(m, k) AS map_extract_value(m, k)",
)

_DT: Final = "strftime(CAST(evaluated_at AS TIMESTAMPTZ), '%Y-%m-%d')"


# -- run folders -----------------------------------------------------------------------------------


class RunSource(Protocol):
    """One run's report, wherever it is stored (a local folder, or S3 later)."""

    @property
    def run_id(self) -> str: ...

    def summary(self) -> dict[str, Any]: ...

    def findings(self) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class LocalRun:
    """A run folder written by ``tagwarden run``."""

    folder: Path
    document: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.document.get("run_id") or self.folder.name)

    @property
    def evaluated_at(self) -> str:
        return str(self.document.get("evaluated_at") or "")

    @property
    def findings_path(self) -> Path:
        return self.folder / "findings.jsonl"

    def summary(self) -> dict[str, Any]:
        return dict(self.document)

    def findings(self) -> Iterator[dict[str, Any]]:
        """The findings, one per line; a malformed line is an InvalidInput naming the file."""
        try:
            handle = self.findings_path.open(encoding="utf-8")
        except FileNotFoundError:
            return
        with handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    finding = json.loads(line)
                except ValueError as err:
                    raise InvalidInput(
                        [Problem(f"{self.findings_path}:{number}", f"not a JSON object: {err}")]
                    ) from None
                if not isinstance(finding, dict):
                    raise InvalidInput([Problem(f"{self.findings_path}:{number}", "not a JSON object")])
                yield finding


class LocalRuns:
    """The run folders under ``directory`` (the ``--out`` of ``tagwarden run``), oldest first.

    A folder counts when it holds a ``summary.json`` with a ``run_id`` (a failed execution
    leaves only its history and is skipped).

    >>> LocalRuns(Path("/nonexistent"))
    Traceback (most recent call last):
    ...
    workflow.errors.InvalidInput: --local: /nonexistent is not a directory
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise InvalidInput([Problem("--local", f"{self.directory} is not a directory")])
        runs = []
        for folder in sorted(p for p in self.directory.iterdir() if p.is_dir()):
            path = folder / "summary.json"
            if not path.is_file():
                continue
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as err:
                raise InvalidInput([Problem(str(path), f"not a run summary: {err}")]) from None
            if not isinstance(document, dict) or not isinstance(document.get("run_id"), str):
                raise InvalidInput([Problem(str(path), "not a run summary (no run_id)")])
            runs.append(LocalRun(folder, document))
        self.runs: list[LocalRun] = sorted(runs, key=lambda r: (r.evaluated_at, r.run_id))

    def require_some(self) -> None:
        if not self.runs:
            raise InvalidInput(
                [
                    Problem(
                        "--local",
                        f"no run folders in {self.directory} "
                        f"(run 'tagwarden run --out {self.directory}' first)",
                    )
                ]
            )

    def latest(self) -> LocalRun:
        """The run with the newest ``evaluated_at``."""
        self.require_some()
        return self.runs[-1]

    def get(self, run_id: str) -> LocalRun:
        """The run called ``run_id``; an unknown one is an InvalidInput listing the runs."""
        self.require_some()
        for run in self.runs:
            if run_id in (run.run_id, run.folder.name):
                return run
        known = ", ".join(r.run_id for r in self.runs[-10:])
        raise InvalidInput(
            [Problem("--run", f"no run {run_id!r} in {self.directory} (latest runs: {known})")]
        )

    def summaries(self) -> list[dict[str, Any]]:
        """Every run's summary, oldest first (dry runs too; the caller decides)."""
        return [r.summary() for r in self.runs]

    def for_athena(self) -> list[LocalRun]:
        """The runs Athena would see: dry runs never reach ``reports/``."""
        return [r for r in self.runs if not r.document.get("dry_run")]


# -- queries ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of one query."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    sql: str
    parameters: tuple[Any, ...] = ()
    query: NamedQuery | None = None


class QueryBackend(Protocol):
    """Something that runs Athena SQL with positional ``?`` parameters (DuckDB locally; Athena)."""

    def execute(self, sql: str, parameters: Sequence[Any]) -> QueryResult: ...


#: DuckDB's memory for one ``tagwarden query`` (its ``memory_limit``); ``--memory-limit`` changes it.
DEFAULT_MEMORY_LIMIT: Final = "2GB"
#: What DuckDB may spill to its private temporary folder beyond the memory limit.
TEMP_SPILL_LIMIT: Final = "4GB"
#: Wall time of one query before the connection is interrupted; ``--timeout`` changes it.
DEFAULT_TIMEOUT_SECONDS: Final = 120.0


class LocalDuckDB:
    """DuckDB tables ``findings`` and ``runs`` over local run folders, for Athena SQL.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     LocalDuckDB(Path(folder)).execute("SELECT 1", [])
    Traceback (most recent call last):
    ...
    workflow.errors.InvalidInput: --local: no run folders in ... (run 'tagwarden run --out ...' first)
    """

    def __init__(
        self,
        directory: Path,
        *,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.runs = LocalRuns(directory)
        self.memory_limit = memory_limit
        self.timeout_seconds = timeout_seconds
        self._connection: Any = None
        self._temp_dir: str | None = None

    def connection(self) -> Any:
        if self._connection is None:
            self.runs.require_some()
            self._connection = self._connect()
        return self._connection

    def _connect(self) -> Any:
        import duckdb

        # DuckDB may always write its temporary directory, even with external access off: make it
        # a private folder of this connection (removed in close), not <cwd>/.tmp.
        self._temp_dir = tempfile.mkdtemp(prefix="tagwarden-duckdb-")
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET temp_directory = ?", [self._temp_dir])
            con.execute(f"SET max_temp_directory_size = '{TEMP_SPILL_LIMIT}'")
            con.execute("SET memory_limit = ?", [self.memory_limit])
        except duckdb.Error as err:
            con.close()
            raise InvalidInput([Problem("--memory-limit", _first_line(err))]) from None
        for statement in DUCKDB_SESSION:
            con.execute(statement)
        runs = self.runs.for_athena()
        summaries = [str(r.folder / "summary.json") for r in runs]
        findings = [str(r.findings_path) for r in runs if r.findings_path.is_file()]
        actions = [str(r.folder / "actions.jsonl") for r in runs if (r.folder / "actions.jsonl").is_file()]
        try:
            self._load(con, "runs", RUNS_COLUMNS, summaries, "auto")
            self._load(con, "findings", FINDINGS_COLUMNS, findings, "newline_delimited")
            # An action's partition is its run's (the Remediate step writes under the run's dt).
            self._load(
                con,
                "actions",
                ACTIONS_COLUMNS,
                actions,
                "newline_delimited",
                dt='(SELECT r."dt" FROM "runs" r WHERE r."run" = src."run_id")',
            )
        except duckdb.Error as err:
            raise InvalidInput(
                [Problem("--local", f"cannot read the run folders: {_first_line(err)}")]
            ) from None
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    @staticmethod
    def _load(
        con: Any,
        table: str,
        columns: Sequence[tuple[str, str]],
        files: list[str],
        fmt: str,
        *,
        dt: str = _DT,
    ) -> None:
        types = {name: duckdb_type(kind) for name, kind in columns}
        names = ", ".join(f'"{name}"' for name, _ in columns)
        if not files:
            spec = ", ".join(f'"{name}" {kind}' for name, kind in types.items())
            con.execute(f'CREATE TABLE "{table}" ({spec}, "dt" VARCHAR, "run" VARCHAR)')
            return
        con.execute(
            f'CREATE TABLE "{table}" AS SELECT {names}, {dt} AS "dt", "run_id" AS "run" '  # noqa: S608
            f"FROM read_json(?, format = '{fmt}', columns = ?) AS src",
            [files, types],
        )

    def execute(self, sql: str, parameters: Sequence[Any]) -> QueryResult:
        import duckdb

        con = self.connection()
        # The time limit: interrupt the connection from a timer thread (DuckDB checks for it).
        timer = threading.Timer(self.timeout_seconds, con.interrupt)
        timer.daemon = True
        timer.start()
        try:
            cursor = con.execute(sql, list(parameters))
            columns = tuple(d[0] for d in cursor.description or ())
            rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        except duckdb.InterruptException:
            raise InvalidInput(
                [
                    Problem(
                        "query",
                        f"stopped after {self.timeout_seconds:g} s, the time limit of a query "
                        "(--timeout SECONDS to allow more)",
                    )
                ]
            ) from None
        except duckdb.OutOfMemoryException as err:
            raise InvalidInput(
                [
                    Problem(
                        "query",
                        f"needs more than the memory limit ({self.memory_limit}, --memory-limit) "
                        f"and {TEMP_SPILL_LIMIT} of spill: {_first_line(err)}",
                    )
                ]
            ) from None
        except duckdb.Error as err:
            raise InvalidInput([Problem("query", _first_line(err))]) from None
        finally:
            timer.cancel()
        return QueryResult(columns, rows, sql, tuple(parameters))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> LocalDuckDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]+$")


def resolve_query(name_or_sql: str) -> NamedQuery | None:
    """The named query called ``name_or_sql``, or None when it is SQL; an unknown name (one word,
    no spaces) is an InvalidInput listing the named queries.

    >>> resolve_query("noncompliant_by_rule").name, resolve_query("SELECT 1")
    ('noncompliant_by_rule', None)
    """
    text = name_or_sql.strip()
    if text in NAMED_QUERIES:
        return NAMED_QUERIES[text]
    if _NAME.match(text):
        raise InvalidInput(
            [Problem("query", f"no named query {text!r}; named queries: {', '.join(sorted(NAMED_QUERIES))}")]
        )
    if not text:
        raise InvalidInput([Problem("query", "give a named query or SQL")])
    return None


def parse_params(pairs: Sequence[str]) -> dict[str, int]:
    """``name=value`` pairs (``--param``) as integers, every problem at once.

    >>> parse_params(["days=7"])
    {'days': 7}
    >>> parse_params(["days=soon", "x"])
    Traceback (most recent call last):
    ...
    workflow.errors.InvalidInput: --param days: must be an integer, got 'soon'; --param: 'x' is not name=value
    """
    values: dict[str, int] = {}
    problems = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            problems.append(Problem("--param", f"{pair!r} is not name=value"))
            continue
        try:
            values[name] = int(value.strip())
        except ValueError:
            problems.append(Problem(f"--param {name}", f"must be an integer, got {value!r}"))
    if problems:
        raise InvalidInput(problems)
    return values


def run_named_query(
    name_or_sql: str, *, backend: QueryBackend, params: Mapping[str, int] | None = None
) -> QueryResult:
    """Run a named query (parameters bound, defaults filled in) or raw SQL on ``backend``.

    >>> class Echo:
    ...     def execute(self, sql, parameters):
    ...         return QueryResult(("p",), [tuple(parameters)], sql)
    >>> run_named_query("noncompliant_longer_than_days", backend=Echo(), params={"days": 7}).rows
    [(7,)]
    """
    query = resolve_query(name_or_sql)
    given = dict(params or {})
    if query is None:
        if given:
            raise InvalidInput([Problem("--param", "parameters apply to named queries only, not to raw SQL")])
        values: list[int] = []
    else:
        known = [p.name for p in query.parameters]
        unknown = sorted(set(given) - set(known))
        if unknown:
            allowed = ", ".join(known) if known else "none"
            raise InvalidInput(
                [
                    Problem(
                        "--param",
                        f"query {query.name!r} has no parameter {', '.join(unknown)} (parameters: {allowed})",
                    )
                ]
            )
        values = query.bind(given)
    result = backend.execute(query.sql if query else name_or_sql, values)
    return QueryResult(result.columns, result.rows, result.sql, result.parameters, query)
