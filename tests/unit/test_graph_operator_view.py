"""graph.html for an operator: iterations named by their item, not-scanned targets in amber with
the reason, branches not taken collapsed, edge labels that never cover each other or a state."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.builders import large_definition
from workflow import graph
from workflow.graph import graph_model, local_definition, to_html

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAP = {
    "StartAt": "Scan",
    "States": {
        "Scan": {
            "Type": "Map",
            "ItemProcessor": {
                "StartAt": "List",
                "States": {
                    "List": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Listed?"},
                    "Listed?": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$.error", "IsNull": False, "Next": "Target not scanned"}],
                        "Default": "Done",
                    },
                    "Target not scanned": {"Type": "Pass", "End": True},
                    "Done": {"Type": "Succeed"},
                },
            },
            "Next": "Report",
        },
        "Report": {"Type": "Succeed"},
        "Unused": {
            "Type": "Map",
            "ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": True}}},
            "End": True,
        },
    },
}


class History:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, kind: str, previous: int, at: float, **details: Any) -> int:
        self.events.append(
            {
                "id": len(self.events) + 1,
                "previousEventId": previous,
                "type": kind,
                "timestamp": (T0 + timedelta(seconds=at)).isoformat(),
                **details,
            }
        )
        return len(self.events)


def scan_history() -> list[dict[str, Any]]:
    """Two iterations: 111122223333/eu-west-1 scanned in 2 s, self/us-east-1 not scanned (its
    role refused us) in 0.5 s."""
    h = History()
    h.add(
        "ExecutionStarted", 0, 0, executionStartedEventDetails={"roleArn": "arn:aws:iam::123456789012:role/x"}
    )
    entered = h.add("MapStateEntered", 1, 0, stateEnteredEventDetails={"name": "Scan"})
    started = h.add("MapStateStarted", entered, 0)
    ends = []
    for index, (account, region, seconds, error) in enumerate(
        [("111122223333", "eu-west-1", 2.0, None), ("self", "us-east-1", 0.5, "AccessDenied: sts:AssumeRole")]
    ):
        it = h.add(
            "MapIterationStarted",
            started,
            0,
            mapIterationStartedEventDetails={"name": "Scan", "index": index},
        )
        target = json.dumps({"target": {"account_id": account, "region": region}})
        e = h.add("TaskStateEntered", it, 0, stateEnteredEventDetails={"name": "List", "input": target})
        e = h.add("TaskScheduled", e, 0)
        e = h.add("TaskSucceeded", e, seconds / 2)
        e = h.add("TaskStateExited", e, seconds / 2, stateExitedEventDetails={"name": "List", "output": "{}"})
        e = h.add("ChoiceStateEntered", e, seconds / 2, stateEnteredEventDetails={"name": "Listed?"})
        e = h.add("ChoiceStateExited", e, seconds / 2, stateExitedEventDetails={"name": "Listed?"})
        last = "Target not scanned" if error else "Done"
        kind = "Pass" if error else "Succeed"
        e = h.add(f"{kind}StateEntered", e, seconds, stateEnteredEventDetails={"name": last})
        output = json.dumps({"target_error": error}) if error else "{}"
        e = h.add(f"{kind}StateExited", e, seconds, stateExitedEventDetails={"name": last, "output": output})
        ends.append(
            h.add(
                "MapIterationSucceeded",
                e,
                seconds,
                mapIterationSucceededEventDetails={"name": "Scan", "index": index},
            )
        )
    exited = h.add("MapStateExited", ends[0], 2, stateExitedEventDetails={"name": "Scan"})
    e = h.add("SucceedStateEntered", exited, 2, stateEnteredEventDetails={"name": "Report"})
    e = h.add("SucceedStateExited", e, 2, stateExitedEventDetails={"name": "Report"})
    h.add("ExecutionSucceeded", e, 2)
    return h.events


def test_iterations_are_named_by_account_and_region_with_outcome_reason_and_duration() -> None:
    scan = graph_model(MAP, scan_history()).by_name("Scan")
    assert [(i.item, i.outcome, i.reason, i.duration_seconds) for i in scan.iterations] == [
        ("111122223333/eu-west-1", "succeeded", "", 2.0),
        ("123456789012/us-east-1", "not_scanned", "AccessDenied: sts:AssumeRole", 0.5),
    ]


def test_a_target_not_scanned_is_amber_not_green_and_names_its_item() -> None:
    model = graph_model(MAP, scan_history())
    unscanned = model.by_name("Target not scanned")
    assert unscanned.outcome == "not_scanned"
    assert "123456789012/us-east-1" in graph.node_lines(unscanned)
    assert model.by_name("Scan").outcome == "not_scanned"
    assert "2 iterations, 1 not scanned" in graph.node_lines(model.by_name("Scan"))
    page = to_html(model)
    assert "1 of 2 iterations of <bdi>Scan</bdi> not scanned" in page
    fill, stroke, _ = graph._COLOURS["not_scanned"]
    assert fill != graph._COLOURS["succeeded"][0] and f'stroke="{stroke}"' in page


def test_the_iteration_list_carries_every_sort_order_longest_first_by_default() -> None:
    page = to_html(graph_model(MAP, scan_history()))
    rows = page.split('<div class="rows">')[1]
    assert 'data-item="111122223333/eu-west-1"' in rows and 'data-item="123456789012/us-east-1"' in rows
    assert "--by-duration:0;--by-item:0;--by-outcome:1;--by-start:0" in rows  # eu-west-1: 2 s
    assert "--by-duration:1;--by-item:1;--by-outcome:0;--by-start:1" in rows  # not scanned: 0.5 s
    for key in ("duration", "item", "outcome", "start"):
        assert 'href="#iterations-' in page and f"-by-{key}" in page


def test_a_container_the_execution_never_entered_is_a_stub_drawn_on_request() -> None:
    model = graph_model(MAP, scan_history())
    unused = model.by_name("Unused")
    assert unused.collapsed_states == 1 and unused.outcome == "not_run"
    main = graph.to_svg(model)
    assert 'data-state="X"' not in main and f'href="#branch-{unused.id}"' in main
    page = to_html(model)
    assert f'<section class="branch" id="branch-{unused.id}">' in page and 'data-state="X"' in page
    # Without an execution nothing is collapsed.
    assert 'data-state="X"' in graph.to_svg(graph_model(MAP, None))


def layouts(layout: Any) -> list[Any]:
    """A layout and every layout nested in its containers (each in its own coordinates)."""
    found = [layout]
    for box in layout.boxes.values():
        for inner in box.inner:
            found.extend(layouts(inner))
    return found


@pytest.mark.parametrize("name", ["workflow", "workflow run", "large"])
def test_edge_labels_are_placed_clear_of_each_other_and_of_every_state(name: str) -> None:
    definition = large_definition() if name == "large" else local_definition()
    history = scan_history() if name == "workflow run" else None
    model = graph_model(definition, history)
    owned: dict[str, list[graph.Cluster]] = {}
    for cluster in model.clusters:
        owned.setdefault(cluster.owner, []).append(cluster)
    count = 0
    for layout in layouts(graph._layout_scope(model, "", owned)):
        labels = []
        for route in layout.routes:
            if route.label_at is not None:
                width = graph._label_width(graph._clip(route.edge.label, graph._MAX_LABEL))
                x, y = route.label_at
                labels.append((x - width / 2, y - 9, x + width / 2, y + 7))
        boxes = [(b.x - b.w / 2, b.y, b.x + b.w / 2, b.y + b.h) for b in layout.boxes.values() if not b.dummy]
        for a, b in itertools.combinations(labels, 2):
            assert not graph._overlaps(a, b), (a, b)
        for label in labels:
            assert not any(graph._overlaps(label, box) for box in boxes), label
        count += len(labels)
    assert count >= 5


def test_the_path_runs_straight_down_from_the_start() -> None:
    """Without an execution the spine is the Next/Default chain from the start; its first states
    share one column instead of drifting sideways after each branch."""
    model = graph_model(local_definition(), None)
    owned: dict[str, list[graph.Cluster]] = {}
    for cluster in model.clusters:
        owned.setdefault(cluster.owner, []).append(cluster)
    layout = graph._layout_scope(model, "", owned)
    names = ["Validate input", "Input valid?", "Many targets?", "Scan regions"]
    centres = [layout.boxes[model.by_name(name).id].x for name in names]
    start = next(n.id for n in model.nodes.values() if n.kind == "start" and not n.scope)
    assert max(centres) - min(centres) < 1.0, centres
    assert abs(layout.boxes[start].x - centres[0]) < 1.0
