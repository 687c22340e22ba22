"""The graph page in a real browser: headless Chromium renders it, and its DOM is checked.

Needs the Debian package `chromium` (`/usr/bin/chromium`); without it every test here is skipped.
`TAGWARDEN_UPDATE_DOCS_IMAGES=1` also writes the screenshot of a real execution (a throttled,
retried region and a caught partition registration failure) to `docs/images/graph.png`.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import re
import struct
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.unit.builders import large_definition
from workflow.engine.local import DATABASE, LocalDeployment
from workflow.fleet import demo_fleet, iter_fleet_document
from workflow.graph import graph_model, local_definition, to_html, write_run_graph

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


MEASURE = """
<script>
addEventListener("load", () => {
  const box = (e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const diagram = document.querySelector(".canvas svg.diagram");
  const rows = [...document.querySelectorAll(".iterations .row:not(.head)")]
    .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
    .map((row) => row.dataset.item);
  const found = {
    viewport: [innerWidth, innerHeight],
    diagram: box(diagram),
    start: box(diagram.querySelector("g.marker.start.top")),
    firstTask: box(diagram.querySelector('g.node[data-type="Task"]')),
    labels: [...diagram.querySelectorAll("text")].map((t) => [t.textContent, box(t)]),
    rows,
    branches: [...document.querySelectorAll("section.branch")]
      .filter((e) => e.getBoundingClientRect().height > 0).map((e) => e.id),
  };
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify(found);
  document.body.append(out);
});
</script>
"""


def measure(tmp_path: Path, page: Path, fragment: str = "") -> dict[str, Any]:
    """Open a copy of ``page`` with a measuring script (the page itself forbids scripts by its
    Content Security Policy, so the copy drops that one tag) at 1400x1000; the boxes as drawn."""
    text = page.read_text(encoding="utf-8")
    copy = tmp_path / f"measured-{page.name}"
    copy.write_text(
        re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text).replace(
            "</body>", MEASURE + "</body>"
        ),
        encoding="utf-8",
    )
    target = copy.as_uri() + fragment
    dom = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'measure-profile'}",
            "--window-size=1400,1000",
            "--virtual-time-budget=3000",
            "--dump-dom",
            target,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    match = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert match, dom[-2000:]
    measured: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return measured


def overlapping_labels(labels: list[list[Any]]) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes intersect (by more than half a pixel)."""
    found = []
    for (text_a, a), (text_b, b) in itertools.combinations(labels, 2):
        if min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5:
            found.append((text_a, text_b))
    return found


def inside(box: list[float], viewport: list[int]) -> bool:
    return box[0] >= 0 and box[1] >= 0 and box[2] <= viewport[0] and box[3] <= viewport[1]


@pytest.fixture(scope="module")
def partial_run_page(local: LocalDeployment, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real execution: us-east-1 throttled twice (retried), a target whose role cannot be assumed
    in two regions (not scanned), and Register partitions failing into its Catch."""
    local.fleet.replace(list(iter_fleet_document(demo_fleet(instances_per_region=5))))
    local.fleet.throttle("us-east-1", 2)
    local.engine.client("glue").delete_table(DatabaseName=DATABASE, Name="runs")
    targets: list[dict[str, Any]] = [{"account_id": account} for account in local.fleet.accounts]
    targets.append({"account_id": "999999999999", "regions": ["us-east-1", "eu-west-1"]})
    result = local.run({"notify": "always", "targets": targets}, name="graph-partial")
    assert result.status == "SUCCEEDED", result.cause
    run_dir = tmp_path_factory.mktemp("graph") / "graph-partial"
    run_dir.mkdir()
    return write_run_graph(run_dir, result.history)


def test_at_1400x1000_the_start_and_first_task_are_on_screen_and_no_two_labels_overlap(
    partial_run_page: Path, tmp_path: Path
) -> None:
    measured = measure(tmp_path, partial_run_page)
    viewport = measured["viewport"]
    assert inside(measured["start"], viewport), measured["start"]
    assert inside(measured["firstTask"], viewport), measured["firstTask"]
    assert measured["diagram"][2] <= viewport[0]  # fits its container: no sideways scrolling
    assert len(measured["labels"]) > 40
    assert overlapping_labels(measured["labels"]) == []


def test_the_static_diagram_and_a_large_definition_have_no_overlapping_labels(tmp_path: Path) -> None:
    for name, definition in (("static", local_definition()), ("large", large_definition())):
        page = tmp_path / f"{name}.html"
        page.write_text(to_html(graph_model(definition, None)), encoding="utf-8")
        measured = measure(tmp_path, page)
        assert inside(measured["start"], measured["viewport"]), name
        assert measured["diagram"][2] <= measured["viewport"][0], name
        assert overlapping_labels(measured["labels"]) == [], name


def test_the_iteration_list_sorts_by_duration_then_by_account_and_region_without_script(
    partial_run_page: Path, tmp_path: Path
) -> None:
    by_duration = measure(tmp_path, partial_run_page)["rows"]
    by_item = measure(tmp_path, partial_run_page, "#iterations-s5-by-item")["rows"]
    assert sorted(by_duration) == by_item
    assert "999999999999/us-east-1" in by_item and "999999999999/eu-west-1" in by_item
    assert by_duration != by_item or len(set(by_item)) == 1


def test_a_branch_not_taken_is_a_stub_whose_link_shows_it_without_script(
    partial_run_page: Path, tmp_path: Path
) -> None:
    [branch] = sorted(set(re.findall(r'href="#(branch-s\d+)"', partial_run_page.read_text(encoding="utf-8"))))
    assert measure(tmp_path, partial_run_page)["branches"] == []
    assert measure(tmp_path, partial_run_page, f"#{branch}")["branches"] == [branch]


def test_a_real_partial_execution_is_coloured_named_and_screenshotted(
    partial_run_page: Path, tmp_path: Path
) -> None:
    page = partial_run_page
    dom = Dom(chromium(tmp_path, page, "--dump-dom"))
    assert dom.nodes["List EC2 instances"] == "retried"
    assert dom.nodes["Register partitions"] == "caught"
    assert dom.nodes["Partitions not registered"] == "succeeded"
    assert dom.nodes["Target not scanned"] == "not_scanned"
    assert dom.nodes["Scan regions"] == "not_scanned"
    assert dom.nodes["Scan complete"] == "succeeded"
    assert dom.nodes["Scan failed permanently"] == "not_run"
    assert dom.nodes["Scan regions at scale"] == "not_run"  # a collapsed stub
    main_diagram = page.read_text(encoding="utf-8").split('<div class="canvas">')[1].split("</svg>")[0]
    assert 'data-state="List EC2 instances (at scale)"' not in main_diagram  # drawn only on request
    text = "".join(dom.text)
    assert "2 of 5 iterations of Scan regions not scanned" in text
    assert "999999999999/us-east-1" in text and "AccessDenied" in text
    assert "script" not in dom.tags

    screenshot = tmp_path / "graph.png"
    chromium(tmp_path, page, f"--screenshot={screenshot}")
    assert png_size(screenshot) == (1400, 1000)
    assert screenshot.stat().st_size > 40_000  # a drawn diagram, not a blank page

    if os.environ.get("TAGWARDEN_UPDATE_DOCS_IMAGES"):
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        chromium(tmp_path, page, f"--screenshot={DOCS_IMAGE}", size="1400,2000")
        assert png_size(DOCS_IMAGE) == (1400, 2000)
