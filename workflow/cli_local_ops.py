"""``tagwarden graph``, ``tagwarden query`` and ``tagwarden report``: reading what runs left behind.

:func:`register` adds the three subcommands to the ``tagwarden`` parser. Each handler returns the
exit status; bad input (an unknown run, query or file, a malformed history) raises
:class:`~workflow.errors.InvalidInput`, which the CLI prints one line per problem with exit 2.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="tagwarden")
>>> register(parser.add_subparsers(dest="command"))
>>> parser.parse_args(["query", "noncompliant_by_rule", "--format", "csv"]).format
'csv'
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any, Final

from workflow.errors import InvalidInput, Problem

__all__ = ["cmd_graph", "cmd_query", "cmd_report", "register"]

DEFAULT_LOCAL_DIR: Final = "tagwarden-out"
_GRAPH_SUFFIXES: Final = {".html": "html", ".htm": "html", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid"}


def _width() -> int:
    return max(60, shutil.get_terminal_size((120, 24)).columns)


def _emit(text: str, out: str | None) -> None:
    """Write ``text`` to ``out`` (a file) or standard output."""
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(out)
    if not path.parent.is_dir():
        raise InvalidInput([Problem("--out", f"{path.parent} is not a directory")])
    if path.is_dir():
        raise InvalidInput([Problem("--out", f"{path} is a directory; give a file name")])
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise InvalidInput([Problem("--out", f"cannot write {path}: {err.strerror or err}")]) from None
    print(f"wrote {path}", file=sys.stderr)


# -- graph -----------------------------------------------------------------------------------------


def _stepfunctions_client(region: str) -> Any:
    import boto3

    return boto3.client("stepfunctions", region_name=region)


def cmd_graph(args: argparse.Namespace) -> int:
    """``tagwarden graph``: the state machine, and with a history the path an execution took."""
    from workflow import graph
    from workflow.render import printable

    history: list[dict[str, Any]] | None = None
    title = "Tagwarden state machine"
    if args.execution:
        region = graph.execution_region(args.execution)
        definition, history = graph.fetch_execution(_stepfunctions_client(region), args.execution)
        title = f"Execution {args.execution.rsplit(':', 1)[-1]}"
    else:
        definition = graph.local_definition()
        if args.history:
            history = graph.read_history_file(args.history)
            title = f"Execution history {Path(args.history).parent.name or args.history}"
    model = graph.graph_model(definition, history)
    if model.unknown_states:
        names = ", ".join(printable(n) for n in model.unknown_states)
        print(f"tagwarden graph: the history has states not in the definition: {names}", file=sys.stderr)
    fmt = args.format
    if fmt is None and args.out:
        fmt = _GRAPH_SUFFIXES.get(Path(args.out).suffix.lower())
    fmt = fmt or "mermaid"
    if fmt == "html":
        text = graph.to_html(model, title=title)
    elif fmt == "dot":
        text = graph.to_dot(model)
    else:
        text = graph.to_mermaid(model)
    _emit(text, args.out)
    return 0


# -- query -----------------------------------------------------------------------------------------


def _list_queries() -> str:
    from workflow.local_query import NAMED_QUERIES

    lines = []
    for query in NAMED_QUERIES.values():
        params = "".join(f" [--param {p.name}=N, default {p.default}]" for p in query.parameters)
        lines.append(f"{query.name}{params}\n    {query.title}: {query.description}\n")
    return "".join(lines)


def cmd_query(args: argparse.Namespace) -> int:
    """``tagwarden query``: a named query or SQL on DuckDB over the run folders of ``--local``."""
    from workflow.local_query import LocalDuckDB, parse_params, run_named_query
    from workflow.render import rows_csv, rows_json, rows_table

    if args.list:
        sys.stdout.write(_list_queries())
        return 0
    if not args.query:
        raise InvalidInput(
            [Problem("query", "give a named query or SQL (tagwarden query --list names them)")]
        )
    params = parse_params(args.param)
    with LocalDuckDB(Path(args.local)) as backend:
        result = run_named_query(args.query, backend=backend, params=params)
    if args.format == "csv":
        text = rows_csv(result.columns, result.rows)
    elif args.format == "json":
        text = rows_json(result.columns, result.rows)
    else:
        title = result.query.title if result.query else None
        text = rows_table(result.columns, result.rows, title=title, width=_width())
    _emit(text, None)
    return 0


# -- report ----------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    """``tagwarden report``: one run's findings and summary from the run folders of ``--local``."""
    from workflow.local_query import LocalRuns, RunSource
    from workflow.render import report_csv, report_html, report_json, report_table

    runs = LocalRuns(Path(args.local))
    source: RunSource = runs.get(args.run) if args.run else runs.latest()
    summary = source.summary()
    findings = list(source.findings())
    if args.format == "csv":
        text = report_csv(findings)
    elif args.format == "json":
        text = report_json(summary, findings)
    elif args.format == "html":
        history = [s for s in runs.summaries() if not s.get("dry_run")]
        text = report_html(summary, findings, history=history)
    else:
        text = report_table(summary, findings, width=_width())
    _emit(text, args.out)
    return 0


# -- wiring ----------------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``graph``, ``query`` and ``report`` to the ``tagwarden`` subcommands.

    ``subparsers`` is what ``parser.add_subparsers(...)`` returned; each subcommand sets
    ``func`` to its handler (``args.func(args)`` returns the exit status).
    """
    graph = subparsers.add_parser(
        "graph",
        help="the state machine as a diagram; with an execution, the path it took",
        description="Draw the state machine (Mermaid, Graphviz DOT or a self-contained HTML page). "
        "With --execution or --history, colour the path the execution took and show each state's "
        "duration, retries, errors and causes.",
    )
    source = graph.add_mutually_exclusive_group()
    source.add_argument(
        "--execution", metavar="ARN", help="a Step Functions execution (read with your AWS credentials)"
    )
    source.add_argument("--history", metavar="FILE", help="a history.json written by 'tagwarden run'")
    graph.add_argument(
        "--format",
        choices=["mermaid", "dot", "html"],
        help="output format (default: from the --out suffix .html/.dot/.mmd, else mermaid)",
    )
    graph.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    graph.set_defaults(func=cmd_graph)

    query = subparsers.add_parser(
        "query",
        help="run a named query (or SQL) on local run folders with DuckDB",
        description="Run one of the named Athena queries, or any SQL over the tables findings and "
        "runs, on the run folders that 'tagwarden run' wrote. --list names the queries.",
    )
    query.add_argument("query", nargs="?", metavar="NAME_OR_SQL", help="a named query or SQL")
    query.add_argument(
        "--local",
        default=DEFAULT_LOCAL_DIR,
        metavar="DIR",
        help=f"run folders (default: {DEFAULT_LOCAL_DIR})",
    )
    query.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a named query's parameter (repeatable)",
    )
    query.add_argument("--format", choices=["table", "csv", "json"], default="table")
    query.add_argument("--list", action="store_true", help="list the named queries and their parameters")
    query.set_defaults(func=cmd_query)

    report = subparsers.add_parser(
        "report",
        help="one run's report from local run folders: table, CSV, JSON or an HTML page",
        description="Totals, violations by rule and region, and the noncompliant instances grouped "
        "by owner, for one run of 'tagwarden run'. CSV cells that a spreadsheet would evaluate "
        "are prefixed with an apostrophe.",
    )
    report.add_argument(
        "--local",
        default=DEFAULT_LOCAL_DIR,
        metavar="DIR",
        help=f"run folders (default: {DEFAULT_LOCAL_DIR})",
    )
    which = report.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="RUN_ID", help="the run to report")
    which.add_argument("--latest", action="store_true", help="the newest run (the default)")
    report.add_argument("--format", choices=["table", "csv", "json", "html"], default="table")
    report.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    report.set_defaults(func=cmd_report)
