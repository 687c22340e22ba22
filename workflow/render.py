"""Pure renderers for reports and query results: a table (rich), CSV, JSON and one HTML page.

Everything rendered here can come from an instance's tags, which anyone allowed to tag an
instance controls. So every output is safe for where it goes, and otherwise unchanged:

* **table** (a terminal): control, format and bidirectional characters (a newline, U+202E
  RIGHT-TO-LEFT OVERRIDE, ...) are shown as escapes such as ``\\u202e``; rich markup in a value is
  printed as text, never interpreted.
* **CSV**: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
  leading ``'`` so no spreadsheet evaluates it as a formula (OWASP "CSV injection").
* **JSON**: the same characters as in a table are written as ``\\uXXXX`` escapes, so a parser
  reads back exactly the original value and a terminal never applies them.
* **HTML**: every value is escaped (``html.escape``) and isolated (``<bdi>``) so an override
  cannot reorder the text around it; the page has no script and a Content Security Policy that
  forbids loading anything.

>>> neutralise_cell('=HYPERLINK("http://x","y")')
'\\'=HYPERLINK("http://x","y")'
>>> printable("evil\\u202eexe.txt")
'evil\\\\u202eexe.txt'
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from workflow.report import percentage_text, resource_type_rows, untagged_ebs_line
from workflow.verdict import coverage_lines

__all__ = [
    "UNOWNED",
    "account_rows",
    "group_by_account",
    "group_by_owner",
    "neutralise_cell",
    "printable",
    "report_csv",
    "report_html",
    "report_json",
    "report_table",
    "rows_csv",
    "rows_json",
    "rows_table",
    "terminal_line",
    "terminal_text",
    "to_json_text",
    "unscanned_targets",
]

UNOWNED: Final = "(no owner)"
UNKNOWN_ACCOUNT: Final = "(unknown account)"
FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
_NON_ASCII_OR_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\U0010ffff]")
_NON_ASCII: Final = re.compile(r"[\x80-\U0010ffff]")
_NAMED_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

REPORT_COLUMNS: Final = (
    "run_id",
    "evaluated_at",
    "account_id",
    "region",
    "instance_id",
    "name",
    "owner",
    "state",
    "instance_type",
    "launch_time",
    "compliant",
    "exempt",
    "in_grace_period",
    "violation_codes",
    "violations",
    "tags",
    # The EC2 family beyond instances (empty for instances): appended, so columns keep their place.
    "resource_type",
    "resource_id",
    "created_at",
    "size_gib",
    "volume_type",
    "attached_to",
    "volume_id",
    "interface_type",
)


# -- making values safe ----------------------------------------------------------------------------


def _unsafe(character: str) -> bool:
    return unicodedata.category(character) in _UNSAFE_CATEGORIES


def printable(text: str) -> str:
    """``text`` for a terminal: control, format (bidirectional, zero-width) and separator
    characters become visible escapes; everything else is unchanged.

    >>> printable("a\\nb\\u200bc é")
    'a\\\\nb\\\\u200bc é'
    """

    def escape(match: re.Match[str]) -> str:
        c = match.group()
        if not _unsafe(c):
            return c
        if c in _NAMED_ESCAPES:
            return _NAMED_ESCAPES[c]
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return _NON_ASCII_OR_CONTROL.sub(escape, text)


def neutralise_cell(text: str) -> str:
    """A CSV cell no spreadsheet evaluates: a leading ``'`` when it starts with a formula character,
    and when it starts with ``'`` itself (a spreadsheet hides one leading apostrophe, so the value
    shows as it is, and the cell reads back unambiguously: drop one ``'`` when another or a formula
    character follows).

    >>> neutralise_cell("-1+1"), neutralise_cell("@SUM(A1)"), neutralise_cell("ok=1"), neutralise_cell("'=")
    ("'-1+1", "'@SUM(A1)", 'ok=1', "''=")
    """
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) or text.startswith("'") else text


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def to_json_text(document: Any, *, indent: int | None = 2) -> str:
    """JSON text where format and bidirectional characters are ``\\uXXXX`` escapes (they can only
    occur inside strings, so the parsed value is exactly the original).

    >>> to_json_text({"v": "a\\u202eb"}, indent=None)
    '{"v": "a\\\\u202eb"}'
    >>> json.loads(to_json_text({"v": "a\\u202eb"}))["v"] == "a\\u202eb"
    True
    """
    text = json.dumps(document, ensure_ascii=False, indent=indent, default=_json_default)
    return _NON_ASCII.sub(lambda m: _json_escape(m.group()) if _unsafe(m.group()) else m.group(), text)


def _json_escape(character: str) -> str:
    code = ord(character)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))


# -- query results -----------------------------------------------------------------------------


def rows_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV (RFC 4180: CRLF line ends, so a carriage return or newline inside a value is always
    quoted) with a header row; nested values as compact JSON; formula cells neutralised.

    >>> rows_csv(["owner", "n"], [("=cmd|' /C calc'!A0", 2), (None, 1)]).splitlines()
    ['owner,n', "'=cmd|' /C calc'!A0,2", ',1']
    """
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise_cell(str(c)) for c in columns])
    for row in rows:
        writer.writerow([neutralise_cell(_cell_text(v)) for v in row])
    return out.getvalue()


def rows_json(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A JSON array with one object per row.

    >>> print(rows_json(["a"], [(1,)]), end="")
    [
      {
        "a": 1
      }
    ]
    """
    return to_json_text([dict(zip(columns, row, strict=False)) for row in rows]) + "\n"


def _console(width: int) -> Any:
    from rich.console import Console

    return Console(
        file=io.StringIO(),
        width=width,
        color_system=None,
        force_terminal=False,
        highlight=False,
        emoji=False,
        markup=False,
    )


def terminal_text(value: Any, *, style: str = "") -> Any:
    """The one path from data to a terminal: :func:`printable` escapes, then a ``rich`` ``Text``.

    Every CLI table cell, title and line that can hold data (tag keys and values, owner and
    account ids, policy names, reasons, paths) goes through here, so rich markup
    (``[link=...]``, ``[reverse blink]``) stays literal text and an escape sequence (``\x1b[2J``)
    is shown, never sent.

    >>> terminal_text("[link=https://evil.example]fix[/link]\x1b[2J").plain
    '[link=https://evil.example]fix[/link]\\\\x1b[2J'
    """
    from rich.text import Text

    return Text(printable(_cell_text(value)), style=style)


def terminal_line(value: Any) -> str:
    """A plain string for ``print`` (no rich): the same escaping as :func:`terminal_text`.

    >>> terminal_line("owner\x1b]8;;https://evil.example\x07")
    'owner\\\\x1b]8;;https://evil.example\\\\x07'
    """
    return printable(_cell_text(value))


_text = terminal_text


def rows_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None, width: int = 120
) -> str:
    """A text table (rich); values are printed as text, never as markup.

    >>> print(rows_table(["tag"], [("[red]x[/red]",)], width=30), end="")
    ┏━━━━━━━━━━━━━━┓
    ┃ tag          ┃
    ┡━━━━━━━━━━━━━━┩
    │ [red]x[/red] │
    └──────────────┘
    """
    from rich.table import Table

    table = Table(title=_text(title) if title else None, title_justify="left")
    materialised = [list(row) for row in rows]
    for index, column in enumerate(columns):
        numeric = bool(materialised) and all(
            isinstance(row[index], int | float | Decimal) and not isinstance(row[index], bool)
            for row in materialised
            if row[index] is not None
        )
        table.add_column(_text(column), justify="right" if numeric else "left", overflow="fold")
    for row in materialised:
        table.add_row(*(_text(v) for v in row))
    console = _console(width)
    console.print(table)
    if not materialised:
        console.print("(no rows)")
    return str(console.file.getvalue())


# -- reports -----------------------------------------------------------------------------------


def _owner(finding: Mapping[str, Any]) -> str:
    owner = finding.get("owner")
    return owner if isinstance(owner, str) and owner.strip() else UNOWNED


def group_by_owner(findings: Iterable[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """Noncompliant findings per owner, the owner with most first (then by name); an instance
    without an owner is under ``(no owner)``.

    >>> [(o, len(f)) for o, f in group_by_owner([{"owner": "b", "compliant": False, "instance_id": "i-1"},
    ...     {"owner": None, "compliant": False, "instance_id": "i-2"}, {"owner": "b", "compliant": True}])]
    [('(no owner)', 1), ('b', 1)]
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for finding in findings:
        if not finding.get("compliant"):
            groups.setdefault(_owner(finding), []).append(finding)
    for members in groups.values():
        members.sort(
            key=lambda f: (str(f.get("account_id")), str(f.get("region")), str(f.get("instance_id")))
        )
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))


def _account(finding: Mapping[str, Any]) -> str:
    account = finding.get("account_id")
    return str(account) if account else UNKNOWN_ACCOUNT


def group_by_account(
    findings: Iterable[Mapping[str, Any]],
) -> list[tuple[str, list[tuple[str, list[Mapping[str, Any]]]]]]:
    """Noncompliant findings per account, each account's split by owner as :func:`group_by_owner`
    does; the account with most first (then by id).

    >>> [(a, [(o, len(f)) for o, f in owners]) for a, owners in group_by_account([
    ...     {"account_id": "2", "owner": "b", "compliant": False},
    ...     {"account_id": "1", "owner": "b", "compliant": False},
    ...     {"account_id": "2", "owner": None, "compliant": False},
    ...     {"account_id": "1", "owner": "c", "compliant": True}])]
    [('2', [('(no owner)', 1), ('b', 1)]), ('1', [('b', 1)])]
    """
    accounts: dict[str, list[Mapping[str, Any]]] = {}
    for finding in findings:
        if not finding.get("compliant"):
            accounts.setdefault(_account(finding), []).append(finding)
    ordered = sorted(accounts.items(), key=lambda item: (-len(item[1]), item[0]))
    return [(account, group_by_owner(members)) for account, members in ordered]


def _accounts_in(findings: Sequence[Mapping[str, Any]]) -> int:
    return len({_account(f) for f in findings})


def account_rows(summary: Mapping[str, Any]) -> list[tuple[str, int, int, float]]:
    """``(account, instances, noncompliant, compliance %)`` per account of a run summary's
    ``by_account``, the most noncompliant first (then by id).

    >>> account_rows({"by_account": {"111": {"compliant": 3, "noncompliant": 1}, "222": {"compliant": 2}}})
    [('111', 4, 1, 75.0), ('222', 2, 0, 100.0)]
    """
    rows = []
    for account, outcomes in (summary.get("by_account") or {}).items():
        counts = outcomes if isinstance(outcomes, Mapping) else {}
        compliant, noncompliant = int(counts.get("compliant") or 0), int(counts.get("noncompliant") or 0)
        total = compliant + noncompliant
        # As SummaryBuilder.totals(): an account with nothing evaluated counts as fully compliant.
        percentage = 100.0 if total == 0 else round(100.0 * compliant / total, 2)
        rows.append((str(account), total, noncompliant, percentage))
    return sorted(rows, key=lambda row: (-row[2], row[0]))


def unscanned_targets(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``targets`` of a run summary that were not scanned (any status but ``ok``), by account
    then region; empty for a summary without ``targets``.

    >>> [t["region"] for t in unscanned_targets({"targets": [
    ...     {"account_id": "1", "region": "us-east-1", "status": "ok"},
    ...     {"account_id": "1", "region": "eu-west-1", "status": "error", "reason": "AccessDenied"}]})]
    ['eu-west-1']
    """
    targets = summary.get("targets")
    if not isinstance(targets, list | tuple):
        return []
    failed = [t for t in targets if isinstance(t, Mapping) and t.get("status") != "ok"]
    return sorted(failed, key=lambda t: (str(t.get("account_id") or ""), str(t.get("region") or "")))


def _targets_title(summary: Mapping[str, Any], failed: Sequence[Mapping[str, Any]]) -> str:
    counts = summary.get("target_counts")
    total = counts.get("total") if isinstance(counts, Mapping) else None
    if total is None:
        total = len(summary.get("targets") or [])
    return f"Targets not scanned ({len(failed)} of {total})"


def _violation_codes(finding: Mapping[str, Any]) -> str:
    return "; ".join(f"{v.get('key')}:{v.get('code')}" for v in finding.get("violations") or [])


def _violation_messages(finding: Mapping[str, Any]) -> str:
    return "; ".join(str(v.get("message", "")) for v in finding.get("violations") or [])


def _report_row(finding: Mapping[str, Any]) -> list[Any]:
    values = {
        **{column: finding.get(column) for column in REPORT_COLUMNS},
        "violation_codes": _violation_codes(finding),
        "violations": _violation_messages(finding),
        "tags": finding.get("tags") or {},
    }
    return [values[column] for column in REPORT_COLUMNS]


def report_csv(findings: Iterable[Mapping[str, Any]]) -> str:
    """Every finding of a run, one row each (tags as a JSON object), formula cells neutralised;
    grouped by account (accounts in order, the run's order within each).

    >>> text = report_csv([{"instance_id": "i-1", "owner": "=HYPERLINK(\\"http://x\\")", "compliant": False,
    ...                     "violations": [{"key": "Owner", "code": "pattern_mismatch", "message": "m"}]}])
    >>> text.splitlines()[1]
    ',,,,i-1,,"\\'=HYPERLINK(""http://x"")",,,,false,,,Owner:pattern_mismatch,m,{},,,,,,,,'
    """
    # A stable sort: a single-account report keeps the run's order (regions as scanned).
    ordered = sorted(findings, key=_account)
    return rows_csv(REPORT_COLUMNS, (_report_row(f) for f in ordered))


def report_json(summary: Mapping[str, Any], findings: Iterable[Mapping[str, Any]]) -> str:
    """``{"run_id", "summary", "findings"}`` as JSON text.

    >>> json.loads(report_json({"run_id": "r1"}, []))["run_id"]
    'r1'
    """
    return (
        to_json_text({"run_id": summary.get("run_id"), "summary": summary, "findings": list(findings)}) + "\n"
    )


def _totals_rows(summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    totals = summary.get("totals") or {}
    return [
        ("evaluated", totals.get("total")),
        ("compliant", totals.get("compliant")),
        ("noncompliant", totals.get("noncompliant")),
        ("exempt", totals.get("exempt")),
        ("in grace period", totals.get("in_grace_period")),
        ("compliance", percentage_text(totals)),
    ]


def _run_line(summary: Mapping[str, Any]) -> str:
    policy = summary.get("policy") or {}
    flags = [
        label for key, label in (("dry_run", "dry run"), ("partial", "partial scan")) if summary.get(key)
    ]
    extra = f" ({', '.join(flags)})" if flags else ""
    return (
        f"Run {summary.get('run_id')}{extra}, evaluated {summary.get('evaluated_at')}, "
        f"policy {policy.get('name')!s} (sha256 {str(policy.get('sha256', ''))[:12]})"
    )


def report_table(
    summary: Mapping[str, Any], findings: Iterable[Mapping[str, Any]], *, width: int = 120
) -> str:
    """Totals, targets not scanned, violations by rule, account (several only) and region, then the
    noncompliant instances by owner, within each account when there are several.

    >>> text = report_table({"run_id": "r1", "totals": {"total": 1, "noncompliant": 1}},
    ...                     [{"instance_id": "i-1", "owner": "ana", "compliant": False, "violations": []}])
    >>> "Run r1" in text and "ana (1 noncompliant)" in text and "By account" not in text
    True
    """
    findings = list(findings)
    parts = [printable(_run_line(summary)) + "\n"]
    failed = unscanned_targets(summary)
    if failed:
        target_rows = [(t.get("account_id"), t.get("region"), t.get("reason")) for t in failed]
        parts.append(
            rows_table(
                ["account", "region", "reason"],
                target_rows,
                title=_targets_title(summary, failed),
                width=width,
            )
        )
    parts.append(rows_table(["instances", "count"], _totals_rows(summary), title="Totals", width=width))
    types = resource_type_rows(summary)
    if types:
        parts.append(
            rows_table(
                ["resource type", "compliant", "noncompliant"], types, title="By resource type", width=width
            )
        )
        parts.append(printable(untagged_ebs_line(summary)) + "\n")
    parts += [printable(line) + "\n" for line in coverage_lines(summary)]
    by_rule = summary.get("by_rule") or {}
    if by_rule:
        rule_rows = list(by_rule.items())
        parts.append(
            rows_table(["tag:code", "instances"], rule_rows, title="Violations by rule", width=width)
        )
    accounts = account_rows(summary)
    if len(accounts) > 1:  # one account: the totals are its row
        parts.append(
            rows_table(
                ["account", "instances", "noncompliant", "compliance %"],
                accounts,
                title="By account",
                width=width,
            )
        )
    by_region = summary.get("by_region") or {}
    if by_region:
        region_rows = [(r, c.get("compliant", 0), c.get("noncompliant", 0)) for r, c in by_region.items()]
        parts.append(
            rows_table(["region", "compliant", "noncompliant"], region_rows, title="By region", width=width)
        )
    if _accounts_in(findings) > 1:
        for account, owners in group_by_account(findings):
            count = sum(len(members) for _, members in owners)
            parts.append(printable(f"Account {account}: {count} noncompliant") + "\n")
            parts.extend(_owner_tables(owners, width))
    else:
        parts.extend(_owner_tables(group_by_owner(findings), width))
    return "".join(parts)


def _resource(finding: Mapping[str, Any]) -> Any:
    """An instance by its id; another resource by its type and id (``volume vol-0a...``)."""
    kind = finding.get("resource_type") or "instance"
    if kind == "instance":
        return finding.get("instance_id") or finding.get("resource_id")
    return f"{kind} {finding.get('resource_id')}"


def _resource_heading(findings: Sequence[Mapping[str, Any]]) -> str:
    return (
        "instance"
        if all((f.get("resource_type") or "instance") == "instance" for f in findings)
        else "resource"
    )


def _owner_tables(owners: Sequence[tuple[str, list[Mapping[str, Any]]]], width: int) -> list[str]:
    tables = []
    for owner, members in owners:
        owner_rows = [
            (_resource(f), f.get("name"), f.get("account_id"), f.get("region"), _violation_codes(f))
            for f in members
        ]
        tables.append(
            rows_table(
                [_resource_heading(members), "name", "account", "region", "violations"],
                owner_rows,
                title=f"{owner} ({len(members)} noncompliant)",
                width=width,
            )
        )
    return tables


# -- HTML ------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(_cell_text(value), quote=True)


def _bdi(value: Any) -> str:
    """A value from the data, isolated for bidirectional text; its whitespace stays as it is
    (``" alice@corp.com "`` and the key ``"Environment "`` are not what they look like once HTML
    collapses them), and an edge space is outlined so the eye catches it."""
    text = _cell_text(value)
    if text != text.strip():
        return f'<bdi class="ws" title="leading or trailing whitespace">{_e(value)}</bdi>'
    return f"<bdi>{_e(value)}</bdi>"


#: No script, nothing loaded from anywhere: the page is data, not an application.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
)

_CSS: Final = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; margin: 24px;
       color: #0f172a; background: #f8fafc; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
h3 { font-size: 14px; margin: 20px 0 6px; } h4 { font-size: 13px; margin: 14px 0 6px; }
.warning { background: #fef2f2; border: 1px solid #fecaca; color: #991b1b; border-radius: 8px;
           padding: 8px 12px; display: inline-block; }
.meta { color: #475569; margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px 16px;
        min-width: 110px; }
.card .value { font-size: 22px; font-weight: 700; font-variant-numeric: tabular-nums; }
.card .label { color: #64748b; font-size: 12px; }
.bad .value { color: #b91c1c; } .good .value { color: #15803d; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid #e2e8f0; padding: 4px 8px; text-align: left; vertical-align: top;
         unicode-bidi: isolate; }
th { background: #f1f5f9; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
ul.violations { margin: 0; padding-left: 16px; }
.chart { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 8px;
         display: inline-block; }
.small { color: #64748b; font-size: 12px; }
code { font-size: 12px; }
bdi { white-space: pre-wrap; }
bdi.ws { outline: 1px dashed #b45309; background: #fffbeb; }
"""


def _trend_svg(history: Sequence[Mapping[str, Any]]) -> str:
    """Compliance percentage per run (oldest left), with noncompliant counts as bars."""
    width, height, left, right, top, bottom = 760.0, 260.0, 48.0, 48.0, 16.0, 56.0
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(history)
    totals = [(s.get("totals") or {}) for s in history]
    # A run that evaluated nothing has no percentage: a gap in the line and a hollow point, never 0% or 100%.
    percentages: list[float | None] = [
        None if t.get("compliance_percentage") is None else float(t["compliance_percentage"]) for t in totals
    ]
    noncompliant = [int(t.get("noncompliant") or 0) for t in totals]
    most = max(max(noncompliant, default=0), 1)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(percent: float) -> float:
        return top + plot_h * (1 - percent / 100.0)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" font-size="11" font-family="system-ui, sans-serif" '
        'role="img" aria-label="compliance trend">'
    ]
    for grid in (0, 25, 50, 75, 100):
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(grid):.1f}" y2="{y(grid):.1f}" '
            'stroke="#e2e8f0"/>'
            f'<text x="{left - 6}" y="{y(grid) + 4:.1f}" text-anchor="end" fill="#64748b">'
            f"{grid}%</text>"
        )
    bar = min(28.0, plot_w / n * 0.5)
    for i, count in enumerate(noncompliant):
        bar_h = plot_h * count / most * 0.9
        out.append(
            f'<rect class="noncompliant-bar" x="{x(i) - bar / 2:.1f}" y="{top + plot_h - bar_h:.1f}" '
            f'width="{bar:.1f}" height="{bar_h:.1f}" fill="#fecaca">'
            f"<title>{_e(history[i].get('run_id'))}: {count} noncompliant</title></rect>"
        )
    segments: list[list[str]] = [[]]
    for i, percent in enumerate(percentages):
        if percent is None:
            segments.append([])
        else:
            segments[-1].append(f"{x(i):.1f},{y(percent):.1f}")
    for segment in segments:
        if segment:
            out.append(
                f'<polyline points="{" ".join(segment)}" fill="none" stroke="#15803d" stroke-width="2.2"/>'
            )
    for i, percent in enumerate(percentages):
        run = history[i]
        if percent is None:
            out.append(
                f'<circle class="point nothing-evaluated" cx="{x(i):.1f}" cy="{y(0):.1f}" r="4" '
                'fill="#ffffff" stroke="#b91c1c" stroke-width="2">'
                f"<title>{_e(run.get('run_id'))} ({_e(run.get('evaluated_at'))}): nothing evaluated"
                "</title></circle>"
            )
            continue
        out.append(
            f'<circle class="point" cx="{x(i):.1f}" cy="{y(percent):.1f}" r="4" fill="#15803d">'
            f"<title>{_e(run.get('run_id'))} ({_e(run.get('evaluated_at'))}): {percent}% compliant, "
            f"{noncompliant[i]} noncompliant</title></circle>"
        )
    step = max(1, math.ceil(n / 8))
    for i in range(0, n, step):
        label = str(history[i].get("evaluated_at") or "")[:16].replace("T", " ")
        out.append(
            f'<text x="{x(i):.1f}" y="{height - bottom + 16:.1f}" text-anchor="middle" fill="#475569">'
            f"{_e(label)}</text>"
        )
    out.append(
        f'<text x="{left}" y="{height - 8}" fill="#475569">line: compliance % · bars: noncompliant '
        f"instances (tallest = {most})</text>"
    )
    out.append("</svg>")
    return "".join(out)


def _card(label: str, value: Any, tone: str = "") -> str:
    return (
        f'<div class="card {tone}"><div class="value">{_e(value)}</div>'
        f'<div class="label">{_e(label)}</div></div>'
    )


def report_html(
    summary: Mapping[str, Any],
    findings: Iterable[Mapping[str, Any]],
    *,
    history: Sequence[Mapping[str, Any]] = (),
) -> str:
    """One self-contained page: totals, a compliance trend (inline SVG) when ``history`` holds
    several runs' summaries, targets not scanned, violations by rule, account (several only) and
    region, and the noncompliant instances by owner, within each account when there are several.

    >>> page = report_html({"run_id": "<r>", "totals": {"total": 1}}, [])
    >>> "&lt;r&gt;" in page and "<r>" not in page and "<script" not in page
    True
    """
    findings = list(findings)
    totals = summary.get("totals") or {}
    noncompliant = int(totals.get("noncompliant") or 0)
    cards = "".join(
        [
            _card("evaluated", totals.get("total")),
            _card("compliant", totals.get("compliant"), "good"),
            _card("noncompliant", noncompliant, "bad" if noncompliant else "good"),
            _card("exempt", totals.get("exempt")),
            _card("in grace period", totals.get("in_grace_period")),
            _card("compliance", percentage_text(totals), "" if totals.get("total") else "bad"),
        ]
    )
    trend = ""
    if len(history) >= 2:
        trend = (
            f'<h2>Compliance trend ({len(history)} runs)</h2><div class="chart">{_trend_svg(history)}</div>'
        )
    by_rule = summary.get("by_rule") or {}
    rules = ""
    if by_rule:
        rows = "".join(
            f'<tr><td>{_bdi(rule)}</td><td class="num">{_e(n)}</td></tr>' for rule, n in by_rule.items()
        )
        rules = (
            f"<h2>Violations by rule</h2><table><tr><th>tag:code</th><th>instances</th></tr>{rows}</table>"
        )
    by_region = summary.get("by_region") or {}
    regions = ""
    if by_region:
        rows = "".join(
            f'<tr><td>{_bdi(region)}</td><td class="num">{_e(c.get("compliant", 0))}</td>'
            f'<td class="num">{_e(c.get("noncompliant", 0))}</td></tr>'
            for region, c in by_region.items()
        )
        regions = (
            "<h2>By region</h2><table><tr><th>region</th><th>compliant</th><th>noncompliant</th></tr>"
            f"{rows}</table>"
        )
    accounts = account_rows(summary)
    accounts_html = ""
    if len(accounts) > 1:  # one account: the cards are its row
        rows = "".join(
            f'<tr><td>{_bdi(account)}</td><td class="num">{_e(instances)}</td>'
            f'<td class="num">{_e(bad)}</td><td class="num">{_e(percentage)}%</td></tr>'
            for account, instances, bad, percentage in accounts
        )
        accounts_html = (
            '<h2>By account</h2><table class="accounts"><tr><th>account</th><th>instances</th>'
            f"<th>noncompliant</th><th>compliance</th></tr>{rows}</table>"
        )
    partial_html = ""
    if summary.get("partial"):
        partial_html = (
            '<p class="warning partial">Partial scan: some accounts or regions were not scanned; '
            "the figures cover only those that were.</p>"
        )
    failed = unscanned_targets(summary)
    if failed:
        rows = "".join(
            f"<tr><td>{_bdi(t.get('account_id'))}</td><td>{_bdi(t.get('region'))}</td>"
            f"<td>{_bdi(t.get('reason'))}</td></tr>"
            for t in failed
        )
        partial_html += (
            f"<h2>{_e(_targets_title(summary, failed))}</h2>"
            f'<table class="targets"><tr><th>account</th><th>region</th><th>reason</th></tr>{rows}</table>'
        )
    coverage = coverage_lines(summary)
    if coverage:
        partial_html += (
            '<div class="coverage">' + "".join(f"<p>{_bdi(line)}</p>" for line in coverage) + "</div>"
        )
    types = resource_type_rows(summary)
    if types:
        rows = "".join(
            f'<tr><td>{_bdi(t)}</td><td class="num">{_e(good)}</td><td class="num">{_e(bad)}</td></tr>'
            for t, good, bad in types
        )
        partial_html += (
            '<h2>By resource type</h2><table class="types"><tr><th>resource type</th><th>compliant</th>'
            f'<th>noncompliant</th></tr>{rows}</table><p class="ebs">{_bdi(untagged_ebs_line(summary))}</p>'
        )
    drift = summary.get("drift") or {}
    drift_html = ""
    if drift.get("previous_run_id"):
        new = drift.get("newly_noncompliant") or []
        fixed = drift.get("newly_compliant") or []
        drift_html = (
            f"<h2>Since run {_bdi(drift.get('previous_run_id'))}</h2>"
            f"<p>newly noncompliant: {len(new)} {', '.join(_bdi(i) for i in new[:50])}</p>"
            f"<p>newly compliant: {len(fixed)} {', '.join(_bdi(i) for i in fixed[:50])}</p>"
        )
    if _accounts_in(findings) > 1:
        sections = [
            f'<div class="account" data-account="{_e(account)}"><h3>Account {_bdi(account)} '
            f'<span class="small">({sum(len(m) for _, m in owners)} noncompliant)</span></h3>'
            f"{''.join(_owner_sections(owners, 'h4'))}</div>"
            for account, owners in group_by_account(findings)
        ]
        heading = "Noncompliant instances by account and owner"
    else:
        sections = _owner_sections(group_by_owner(findings), "h3")
        heading = "Noncompliant instances by owner"
    noncompliant_html = (
        f"<h2>{heading}</h2>" + "".join(sections)
        if sections
        else "<h2>Noncompliant instances</h2><p>None: every evaluated instance is compliant.</p>"
    )
    title = f"Tagwarden report {_cell_text(summary.get('run_id'))}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{_bdi(title)}</h1><p class="meta">{_bdi(_run_line(summary))}</p>'
        f'{partial_html}<div class="cards">{cards}</div>{trend}{rules}{accounts_html}{regions}{drift_html}'
        f"{noncompliant_html}"
        "</body></html>\n"
    )


def _owner_sections(owners: Sequence[tuple[str, list[Mapping[str, Any]]]], heading: str) -> list[str]:
    sections = []
    for owner, members in owners:
        instance_rows = []
        for f in members:
            violations = "".join(
                f"<li><code>{_bdi(v.get('key'))}:{_e(v.get('code'))}</code> {_bdi(v.get('message', ''))}</li>"
                for v in f.get("violations") or []
            )
            resource_id = f.get("resource_id") or f.get("instance_id")
            kind = f.get("instance_type") or f.get("volume_type")
            instance_rows.append(
                f'<tr data-instance="{_e(resource_id)}"><td>{_bdi(_resource(f))}</td>'
                f"<td>{_bdi(f.get('name'))}</td><td>{_bdi(f.get('account_id'))}</td><td>{_bdi(f.get('region'))}</td>"
                f"<td>{_bdi(f.get('state'))}</td><td>{_bdi(kind)}</td>"
                f'<td><ul class="violations">{violations}</ul></td></tr>'
            )
        sections.append(
            f'<section class="owner" data-owner="{_e(owner)}"><{heading}>{_bdi(owner)} '
            f'<span class="small">({len(members)} noncompliant)</span></{heading}>'
            f"<table><tr><th>{_resource_heading(members)}</th><th>name</th><th>account</th><th>region</th><th>state</th>"
            f"<th>type</th><th>violations</th></tr>{''.join(instance_rows)}</table></section>"
        )
    return sections
