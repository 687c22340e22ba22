"""Every CLI table reaches the terminal through one escaping path (workflow.render.terminal_text).

A tag key, a tag value or an owner can be set by anyone who can tag an instance. On a real
terminal (rich with colours forced, as on a TTY) no such string may produce a hyperlink (OSC 8),
a style of its own ([reverse blink]) or a raw escape sequence (``\\x1b[2J``): the property runs
every table of the CLI over arbitrary strings and checks what reached the terminal.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow import cli_stack_ops, local_run
from workflow.progress import ExecutionProgress
from workflow.render import printable, report_table, rows_table, terminal_text

HOSTILE = [
    "tmp[link=https://evil.example/steal]Click here to fix[/link]",
    "[reverse blink]owner[/reverse blink]",
    "\x1b[2J\x1b[H",
    "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07",
    "a\u202egnp.exe",
    "[bold",
    "\\[escaped]",
]
# The escapes our own output may use: SGR (styles and colours) in tables; hiding the cursor,
# erasing a line and moving up one for the progress spinner. Data never produces an ESC at all.
_SGR = re.compile(r"\x1b\[[0-9;]*m")
_OWN_CONTROLS = re.compile(r"\x1b\[(?:\?25[lh]|2K|1A)")
# Styles an attacker would want and no table of ours uses.
_FORBIDDEN_SGR = {"5", "6", "7", "8"}  # blink, rapid blink, reverse, conceal


@contextmanager
def real_terminal() -> Iterator[io.StringIO]:
    """stdout captured, with rich rendering as on a colour terminal (FORCE_COLOR)."""
    previous = os.environ.get("FORCE_COLOR")
    os.environ["FORCE_COLOR"] = "1"
    buffer = io.StringIO()
    try:
        with redirect_stdout(buffer):
            yield buffer
    finally:
        if previous is None:
            del os.environ["FORCE_COLOR"]
        else:
            os.environ["FORCE_COLOR"] = previous


def assert_inert(output: str, data: str) -> None:
    """Nothing in ``output`` came from ``data`` as terminal control."""
    assert "\x1b]" not in output, "an OSC sequence (hyperlink, title) reached the terminal"
    for sequence in _SGR.findall(output):
        codes = set(sequence[2:-1].split(";"))
        assert not codes & _FORBIDDEN_SGR, f"style {sequence!r} reached the terminal"
    rest = _OWN_CONTROLS.sub("", _SGR.sub("", output))
    assert "\x1b" not in rest, "a raw escape sequence reached the terminal"
    assert not [c for c in rest if (ord(c) < 0x20 and c not in "\n\r") or c == "\x7f"]
    if data.strip() and len(data) < 30 and "\n" not in data:
        # Short data survives whole (as escaped text), so it was printed, not interpreted.
        assert printable(data) in rest.replace("\n", "") or _folded(printable(data), rest)


def _folded(text: str, output: str) -> bool:
    """``text`` printed in a table cell, possibly folded over lines: its characters in order."""
    flat = re.sub(r"[\s│┃|]", "", output)
    return re.sub(r"\s", "", text) in flat


def summary_with(data: str) -> dict[str, Any]:
    return {
        "run_id": "r1",
        "evaluated_at": "2026-12-01T00:00:00+00:00",
        "policy": {"name": data, "sha256": "0" * 64},
        "totals": {
            "total": 1,
            "compliant": 0,
            "noncompliant": 1,
            "exempt": 0,
            "in_grace_period": 0,
            "compliance_percentage": 0.0,
        },
        "by_rule": {f"{data}:prohibited_key": 1},
        "by_region": {data: {"compliant": 0, "noncompliant": 1}},
        "by_account": {data: {"compliant": 0, "noncompliant": 1}, "111122223333": {"compliant": 1}},
        "targets": [{"account_id": data, "region": "us-east-1", "status": "failed", "reason": data}],
        "partial": True,
    }


def finding_with(data: str) -> dict[str, Any]:
    return {
        "instance_id": "i-1",
        "owner": data,
        "account_id": data,
        "region": "us-east-1",
        "name": data,
        "compliant": False,
        "tags": {data: data},
        "violations": [{"code": "prohibited_key", "key": data, "message": data}],
    }


def run_summary_table(data: str) -> None:
    local_run._print_summary(summary_with(data), Path("out") / "r1")


def report_table_printed(data: str) -> None:
    print(report_table(summary_with(data), [finding_with(data)], width=200), end="")


def query_table_printed(data: str) -> None:
    print(rows_table(["owner", "n"], [(data, 1)], title=data, width=200), end="")


def operations_table(data: str) -> None:
    original = cli_stack_ops._is_terminal
    cli_stack_ops._is_terminal = lambda: True
    try:
        cli_stack_ops._table(data, ["account", "reason"], [(data, data)])
        cli_stack_ops._fields([("reason", data)])
    finally:
        cli_stack_ops._is_terminal = original


def operations_plain(data: str) -> None:
    original = cli_stack_ops._is_terminal
    cli_stack_ops._is_terminal = lambda: False
    try:
        cli_stack_ops._table(data, ["account", "reason"], [(data, data)])
    finally:
        cli_stack_ops._is_terminal = original


def progress_lines(data: str) -> None:
    import sys
    from datetime import datetime

    progress = ExecutionProgress(stream=sys.stdout)
    progress({"id": 1, "type": "TaskStateEntered", "stateEnteredEventDetails": {"name": data}})
    progress(
        {
            "id": 2,
            "type": "TaskStateExited",
            "timestamp": datetime(2026, 1, 1),
            "stateExitedEventDetails": {"name": data},
        }
    )
    progress.close()


TABLES: dict[str, Callable[[str], None]] = {
    "run summary": run_summary_table,
    "report": report_table_printed,
    "query": query_table_printed,
    "operations (terminal)": operations_table,
    "operations (plain)": operations_plain,
    "progress": progress_lines,
}


@pytest.mark.parametrize("table", TABLES, ids=list(TABLES))
@pytest.mark.parametrize("data", HOSTILE)
def test_hostile_strings_are_printed_as_text_by_every_cli_table(table: str, data: str) -> None:
    with real_terminal() as terminal:
        TABLES[table](data)
    output = terminal.getvalue()
    assert_inert(output, data)
    if table == "run summary" and data.startswith("tmp[link="):
        assert "[link=https://evil.example/steal]" in output  # shown, not followed


@pytest.mark.parametrize("table", TABLES, ids=list(TABLES))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.text(max_size=40)
    | st.sampled_from(HOSTILE).flatmap(lambda h: st.just(h) | st.text().map(lambda t: h + t))
)
def test_any_string_is_inert_in_every_cli_table(table: str, data: str) -> None:
    with real_terminal() as terminal:
        TABLES[table](data)
    assert_inert(terminal.getvalue(), data)


def test_terminal_text_is_never_markup() -> None:
    text = terminal_text("[link=https://evil.example]x[/link]")
    assert text.plain == "[link=https://evil.example]x[/link]"
    assert not text.spans
