"""The named queries users get on day one: one ``.sql`` file each, one source for every engine.

The CDK app deploys each file as an Athena named query in the Tagwarden workgroup; a local run can
hand the same text to DuckDB. Conventions of the files:

* Tables are named ``findings`` and ``runs``, unqualified. Athena resolves them in the database the
  named query is saved with (the deployment's Glue database); locally, create tables or views with
  these names. Partition columns are ``dt`` (``YYYY-MM-DD``) and ``run`` (the run id), as strings.
* Parameters are positional ``?`` markers, so no value is ever pasted into SQL text: the Athena
  console asks for them when the saved query runs (``aws athena start-query-execution
  --execution-parameters``), DuckDB binds them with ``execute(sql, values)``. :meth:`NamedQuery.bind`
  orders values for them, defaults filled in.
* The header is SQL comments that the loader reads::

      -- title: Instances noncompliant for more than N days
      -- description: ...
      -- param: days (integer, default 30): report instances noncompliant for more than this many days

  one ``param`` line per ``?``, in the order the markers appear. Other comment lines are free text.
* Runs of the event workflow (``source = 'event'``) check the few resources some events named:
  the latest-run and trend queries read scheduled runs only (``coalesce(source, 'scheduled')``,
  since runs written before the column have none); the history queries read both.
* Dialect: what Trino (Athena engine 3) and DuckDB both run: ``CROSS JOIN UNNEST(a) AS t(x)``
  for an array of scalars, ``CROSS JOIN UNNEST(a) AS v`` then ``v.field`` for an array of structs
  (Trino makes one column per struct field, so ``AS t(v)`` fails there), ``max_by``,
  ``date_diff('day', a, b)``, ``CAST(x AS DATE)``, ``coalesce``/``nullif``, ``row_number()``
  windows. Any dialect-specific spot is called out in a comment in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Final

__all__ = [
    "NAMED_QUERIES",
    "NamedQuery",
    "QueryParameter",
    "count_placeholders",
    "load_named_queries",
    "parse_named_query",
]

_HEADER_LINE: Final = re.compile(r"^--\s*(title|description|param):\s*(.+?)\s*$")
_PARAM: Final = re.compile(
    r"^(?P<name>[a-z][a-z0-9_]*)\s*\(integer,\s*default\s+(?P<default>-?\d+)\)\s*:\s*(?P<description>.+)$"
)
_MAX_DESCRIPTION: Final = 1024  # Athena's limit for a named query's description


@dataclass(frozen=True)
class QueryParameter:
    """One ``?`` of a query: its name, its default and what it means (integers only, for now)."""

    name: str
    default: int
    description: str


@dataclass(frozen=True)
class NamedQuery:
    """A query file: ``name`` is the file's stem, ``sql`` the whole file text (header included)."""

    name: str
    title: str
    description: str
    sql: str
    parameters: tuple[QueryParameter, ...] = ()

    def bind(self, values: Mapping[str, int] | None = None) -> list[int]:
        """Values for the ``?`` markers, in order; a missing value takes its default.

        >>> NAMED_QUERIES["noncompliant_longer_than_days"].bind({"days": 7})
        [7]
        >>> NAMED_QUERIES["noncompliant_longer_than_days"].bind()
        [30]
        """
        given = dict(values or {})
        unknown = set(given) - {p.name for p in self.parameters}
        if unknown:
            raise KeyError(f"query {self.name!r} has no parameter {', '.join(sorted(unknown))}")
        bound: list[int] = []
        for parameter in self.parameters:
            value = given.get(parameter.name, parameter.default)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"parameter {parameter.name!r} of query {self.name!r} must be an integer")
            bound.append(value)
        return bound

    @property
    def full_description(self) -> str:
        """The description with the parameters spelled out (the Athena console shows no names)."""
        text = self.description
        if self.parameters:
            listed = "; ".join(
                f"{i}. {p.name} (default {p.default}): {p.description}"
                for i, p in enumerate(self.parameters, start=1)
            )
            text = f"{text} Parameters, in order: {listed}."
        return text[:_MAX_DESCRIPTION]


def count_placeholders(sql: str) -> int:
    """The ``?`` markers of ``sql``, not counting those in comments, strings or quoted names.

    >>> count_placeholders("SELECT '?' AS q, \\"a?\\" FROM t WHERE x > ? -- or ?\\n AND y = ?")
    2
    """
    count = 0
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c in "'\"":
            end = i + 1
            while end < n:
                if sql[end] == c:
                    if end + 1 < n and sql[end + 1] == c:  # doubled quote inside the literal
                        end += 2
                        continue
                    break
                end += 1
            i = end + 1
        else:
            if c == "?":
                count += 1
            i += 1
    return count


def parse_named_query(name: str, sql: str) -> NamedQuery:
    """Read the header of one query file; a malformed header or a parameter count mismatch raises."""
    fields: dict[str, str] = {}
    parameters: list[QueryParameter] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        match = _HEADER_LINE.match(stripped)
        if not match:
            continue
        key, value = match.groups()
        if key == "param":
            param = _PARAM.match(value)
            if not param:
                raise ValueError(
                    f"{name}.sql: malformed parameter {value!r}; "
                    "write 'name (integer, default N): description'"
                )
            parameters.append(
                QueryParameter(param["name"], int(param["default"]), param["description"].strip())
            )
        elif key in fields:
            raise ValueError(f"{name}.sql: {key!r} given twice")
        else:
            fields[key] = value
    for required in ("title", "description"):
        if required not in fields:
            raise ValueError(f"{name}.sql: the header has no '-- {required}:' line")
    markers = count_placeholders(sql)
    if markers != len(parameters):
        raise ValueError(f"{name}.sql: {markers} '?' markers but {len(parameters)} '-- param:' lines")
    if len({p.name for p in parameters}) != len(parameters):
        raise ValueError(f"{name}.sql: a parameter name is used twice")
    return NamedQuery(
        name=name,
        title=fields["title"],
        description=fields["description"],
        sql=sql,
        parameters=tuple(parameters),
    )


def load_named_queries() -> dict[str, NamedQuery]:
    """Every ``*.sql`` file of this package, by file stem, in name order."""
    package = resources.files(__name__)
    queries: dict[str, NamedQuery] = {}
    for entry in sorted(package.iterdir(), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith(".sql"):
            stem = entry.name.removesuffix(".sql")
            queries[stem] = parse_named_query(stem, entry.read_text(encoding="utf-8"))
    return queries


NAMED_QUERIES: Final[dict[str, NamedQuery]] = load_named_queries()
