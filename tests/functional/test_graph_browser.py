"""The graph page in a real browser: headless Chromium renders it, and its DOM is checked.

Needs the Debian package `chromium` (`/usr/bin/chromium`); without it every test here is skipped.
`TAGWARDEN_UPDATE_DOCS_IMAGES=1` also writes the screenshot of a real execution (a throttled,
retried region and a caught partition registration failure) to `docs/images/graph.png`.
"""

from __future__ import annotations

import os
import struct
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from workflow.engine.local import DATABASE, LocalDeployment
from workflow.fleet import demo_fleet, iter_fleet_document
from workflow.graph import graph_model, to_html, write_run_graph

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "graph.png"
SCRIPT_NAME = "<script>alert(1)</script>"
IMG_NAME = "<img src=x onerror=alert(2)>"
OTHER_NAMES = ['say "hi" & bye', "evil\u202eexe.txt", '=HYPERLINK("http://evil.example")']

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package chromium)"
)


def chromium(tmp_path: Path, page: Path, *extra: str, size: str = "1400,1000") -> str:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    completed = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={size}",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class Dom(HTMLParser):
    """Elements of the rendered DOM: node groups with their data attributes, and all text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.nodes: dict[str, str] = {}
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "g" and (values.get("class") or "").startswith("node "):
            self.nodes[values.get("data-state") or ""] = values.get("data-outcome") or ""

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def hostile_machine() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Four Pass states with hostile names and a Fail whose cause quotes a hostile tag; the
    execution went through all of them."""
    names = [SCRIPT_NAME, IMG_NAME, *OTHER_NAMES]
    states: dict[str, Any] = {
        name: {"Type": "Pass", "Next": names[i + 1] if i + 1 < len(names) else "Failed <b>here</b>"}
        for i, name in enumerate(names)
    }
    states["Failed <b>here</b>"] = {"Type": "Fail"}
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    events: list[dict[str, Any]] = [
        {"id": 1, "previousEventId": 0, "type": "ExecutionStarted", "timestamp": t0.isoformat()}
    ]

    def add(kind: str, seconds: float, **details: Any) -> None:
        events.append(
            {
                "id": len(events) + 1,
                "previousEventId": len(events),
                "type": kind,
                "timestamp": (t0 + timedelta(seconds=seconds)).isoformat(),
                **details,
            }
        )

    for i, name in enumerate(names):
        add("PassStateEntered", i, stateEnteredEventDetails={"name": name})
        add("PassStateExited", i + 0.5, stateExitedEventDetails={"name": name})
    add("FailStateEntered", 9, stateEnteredEventDetails={"name": "Failed <b>here</b>"})
    add(
        "ExecutionFailed",
        9,
        executionFailedEventDetails={"error": "<i>Boom</i>", "cause": f"tag Owner={IMG_NAME} {SCRIPT_NAME}"},
    )
    return {"StartAt": names[0], "States": states}, events


def test_hostile_state_names_and_causes_render_as_text_never_as_elements(tmp_path: Path) -> None:
    definition, history = hostile_machine()
    page = tmp_path / "graph.html"
    page.write_text(to_html(graph_model(definition, history), title=SCRIPT_NAME), encoding="utf-8")
    dom = Dom(chromium(tmp_path, page, "--dump-dom"))
    assert {"script", "img", "b", "i", "iframe"}.isdisjoint(dom.tags)
    assert dom.tags.count("svg") >= 2 and "table" in dom.tags
    assert dom.nodes == {
        **dict.fromkeys((SCRIPT_NAME, IMG_NAME, *OTHER_NAMES), "succeeded"),
        "Failed <b>here</b>": "failed",
    }
    text = "".join(dom.text)
    for name in (SCRIPT_NAME, IMG_NAME, *OTHER_NAMES, "Failed <b>here</b>", "<i>Boom</i>"):
        assert name in text
    assert f"tag Owner={IMG_NAME} {SCRIPT_NAME}" in text


def test_a_real_execution_with_a_retry_and_a_caught_failure_is_coloured_and_screenshotted(
    local: LocalDeployment, tmp_path: Path
) -> None:
    local.fleet.replace(list(iter_fleet_document(demo_fleet(instances_per_region=5))))
    local.fleet.throttle("us-east-1", 2)
    # Register partitions fails (its table is gone); its Catch goes on.
    local.engine.client("glue").delete_table(DatabaseName=DATABASE, Name="runs")
    result = local.run({"notify": "always"}, name="graph-retry-and-catch")
    assert result.status == "SUCCEEDED", result.cause
    run_dir = tmp_path / "graph-retry-and-catch"
    run_dir.mkdir()
    page = write_run_graph(run_dir, result.history)

    dom = Dom(chromium(tmp_path, page, "--dump-dom"))
    assert dom.nodes["List EC2 instances"] == "retried"
    assert dom.nodes["Register partitions"] == "caught"
    assert dom.nodes["Partitions not registered"] == "succeeded"
    assert dom.nodes["Scan complete"] == "succeeded"
    assert dom.nodes["Scan failed permanently"] == "not_run"
    assert "script" not in dom.tags

    screenshot = tmp_path / "graph.png"
    chromium(tmp_path, page, f"--screenshot={screenshot}")
    assert png_size(screenshot) == (1400, 1000)
    assert screenshot.stat().st_size > 40_000  # a drawn diagram, not a blank page

    if os.environ.get("TAGWARDEN_UPDATE_DOCS_IMAGES"):
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        chromium(tmp_path, page, f"--screenshot={DOCS_IMAGE}", size="1400,2000")
        assert png_size(DOCS_IMAGE) == (1400, 2000)
