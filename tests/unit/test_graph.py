"""`tagwarden graph`: the ASL as a diagram, an execution's path through it, escaping, the CLI."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from workflow import cli, graph
from workflow.graph import graph_model, to_dot, to_html, to_mermaid, write_run_graph

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    'say "hi" | [x] {y} #35; `z`',
    "two\nlines\r\nand a back\\slash \\N",
    "evil\u202eexe.txt & more",
    '=HYPERLINK("http://evil.example","click")',
]


def tagwarden(argv: list[str]) -> int:
    """`tagwarden ...`, as the console script runs it."""
    return cli.main(argv)


# -- a small history builder that chains events the way Step Functions does ----------------------


class History:
    """Events with ids, previousEventId chains and timestamps, as GetExecutionHistory gives them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def add(self, kind: str, previous: int, at: float, **details: Any) -> int:
        event = {
            "id": len(self.events) + 1,
            "previousEventId": previous,
            "type": kind,
            "timestamp": (self.t0 + timedelta(seconds=at)).isoformat(),
        }
        event.update(details)
        self.events.append(event)
        return int(event["id"])

    def enter(self, state_type: str, name: str, previous: int, at: float) -> int:
        return self.add(f"{state_type}StateEntered", previous, at, stateEnteredEventDetails={"name": name})

    def exit(self, state_type: str, name: str, previous: int, at: float) -> int:
        return self.add(f"{state_type}StateExited", previous, at, stateExitedEventDetails={"name": name})

    def attempt(
        self, previous: int, at: float, took: float, error: str | None = None, cause: str = ""
    ) -> int:
        scheduled = self.add("TaskScheduled", previous, at)
        started = self.add("TaskStarted", scheduled, at)
        if error is None:
            return self.add("TaskSucceeded", started, at + took)
        return self.add(
            "TaskFailed", started, at + took, taskFailedEventDetails={"error": error, "cause": cause}
        )


TOY = {
    "Comment": "toy",
    "StartAt": "Work",
    "States": {
        "Work": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Retry": [
                {"ErrorEquals": ["Throttled"], "MaxAttempts": 3, "IntervalSeconds": 1, "BackoffRate": 2}
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handle"}],
            "Next": "Fan out",
        },
        "Handle": {"Type": "Pass", "Next": "Boom"},
        "Boom": {"Type": "Fail", "Error": "Broken"},
        "Fan out": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Inner",
                "States": {
                    "Inner": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}
                },
            },
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def toy_caught_history() -> list[dict[str, Any]]:
    """Work throttled twice (retried), then fails for good and is caught; Boom fails the execution."""
    h = History()
    h.add("ExecutionStarted", 0, 0)
    work = h.enter("Task", "Work", 0, 0)
    last = h.attempt(work, 0, 1, "Throttled", "slow down")
    last = h.attempt(last, 2, 1, "Throttled", "slow down")
    last = h.attempt(last, 4, 1, "AccessDenied", 'not allowed: <script>alert("cause")</script>')
    last = h.exit("Task", "Work", last, 5)
    last = h.enter("Pass", "Handle", last, 5)
    last = h.exit("Pass", "Handle", last, 5.5)
    last = h.enter("Fail", "Boom", last, 5.5)
    h.add("ExecutionFailed", last, 5.5, executionFailedEventDetails={"error": "Broken", "cause": "gave up"})
    return h.events


def toy_map_history() -> list[dict[str, Any]]:
    """Work succeeds at once; three Map iterations interleave (1 s, 3 s, 2 s) and all succeed."""
    h = History()
    h.add("ExecutionStarted", 0, 0)
    work = h.enter("Task", "Work", 0, 0)
    last = h.exit("Task", "Work", h.attempt(work, 0, 1), 1)
    fan = h.enter("Map", "Fan out", last, 1)
    started = h.add("MapStateStarted", fan, 1, mapStateStartedEventDetails={"length": 3})
    entered = {}
    for index in range(3):
        iteration = h.add(
            "MapIterationStarted",
            started,
            1,
            mapIterationStartedEventDetails={"name": "Fan out", "index": index},
        )
        entered[index] = h.enter("Task", "Inner", iteration, 1)
    scheduled = {i: h.add("TaskScheduled", entered[i], 1) for i in range(3)}
    finished = {}
    for index, took in ((0, 1.0), (2, 2.0), (1, 3.0)):  # finish out of order
        done = h.add("TaskSucceeded", scheduled[index], 1 + took)
        exited = h.exit("Task", "Inner", done, 1 + took)
        finished[index] = h.add(
            "MapIterationSucceeded",
            exited,
            1 + took,
            mapIterationSucceededEventDetails={"name": "Fan out", "index": index},
        )
    succeeded = h.add("MapStateSucceeded", finished[1], 4)
    last = h.exit("Map", "Fan out", succeeded, 4)
    last = h.enter("Succeed", "Done", last, 4)
    last = h.exit("Succeed", "Done", last, 4)
    h.add("ExecutionSucceeded", last, 4, executionSucceededEventDetails={})
    return h.events


# -- the definition ------------------------------------------------------------------------------


def asl() -> dict[str, Any]:
    return graph.local_definition()


def all_state_names(machine: dict[str, Any]) -> set[str]:
    names = set()
    for name, state in machine["States"].items():
        names.add(name)
        if "ItemProcessor" in state:
            names |= all_state_names(state["ItemProcessor"])
    return names


def test_every_state_of_the_workflow_is_a_node_and_the_map_processor_is_a_subgraph() -> None:
    model = graph_model(asl(), None)
    assert {n.name for n in model.states()} == all_state_names(asl())
    clusters = {model.nodes[c.owner].name: c for c in model.clusters}
    assert set(clusters) == {"Scan regions", "Scan regions at scale"}
    for owner, cluster in clusters.items():
        inner = {model.nodes[m].name for m in cluster.members if model.nodes[m].kind == "state"}
        assert inner == set(asl()["States"][owner]["ItemProcessor"]["States"])
    mermaid = to_mermaid(model)
    assert re.search(r"subgraph s\d+_group \[\"Scan regions\"\]", mermaid)
    assert re.search(r"subgraph s\d+_group \[\"Scan regions at scale\"\]", mermaid)
    assert 'subgraph "cluster_' in to_dot(model)


def test_choice_edges_are_labelled_with_their_condition() -> None:
    model = graph_model(asl(), None)
    labels = {
        (model.nodes[e.source].name, model.nodes[e.target].name, e.label)
        for e in model.edges
        if e.kind != "catch"
    }
    assert ("Input valid?", "Reject invalid input", "$.valid == false") in labels
    assert ("Input valid?", "Many targets?", "default") in labels
    assert ("Many targets?", "Scan regions at scale", '$.run.fanout == "distributed"') in labels
    assert ("Many targets?", "Scan regions", "default") in labels
    assert ("Listing complete?", "Continue listing", "$.result.listing.complete == false") in labels
    assert ("Notify?", "Notify", '$.run.notify == "always"') in labels
    assert (
        "Notify?",
        "Notify",
        '$.run.notify == "violations" and $.result.report.totals.noncompliant > 0',
    ) in labels
    assert '-->|"$.valid == false"|' in to_mermaid(model)


def test_catch_edges_are_dashed_in_mermaid_dot_and_svg() -> None:
    model = graph_model(asl(), None)
    catches = [
        (model.nodes[e.source].name, model.nodes[e.target].name) for e in model.edges if e.kind == "catch"
    ]
    assert ("Register partitions", "Partitions not registered") in catches
    assert ("Scan regions", "Scan failed") in catches
    assert ("List EC2 instances", "Listing failed") in catches
    mermaid_catches = re.findall(r"^\s+(\S+) -\.->\|\"catch: any error\"\| (\S+)$", to_mermaid(model), re.M)
    assert len(mermaid_catches) == len(catches)
    assert to_dot(model).count('style="dashed"') == len(catches) + len(model.clusters)
    assert len(re.findall(r'<path class="edge catch[^"]*"[^>]*stroke-dasharray', graph.to_svg(model))) == len(
        catches
    )


def test_retry_rules_are_annotated_on_nodes_and_listed_in_the_page() -> None:
    model = graph_model(asl(), None)
    listing = model.by_name("List EC2 instances")
    assert [r.max_attempts for r in listing.retry] == [4, 5, 1]
    assert "retry: 3 rules, up to 5 retries" in graph.node_lines(listing)
    page = to_html(model)
    assert "Throttled, ServiceUnavailable: up to 5 retries, every 2 s ×2 (max 60 s), jitter FULL" in page
    assert "retry: 3 rules, up to 5 retries" in to_mermaid(model)


def test_a_loop_back_edge_is_drawn_and_does_not_break_the_layout() -> None:
    model = graph_model(asl(), None)
    svg = graph.to_svg(model)
    continue_id = model.by_name("Continue listing").id
    list_id = model.by_name("List EC2 instances").id
    assert any(e.source == continue_id and e.target == list_id for e in model.edges)
    assert svg.count('class="node ') == len(model.states())


# -- an execution's path -------------------------------------------------------------------------


def test_a_retried_task_then_a_caught_failure_then_a_fail_state_get_their_outcomes() -> None:
    model = graph_model(TOY, toy_caught_history())
    work, handle, boom = model.by_name("Work"), model.by_name("Handle"), model.by_name("Boom")
    assert work.outcome == "caught"
    assert work.stats is not None and work.stats.retries == 2 and work.stats.attempts == 3
    assert [e for e, _ in work.stats.errors] == ["Throttled", "Throttled", "AccessDenied"]
    assert work.stats.durations == [5.0]
    assert handle.outcome == "succeeded"
    assert boom.outcome == "failed"
    assert boom.stats is not None and boom.stats.errors == [("Broken", "gave up")]
    assert model.by_name("Fan out").outcome == "not_run"
    assert model.execution is not None and model.execution.status == "FAILED"
    taken = {(model.nodes[e.source].name, model.nodes[e.target].name, e.kind) for e in model.edges if e.taken}
    assert ("Work", "Handle", "catch") in taken and ("Handle", "Boom", "next") in taken
    assert ("Work", "Fan out", "next") not in taken


def test_only_the_choice_rule_that_matched_is_on_the_path() -> None:
    definition = {
        "StartAt": "Pick",
        "States": {
            "Pick": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.n", "NumericEquals": 1, "Next": "B"},
                    {
                        "And": [
                            {"Variable": "$.n", "NumericGreaterThan": 1},
                            {"Variable": "$.s", "StringEquals": "x"},
                        ],
                        "Next": "B",
                    },
                ],
                "Default": "B",
            },
            "B": {"Type": "Succeed"},
        },
    }
    h = History()
    h.add("ExecutionStarted", 0, 0)
    pick = h.add(
        "ChoiceStateEntered", 0, 0, stateEnteredEventDetails={"name": "Pick", "input": '{"n": 2, "s": "x"}'}
    )
    h.enter("Succeed", "B", h.exit("Choice", "Pick", pick, 0), 0)
    model = graph_model(definition, h.events)
    assert [(e.kind, e.rule) for e in model.edges if e.taken and e.kind != "start"] == [("choice", 1)]


def test_a_task_that_succeeds_after_a_retry_is_retried() -> None:
    h = History()
    h.add("ExecutionStarted", 0, 0)
    work = h.enter("Task", "Work", 0, 0)
    last = h.attempt(h.attempt(work, 0, 1, "Throttled", "slow"), 2, 1)
    h.exit("Task", "Work", last, 3)
    model = graph_model(TOY, h.events)
    assert model.by_name("Work").outcome == "retried"
    assert model.execution is not None and model.execution.status == "RUNNING"


def test_map_iterations_aggregate_count_total_and_longest_even_when_interleaved() -> None:
    model = graph_model(TOY, toy_map_history())
    inner = model.by_name("Inner")
    assert inner.outcome == "succeeded"
    assert inner.stats is not None
    assert inner.stats.entries == 3
    assert sorted(inner.stats.durations) == [1.0, 2.0, 3.0]
    assert inner.stats.total_seconds == 6.0 and inner.stats.longest_seconds == 3.0
    fan = model.by_name("Fan out")
    assert fan.stats is not None and fan.stats.iterations == 3 and fan.stats.durations == [3.0]
    assert "Task · ×3, total 6.00 s, max 3.00 s" in graph.node_lines(inner)
    assert "3 iterations" in graph.node_lines(fan)


def test_states_in_the_history_but_not_in_the_definition_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = History()
    h.add("ExecutionStarted", 0, 0)
    h.enter("Pass", "Somewhere else", 0, 0)
    assert graph_model(TOY, h.events).unknown_states == ("Somewhere else",)
    path = tmp_path / "history.json"
    path.write_text(json.dumps(h.events))
    assert tagwarden(["graph", "--history", str(path)]) == 0
    assert "states not in the definition: Somewhere else" in capsys.readouterr().err


# -- escaping ------------------------------------------------------------------------------------


def hostile_definition() -> dict[str, Any]:
    states: dict[str, Any] = {}
    for index, name in enumerate(HOSTILE):
        following = HOSTILE[index + 1] if index + 1 < len(HOSTILE) else None
        states[name] = {"Type": "Pass", **({"Next": following} if following else {"End": True})}
    return {"StartAt": HOSTILE[0], "States": states}


def test_hostile_state_names_round_trip_through_mermaid_entity_codes() -> None:
    text = to_mermaid(graph_model(hostile_definition(), None))
    labels = re.findall(r'^\s+s\d+\["(.*)"\]$', text, re.M)
    assert len(labels) == len(HOSTILE)
    for label, name in zip(labels, HOSTILE, strict=True):
        first, second = label.split("<br/>")  # the only markup is the line break we put there
        assert not set(first) & set('"<>\n\r`\u202e')
        assert re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), first) == name
        assert second == "Pass"


def test_hostile_state_names_round_trip_through_dot_quoting() -> None:
    text = to_dot(graph_model(hostile_definition(), None))
    labels = re.findall(r'\[label="((?:[^"\\]|\\.)*)"', text)
    names = []
    for label in labels:
        unescaped = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), label)
        names.append(unescaped.replace("&amp;", "&").split("\nPass")[0])
    assert [n for n in names if n] == [n.replace("\r\n", "\n\n").replace("\r", "\n") for n in HOSTILE]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.bdi: list[str] = []
        self._in_bdi = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "bdi":
            self._in_bdi += 1
            self.bdi.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "bdi":
            self._in_bdi -= 1

    def handle_data(self, data: str) -> None:
        if self._in_bdi:
            self.bdi[-1] += data


def test_hostile_state_names_and_causes_are_text_in_the_html_page() -> None:
    page = to_html(graph_model(hostile_definition(), None), title="<b>title</b>")
    collector = _Collector()
    collector.feed(page)
    assert "script" not in collector.tags and "img" not in collector.tags and "b" not in collector.tags
    for name in HOSTILE:
        assert name in collector.bdi
    caught = to_html(graph_model(TOY, toy_caught_history()))
    assert html.escape('not allowed: <script>alert("cause")</script>') in caught
    assert "<script" not in caught


# -- where definitions and histories come from ---------------------------------------------------

PASS_MACHINE = {
    "StartAt": "<script>alert(1)</script>",
    "States": {
        "<script>alert(1)</script>": {"Type": "Pass", "Next": "Second"},
        "Second": {"Type": "Pass", "End": True},
    },
}


@pytest.fixture
def moto_execution() -> Iterator[tuple[Any, str]]:
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        import boto3

        client = boto3.client("stepfunctions", region_name="eu-west-1")
        machine = client.create_state_machine(
            name="toy", definition=json.dumps(PASS_MACHINE), roleArn="arn:aws:iam::123456789012:role/toy"
        )["stateMachineArn"]
        arn = client.start_execution(stateMachineArn=machine, name="toy-run", input="{}")["executionArn"]
        deadline = time.monotonic() + 30
        while client.describe_execution(executionArn=arn)["status"] == "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield client, arn


def test_fetch_execution_reads_the_definition_and_history_from_step_functions(
    moto_execution: tuple[Any, str],
) -> None:
    client, arn = moto_execution
    definition, history = graph.fetch_execution(client, arn)
    assert definition == PASS_MACHINE
    model = graph_model(definition, history)
    assert model.execution is not None and model.execution.status == "SUCCEEDED"
    assert [n.outcome for n in model.states()] == ["succeeded", "succeeded"]


def test_graph_cli_draws_an_execution_from_its_arn(
    moto_execution: tuple[Any, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _client, arn = moto_execution
    out = tmp_path / "execution.html"
    assert tagwarden(["graph", "--execution", arn, "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert 'data-outcome="succeeded"' in page
    missing = arn.replace("toy-run", "no-such-run")
    assert tagwarden(["graph", "--execution", missing]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith(f"--execution: no such execution: {missing}")


def test_fetch_execution_follows_every_page_of_the_history() -> None:
    pages = [
        {"events": [{"id": 1, "type": "ExecutionStarted"}]},
        {"events": [{"id": 2, "type": "PassStateEntered"}]},
    ]

    class Paginator:
        def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
            assert kwargs["executionArn"].endswith(":execution:m:e")
            return pages

    class Client:
        def describe_state_machine_for_execution(self, executionArn: str) -> dict[str, Any]:
            return {"definition": json.dumps(TOY)}

        def get_paginator(self, name: str) -> Paginator:
            assert name == "get_execution_history"
            return Paginator()

    _definition, history = graph.fetch_execution(
        Client(), "arn:aws:states:us-east-1:123456789012:execution:m:e"
    )
    assert [e["id"] for e in history] == [1, 2]


def test_graph_cli_reads_a_history_file_and_infers_the_format_from_the_out_suffix(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.json"
    path.write_text(json.dumps(toy_map_history()))
    for suffix, marker in (
        (".html", "<!DOCTYPE html>"),
        (".dot", "digraph tagwarden {"),
        (".mmd", "flowchart TD"),
        (".svg", "<svg"),
    ):
        out = tmp_path / f"graph{suffix}"
        assert tagwarden(["graph", "--history-file", str(path), "--out", str(out)]) == 0
        assert out.read_text(encoding="utf-8").startswith(marker)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ('{"events": "nope"}', "not an execution history"),
        ('[{"id": "1"}]', "not an execution history"),
    ],
    ids=["not-json", "not-a-list", "bad-event"],
)
def test_a_malformed_history_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "history.json"
    path.write_text(content)
    assert tagwarden(["graph", "--history-file", str(path)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"--history-file: {path}: {message}")


def test_write_run_graph_puts_graph_html_in_the_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    path = write_run_graph(run_dir, toy_caught_history())
    assert path == run_dir / "graph.html"
    page = path.read_text(encoding="utf-8")
    assert "<title>Tagwarden run run-1</title>" in page
    assert "Content-Security-Policy" in page and "<script" not in page
