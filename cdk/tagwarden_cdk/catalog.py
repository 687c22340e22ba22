"""The Glue tables over the report: columns, comments, where each lives and how it is stored.

Names and Hive types come from ``workflow.queries.schema`` (the tables the named queries read);
this module adds a comment per column, the S3 prefix and the compression. Columns are
``(name, type, comment)``. It imports nothing from ``tagwarden_cdk`` or aws-cdk-lib, so other code
(the local query engine's tests) can read it as ``cdk.tagwarden_cdk.catalog``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from workflow import layout
from workflow.queries import schema

Column = tuple[str, str, str]


def _commented(columns: tuple[tuple[str, str], ...]) -> tuple[Column, ...]:
    return tuple((name, kind, schema.COLUMN_COMMENTS[name]) for name, kind in columns)


FINDINGS_COLUMNS: Final = _commented(schema.FINDINGS_COLUMNS)
RUNS_COLUMNS: Final = _commented(schema.RUNS_COLUMNS)
ACTIONS_COLUMNS: Final = _commented(schema.ACTIONS_COLUMNS)
PARTITION_KEYS: Final = _commented(schema.PARTITION_KEYS)


@dataclass(frozen=True)
class TableSpec:
    name: str
    prefix: str  # under the report bucket, ends with '/'
    columns: tuple[Column, ...]
    compressed: bool
    description: str


FINDINGS_TABLE: Final = TableSpec(
    name="findings",
    prefix=layout.FINDINGS_PREFIX,
    columns=FINDINGS_COLUMNS,
    compressed=True,
    description="One row per evaluated instance per run (JSON Lines, gzip).",
)
RUNS_TABLE: Final = TableSpec(
    name="runs",
    prefix=layout.RUNS_PREFIX,
    columns=RUNS_COLUMNS,
    compressed=False,
    description="One row per run: the run summary (one JSON object per file).",
)
ACTIONS_TABLE: Final = TableSpec(
    name="actions",
    prefix=layout.ACTIONS_PREFIX,
    columns=ACTIONS_COLUMNS,
    compressed=True,
    description="One row per staged remediation action per run (JSON Lines, gzip): done, dry run, "
    "skipped or failed.",
)
TABLES: Final = (FINDINGS_TABLE, RUNS_TABLE, ACTIONS_TABLE)

__all__ = [
    "ACTIONS_COLUMNS",
    "ACTIONS_TABLE",
    "FINDINGS_COLUMNS",
    "FINDINGS_TABLE",
    "PARTITION_KEYS",
    "RUNS_COLUMNS",
    "RUNS_TABLE",
    "TABLES",
    "Column",
    "TableSpec",
]
