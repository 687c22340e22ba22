"""``tagwarden graph``, ``tagwarden query`` and ``tagwarden report``: reading what runs left behind.

:func:`register` adds the three subcommands to the ``tagwarden`` parser. Each handler returns the
exit status; bad input (an unknown run, query or file, a malformed history) raises
:class:`~workflow.errors.InvalidInput`, which the CLI prints one line per problem with exit 2.

``query`` and ``report`` read local run folders (``--local DIR``) or the deployment: ``query
--athena`` runs on the stack's Athena workgroup (:mod:`workflow.athena`), ``report --stack NAME``
(or ``TAGWARDEN_STACK``, or ``--bucket``) reads the report bucket (:mod:`workflow.s3_runs`).
Those paths share the operations commands' AWS session, clients and one-line AWS errors
(:mod:`workflow.cli_stack_ops`); the same renderers print both.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="tagwarden")
>>> register(parser.add_subparsers(dest="command"))
>>> parser.parse_args(["query", "noncompliant_by_rule", "--format", "csv"]).format
'csv'
>>> args = parser.parse_args(["report", "--stack", "prod", "--format", "html", "--trend", "7"])
>>> args.stack, args.local, args.trend
('prod', None, 7)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from workflow.cli_stack_ops import STACK_ENV
from workflow.errors import InvalidInput, Problem

if TYPE_CHECKING:
    from workflow.cli_stack_ops import _Aws
    from workflow.local_query import QueryResult, RunSource

__all__ = ["cmd_graph", "cmd_query", "cmd_report", "register"]

DEFAULT_LOCAL_DIR: Final = "tagwarden-out"
DEFAULT_TREND_RUNS: Final = 30  # the same as workflow.s3_runs' (a test checks)
# The same as workflow.local_query's (imported lazily there: DuckDB loads only when a query runs).
DEFAULT_TIMEOUT_SECONDS: Final = 120.0
DEFAULT_MEMORY_LIMIT: Final = "2GB"
_GRAPH_SUFFIXES: Final = {
    ".html": "html",
    ".htm": "html",
    ".svg": "svg",
    ".dot": "dot",
    ".gv": "dot",
    ".mmd": "mermaid",
}
GRAPH_FORMATS: Final = ("mermaid", "dot", "html", "svg")


def _width() -> int:
    return max(60, shutil.get_terminal_size((120, 24)).columns)


def _emit(text: str, out: str | None) -> None:
    """Write ``text`` to ``out`` (a file) or standard output."""
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from workflow.safe_files import UnsafePath, write_text_no_follow

    path = Path(out)
    if not path.parent.is_dir():
        raise InvalidInput([Problem("--out", f"{path.parent} is not a directory")])
    if path.is_dir() and not path.is_symlink():
        raise InvalidInput([Problem("--out", f"{path} is a directory; give a file name")])
    try:
        # Never through a link: a planted ``--out`` link would otherwise overwrite its target.
        write_text_no_follow(path, text)
    except UnsafePath as err:
        raise InvalidInput([Problem("--out", str(err))]) from None
    except OSError as err:
        raise InvalidInput([Problem("--out", f"cannot write {path}: {err.strerror or err}")]) from None
    print(f"wrote {path}", file=sys.stderr)


# -- graph -----------------------------------------------------------------------------------------


def graph_format(given: str | None, out: str | None) -> str:
    """The format of ``tagwarden graph``: ``--format``, else the ``--out`` suffix, else Mermaid
    (standard output). A suffix that names another format than ``--format``, or an ``--out`` whose
    suffix names none, is refused: an .svg file must never hold Mermaid text.

    >>> graph_format(None, "workflow.svg"), graph_format("dot", "graph.gv"), graph_format(None, None)
    ('svg', 'dot', 'mermaid')
    >>> try:
    ...     graph_format("mermaid", "workflow.svg")
    ... except InvalidInput as err:
    ...     print(err.problems[0].message)
    workflow.svg is named for svg but --format is mermaid: change the suffix (.mmd) or --format
    """
    suffix = Path(out).suffix.lower() if out else ""
    implied = _GRAPH_SUFFIXES.get(suffix)
    if given is not None and implied is not None and implied != given:
        wanted = next(s for s, f in _GRAPH_SUFFIXES.items() if f == given)
        raise InvalidInput(
            [
                Problem(
                    "--out",
                    f"{out} is named for {implied} but --format is {given}: change the suffix ({wanted}) "
                    "or --format",
                )
            ]
        )
    if given is None and out is not None and implied is None:
        known = ", ".join(_GRAPH_SUFFIXES)
        raise InvalidInput(
            [Problem("--out", f"cannot tell the format from {out!r}: name it {known}, or pass --format")]
        )
    return given or implied or "mermaid"


def _fetch_execution(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Definition and history of ``--execution``, through the operations commands' session: the
    same credentials, region and one-line AWS errors (``no AWS credentials found ...``, exit 2)."""
    from workflow import graph

    region = graph.execution_region(args.execution)
    fetched: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []

    def body(aws: _Aws) -> int:
        fetched.append(graph.fetch_execution(aws.client("stepfunctions", region), args.execution))
        return 0

    _with_aws(args, body)
    return fetched[0]


def cmd_graph(args: argparse.Namespace) -> int:
    """``tagwarden graph``: the state machine, and with a history the path an execution took."""
    from workflow import graph
    from workflow.render import printable

    fmt = graph_format(args.format, args.out)  # a bad name is refused before any work
    history: list[dict[str, Any]] | None = None
    title = "Tagwarden state machine"
    if args.execution:
        definition, history = _fetch_execution(args)
        title = f"Execution {args.execution.rsplit(':', 1)[-1]}"
    else:
        definition = graph.local_definition()
        if args.history_file:
            history = graph.read_history_file(args.history_file)
            title = f"Execution history {Path(args.history_file).parent.name or args.history_file}"
    model = graph.graph_model(definition, history)
    if model.unknown_states:
        names = ", ".join(printable(n) for n in model.unknown_states)
        print(f"tagwarden graph: the history has states not in the definition: {names}", file=sys.stderr)
    if fmt == "html":
        text = graph.to_html(model, title=title)
    elif fmt == "svg":
        text = graph.to_svg(model) + "\n"
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


def _print_rows(args: argparse.Namespace, result: QueryResult) -> None:
    from workflow.render import rows_csv, rows_json, rows_table

    if args.format == "csv":
        text = rows_csv(result.columns, result.rows)
    elif args.format == "json":
        text = rows_json(result.columns, result.rows)
    else:
        title = result.query.title if result.query else None
        text = rows_table(result.columns, result.rows, title=title, width=_width())
    _emit(text, args.out)


def _query_athena(args: argparse.Namespace, aws: _Aws, params: Mapping[str, int]) -> int:
    from workflow.athena import AthenaBackend
    from workflow.local_query import run_named_query

    resources = aws.resources("AthenaWorkGroupName", "GlueDatabaseName")
    backend = AthenaBackend(
        aws.client("athena"),
        workgroup=resources.require("AthenaWorkGroupName"),
        database=resources.require("GlueDatabaseName"),
    )
    _print_rows(args, run_named_query(args.query, backend=backend, params=params))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """``tagwarden query``: a named query or SQL on DuckDB over the run folders of ``--local``, or on
    the deployment's Athena workgroup with ``--athena``."""
    from workflow.local_query import LocalDuckDB, parse_params, resolve_query, run_named_query

    if args.list:
        sys.stdout.write(_list_queries())
        return 0
    if not args.query:
        raise InvalidInput(
            [Problem("query", "give a named query or SQL (tagwarden query --list names them)")]
        )
    params = parse_params(args.param)
    if args.athena:
        resolve_query(args.query)  # an unknown name is exit 2 before any AWS call
        args.stack = _stack(args)
        if not args.stack:
            raise InvalidInput(
                [Problem("--athena", f"which deployment? pass --stack NAME or set {STACK_ENV}")]
            )
        return _with_aws(args, lambda aws: _query_athena(args, aws, params))
    if args.stack or args.region or args.profile:
        raise InvalidInput([Problem("--stack", "--stack, --region and --profile go with --athena")])
    with LocalDuckDB(
        Path(args.local or DEFAULT_LOCAL_DIR), memory_limit=args.memory_limit, timeout_seconds=args.timeout
    ) as backend:
        result = run_named_query(args.query, backend=backend, params=params)
    _print_rows(args, result)
    return 0


# -- report ----------------------------------------------------------------------------------------


def _print_report(
    args: argparse.Namespace, source: RunSource, trend: Iterable[dict[str, Any]] | None = None
) -> None:
    """Render one run with the same renderers whatever the store; ``trend`` only for html."""
    from workflow.render import report_csv, report_html, report_json, report_table

    summary = source.summary()
    findings = list(source.findings())
    if args.format == "csv":
        text = report_csv(findings)
    elif args.format == "json":
        text = report_json(summary, findings)
    elif args.format == "html":
        history = [s for s in trend or () if not s.get("dry_run")][-args.trend :] if args.trend else []
        text = report_html(summary, findings, history=history)
    else:
        text = report_table(summary, findings, width=_width())
    _emit(text, args.out)


def _report_s3(args: argparse.Namespace, aws: _Aws) -> int:
    from workflow.s3_runs import S3Runs

    resources = aws.resources("ReportBucketName")
    runs = S3Runs(aws.client("s3"), resources.require("ReportBucketName"))
    source = runs.get(args.run) if args.run else runs.latest()
    if args.format == "html":
        source.summary()  # an unreadable run is reported before the trend is read
        _print_report(args, source, runs.summaries(args.trend) if args.trend else [])
    else:
        _print_report(args, source)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``tagwarden report``: one run's findings and summary from the run folders of ``--local``, or
    from the report bucket with ``--stack`` (or ``TAGWARDEN_STACK``) or ``--bucket``."""
    from workflow.local_query import LocalRuns

    if args.local is not None and args.bucket:
        raise InvalidInput(
            [Problem("--local", "reads run folders, --bucket the report bucket: give one of them")]
        )
    if args.local is None and (_stack(args) or args.bucket):
        args.stack = _stack(args)
        return _with_aws(args, lambda aws: _report_s3(args, aws))
    if args.region or args.profile:
        raise InvalidInput([Problem("--local", "reads run folders: --region and --profile do not apply")])
    runs = LocalRuns(Path(args.local or DEFAULT_LOCAL_DIR))
    source = runs.get(args.run) if args.run else runs.latest()
    _print_report(args, source, runs.summaries() if args.format == "html" else None)
    return 0


def _stack(args: argparse.Namespace) -> str | None:
    """``--stack``, else ``$TAGWARDEN_STACK`` (read when the command runs, as with the operations)."""
    stack: str | None = args.stack or os.environ.get(STACK_ENV) or None
    return stack


def _with_aws(args: argparse.Namespace, body: Callable[[_Aws], int]) -> int:
    """Run ``body(aws)`` with the operations commands' session and one-line AWS errors."""
    from workflow.cli_stack_ops import _command

    status: int = _command(lambda a, aws: body(aws))(args)
    return status


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
    add_history_file_argument(source, "a history.json written by 'tagwarden run'", old_name="--history")
    graph.add_argument(
        "--format",
        choices=GRAPH_FORMATS,
        help="output format (default: from the --out suffix .html/.svg/.dot/.mmd; mermaid to stdout)",
    )
    graph.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")
    aws = graph.add_argument_group("with --execution")
    aws.add_argument("--region", metavar="REGION", help="AWS region (default: the execution ARN's)")
    aws.add_argument("--profile", metavar="PROFILE", help="AWS profile (default: $AWS_PROFILE)")
    graph.set_defaults(func=cmd_graph, stack=None, state_machine_arn=None, bucket=None, queue_url=None)

    query = subparsers.add_parser(
        "query",
        help="run a named query (or SQL) on local run folders with DuckDB, or on Athena",
        description="Run one of the named Athena queries, or any SQL over the tables findings and "
        "runs, on the run folders that 'tagwarden run' wrote (DuckDB), or with --athena in the "
        "deployment's Athena workgroup and Glue database. --list names the queries.",
    )
    query.add_argument("query", nargs="?", metavar="NAME_OR_SQL", help="a named query or SQL")
    engine = query.add_mutually_exclusive_group()
    engine.add_argument(
        "--local", metavar="DIR", help=f"run folders, queried with DuckDB (the default: {DEFAULT_LOCAL_DIR})"
    )
    engine.add_argument(
        "--athena",
        action="store_true",
        help="run on Athena, in the workgroup and database of the stack's outputs (needs --stack)",
    )
    query.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a named query's parameter (repeatable)",
    )
    query.add_argument("--format", choices=["table", "csv", "json"], default="table")
    query.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    query.add_argument("--list", action="store_true", help="list the named queries and their parameters")
    query.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"local: stop a query after SECONDS (default: {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    query.add_argument(
        "--memory-limit",
        default=DEFAULT_MEMORY_LIMIT,
        metavar="SIZE",
        help=f"local: DuckDB's memory limit, e.g. 512MB or 4GB (default: {DEFAULT_MEMORY_LIMIT})",
    )
    _deployment_options(query.add_argument_group("deployment (with --athena)"))
    query.set_defaults(func=cmd_query, bucket=None, state_machine_arn=None, queue_url=None)

    report = subparsers.add_parser(
        "report",
        help="one run's report from local run folders or the report bucket: table, CSV, JSON or HTML",
        description="Totals, violations by rule and region, and the noncompliant instances grouped "
        "by owner, for one run of 'tagwarden run' (--local) or of the deployed workflow (--stack or "
        f"${STACK_ENV}, or --bucket). CSV cells that a spreadsheet would evaluate are prefixed with "
        "an apostrophe.",
    )
    where = report.add_argument_group("where the runs are")
    store = where.add_mutually_exclusive_group()
    store.add_argument(
        "--local",
        metavar="DIR",
        help=f"run folders (the default, {DEFAULT_LOCAL_DIR}, unless --stack, ${STACK_ENV} or --bucket)",
    )
    _deployment_options(where, stack_group=store)
    where.add_argument(
        "--bucket", metavar="NAME", help="report bucket, instead of the stack's ReportBucketName"
    )
    which = report.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="RUN_ID", help="the run to report")
    which.add_argument("--latest", action="store_true", help="the newest run (the default)")
    report.add_argument("--format", choices=["table", "csv", "json", "html"], default="table")
    report.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")
    report.add_argument(
        "--trend",
        type=_runs_count,
        default=DEFAULT_TREND_RUNS,
        metavar="N",
        help=f"html: the compliance trend of the N most recent runs (default: {DEFAULT_TREND_RUNS}; 0: none)",
    )
    report.set_defaults(func=cmd_report, state_machine_arn=None, queue_url=None)


def add_history_file_argument(parser: Any, help_text: str, *, old_name: str) -> None:
    """``--history-file FILE``, the one name ``graph`` and ``history`` use for a saved history;
    ``old_name`` (what the command used to call it) still works, unlisted."""
    parser.add_argument("--history-file", metavar="FILE", dest="history_file", help=help_text)
    parser.add_argument(old_name, metavar="FILE", dest="history_file", help=argparse.SUPPRESS)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 86400: {text!r}")
    return value


def _runs_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _deployment_options(group: Any, stack_group: Any = None) -> None:
    """``--stack``, ``--region`` and ``--profile``, as the operations commands define them."""
    (stack_group or group).add_argument(
        "--stack",
        metavar="NAME",
        help=f"CloudFormation stack of the deployment (default: ${STACK_ENV})",
    )
    group.add_argument("--region", metavar="REGION", help="AWS region (default: the profile's)")
    group.add_argument("--profile", metavar="PROFILE", help="AWS profile (default: $AWS_PROFILE)")
