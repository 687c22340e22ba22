"""The state machine as a diagram, and the path one execution took through it.

:func:`graph_model` reads an Amazon States Language definition (a Map's ``ItemProcessor`` and a
Parallel's ``Branches`` become subgraphs, Choice edges carry their condition, Catch edges are
dashed, Retry rules are annotated) and, given the execution's history (events as
GetExecutionHistory returns them, datetimes or ISO strings), what happened in each state: the
outcome (succeeded, retried, caught, failed, aborted, running, not run), how often it was entered
(Map iterations aggregate: count, total and longest duration), retries, errors and causes.

Three renderers take the model: :func:`to_mermaid`, :func:`to_dot` and :func:`to_html`. The HTML
page is self-contained: an inline SVG laid out here (layered, no JavaScript, no network), a legend
and a table of states. Every name, error and cause comes from the definition or the history, and a
cause can quote an instance's tags, so all of it is escaped for the output it goes to.

>>> definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"},
...                                          "B": {"Type": "Succeed"}}}
>>> model = graph_model(definition, None)
>>> [node.name for node in model.states()]
['A', 'B']
>>> print(to_mermaid(model).splitlines()[0])
flowchart TD
"""

from __future__ import annotations

import html
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from workflow.errors import InvalidInput, Problem, TagwardenError
from workflow.iteration_names import item_name, own_account, target_error

__all__ = [
    "OUTCOMES",
    "Cluster",
    "Edge",
    "ExecutionSummary",
    "GraphModel",
    "Node",
    "RetryRule",
    "StateStats",
    "fetch_execution",
    "graph_model",
    "read_history_file",
    "to_dot",
    "to_html",
    "to_mermaid",
    "write_run_graph",
]

Outcome = Literal["succeeded", "retried", "caught", "failed", "not_scanned", "aborted", "running", "not_run"]
EdgeKind = Literal["next", "choice", "default", "catch", "start", "end", "iteration"]

#: Outcomes from worst to best: a state entered several times (Map iterations) shows its worst.
OUTCOMES: Final[tuple[Outcome, ...]] = (
    "failed",
    "not_scanned",
    "caught",
    "retried",
    "aborted",
    "running",
    "succeeded",
    "not_run",
)
_OUTCOME_TEXT: Final[dict[str, str]] = {
    "failed": "failed",
    "not_scanned": "not scanned",
    "caught": "caught (Catch)",
    "retried": "retried, then succeeded",
    "aborted": "aborted",
    "running": "running",
    "succeeded": "succeeded",
    "not_run": "not run",
    "static": "state",
}
#: fill, stroke, text colour per outcome ("static": a diagram without an execution).
_COLOURS: Final[dict[str, tuple[str, str, str]]] = {
    "succeeded": ("#dcfce7", "#15803d", "#14532d"),
    "retried": ("#fef3c7", "#b45309", "#78350f"),
    "caught": ("#ede9fe", "#6d28d9", "#3b0764"),
    "failed": ("#fee2e2", "#b91c1c", "#7f1d1d"),
    "not_scanned": ("#ffedd5", "#c2410c", "#7c2d12"),
    "aborted": ("#e5e7eb", "#4b5563", "#1f2937"),
    "running": ("#dbeafe", "#1d4ed8", "#1e3a8a"),
    "not_run": ("#ffffff", "#9ca3af", "#6b7280"),
    "static": ("#f8fafc", "#475569", "#0f172a"),
}
_CONTAINERS: Final = frozenset({"Map", "Parallel"})
_TERMINAL: Final = frozenset({"Succeed", "Fail"})
_EXECUTION_END: Final[dict[str, str]] = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionAborted": "ABORTED",
    "ExecutionTimedOut": "TIMED_OUT",
}
_ATTEMPT_SUFFIXES: Final = ("Scheduled",)
_FAILURE_SUFFIXES: Final = ("Failed", "TimedOut")
_ITERATION_EVENTS: Final = ("IterationStarted", "IterationSucceeded", "IterationFailed", "IterationAborted")
_NOT_STATE_FAILURES: Final = frozenset(
    {"MapIterationFailed", "ParallelIterationFailed", *_EXECUTION_END} - {"ExecutionSucceeded"}
)


# -- the model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryRule:
    """One ``Retry`` entry of a state.

    >>> RetryRule(("Throttled", "ServiceUnavailable"), 5, 2.0, 2.0, 60, "FULL").text
    'Throttled, ServiceUnavailable: up to 5 retries, every 2 s ×2 (max 60 s), jitter FULL'
    """

    errors: tuple[str, ...]
    max_attempts: int
    interval_seconds: float
    backoff_rate: float
    max_delay_seconds: float | None
    jitter: str | None

    @property
    def text(self) -> str:
        delay = f"every {_num(self.interval_seconds)} s ×{_num(self.backoff_rate)}"
        if self.max_delay_seconds is not None:
            delay += f" (max {_num(self.max_delay_seconds)} s)"
        jitter = f", jitter {self.jitter}" if self.jitter else ""
        return f"{', '.join(self.errors)}: up to {self.max_attempts} retries, {delay}{jitter}"


@dataclass
class StateStats:
    """What an execution did in one state, over every time it was entered."""

    entries: int = 0
    durations: list[float] = field(default_factory=list)
    attempts: int = 0
    retries: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    outcome: Outcome = "not_run"
    iterations: int = 0
    iterations_failed: int = 0
    #: The Map items (``account/region``) whose entry here ended badly, with the reason.
    troubled_items: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(self.durations)

    @property
    def longest_seconds(self) -> float:
        return max(self.durations, default=0.0)


@dataclass
class Node:
    """One state (``kind == "state"``) or a start/end marker of a scope."""

    id: str
    name: str
    type: str
    scope: str
    comment: str = ""
    retry: tuple[RetryRule, ...] = ()
    catch: tuple[tuple[tuple[str, ...], str], ...] = ()
    kind: Literal["state", "start", "end"] = "state"
    stats: StateStats | None = None
    iterations: list[Iteration] = field(default_factory=list)  # a Map's, with an execution
    #: A Map or Parallel the execution never entered: drawn as a stub; its states (this many)
    #: are drawn on request below the diagram.
    collapsed_states: int = 0

    @property
    def outcome(self) -> str:
        """The execution's outcome here, or ``"static"`` for a diagram without an execution."""
        return self.stats.outcome if self.stats is not None else "static"


@dataclass(frozen=True)
class Edge:
    """A transition: ``next``, ``choice`` (label = condition), ``default``, ``catch``, ``iteration``
    (a container to its first inner state), ``start`` and ``end`` (to the scope's markers)."""

    source: str
    target: str
    kind: EdgeKind
    label: str = ""
    taken: bool | None = None
    rule: int | None = None  # the index of a Choice rule (``choice`` edges)


@dataclass(frozen=True)
class Cluster:
    """The states of a Map's ItemProcessor or of one Parallel branch, drawn as a subgraph."""

    id: str
    owner: str
    label: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class ExecutionSummary:
    """Status and timing of the execution whose history was given."""

    status: str
    started: datetime | None
    stopped: datetime | None
    error: str | None
    cause: str | None

    @property
    def duration_seconds(self) -> float | None:
        if self.started is None or self.stopped is None:
            return None
        return (self.stopped - self.started).total_seconds()


@dataclass
class Iteration:
    """One Map iteration: what it worked on (``item``, see :mod:`workflow.iteration_names`), how it
    ended (``succeeded``, ``not_scanned``: a state said ``target_error``, ``failed``, ``aborted``,
    ``running``) and why."""

    container: str
    index: int
    item: str
    outcome: Outcome = "running"
    reason: str = ""
    started: datetime | None = None
    ended: datetime | None = None
    states: list[str] = field(default_factory=list)

    @property
    def duration_seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())


@dataclass
class GraphModel:
    """States (in definition order), transitions, subgraphs and, with a history, what happened."""

    comment: str
    nodes: dict[str, Node]
    edges: list[Edge]
    clusters: list[Cluster]
    execution: ExecutionSummary | None = None
    unknown_states: tuple[str, ...] = ()

    def by_name(self, name: str) -> Node:
        """The state called ``name``.

        >>> graph_model({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}, None).by_name("A").type
        'Succeed'
        """
        for node in self.nodes.values():
            if node.kind == "state" and node.name == name:
                return node
        raise KeyError(name)

    def states(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "state"]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _short_errors(errors: Sequence[str]) -> str:
    """``States.ALL`` -> ``any error``; four ``Lambda.*`` names -> ``Lambda.*``."""
    if list(errors) == ["States.ALL"]:
        return "any error"
    prefixes = {e.split(".", 1)[0] for e in errors if "." in e}
    if len(errors) > 2 and len(prefixes) == 1 and all("." in e for e in errors):
        return f"{prefixes.pop()}.*"
    return ", ".join(errors)


def _retry_rules(state: Mapping[str, Any]) -> tuple[RetryRule, ...]:
    rules = []
    for rule in state.get("Retry") or []:
        if not isinstance(rule, Mapping):
            continue
        delay = rule.get("MaxDelaySeconds")
        rules.append(
            RetryRule(
                errors=tuple(str(e) for e in rule.get("ErrorEquals") or []),
                max_attempts=int(rule.get("MaxAttempts", 3)),
                interval_seconds=float(rule.get("IntervalSeconds", 1)),
                backoff_rate=float(rule.get("BackoffRate", 2.0)),
                max_delay_seconds=float(delay) if delay is not None else None,
                jitter=str(rule["JitterStrategy"]) if rule.get("JitterStrategy") else None,
            )
        )
    return tuple(rules)


_OPERATORS: Final[dict[str, str]] = {
    "Equals": "==",
    "GreaterThan": ">",
    "GreaterThanEquals": ">=",
    "LessThan": "<",
    "LessThanEquals": "<=",
}


def choice_condition(rule: Mapping[str, Any]) -> str:
    """A Choice rule as text.

    >>> choice_condition({"Variable": "$.valid", "BooleanEquals": False})
    '$.valid == false'
    >>> choice_condition({"And": [{"Variable": "$.n", "StringEquals": "v"},
    ...                           {"Variable": "$.c", "NumericGreaterThan": 0}]})
    '$.n == "v" and $.c > 0'
    """
    if "Condition" in rule:  # JSONata
        return str(rule["Condition"])
    for combinator, word in (("And", " and "), ("Or", " or ")):
        if combinator in rule:
            parts = [choice_condition(r) for r in rule[combinator] if isinstance(r, Mapping)]
            return word.join(f"({p})" if (" and " in p or " or " in p) else p for p in parts)
    if "Not" in rule and isinstance(rule["Not"], Mapping):
        return f"not ({choice_condition(rule['Not'])})"
    variable = str(rule.get("Variable", "?"))
    for key, value in rule.items():
        if key in {"Variable", "Next", "Comment", "Assign", "Output"}:
            continue
        if key.startswith("Is"):
            test = key[2:].lower()
            return f"{variable} is {'' if value else 'not '}{test}"
        path = key.endswith("Path")
        base = key.removesuffix("Path")
        rendered = str(value) if path else json.dumps(value, ensure_ascii=False)
        if base.endswith("Matches"):
            return f"{variable} matches {rendered}"
        for suffix, operator in sorted(_OPERATORS.items(), key=lambda kv: -len(kv[0])):
            if base.endswith(suffix):
                return f"{variable} {operator} {rendered}"
        return f"{variable} {key} {rendered}"
    return variable


@dataclass
class _Builder:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)
    scope_count: int = 0

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{len(self.nodes)}"

    def add_scope(self, machine: Mapping[str, Any], scope: str) -> tuple[list[str], str | None]:
        """Nodes and edges of one States block; returns its member ids and the start id."""
        states = machine.get("States")
        if not isinstance(states, Mapping) or not states:
            return [], None
        members: list[str] = []
        ids: dict[str, str] = {}
        start = self.new_id("start")
        self.nodes[start] = Node(start, "start", "start", scope, kind="start")
        members.append(start)
        for name, raw in states.items():
            node_id = self.new_id("s")
            state = raw if isinstance(raw, Mapping) else {}
            ids[str(name)] = node_id
            self.nodes[node_id] = Node(
                node_id,
                str(name),
                str(state.get("Type", "?")),
                scope,
                comment=str(state.get("Comment", "")),
                retry=_retry_rules(state),
                catch=tuple(
                    (tuple(str(e) for e in c.get("ErrorEquals") or []), str(c.get("Next", "")))
                    for c in state.get("Catch") or []
                    if isinstance(c, Mapping)
                ),
            )
            members.append(node_id)
        end: str | None = None

        def end_id() -> str:
            nonlocal end
            if end is None:
                end = self.new_id("stop")
                self.nodes[end] = Node(end, "end", "end", scope, kind="end")
                members.append(end)
            return end

        start_at = ids.get(str(machine.get("StartAt")))
        if start_at:
            self.edges.append(Edge(start, start_at, "start"))
        for name, state in states.items():
            if not isinstance(state, Mapping):
                continue
            source = ids[str(name)]

            def link(
                target: Any, kind: EdgeKind, label: str = "", source: str = source, rule: int | None = None
            ) -> None:
                if str(target) in ids:
                    self.edges.append(Edge(source, ids[str(target)], kind, label, rule=rule))

            if state.get("Type") == "Choice":
                for index, rule in enumerate(state.get("Choices") or []):
                    if isinstance(rule, Mapping):
                        link(rule.get("Next"), "choice", choice_condition(rule), rule=index)
                if "Default" in state:
                    link(state["Default"], "default", "default")
            elif "Next" in state:
                link(state["Next"], "next")
            elif state.get("End") is True:
                self.edges.append(Edge(source, end_id(), "end"))
            for errors, target in self.nodes[source].catch:
                link(target, "catch", f"catch: {_short_errors(errors)}")
            self.add_children(source, state)
        return members, start_at

    def add_children(self, owner: str, state: Mapping[str, Any]) -> None:
        scopes: list[tuple[Mapping[str, Any], str]] = []
        name = self.nodes[owner].name
        if state.get("Type") == "Map":
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if isinstance(processor, Mapping):
                mode = (processor.get("ProcessorConfig") or {}).get("Mode", "INLINE")
                scopes.append((processor, f"{name}: each item ({str(mode).lower()})"))
        elif state.get("Type") == "Parallel":
            for index, branch in enumerate(state.get("Branches") or []):
                if isinstance(branch, Mapping):
                    scopes.append((branch, f"{name}: branch {index + 1}"))
        for machine, label in scopes:
            self.scope_count += 1
            cluster_id = f"c{self.scope_count}"
            members, start = self.add_scope(machine, cluster_id)
            self.clusters.append(Cluster(cluster_id, owner, label, tuple(members)))
            if start is not None:
                self.edges.append(Edge(owner, start, "iteration", "each item" if "item" in label else ""))


# -- reading a history -------------------------------------------------------------------------


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping):
            return value
    return {}


@dataclass
class _Entry:
    event_id: int
    name: str
    entered: datetime | None
    exited: datetime | None = None
    last_event: datetime | None = None
    attempts: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    failed_attempts: int = 0
    last_failed: bool = False
    iterations: int = 0
    iterations_failed: int = 0
    iteration: int | None = None  # the IterationStarted event of the iteration it ran in
    target_error: str | None = None


class _History:
    """Events attributed to state entries through their ``previousEventId`` chains.

    Concurrent Map iterations interleave in the history; each event's chain leads back to the
    state it belongs to (a task failure to the Task's entry, a StateExited to the StateEntered of
    the same name, Map events to the Map's entry)."""

    def __init__(self, events: Iterable[Mapping[str, Any]], types: Mapping[str, str]) -> None:
        self.events = sorted(
            (e for e in events if isinstance(e, Mapping) and isinstance(e.get("id"), int)),
            key=lambda e: int(e["id"]),
        )
        self.by_id = {int(e["id"]): e for e in self.events}
        self.types = types
        self.entries: dict[int, _Entry] = {}
        self.transitions: set[tuple[str, str, bool]] = set()
        self.choices: list[tuple[str, str, Any]] = []
        self.execution: ExecutionSummary | None = None
        self.iterations: dict[int, Iteration] = {}
        self._iteration_entries: dict[int, list[_Entry]] = {}
        self.account = own_account(self.events)
        self._nearest: dict[int, int | None] = {}
        self._read()

    def _previous(self, event_id: int) -> int | None:
        event = self.by_id.get(event_id)
        previous = event.get("previousEventId") if event else None
        return previous if isinstance(previous, int) and previous in self.by_id else None

    def _nearest_entered(self, event_id: int | None) -> int | None:
        """The closest StateEntered event at or before ``event_id`` on its chain."""
        chain: list[int] = []
        found: int | None = None
        current = event_id
        while current is not None:
            if current in self._nearest:
                found = self._nearest[current]
                break
            chain.append(current)
            if current in self.entries:
                found = current
                break
            current = self._previous(current)
        for visited in chain:
            self._nearest[visited] = found
        return found

    def _entered_named(self, event_id: int, name: str) -> int | None:
        current = self._nearest_entered(self._previous(event_id))
        while current is not None and self.entries[current].name != name:
            current = self._nearest_entered(self._previous(current))
        return current

    def _entered_of_type(self, event_id: int, types: frozenset[str]) -> int | None:
        current = self._nearest_entered(self._previous(event_id))
        while current is not None and self.types.get(self.entries[current].name) not in types:
            current = self._nearest_entered(self._previous(current))
        return current

    def _open_entry(self, name: str | None = None) -> int | None:
        """Fallback without chains: the latest entry not yet exited (of that name)."""
        for entry in reversed(self.entries.values()):
            if entry.exited is None and (name is None or entry.name == name):
                return entry.event_id
        return None

    def _read(self) -> None:
        started: datetime | None = None
        for event in self.events:
            kind = str(event.get("type", ""))
            event_id = int(event["id"])
            stamp = _timestamp(event.get("timestamp"))
            details = _details(event)
            if kind == "ExecutionStarted":
                started = stamp
                continue
            if kind in _EXECUTION_END:
                self.execution = ExecutionSummary(
                    _EXECUTION_END[kind],
                    started,
                    stamp,
                    _text(details.get("error")),
                    _text(details.get("cause")),
                )
                if kind != "ExecutionSucceeded":
                    owner = self._nearest_entered(self._previous(event_id)) or self._open_entry()
                    entry = self.entries.get(owner) if owner is not None else None
                    if entry is not None and not entry.failures and details.get("error") is not None:
                        entry.failures.append((_text(details.get("error")), _text(details.get("cause"))))
                continue
            if "stateEnteredEventDetails" in event:
                name = str(event["stateEnteredEventDetails"].get("name", ""))
                entry = self.entries[event_id] = _Entry(event_id, name, stamp, last_event=stamp)
                previous = self.by_id.get(self._previous(event_id) or -1)
                if previous is not None and "stateExitedEventDetails" in previous:
                    source = str(previous["stateExitedEventDetails"].get("name", ""))
                    source_entry = self._entered_named(int(previous["id"]), source)
                    if source_entry is not None:
                        self._join_iteration(entry, self.entries[source_entry].iteration)
                    caught = bool(source_entry is not None and self.entries[source_entry].last_failed)
                    self.transitions.add((source, name, caught))
                    if source_entry is not None and self.types.get(source) == "Choice":
                        entered = self.by_id[source_entry].get("stateEnteredEventDetails") or {}
                        self.choices.append((source, name, entered.get("input")))
                elif previous is not None and str(previous.get("type", "")).endswith("IterationStarted"):
                    container = _text(_details(previous).get("name"))
                    self.transitions.add((container, name, False))
                    iteration = self.iterations.get(int(previous["id"]))
                    if iteration is not None:
                        self._join_iteration(entry, int(previous["id"]))
                        found = item_name(event["stateEnteredEventDetails"].get("input"), self.account)
                        iteration.item = found or iteration.item
                elif previous is None:
                    self.transitions.add(("", name, False))
                continue
            if "stateExitedEventDetails" in event:
                name = str(event["stateExitedEventDetails"].get("name", ""))
                owner = self._entered_named(event_id, name) or self._open_entry(name)
                if owner is not None:
                    self.entries[owner].exited = stamp
                    self.entries[owner].last_event = stamp
                    self.entries[owner].target_error = _target_error(event["stateExitedEventDetails"])
                continue
            if kind.endswith(_ITERATION_EVENTS):
                if kind.endswith("IterationStarted"):
                    container = _text(details.get("name"))
                    index = details.get("index")
                    self.iterations[event_id] = Iteration(
                        container,
                        index if isinstance(index, int) else len(self.iterations),
                        f"{container}[{index}]",
                        started=stamp,
                    )
                else:
                    self._end_iteration(event_id, kind, stamp, details)
                if kind.endswith(("IterationStarted", "IterationFailed")):
                    owner = self._entered_named(event_id, _text(details.get("name")))
                    if owner is None:
                        owner = self._entered_of_type(event_id, _CONTAINERS)
                    if owner is not None:
                        if kind.endswith("IterationStarted"):
                            self.entries[owner].iterations += 1
                        else:
                            self.entries[owner].iterations_failed += 1
                continue
            if kind.startswith(("MapState", "ParallelState", "MapRun")):
                owner = self._entered_of_type(event_id, _CONTAINERS) or self._open_entry()
            else:
                owner = self._nearest_entered(self._previous(event_id)) or self._open_entry()
            if owner is None:
                continue
            entry = self.entries[owner]
            entry.last_event = stamp or entry.last_event
            if kind.endswith(_ATTEMPT_SUFFIXES):
                entry.attempts += 1
                entry.last_failed = False
            elif kind.endswith(_FAILURE_SUFFIXES) and kind not in _NOT_STATE_FAILURES:
                entry.failed_attempts += 1
                entry.last_failed = True
                if details.get("error") is not None or details.get("cause") is not None:
                    entry.failures.append((_text(details.get("error")), _text(details.get("cause"))))
            elif kind.endswith("Succeeded"):
                entry.last_failed = False
        if self.execution is None:
            self.execution = ExecutionSummary("RUNNING", started, None, None, None)
        finished = self.execution.status != "RUNNING"
        for iteration in self.iterations.values():
            if iteration.outcome == "running" and finished:
                iteration.outcome = "aborted"

    def _join_iteration(self, entry: _Entry, iteration: int | None) -> None:
        entry.iteration = iteration
        if iteration is not None:
            self._iteration_entries.setdefault(iteration, []).append(entry)

    def _end_iteration(
        self, event_id: int, kind: str, stamp: datetime | None, details: Mapping[str, Any]
    ) -> None:
        """Close the iteration an IterationSucceeded/Failed/Aborted event ends, with its reason."""
        inner = self._nearest_entered(self._previous(event_id))
        key = self.entries[inner].iteration if inner is not None else None
        if key is None:  # no chain: the open iteration of that Map with that index
            key = next(
                (
                    k
                    for k, it in self.iterations.items()
                    if it.container == _text(details.get("name"))
                    and it.index == details.get("index")
                    and it.outcome == "running"
                ),
                None,
            )
        if key is None or key not in self.iterations:
            return
        iteration = self.iterations[key]
        iteration.ended = stamp
        entries = self._iteration_entries.get(key, [])
        iteration.states = list(dict.fromkeys(e.name for e in entries))
        not_scanned = next((e.target_error for e in entries if e.target_error), None)
        if kind.endswith("IterationSucceeded"):
            iteration.outcome = "not_scanned" if not_scanned else "succeeded"
            iteration.reason = not_scanned or ""
        elif kind.endswith("IterationFailed"):
            iteration.outcome = "failed"
            failures = [f for e in entries for f in e.failures]
            error, cause = (
                failures[-1] if failures else (_text(details.get("error")), _text(details.get("cause")))
            )
            iteration.reason = f"{error}: {cause}" if cause else error
        else:
            iteration.outcome = "aborted"

    def outcome(self, entry: _Entry) -> Outcome:
        finished = self.execution is not None and self.execution.status != "RUNNING"
        if self.types.get(entry.name) == "Fail":
            return "failed"
        if entry.last_failed:
            if entry.exited is not None:
                return "caught"
            return "failed" if finished else "running"
        if entry.exited is None:
            return "aborted" if finished else "running"
        if entry.target_error:
            return "not_scanned"
        if entry.failed_attempts or entry.attempts > 1:
            return "retried"
        return "succeeded"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _target_error(details: Mapping[str, Any]) -> str | None:
    return target_error(details.get("output"))


def _state_types(definition: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(state.get("Type", "?")) for name, state in _state_definitions(definition).items()}


def graph_model(definition: dict[str, Any], history: list[dict[str, Any]] | None) -> GraphModel:
    """The diagram model of ``definition`` and, with ``history``, what that execution did.

    >>> definition = {"StartAt": "Work", "States": {
    ...     "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True,
    ...              "Retry": [{"ErrorEquals": ["Throttled"], "MaxAttempts": 2}]}}}
    >>> t = "2026-01-01T00:00:0{}+00:00".format
    >>> history = [
    ...     {"id": 1, "previousEventId": 0, "type": "ExecutionStarted", "timestamp": t(0)},
    ...     {"id": 2, "previousEventId": 0, "type": "TaskStateEntered", "timestamp": t(0),
    ...      "stateEnteredEventDetails": {"name": "Work"}},
    ...     {"id": 3, "previousEventId": 2, "type": "TaskScheduled", "timestamp": t(0)},
    ...     {"id": 4, "previousEventId": 3, "type": "TaskFailed", "timestamp": t(1),
    ...      "taskFailedEventDetails": {"error": "Throttled", "cause": "slow down"}},
    ...     {"id": 5, "previousEventId": 4, "type": "TaskScheduled", "timestamp": t(2)},
    ...     {"id": 6, "previousEventId": 5, "type": "TaskSucceeded", "timestamp": t(3)},
    ...     {"id": 7, "previousEventId": 6, "type": "TaskStateExited", "timestamp": t(3),
    ...      "stateExitedEventDetails": {"name": "Work"}},
    ...     {"id": 8, "previousEventId": 7, "type": "ExecutionSucceeded", "timestamp": t(3)}]
    >>> work = graph_model(definition, history).by_name("Work")
    >>> work.outcome, work.stats.retries, work.stats.durations, work.stats.errors
    ('retried', 1, [3.0], [('Throttled', 'slow down')])
    """
    if not isinstance(definition, Mapping) or not isinstance(definition.get("States"), Mapping):
        raise InvalidInput([Problem("$.States", "not a state machine definition (no States object)")])
    builder = _Builder()
    builder.add_scope(definition, "")
    model = GraphModel(
        comment=str(definition.get("Comment", "")),
        nodes=builder.nodes,
        edges=builder.edges,
        clusters=builder.clusters,
    )
    if history is None:
        return model
    types = _state_types(definition)
    parsed = _History(history, types)
    model.execution = parsed.execution
    known = {n.name: n for n in model.states()}
    for node in known.values():
        node.stats = StateStats()
    unknown: dict[str, None] = {}
    for entry in parsed.entries.values():
        found = known.get(entry.name)
        if found is None:
            unknown[entry.name] = None
            continue
        stats = found.stats
        assert stats is not None
        stats.entries += 1
        end = entry.exited or (entry.last_event if entry.failed_attempts else None)
        if entry.entered is not None and end is not None:
            stats.durations.append(max(0.0, (end - entry.entered).total_seconds()))
        stats.attempts += entry.attempts
        stats.retries += max(0, entry.attempts - 1)
        stats.errors.extend(entry.failures)
        stats.iterations += entry.iterations
        stats.iterations_failed += entry.iterations_failed
        outcome = parsed.outcome(entry)
        if stats.entries == 1 or OUTCOMES.index(outcome) < OUTCOMES.index(stats.outcome):
            stats.outcome = outcome
        iteration = parsed.iterations.get(entry.iteration) if entry.iteration is not None else None
        if iteration is not None and (outcome in {"failed", "not_scanned"} or entry.failures):
            reason = entry.target_error or (
                ": ".join(x for x in entry.failures[-1] if x) if entry.failures else ""
            )
            stats.troubled_items.append((iteration.item, reason))
    for iteration in parsed.iterations.values():
        container = known.get(iteration.container)
        if container is None:
            continue
        container.iterations.append(iteration)
        stats = container.stats
        worse = stats is not None and OUTCOMES.index("not_scanned") < OUTCOMES.index(stats.outcome)
        if stats is not None and iteration.outcome == "not_scanned" and worse:
            stats.outcome = "not_scanned"
    if model.execution is not None and model.execution.status == "FAILED":
        # A Fail state never reports an error of its own in the history: give it the execution's.
        for node in known.values():
            stats = node.stats
            if node.type == "Fail" and stats is not None and stats.entries and not stats.errors:
                stats.errors.append((model.execution.error or "", model.execution.cause or ""))
    model.unknown_states = tuple(unknown)
    for cluster in model.clusters:
        owner = model.nodes[cluster.owner]
        if owner.stats is not None and not owner.stats.entries:
            owner.collapsed_states += sum(1 for m in cluster.members if model.nodes[m].kind == "state")
    names = {node_id: node.name for node_id, node in model.nodes.items()}
    ran = any(n.stats is not None and n.stats.entries for n in model.states())
    chosen = _chosen_rules(definition, parsed.choices)
    taken_edges = []
    for edge in model.edges:
        source, target = names[edge.source], names[edge.target]
        if edge.kind == "start":
            taken = model.nodes[edge.target].stats is not None and bool(
                model.nodes[edge.target].stats.entries  # type: ignore[union-attr]
            )
        elif edge.kind == "end":
            source_stats = model.nodes[edge.source].stats
            taken = source_stats is not None and source_stats.outcome in {
                "succeeded",
                "retried",
                "not_scanned",
            }
        elif edge.kind == "iteration":
            taken = (source, target, False) in parsed.transitions
        elif edge.kind == "catch":
            taken = (source, target, True) in parsed.transitions
        elif edge.kind in {"choice", "default"}:
            rule = edge.rule if edge.kind == "choice" else -1
            taken = (source, target, rule) in chosen or (source, target, None) in chosen
        else:
            taken = (source, target, False) in parsed.transitions
        taken_edges.append(
            Edge(edge.source, edge.target, edge.kind, edge.label, taken if ran else False, edge.rule)
        )
    model.edges = taken_edges
    return model


# -- which Choice rule matched -------------------------------------------------------------------

_MISSING: Final = object()
_PATH_STEP: Final = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


def _lookup(document: Any, path: str) -> Any:
    """The value at a simple JSONPath (``$.a.b``, ``$.a[0]``), or ``_MISSING``."""
    if not path.startswith("$") or path.startswith("$$"):
        return _MISSING
    value, position = document, 1
    for match in _PATH_STEP.finditer(path, 1):
        if match.start() != position:
            return _MISSING
        position = match.end()
        key, index = match.groups()
        if key is not None and isinstance(value, Mapping) and key in value:
            value = value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return _MISSING
    return value if position == len(path) else _MISSING


_NUMERIC: Final[dict[str, Any]] = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanEquals": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanEquals": lambda a, b: a <= b,
}


def _matches(rule: Mapping[str, Any], document: Any) -> bool | None:
    """Whether a Choice rule matches ``document``; None when this evaluator cannot tell."""
    if "And" in rule or "Or" in rule:
        results = [_matches(r, document) for r in rule.get("And") or rule.get("Or") or []]
        if None in results:
            return None
        return all(results) if "And" in rule else any(results)
    if "Not" in rule:
        inner = _matches(rule["Not"], document)
        return None if inner is None else not inner
    value = _lookup(document, str(rule.get("Variable", "")))
    for key, expected in rule.items():
        if key in {"Variable", "Next", "Comment"}:
            continue
        if key == "IsPresent":
            return (value is not _MISSING) == bool(expected)
        if value is _MISSING:
            return False
        if key == "IsNull":
            return (value is None) == bool(expected)
        if key == "IsBoolean":
            return isinstance(value, bool) == bool(expected)
        if key == "IsString":
            return isinstance(value, str) == bool(expected)
        if key == "IsNumeric":
            return (isinstance(value, int | float) and not isinstance(value, bool)) == bool(expected)
        if key == "BooleanEquals":
            return isinstance(value, bool) and value == expected
        for prefix, kinds in (("Numeric", (int, float)), ("String", (str,))):
            operator = _NUMERIC.get(key.removeprefix(prefix)) if key.startswith(prefix) else None
            if operator is not None:
                if not isinstance(value, kinds) or isinstance(value, bool) or not isinstance(expected, kinds):
                    return False
                return bool(operator(value, expected))
        return None
    return None


def _chosen_rules(
    definition: Mapping[str, Any], choices: Sequence[tuple[str, str, Any]]
) -> set[tuple[str, str, int | None]]:
    """(Choice state, next state, rule index) of each Choice the execution passed: -1 is the
    Default, None means "one of the rules to that state" (the input was not in the history or a
    rule is beyond this evaluator)."""
    states = _state_definitions(definition)
    chosen: set[tuple[str, str, int | None]] = set()
    for source, target, raw in choices:
        state = states.get(source, {})
        try:
            document = json.loads(raw) if isinstance(raw, str) else _MISSING
        except ValueError:
            document = _MISSING
        index: int | None = None
        if document is not _MISSING:
            for position, rule in enumerate(state.get("Choices") or []):
                matched = _matches(rule, document) if isinstance(rule, Mapping) else None
                if matched is None:
                    break
                if matched:
                    index = position if rule.get("Next") == target else None
                    break
            else:
                index = -1 if state.get("Default") == target else None
        chosen.add((source, target, index))
    return chosen


def _state_definitions(definition: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    states = definition.get("States")
    if not isinstance(states, Mapping):
        return found
    for name, state in states.items():
        if not isinstance(state, Mapping):
            continue
        found[str(name)] = state
        for child in (state.get("ItemProcessor"), state.get("Iterator"), *(state.get("Branches") or [])):
            if isinstance(child, Mapping):
                found.update(_state_definitions(child))
    return found


# -- text helpers ----------------------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    """A duration for people.

    >>> format_seconds(0.25), format_seconds(12.5), format_seconds(125), format_seconds(3725)
    ('250 ms', '12.50 s', '2 min 5 s', '1 h 2 min')
    """
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s"
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60} min"


def _timing(stats: StateStats) -> str:
    if not stats.durations:
        return ""
    if len(stats.durations) == 1:
        return format_seconds(stats.durations[0])
    return (
        f"×{len(stats.durations)}, total {format_seconds(stats.total_seconds)}, "
        f"max {format_seconds(stats.longest_seconds)}"
    )


def node_lines(node: Node) -> list[str]:
    """The lines of a node's label: name, type and timing, then retries, iterations (how many
    failed or were not scanned), the items (``account/region``) of the iterations
    that failed or were not scanned here, and errors.

    >>> node_lines(Node("s1", "Persist", "Task", "", retry=_retry_rules({"Retry": [{"ErrorEquals": ["X"]}]})))
    ['Persist', 'Task', 'retry: 1 rule, up to 3 retries']
    """
    lines = [node.name]
    stats = node.stats
    head = node.type
    if stats is not None and stats.entries:
        timing = _timing(stats)
        head = f"{node.type} · {timing}" if timing else node.type
    lines.append(head)
    if stats is not None and stats.iterations:
        failed = f", {stats.iterations_failed} failed" if stats.iterations_failed else ""
        if node.iterations:
            unscanned = sum(1 for i in node.iterations if i.outcome == "not_scanned")
            failed += f", {unscanned} not scanned" if unscanned else ""
        lines.append(f"{stats.iterations} iteration{'s' if stats.iterations != 1 else ''}{failed}")
    if stats is not None and stats.troubled_items:
        items = list(dict.fromkeys(item for item, _ in stats.troubled_items))
        more = f" +{len(items) - 2} more" if len(items) > 2 else ""
        lines.append(", ".join(items[:2]) + more)
    if stats is not None and stats.retries:
        lines.append(f"↻ {stats.retries} retr{'ies' if stats.retries != 1 else 'y'}")
    elif node.retry and (stats is None or not stats.entries):
        most = max(r.max_attempts for r in node.retry)
        count = len(node.retry)
        lines.append(f"retry: {count} rule{'s' if count != 1 else ''}, up to {most} retries")
    if node.collapsed_states:
        lines.append(f"▸ {node.collapsed_states} states not taken (click to show)")
    if stats is not None and stats.errors:
        errors = list(dict.fromkeys(e for e, _ in stats.errors if e))
        if errors:
            lines.append("✗ " + ", ".join(errors))
    return lines


# -- Mermaid ---------------------------------------------------------------------------------------

_MERMAID_SAFE: Final = re.compile(
    r"[^\"#&<>`{}\[\]()|;\\\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069]"
)


def mermaid_text(text: str) -> str:
    """Text for a quoted Mermaid label: markup and quote characters, controls and bidirectional
    overrides become Mermaid entity codes (``#60;``), so a label can never close its quotes or
    inject HTML.

    >>> mermaid_text('<b>"x"</b> #1')
    '#60;b#62;#34;x#34;#60;/b#62; #35;1'
    """
    return "".join(c if _MERMAID_SAFE.match(c) else f"#{ord(c)};" for c in text)


def _mermaid_shape(node: Node, label: str) -> str:
    if node.kind == "start":
        return f'(("{mermaid_text("start")}"))'
    if node.kind == "end":
        return f'((("{mermaid_text("end")}")))'
    if node.type == "Choice":
        return f'{{"{label}"}}'
    if node.type in _TERMINAL:
        return f'(["{label}"])'
    if node.type in _CONTAINERS:
        return f'[["{label}"]]'
    return f'["{label}"]'


def to_mermaid(model: GraphModel) -> str:
    """Mermaid flowchart text (``flowchart TD``): subgraphs for Map and Parallel, Choice
    conditions on edges, Catch edges dotted, nodes classed by outcome.

    >>> text = to_mermaid(graph_model({"StartAt": "<A>", "States": {"<A>": {"Type": "Succeed"}}}, None))
    >>> 's1(["#60;A#62;<br/>Succeed"])' in text
    True
    """
    lines = ["flowchart TD"]
    by_scope: dict[str, list[Node]] = {}
    for node in model.nodes.values():
        by_scope.setdefault(node.scope, []).append(node)
    owned: dict[str, list[Cluster]] = {}
    for cluster in model.clusters:
        owned.setdefault(cluster.owner, []).append(cluster)

    def emit(scope: str, indent: str) -> None:
        for node in by_scope.get(scope, []):
            label = "<br/>".join(mermaid_text(line) for line in node_lines(node))
            if node.id in owned:
                lines.append(f'{indent}subgraph {node.id}_group ["{mermaid_text(node.name)}"]')
                lines.append(f"{indent}    direction TB")
                lines.append(f"{indent}    {node.id}{_mermaid_shape(node, label)}")
                for cluster in owned[node.id]:
                    lines.append(f'{indent}    subgraph {cluster.id} ["{mermaid_text(cluster.label)}"]')
                    lines.append(f"{indent}        direction TB")
                    emit(cluster.id, indent + "        ")
                    lines.append(f"{indent}    end")
                lines.append(f"{indent}end")
            else:
                lines.append(f"{indent}{node.id}{_mermaid_shape(node, label)}")

    emit("", "    ")
    catch_links: list[int] = []
    taken_links: list[int] = []
    for index, edge in enumerate(model.edges):
        arrow = "-.->" if edge.kind == "catch" else "-->"
        label = f'|"{mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"    {edge.source} {arrow}{label} {edge.target}")
        if edge.kind == "catch":
            catch_links.append(index)
        if edge.taken:
            taken_links.append(index)
    for outcome, (fill, stroke, colour) in _COLOURS.items():
        lines.append(f"    classDef {outcome} fill:{fill},stroke:{stroke},color:{colour}")
    groups: dict[str, list[str]] = {}
    for node in model.nodes.values():
        if node.kind == "state":
            groups.setdefault(node.outcome, []).append(node.id)
    for outcome, ids in groups.items():
        lines.append(f"    class {','.join(ids)} {outcome}")
    if taken_links:
        lines.append(f"    linkStyle {','.join(map(str, taken_links))} stroke:#0f172a,stroke-width:3px")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT ----------------------------------------------------------------------------------


def dot_text(text: str) -> str:
    """Text for a double-quoted DOT string: backslashes, quotes, ``&`` (Graphviz reads entities
    in labels) and line breaks escaped; other control characters shown as ``\\xNN``.

    >>> dot_text('say "hi"\\n&lt; \\\\N')
    'say \\\\"hi\\\\"\\\\n&amp;lt; \\\\\\\\N'
    """
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c == "&":
            out.append("&amp;")
        elif c in "\r\n":
            out.append("\\n")
        elif ord(c) < 32 or 0x7F <= ord(c) <= 0x9F:
            out.append(f"\\\\x{ord(c):02x}")
        else:
            out.append(c)
    return "".join(out)


def _dot_attrs(attrs: Mapping[str, str]) -> str:
    return ", ".join(f'{key}="{dot_text(value)}"' for key, value in attrs.items())


def to_dot(model: GraphModel) -> str:
    """Graphviz DOT text: clusters for Map and Parallel, Catch edges dashed, nodes filled by
    outcome, the full retry rules and errors in tooltips.

    >>> text = to_dot(graph_model({"StartAt": 'A"', "States": {'A"': {"Type": "Succeed"}}}, None))
    >>> '"s1" [label="A\\\\"\\\\nSucceed"' in text
    True
    """
    lines = [
        "digraph tagwarden {",
        '    graph [rankdir="TB", compound="true", fontname="Helvetica", fontsize="11", nodesep="0.4"];',
        '    node [shape="box", style="rounded,filled", fontname="Helvetica", fontsize="10"];',
        '    edge [fontname="Helvetica", fontsize="9"];',
    ]
    by_scope: dict[str, list[Node]] = {}
    for node in model.nodes.values():
        by_scope.setdefault(node.scope, []).append(node)
    owned: dict[str, list[Cluster]] = {}
    for cluster in model.clusters:
        owned.setdefault(cluster.owner, []).append(cluster)

    def node_line(node: Node) -> str:
        fill, stroke, colour = _COLOURS[node.outcome if node.kind == "state" else "static"]
        attrs = {
            "label": "\n".join(node_lines(node)),
            "fillcolor": fill,
            "color": stroke,
            "fontcolor": colour,
        }
        if node.kind == "start":
            attrs = {"label": "", "shape": "circle", "width": "0.2", "fillcolor": "#0f172a"}
        elif node.kind == "end":
            attrs = {"label": "", "shape": "doublecircle", "width": "0.15", "fillcolor": "#0f172a"}
        elif node.type == "Choice":
            attrs["shape"] = "diamond"
            attrs["style"] = "filled"
        elif node.type in _TERMINAL:
            attrs["style"] = "rounded,filled,bold"
        tooltip = _tooltip(node)
        if tooltip:
            attrs["tooltip"] = tooltip
        return f'"{node.id}" [{_dot_attrs(attrs)}];'

    def emit(scope: str, indent: str) -> None:
        for node in by_scope.get(scope, []):
            if node.id in owned:
                lines.append(f'{indent}subgraph "cluster_{node.id}" {{')
                lines.append(f'{indent}    label="{dot_text(node.name)}"; style="rounded"; color="#94a3b8";')
                lines.append(f"{indent}    {node_line(node)}")
                for cluster in owned[node.id]:
                    lines.append(f'{indent}    subgraph "cluster_{cluster.id}" {{')
                    lines.append(
                        f'{indent}        label="{dot_text(cluster.label)}"; style="dashed"; color="#cbd5e1";'
                    )
                    emit(cluster.id, indent + "        ")
                    lines.append(f"{indent}    }}")
                lines.append(f"{indent}}}")
            else:
                lines.append(f"{indent}{node_line(node)}")

    emit("", "    ")
    for edge in model.edges:
        attrs: dict[str, str] = {}
        if edge.label:
            attrs["label"] = edge.label
        if edge.kind == "catch":
            attrs["style"] = "dashed"
        if edge.taken:
            attrs["penwidth"] = "2.5"
            attrs["color"] = "#0f172a"
        elif edge.taken is False:
            attrs["color"] = "#94a3b8"
        suffix = f" [{_dot_attrs(attrs)}]" if attrs else ""
        lines.append(f'    "{edge.source}" -> "{edge.target}"{suffix};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _tooltip(node: Node) -> str:
    parts = []
    if node.comment:
        parts.append(node.comment)
    parts.extend(f"Retry {rule.text}" for rule in node.retry)
    parts.extend(f"Catch {_short_errors(errors)} -> {target}" for errors, target in node.catch)
    if node.stats is not None:
        parts.extend(f"{error}: {cause}" for error, cause in dict.fromkeys(node.stats.errors))
    return "\n".join(parts)


# -- layered layout for the SVG --------------------------------------------------------------------
#
# Hand-written, on purpose. Graphviz ``dot`` lays out better but is a system package, not a wheel:
# the page must draw on a clean clone and in CI, so a pure-Python layout would stay
# as the fallback and the code would grow, with output that changes with the installed Graphviz
# (``to_dot`` is there for anyone who wants it: ``tagwarden graph --format dot | dot -Tsvg``).
# grandalf (PyPI, pure Python Sugiyama, 0.8 of 2023) was measured on this definition (a throwaway
# adapter of 25 lines feeding it the same boxes): it would replace about 134 lines here (cycle
# breaking, layering, dummy nodes, ordering, coordinates), but its drawings are 19% wider without an
# execution (2607 vs 2185 px) and 40% wider for a local run (2030 vs 1449 px): it cannot sink a
# Catch handler next to the state it handles nor keep the path taken straight. It crosses fewer
# edges (7 vs 12 and 4 vs 8, counting straight source-target segments). Fitting the window and
# reading the path at a glance are the point, so it stays out.

_FONT: Final = 12.5
_FONT_FAMILY: Final = "system-ui, -apple-system, Segoe UI, Roboto, DejaVu Sans, sans-serif"
# Generous average advances (DejaVu Sans, the widest of the family list): a box or a label that is
# a little too wide costs space, one too narrow lets text run into its neighbour.
_CHAR_TITLE: Final = 8.0  # bold, _FONT px: a state's name
_CHAR: Final = 6.8  # 11 px: a state's other lines
_CHAR_LABEL: Final = 6.5  # 10.5 px: edge labels
_LABEL_H: Final = 16.0
_LINE: Final = 16.0
_PAD_X: Final = 12.0
_PAD_Y: Final = 8.0
_GAP_X: Final = 28.0
_GAP_Y: Final = 46.0
_MAX_CHARS: Final = 44
_MAX_LABEL: Final = 36
_CLUSTER_PAD: Final = 16.0
_HEADER: Final = 8.0
_DUMMY_W: Final = 14.0


def _clip(text: str, limit: int = _MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class _Box:
    id: str
    w: float
    h: float
    x: float = 0.0  # centre
    y: float = 0.0  # top
    layer: int = 0
    dummy: bool = False
    inner: list[_Layout] = field(default_factory=list)
    header: float = 0.0


@dataclass
class _Route:
    edge: Edge
    points: list[tuple[float, float]]
    reversed: bool
    label_at: tuple[float, float] | None


@dataclass
class _Layout:
    boxes: dict[str, _Box]
    routes: list[_Route]
    width: float
    height: float
    offset: tuple[float, float] = (0.0, 0.0)
    cluster: Cluster | None = None


def _text_width(lines: Sequence[str]) -> float:
    """The width of a node's lines: the first (its name) is bold and larger."""
    return max(len(line) * (_CHAR_TITLE if index == 0 else _CHAR) for index, line in enumerate(lines))


def _label_width(text: str) -> float:
    return len(text) * _CHAR_LABEL + 8


def _node_size(node: Node) -> tuple[float, float]:
    if node.kind != "state":
        return 18.0, 18.0
    lines = [_clip(line) for line in node_lines(node)]
    width = _text_width(lines) + 2 * _PAD_X
    if node.type == "Choice":
        width += 28
    elif node.type in _TERMINAL:
        width += 24
    return max(width, 120.0), len(lines) * _LINE + 2 * _PAD_Y


def _container_lines(node: Node) -> list[str]:
    return [_clip(line, 60) for line in node_lines(node) if not line.startswith("▸")]


def _container_box(model: GraphModel, node: Node, owned: Mapping[str, list[Cluster]]) -> _Box:
    """A Map or Parallel drawn open: its header, then each of its subgraphs side by side."""
    inner = [_layout_scope(model, c.id, owned) for c in owned[node.id]]
    for layout, cluster in zip(inner, owned[node.id], strict=True):
        layout.cluster = cluster
    lines = _container_lines(node)
    header = len(lines) * _LINE + 2 * _PAD_Y + _HEADER
    title_w = _text_width(lines) + 2 * _PAD_X
    inner_w = sum(i.width for i in inner) + _GAP_X * (len(inner) - 1) + 2 * _CLUSTER_PAD
    inner_h = max((i.height for i in inner), default=0.0) + _CLUSTER_PAD + 22
    return _Box(node.id, max(inner_w, title_w), header + inner_h, inner=inner, header=header)


def _layout_scope(model: GraphModel, scope: str, owned: Mapping[str, list[Cluster]]) -> _Layout:
    members = [n for n in model.nodes.values() if n.scope == scope]
    ids = {n.id for n in members}
    boxes: dict[str, _Box] = {}
    for node in members:
        if node.id in owned and not node.collapsed_states:
            boxes[node.id] = _container_box(model, node, owned)
        else:
            w, h = _node_size(node)
            boxes[node.id] = _Box(node.id, w, h)
    edges = [e for e in model.edges if e.source in ids and e.target in ids]
    # Depth-first search from the start marker finds the back edges (loops) to reverse.
    outgoing: dict[str, list[Edge]] = {i: [] for i in ids}
    for edge in edges:
        outgoing[edge.source].append(edge)
    order = [n.id for n in members]
    state: dict[str, int] = {}
    back: set[int] = set()
    for root in order:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            current, index = stack[-1]
            if index < len(outgoing[current]):
                stack[-1] = (current, index + 1)
                edge = outgoing[current][index]
                seen = state.get(edge.target)
                if seen == 1:
                    back.add(id(edge))
                elif seen is None:
                    state[edge.target] = 1
                    stack.append((edge.target, 0))
            else:
                state[current] = 2
                stack.pop()
    forward = [(e.target, e.source) if id(e) in back else (e.source, e.target) for e in edges]
    # Longest-path layering, then failure handlers (reached only by Catch) sink next to their target.
    layer = dict.fromkeys(ids, 0)
    for _ in range(len(ids) + 1):
        changed = False
        for source, target in forward:
            if source != target and layer[target] < layer[source] + 1:
                layer[target] = layer[source] + 1
                changed = True
        if not changed:
            break
    incoming_kinds: dict[str, set[str]] = {i: set() for i in ids}
    for edge in edges:
        if id(edge) not in back:
            incoming_kinds[edge.target].add(edge.kind)
    for node_id in sorted(ids, key=lambda i: -layer[i]):
        if incoming_kinds[node_id] == {"catch"}:
            successors = [t for s, t in forward if s == node_id and t != node_id]
            if successors:
                layer[node_id] = max(layer[node_id], min(layer[t] for t in successors) - 1)
    for node_id, value in layer.items():
        boxes[node_id].layer = value
    # Dummy boxes on long edges keep them from crossing through nodes.
    chains: list[tuple[Edge, list[str], bool]] = []
    for edge, (source, target) in zip(edges, forward, strict=True):
        chain = [source]
        for step in range(layer[source] + 1, layer[target]):
            dummy = f"d{len(boxes)}"
            boxes[dummy] = _Box(dummy, _DUMMY_W, _LINE, layer=step, dummy=True)
            chain.append(dummy)
        chain.append(target)
        chains.append((edge, chain, id(edge) in back))
    depth = max((b.layer for b in boxes.values()), default=0) + 1
    layers: list[list[str]] = [[] for _ in range(depth)]
    position = {node_id: i for i, node_id in enumerate(order)}
    for box in sorted(
        boxes.values(), key=lambda b: position[b.id] if b.id in position else len(position) + int(b.id[1:])
    ):
        layers[box.layer].append(box.id)
    up: dict[str, list[str]] = {b: [] for b in boxes}
    down: dict[str, list[str]] = {b: [] for b in boxes}
    for _edge, chain, _rev in chains:
        for a, b in itertools.pairwise(chain):
            if a != b:
                down[a].append(b)
                up[b].append(a)
    # Barycentre ordering, a few sweeps down and up.
    for sweep in range(8):
        rng = range(1, depth) if sweep % 2 == 0 else range(depth - 2, -1, -1)
        for index in rng:
            neighbours = up if sweep % 2 == 0 else down
            ranks = {node_id: i for row in layers for i, node_id in enumerate(row)}
            layers[index] = _barycentre_order(layers[index], neighbours, ranks)
    # The spine (the path the execution took, or without one the Next/Default chain from the start)
    # pulls only on itself, so it runs straight down the middle and the rest hangs off it.
    spine = _spine(edges, scope_start=next((n.id for n in members if n.kind == "start"), None))
    spine_up: dict[str, list[str]] = {b: [] for b in boxes}
    spine_down: dict[str, list[str]] = {b: [] for b in boxes}
    for edge, chain, reversed_edge in chains:
        if id(edge) in spine and not reversed_edge:
            for a, b in itertools.pairwise(chain):
                spine_down[a].append(b)
                spine_up[b].append(a)
    # x: each box near the mean of its neighbours, keeping order and spacing.
    for row in layers:
        x = 0.0
        for node_id in row:
            box = boxes[node_id]
            box.x = x + box.w / 2
            x += box.w + _GAP_X
    for sweep in range(12):
        rng = range(1, depth) if sweep % 2 == 0 else range(depth - 2, -1, -1)
        neighbours = up if sweep % 2 == 0 else down
        on_spine = spine_up if sweep % 2 == 0 else spine_down
        for index in rng:
            row = layers[index]
            desired = []
            for node_id in row:
                linked = [boxes[n].x for n in on_spine[node_id] or neighbours[node_id]]
                desired.append(sum(linked) / len(linked) if linked else boxes[node_id].x)
            _place(row, desired, boxes)
    left = min((b.x - b.w / 2 for b in boxes.values()), default=0.0)
    for box in boxes.values():
        box.x -= left
    width = max((b.x + b.w / 2 for b in boxes.values()), default=0.0)
    crowded = [0] * depth
    labelled: dict[tuple[str, str], int] = {}
    for edge, (source, target) in zip(edges, forward, strict=True):
        if edge.label:
            labelled[(source, target)] = labelled.get((source, target), 0) + 1
    for (source, _target), count in labelled.items():
        crowded[layer[source]] = max(crowded[layer[source]], count - 1)
    y = 0.0
    for row_index, row in enumerate(layers):
        height = max((boxes[i].h for i in row), default=0.0) + crowded[row_index] * 18.0
        for node_id in row:
            box = boxes[node_id]
            # Small boxes centre on the layer's first line; a big container never pushes its
            # neighbours down into the middle of it.
            tallest_small = max((boxes[i].h for i in row if not boxes[i].inner), default=0.0)
            box.y = y + (tallest_small - box.h) / 2 if not box.inner and box.h <= tallest_small else y
        y += height + _GAP_Y
    height = max(0.0, y - _GAP_Y)
    # Parallel edges (a Choice with several rules to one state, Next and Catch to one state)
    # spread their ends and labels apart.
    siblings: dict[tuple[str, str], list[int]] = {}
    for index, (edge, _chain, _rev) in enumerate(chains):
        siblings.setdefault((edge.source, edge.target), []).append(index)
    routes = []
    for index, (edge, chain, reversed_edge) in enumerate(chains):
        group = siblings[(edge.source, edge.target)]
        sibling, count = group.index(index), len(group)
        spread = (sibling - (count - 1) / 2) * 16.0
        path = list(reversed(chain)) if reversed_edge else chain
        points: list[tuple[float, float]] = []
        for position_index, node_id in enumerate(path):
            box = boxes[node_id]
            if box.dummy:
                points.append((box.x, box.y + box.h / 2))
            elif reversed_edge:
                points.append((box.x + box.w / 2, box.y + box.h / 2 + spread / 2))
            elif position_index == 0:
                points.append((box.x + spread, box.y + box.h))
            else:
                points.append((box.x + spread, box.y))
        routes.append(_Route(edge, points, reversed_edge, None))
    _place_labels(routes, [b for b in boxes.values() if not b.dummy])
    return _Layout(boxes, routes, width, height)


def _spine(edges: Sequence[Edge], scope_start: str | None) -> set[int]:
    """The ids of the edges the layout keeps straight: those the execution took, or without an
    execution (or where it never went) the first Next/Default/End edge of each state from the
    start marker on."""
    taken = {id(e) for e in edges if e.taken}
    if taken:
        return taken
    outgoing: dict[str, list[Edge]] = {}
    for edge in edges:
        outgoing.setdefault(edge.source, []).append(edge)
    chosen: set[int] = set()
    seen: set[str] = set()
    current = scope_start
    while current is not None and current not in seen:
        seen.add(current)
        step = next(
            (
                e
                for kind in ("start", "next", "default", "end")
                for e in outgoing.get(current, [])
                if e.kind == kind
            ),
            None,
        )
        if step is None:
            break
        chosen.add(id(step))
        current = step.target
    return chosen


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two (left, top, right, bottom) rectangles intersect, with a 2 px margin."""
    return a[0] < b[2] + 2 and b[0] < a[2] + 2 and a[1] < b[3] + 2 and b[1] < a[3] + 2


def _place_labels(routes: Sequence[_Route], boxes: Sequence[_Box]) -> None:
    """Put each edge label on its edge where it covers no state and no other label.

    Candidates run along each segment of the edge (its middle first), then beside the edge; the
    first free one wins. Labels of a Choice's many edges used to sit on one spot and overwrite
    each other (``default`` ran into ``$.result.listing.targe...``)."""
    taken = [(b.x - b.w / 2, b.y, b.x + b.w / 2, b.y + b.h) for b in boxes]
    for route in routes:
        if not route.edge.label:
            continue
        width = _label_width(_clip(route.edge.label, _MAX_LABEL))
        candidates: list[tuple[float, float]] = []
        segments = list(itertools.pairwise(route.points))
        for t in (0.5, 0.35, 0.65, 0.2, 0.8):
            for (x0, y0), (x1, y1) in segments:
                candidates.append((x0 + (x1 - x0) * t, y0 + (y1 - y0) * t))
        for shift in (1, -1, 2, -2, 3, -3):
            for x, y in list(candidates[: len(segments) * 3]):
                candidates.append((x + shift * (width / 2 + 6), y))
        chosen = candidates[0]
        for x, y in candidates:
            rect = (x - width / 2, y - 9, x + width / 2, y - 9 + _LABEL_H)
            if not any(_overlaps(rect, other) for other in taken):
                chosen = (x, y)
                break
        x, y = chosen
        taken.append((x - width / 2, y - 9, x + width / 2, y - 9 + _LABEL_H))
        route.label_at = chosen


def _barycentre_order(
    row: list[str], neighbours: Mapping[str, list[str]], ranks: Mapping[str, int]
) -> list[str]:
    def key(node_id: str) -> float:
        linked = [ranks[n] for n in neighbours[node_id] if n in ranks]
        return sum(linked) / len(linked) if linked else float(row.index(node_id))

    return sorted(row, key=key)


def _place(row: list[str], desired: list[float], boxes: Mapping[str, _Box]) -> None:
    """Centres as close to ``desired`` as the order and spacing allow (two passes, averaged)."""
    forward: list[float] = []
    for i, node_id in enumerate(row):
        want = desired[i]
        if i:
            previous = boxes[row[i - 1]]
            want = max(want, forward[-1] + previous.w / 2 + _GAP_X + boxes[node_id].w / 2)
        forward.append(want)
    backward = [0.0] * len(row)
    for i in range(len(row) - 1, -1, -1):
        want = desired[i]
        if i < len(row) - 1:
            following = boxes[row[i + 1]]
            want = min(want, backward[i + 1] - following.w / 2 - _GAP_X - boxes[row[i]].w / 2)
        backward[i] = want
    for i, node_id in enumerate(row):
        x = (forward[i] + backward[i]) / 2
        if i:
            previous = boxes[row[i - 1]]
            x = max(x, boxes[row[i - 1]].x + previous.w / 2 + _GAP_X + boxes[node_id].w / 2)
        boxes[node_id].x = x


# -- SVG and HTML ----------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _path(points: Sequence[tuple[float, float]], reversed_edge: bool) -> str:
    (x, y), rest = points[0], points[1:]
    commands = [f"M{x:.1f},{y:.1f}"]
    for nx, ny in rest:
        if reversed_edge:
            bend = max(40.0, abs(ny - y) / 3)
            commands.append(f"C{x + bend:.1f},{y:.1f} {nx + bend:.1f},{ny:.1f} {nx:.1f},{ny:.1f}")
        else:
            dy = (ny - y) / 2
            commands.append(f"C{x:.1f},{y + dy:.1f} {nx:.1f},{ny - dy:.1f} {nx:.1f},{ny:.1f}")
        x, y = nx, ny
    return " ".join(commands)


def _svg_node(node: Node, box: _Box, ox: float, oy: float, out: list[str]) -> None:
    x, y = ox + box.x - box.w / 2, oy + box.y
    cx = ox + box.x
    if node.kind == "start":
        out.append(
            f'<g class="marker start{"" if node.scope else " top"}"><circle cx="{cx:.1f}" '
            f'cy="{y + box.h / 2:.1f}" r="7" fill="#0f172a"/></g>'
        )
        return
    if node.kind == "end":
        out.append(
            f'<g class="marker end"><circle cx="{cx:.1f}" cy="{y + box.h / 2:.1f}" r="8" fill="none" '
            f'stroke="#0f172a" stroke-width="1.5"/><circle cx="{cx:.1f}" cy="{y + box.h / 2:.1f}" r="4.5" '
            'fill="#0f172a"/></g>'
        )
        return
    outcome = node.outcome
    fill, stroke, colour = _COLOURS[outcome]
    dash = ' stroke-dasharray="5 3"' if outcome in {"aborted", "not_run"} else ""
    target = f"branch-{node.id}" if node.collapsed_states and not box.inner else f"state-{node.id}"
    out.append(
        f'<a href="#{_e(target)}"><g class="node {_e(outcome)}" id="node-{_e(node.id)}" '
        f'data-state="{_e(node.name)}" data-type="{_e(node.type)}" data-outcome="{_e(outcome)}">'
    )
    out.append(f"<title>{_e(_title(node))}</title>")
    if node.type == "Choice":
        tip = 14.0
        points = [
            (x, y + box.h / 2),
            (x + tip, y),
            (x + box.w - tip, y),
            (x + box.w, y + box.h / 2),
            (x + box.w - tip, y + box.h),
            (x + tip, y + box.h),
        ]
        coordinates = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        out.append(
            f'<polygon points="{coordinates}" fill="{fill}" stroke="{stroke}" stroke-width="1.6"{dash}/>'
        )
    elif box.inner:
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="10" '
            f'fill="#ffffff" stroke="{stroke}" stroke-width="1.8"{dash}/>'
        )
        out.append(
            f'<path d="M{x:.1f},{y + box.header - _HEADER:.1f} v{-(box.header - _HEADER - 10):.1f} '
            f"a10,10 0 0 1 10,-10 h{box.w - 20:.1f} a10,10 0 0 1 10,10 v{box.header - _HEADER - 10:.1f} z"
            f'" fill="{fill}" stroke="none"/>'
        )
    else:
        radius = box.h / 2 if node.type in _TERMINAL else 7
        width = 2.6 if node.type in _TERMINAL else 1.6
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="{radius:.1f}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/>'
        )
    lines = _container_lines(node) if box.inner else [_clip(line) for line in node_lines(node)]
    for index, line in enumerate(lines):
        weight = ' font-weight="600"' if index == 0 else ""
        size = "" if index == 0 else ' font-size="11"'
        ty = y + _PAD_Y + _LINE * index + 12
        out.append(
            f'<text x="{cx:.1f}" y="{ty:.1f}" text-anchor="middle" fill="{colour}"{weight}{size}>'
            f"{_e(line)}</text>"
        )
    out.append("</g></a>")


def _title(node: Node) -> str:
    lines = [f"{node.name} ({node.type}): {_OUTCOME_TEXT[node.outcome]}"]
    tooltip = _tooltip(node)
    if tooltip:
        lines.append(tooltip)
    return "\n".join(lines)


def _svg_layout(
    model: GraphModel, layout: _Layout, ox: float, oy: float, out: list[str], suffix: str = ""
) -> None:
    for node_id, box in layout.boxes.items():
        if not box.inner:
            continue
        _svg_node(model.nodes[node_id], box, ox, oy, out)
        x = ox + box.x - box.w / 2 + _CLUSTER_PAD
        total = sum(i.width for i in box.inner) + _GAP_X * (len(box.inner) - 1)
        x += (box.w - 2 * _CLUSTER_PAD - total) / 2
        for inner in box.inner:
            top = oy + box.y + box.header + 18
            if inner.cluster is not None:
                out.append(
                    f'<text x="{x:.1f}" y="{top - 6:.1f}" font-size="10.5" fill="#64748b" '
                    f'font-style="italic">{_e(_clip(inner.cluster.label, 60))}</text>'
                )
            _svg_layout(model, inner, x, top, out, suffix)
            x += inner.width + _GAP_X
    for route in layout.routes:
        edge = route.edge
        points = [(ox + px, oy + py) for px, py in route.points]
        classes = ["edge", edge.kind]
        if edge.taken:
            classes.append("taken")
        elif edge.taken is False:
            classes.append("not-taken")
        stroke = "#0f172a" if edge.taken else ("#b6c0cc" if edge.taken is False else "#64748b")
        width = 2.4 if edge.taken else 1.4
        dash = ' stroke-dasharray="6 4"' if edge.kind == "catch" else ""
        marker = ("arrow-taken" if edge.taken else "arrow") + suffix
        out.append(
            f'<path class="{" ".join(classes)}" d="{_path(points, route.reversed)}" fill="none" '
            f'stroke="{stroke}" stroke-width="{width}"{dash} marker-end="url(#{marker})"/>'
        )
    for route in layout.routes:
        if route.label_at is None:
            continue
        text = _clip(route.edge.label, _MAX_LABEL)
        lx, ly = ox + route.label_at[0], oy + route.label_at[1]
        w = _label_width(text)
        colour = "#0f172a" if route.edge.taken else "#475569"
        out.append(
            f'<g class="edge-label"><title>{_e(route.edge.label)}</title>'
            f'<rect x="{lx - w / 2:.1f}" y="{ly - 9:.1f}" width="{w:.1f}" height="16" rx="3" '
            f'fill="#ffffff" fill-opacity="0.92"/>'
            f'<text x="{lx:.1f}" y="{ly + 3:.1f}" text-anchor="middle" font-size="10.5" fill="{colour}">'
            f"{_e(text)}</text></g>"
        )
    for node_id, box in layout.boxes.items():
        if not box.dummy and not box.inner:
            _svg_node(model.nodes[node_id], box, ox, oy, out)


def to_svg(model: GraphModel, *, branch: str | None = None) -> str:
    """The diagram as one ``<svg>`` element (layered layout, outcome colours, no script).

    A Map or Parallel the execution did not enter is a stub in the diagram; ``branch`` (its node
    id) draws that container open on its own (the page shows it on request).

    >>> svg = to_svg(graph_model({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}, None))
    >>> svg.startswith("<svg") and 'data-state="A"' in svg
    True
    """
    owned: dict[str, list[Cluster]] = {}
    for cluster in model.clusters:
        owned.setdefault(cluster.owner, []).append(cluster)
    if branch is None:
        layout = _layout_scope(model, "", owned)
    else:
        box = _container_box(model, model.nodes[branch], owned)
        box.x = box.w / 2
        layout = _Layout({branch: box}, [], box.w, box.h)
    margin = 20.0
    width = layout.width + 2 * margin + 60
    height = layout.height + 2 * margin
    label = "state machine diagram" if branch is None else f"{model.nodes[branch].name}, not taken"
    suffix = "" if branch is None else f"-{branch}"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="diagram" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" font-family="{_FONT_FAMILY}" font-size="{_FONT}" '
        f'role="img" aria-label="{_e(label)}">',
        "<defs>",
        f'<marker id="arrow{suffix}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8391a5"/></marker>',
        f'<marker id="arrow-taken{suffix}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#0f172a"/></marker>',
        "</defs>",
    ]
    _svg_layout(model, layout, margin, margin, out, suffix)
    out.append("</svg>")
    return "\n".join(out)


#: No script, nothing loaded from anywhere: the page is data, not an application.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
)

_CSS: Final = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; margin: 24px;
       color: #0f172a; background: #f8fafc; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: #475569; margin: 0 0 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 9px; font-weight: 600; font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 8px 0 12px; font-size: 13px;
          align-items: center; }
.legend span.swatch { display: inline-block; width: 14px; height: 14px; border-radius: 3px;
       vertical-align: -2px; margin-right: 5px; border: 1.5px solid; }
.legend svg { vertical-align: middle; margin-right: 5px; }
.canvas { overflow: auto; background: #ffffff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 8px; }
.canvas svg.diagram { display: block; margin: 0 auto; max-width: 100%; height: auto; }
.branch { display: none; margin-top: 12px; }
.branch:target { display: block; }
.partial { color: #9a3412; font-weight: 600; }
.iterations .rows { display: flex; flex-direction: column; border: 1px solid #e2e8f0; background: #ffffff;
       font-size: 13px; }
.iterations .row { display: grid; grid-template-columns: 4em minmax(14em, 18em) 9em 7em 1fr; gap: 8px;
       padding: 4px 8px; border-top: 1px solid #e2e8f0; order: var(--by-duration); unicode-bidi: isolate; }
.iterations .row.head { order: -1; font-weight: 600; background: #f1f5f9; border-top: none; }
.iterations .num { text-align: right; font-variant-numeric: tabular-nums; }
.sort-key[id$="-by-item"]:target ~ .rows .row:not(.head) { order: var(--by-item); }
.sort-key[id$="-by-outcome"]:target ~ .rows .row:not(.head) { order: var(--by-outcome); }
.sort-key[id$="-by-start"]:target ~ .rows .row:not(.head) { order: var(--by-start); }
.sort-key[id$="-by-duration"]:target ~ .rows .row:not(.head) { order: var(--by-duration); }
.canvas svg a { text-decoration: none; }
.canvas svg text { unicode-bidi: isolate; white-space: pre; }
table { border-collapse: collapse; background: #ffffff; font-size: 13px; width: 100%; }
th, td { border: 1px solid #e2e8f0; padding: 5px 8px; text-align: left; vertical-align: top;
         unicode-bidi: isolate; }
th { background: #f1f5f9; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:target { outline: 3px solid #f59e0b; }
pre { white-space: pre-wrap; word-break: break-word; margin: 4px 0 0; font-size: 12px; max-width: 70ch; }
details summary { cursor: pointer; }
.error { color: #991b1b; font-weight: 600; }
.small { color: #64748b; font-size: 12px; }
"""


def _legend(model: GraphModel) -> str:
    items = []
    outcomes = ["static"] if model.execution is None else list(OUTCOMES)
    for outcome in outcomes:
        fill, stroke, _colour = _COLOURS[outcome]
        items.append(
            f'<span><span class="swatch" style="background:{fill};border-color:{stroke}"></span>'
            f"{_e(_OUTCOME_TEXT[outcome])}</span>"
        )
    lines = [
        ("next / choice", "#64748b", "", 1.4),
        ("Catch", "#64748b", "6 4", 1.4),
    ]
    if model.execution is not None:
        lines = [
            ("path taken", "#0f172a", "", 2.6),
            ("not taken", "#b6c0cc", "", 1.4),
            ("Catch", "#64748b", "6 4", 1.4),
        ]
    for label, colour, dash, width in lines:
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        items.append(
            f'<span><svg width="34" height="10" aria-hidden="true"><line x1="1" y1="5" x2="33" y2="5" '
            f'stroke="{colour}" stroke-width="{width}"{dash_attr}/></svg>{_e(label)}</span>'
        )
    items.append('<span class="small">Click a state for its row in the table.</span>')
    return f'<div class="legend" aria-label="legend">{"".join(items)}</div>'


def _bdi(value: object) -> str:
    return f"<bdi>{_e(value)}</bdi>"


def _badge(outcome: str) -> str:
    fill, stroke, colour = _COLOURS[outcome]
    return (
        f'<span class="badge" style="background:{fill};color:{colour};border:1px solid {stroke}">'
        f"{_e(_OUTCOME_TEXT[outcome])}</span>"
    )


_MAX_ITERATION_ROWS: Final = 2000


def _iteration_list(node: Node) -> str:
    """A Map's iterations, longest first; links re-sort them by item, outcome or start order
    without script (each order is a CSS custom property; ``:target`` picks one)."""
    iterations = node.iterations[:_MAX_ITERATION_ROWS]
    never = float("inf")
    orders = {
        "duration": sorted(
            iterations, key=lambda i: -(i.duration_seconds if i.duration_seconds is not None else never)
        ),
        "item": sorted(iterations, key=lambda i: i.item),
        "outcome": sorted(iterations, key=lambda i: (OUTCOMES.index(i.outcome), i.item)),
        "start": iterations,
    }
    rank = {key: {id(i): n for n, i in enumerate(ordered)} for key, ordered in orders.items()}
    prefix = f"iterations-{node.id}"
    keys = "".join(f'<span class="sort-key" id="{prefix}-by-{key}"></span>' for key in orders)
    links = " · ".join(
        f'<a href="#{prefix}-by-{key}">{label}</a>'
        for key, label in (
            ("duration", "duration"),
            ("item", "account/region"),
            ("outcome", "outcome"),
            ("start", "start order"),
        )
    )
    rows = [
        '<div class="row head"><span class="num">#</span><span>account/region</span><span>outcome</span>'
        '<span class="num">duration</span><span>reason</span></div>'
    ]
    for iteration in iterations:
        style = ";".join(f"--by-{key}:{rank[key][id(iteration)]}" for key in orders)
        took = iteration.duration_seconds
        rows.append(
            f'<div class="row" style="{style}" data-item="{_e(iteration.item)}" '
            f'data-outcome="{_e(iteration.outcome)}"><span class="num">{iteration.index}</span>'
            f"<span>{_bdi(iteration.item)}</span><span>{_badge(iteration.outcome)}</span>"
            f'<span class="num">{_e(format_seconds(took)) if took is not None else ""}</span>'
            f'<span class="{"error" if iteration.reason else ""}">'
            f"{_bdi(_clip(iteration.reason, 300))}</span></div>"
        )
    more = len(node.iterations) - len(iterations)
    note = (
        f'<p class="small">and {more} more iterations (tagwarden history lists every one)</p>'
        if more > 0
        else ""
    )
    return (
        f'<section class="iterations" id="{prefix}"><h2>Iterations of {_bdi(node.name)}</h2>'
        f'<p class="small">{len(node.iterations)} iterations, longest first. Sort by {links}.</p>'
        f'{keys}<div class="rows">{"".join(rows)}</div>{note}</section>'
    )


def _state_rows(model: GraphModel) -> str:
    rows = []
    scope_names = {c.id: c.label for c in model.clusters}
    for node in model.states():
        stats = node.stats
        fill, stroke, colour = _COLOURS[node.outcome]
        outcome = (
            f'<span class="badge" style="background:{fill};color:{colour};border:1px solid {stroke}">'
            f"{_e(_OUTCOME_TEXT[node.outcome])}</span>"
        )
        where = f'<div class="small">in {_bdi(scope_names[node.scope])}</div>' if node.scope else ""
        retry = (
            "".join(f"<div>{_e(rule.text)}</div>" for rule in node.retry) or '<span class="small">none</span>'
        )
        catch = "".join(
            f"<div>{_e(_short_errors(errors))} → {_bdi(target)}</div>" for errors, target in node.catch
        )
        errors = ""
        if stats is not None and stats.errors:
            counted: dict[tuple[str, str], int] = {}
            for item in stats.errors:
                counted[item] = counted.get(item, 0) + 1
            parts = []
            for (error, cause), count in counted.items():
                times = f" ×{count}" if count > 1 else ""
                cause_html = (
                    f"<details><summary>cause</summary><pre>{_e(cause)}</pre></details>" if cause else ""
                )
                parts.append(f'<div><span class="error">{_bdi(error)}</span>{times}{cause_html}</div>')
            errors = "".join(parts)
        entered = total = longest = retries = iterations = ""
        if stats is not None:
            entered = str(stats.entries)
            total = format_seconds(stats.total_seconds) if stats.durations else ""
            longest = format_seconds(stats.longest_seconds) if len(stats.durations) > 1 else ""
            retries = str(stats.retries) if stats.retries else ""
            if stats.iterations:
                iterations = f"{stats.iterations}" + (
                    f" ({stats.iterations_failed} failed)" if stats.iterations_failed else ""
                )
        rows.append(
            f'<tr id="state-{_e(node.id)}" data-state="{_e(node.name)}">'
            f"<td><strong>{_bdi(node.name)}</strong>{where}</td><td>{_e(node.type)}</td><td>{outcome}</td>"
            f'<td class="num">{entered}</td><td class="num">{_e(total)}</td>'
            f'<td class="num">{_e(longest)}</td>'
            f'<td class="num">{retries}</td><td class="num">{_e(iterations)}</td><td>{errors}</td>'
            f"<td>{retry}</td><td>{catch}</td></tr>"
        )
    header = (
        "<tr><th>State</th><th>Type</th><th>Outcome</th><th>Entered</th><th>Duration</th><th>Longest</th>"
        "<th>Retries</th><th>Iterations</th><th>Errors and causes</th><th>Retry rules</th><th>Catch</th></tr>"
    )
    return f'<table class="states"><thead>{header}</thead><tbody>{"".join(rows)}</tbody></table>'


def to_html(model: GraphModel, *, title: str | None = None) -> str:
    """One self-contained page: the diagram as inline SVG, a legend and a table of states with
    durations, retries, errors and causes. No script, no external resource (a Content Security
    Policy forbids both); every value from the definition or the history is escaped.

    >>> page = to_html(graph_model({"StartAt": "<b>", "States": {"<b>": {"Type": "Succeed"}}}, None))
    >>> "&lt;b&gt;" in page and "<b>" not in page and "<script" not in page
    True
    """
    heading = title or "Tagwarden state machine"
    execution = model.execution
    meta = []
    if execution is not None:
        fill, stroke, colour = _COLOURS[
            {"SUCCEEDED": "succeeded", "FAILED": "failed", "RUNNING": "running"}.get(
                execution.status, "aborted"
            )
        ]
        meta.append(
            f'<span class="badge" style="background:{fill};color:{colour};border:1px solid {stroke}">'
            f"{_e(execution.status)}</span>"
        )
        if execution.started is not None:
            meta.append(f"started {_e(execution.started.isoformat())}")
        if execution.duration_seconds is not None:
            meta.append(f"took {_e(format_seconds(execution.duration_seconds))}")
        for node in model.states():
            unscanned = [i for i in node.iterations if i.outcome == "not_scanned"]
            failed = [i for i in node.iterations if i.outcome == "failed"]
            for count, what in ((len(unscanned), "not scanned"), (len(failed), "failed")):
                if count:
                    meta.append(
                        f'<span class="partial">{count} of {len(node.iterations)} iterations of '
                        f"{_bdi(node.name)} {what}</span>"
                    )
    else:
        meta.append("the definition only (no execution history)")
    failure = ""
    if execution is not None and execution.error:
        failure = (
            f'<p><span class="error">{_bdi(execution.error)}</span>'
            + (
                f"<details><summary>cause</summary><pre>{_e(execution.cause)}</pre></details>"
                if execution.cause
                else ""
            )
            + "</p>"
        )
    unknown = ""
    if model.unknown_states:
        unknown = (
            '<p class="error">The history has states that are not in this definition: '
            + ", ".join(_bdi(name) for name in model.unknown_states)
            + "</p>"
        )
    comment = f'<p class="meta">{_bdi(model.comment)}</p>' if model.comment else ""
    collapsed = [n for n in model.states() if n.collapsed_states]
    branches = ""
    if collapsed:
        links = ", ".join(
            f'<a href="#branch-{_e(n.id)}">{_bdi(n.name)} ({n.collapsed_states} states)</a>'
            for n in collapsed
        )
        branches = f'<p class="small">Not taken in this execution, drawn on request: {links}</p>' + "".join(
            f'<section class="branch" id="branch-{_e(n.id)}"><h2>{_bdi(n.name)}: not taken</h2>'
            f'<div class="canvas">{to_svg(model, branch=n.id)}</div></section>'
            for n in collapsed
        )
    iterations = "".join(_iteration_list(n) for n in model.states() if n.iterations)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(heading)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_bdi(heading)}</h1>{comment}"
        f'<p class="meta">{" · ".join(meta)}</p>{failure}{unknown}'
        f"{_legend(model)}"
        f'<div class="canvas">{to_svg(model)}</div>'
        f"{branches}{iterations}"
        f"<h2>States</h2>{_state_rows(model)}"
        "</body></html>\n"
    )


# -- where histories come from ---------------------------------------------------------------------

_EXECUTION_ARN: Final = re.compile(
    r"^arn:aws[a-z-]*:states:(?P<region>[a-z0-9-]+):\d{12}:execution:[^:\s]{1,80}:[^:\s]{1,80}$"
)


def execution_region(arn: str) -> str:
    """The region of a Step Functions execution ARN; anything else is an InvalidInput.

    >>> execution_region("arn:aws:states:eu-west-1:123456789012:execution:tagwarden:run-1")
    'eu-west-1'
    """
    match = _EXECUTION_ARN.match(arn)
    if not match:
        raise InvalidInput([Problem("--execution", f"not a Step Functions execution ARN: {arn!r}")])
    return match["region"]


def fetch_execution(client: Any, arn: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The definition (DescribeStateMachineForExecution) and the whole history
    (GetExecutionHistory, every page) of one execution, from a boto3 ``stepfunctions`` client.

    An execution that does not exist or a malformed ARN is :class:`InvalidInput`; any other AWS
    error (no credentials, access denied, throttling) is raised as botocore raised it, for the
    caller's one-line AWS error handling (:func:`workflow.operate.aws_errors`).

    Example::

        client = boto3.client("stepfunctions", region_name=execution_region(arn))
        definition, history = fetch_execution(client, arn)
        page = to_html(graph_model(definition, history))
    """
    execution_region(arn)
    from botocore.exceptions import ClientError

    try:
        described = client.describe_state_machine_for_execution(executionArn=arn)
        history: list[dict[str, Any]] = []
        for page in client.get_paginator("get_execution_history").paginate(
            executionArn=arn, includeExecutionData=True
        ):
            history.extend(page.get("events", []))
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        message = str(err.response.get("Error", {}).get("Message", "")) or str(err)
        if code in {"ExecutionDoesNotExist", "StateMachineDoesNotExist", "ResourceNotFound"}:
            raise InvalidInput([Problem("--execution", f"no such execution: {arn} ({code})")]) from err
        if code == "InvalidArn":
            raise InvalidInput([Problem("--execution", f"{code}: {message}")]) from err
        raise
    try:
        definition = json.loads(described["definition"])
    except (KeyError, TypeError, ValueError) as err:
        raise TagwardenError(f"execution {arn}: the state machine definition is not JSON") from err
    return definition, history


def read_history_file(path: str | Path) -> list[dict[str, Any]]:
    """The events of a ``history.json`` written by ``tagwarden run`` (or saved from
    ``aws stepfunctions get-execution-history``: ``{"events": [...]}`` works too).

    >>> read_history_file("/nonexistent/history.json")
    Traceback (most recent call last):
    ...
    workflow.errors.InvalidInput: --history-file: /nonexistent/history.json: no such file
    """
    file = Path(path)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput([Problem("--history-file", f"{file}: no such file")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput([Problem("--history-file", f"{file}: cannot read: {err}")]) from None
    except ValueError as err:
        raise InvalidInput([Problem("--history-file", f"{file}: not JSON: {err}")]) from None
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        document = document["events"]
    if not isinstance(document, list) or not all(
        isinstance(e, dict) and isinstance(e.get("id"), int) and isinstance(e.get("type"), str)
        for e in document
    ):
        raise InvalidInput(
            [
                Problem(
                    "--history-file",
                    f"{file}: not an execution history (a JSON list of events with id and type)",
                )
            ]
        )
    return document


def local_definition() -> dict[str, Any]:
    """The state machine of this checkout (``state_machines/tagwarden.asl.json``), parsed.

    >>> local_definition()["StartAt"]
    'Validate input'
    """
    from workflow.deployment import read_definition

    definition: dict[str, Any] = json.loads(read_definition())
    return definition


def write_run_graph(run_dir: Path, history: list[dict[str, Any]]) -> Path:
    """Write ``graph.html`` (the local definition with this execution's path) into a run folder.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_run_graph(Path(folder), [])
    ...     path.name, "<svg" in path.read_text(encoding="utf-8")
    ('graph.html', True)
    """
    model = graph_model(local_definition(), history)
    page = to_html(model, title=f"Tagwarden run {run_dir.name}")
    path = run_dir / "graph.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
