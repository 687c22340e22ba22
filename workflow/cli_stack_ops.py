"""``tagwarden start | executions | status | history | redrive | dlq``: operating a deployed stack.

Credentials come from the usual boto3 chain (``--profile``, ``AWS_PROFILE``, environment, SSO,
instance roles). ``--stack NAME`` (or ``TAGWARDEN_STACK``) finds the state machine, bucket and
queue through the stack's outputs; ``--state-machine-arn``, ``--bucket`` and ``--queue-url`` give
them directly and win over the stack. Tables on a terminal, plain aligned text otherwise, JSON
with ``--json``. Every AWS error becomes one line (:func:`workflow.operate.aws_errors`).

Nothing here imports boto3 or rich until a command runs, so ``tagwarden validate`` keeps working
with the core install.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from workflow.cli_options import add_scope_arguments
from workflow.errors import InvalidInput, Problem, TagwardenError

if TYPE_CHECKING:
    from workflow.operate import ExecutionDetails
    from workflow.stack import StackResources

from workflow.report import percentage_text
from workflow.verdict import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_OK,
    coverage_lines,
    exit_status,
)

STACK_ENV: Final = "TAGWARDEN_STACK"
# The same as workflow.operate's (a test checks): registering must not import botocore.
NOTIFY_MODES: Final = ("always", "violations", "new_violations", "never")
STATUSES: Final = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
_CAUSE_WIDTH: Final = 120
_QUEUE_REGION: Final = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")

Command = Callable[[argparse.Namespace, "_Aws"], int]


# -- AWS access ------------------------------------------------------------------------------------


def make_client(session: Any, service: str, region: str | None) -> Any:
    """A client of ``session`` with Tagwarden's retry settings (tests replace this function)."""
    from workflow.aws import RETRY_CONFIG

    return session.client(service, region_name=region, config=RETRY_CONFIG)


def _region_hint(args: argparse.Namespace) -> str | None:
    """The region to use: --region, else the one in an ARN or queue URL given on the command line."""
    from workflow.operate import region_of

    if args.region:
        return str(args.region)
    for candidate in (args.state_machine_arn, getattr(args, "execution", None)):
        if isinstance(candidate, str) and candidate.startswith("arn:") and region_of(candidate):
            return region_of(candidate)
    match = _QUEUE_REGION.match(args.queue_url or "")
    return match.group(1) if match else None


class _Aws:
    """The session, clients and stack resources of one command."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._session: Any = None
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._resources: StackResources | None = None

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3

            self._session = boto3.Session(profile_name=self.args.profile, region_name=_region_hint(self.args))
        return self._session

    def client(self, service: str, region: str | None = None) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = make_client(self.session, service, region)
        return self._clients[key]

    def resources(self, *required: str) -> StackResources:
        """The stack's outputs with the flags applied; ``required`` ones must be known."""
        from workflow.stack import resolve

        args = self.args
        overrides = {
            "StateMachineArn": args.state_machine_arn,
            "ReportBucketName": args.bucket,
            "DeadLetterQueueUrl": args.queue_url,
        }
        cloudformation = self.client("cloudformation") if args.stack else None
        self._resources = resolve(cloudformation, args.stack, overrides, required=required)
        return self._resources

    def sfn(self, resources: StackResources | None = None, execution: str | None = None) -> Any:
        from workflow.operate import region_of

        region = (execution and region_of(execution)) or (resources.region if resources else None)
        return self.client("stepfunctions", region or self.args.region)

    def execution(self, name_or_arn: str) -> str:
        """The execution ARN; looks the stack up only when a name needs the state machine ARN."""
        from workflow.operate import execution_arn

        if name_or_arn.startswith("arn:"):
            return execution_arn(name_or_arn, None)
        resources = self.resources()
        return execution_arn(name_or_arn, resources.state_machine_arn)


def _command(function: Command) -> Callable[[argparse.Namespace], int]:
    """Run a command with its AWS errors turned into one line each (exit 2 or 3, no traceback)."""

    @functools.wraps(function)
    def run(args: argparse.Namespace) -> int:
        try:
            from workflow.operate import aws_errors
        except ModuleNotFoundError as err:
            raise InvalidInput(
                [Problem("tagwarden", f"this command needs {err.name}: pip install 'tagwarden[local]'")]
            ) from None
        try:
            with aws_errors():
                return function(args, _Aws(args))
        except ModuleNotFoundError as err:
            if err.name not in {"boto3", "botocore", "rich"}:
                raise
            raise InvalidInput(
                [Problem("tagwarden", f"this command needs {err.name}: pip install 'tagwarden[local]'")]
            ) from None

    return run


# -- output ------------------------------------------------------------------------------------------


def _is_terminal() -> bool:
    return sys.stdout.isatty()


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else ""


def _duration(seconds: float | None) -> str:
    """``0.42s``, ``12.3s``, ``2m03s``, ``1h02m``."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _short(text: Any, width: int = _CAUSE_WIDTH) -> str:
    """One line, at most ``width`` characters, no control characters (causes quote tag values)."""
    from workflow.notifications import clean

    if text is None:
        return ""
    return clean(" ".join(str(text).split()), width)


def _cell(text: str) -> str:
    """Table cells and field values: the renderers' one escaping path, bounded in length."""
    from workflow.render import terminal_line

    line = terminal_line(text)
    return line if len(line) <= 10_000 else line[:9_999] + "…"


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def _table(
    title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = ()
) -> None:
    """A rich table on a terminal; aligned plain text (header, then one line per row) otherwise."""
    if _is_terminal():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(highlight=False)
        if title:
            console.print(Text(_cell(title), style="bold"))
        table = Table()
        for column in columns:
            table.add_column(column, justify="right" if column in right else "left")
        for row in rows:
            table.add_row(*(Text(_cell(cell)) for cell in row))
        console.print(table)
        return
    rows = [[_cell(cell) for cell in row] for row in rows]
    widths = [max([len(column), *(len(row[i]) for row in rows)]) for i, column in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        out = [
            cell.rjust(widths[i]) if columns[i] in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(out).rstrip()

    print(line([c.upper() for c in columns]))
    for row in rows:
        print(line(row))


def _fields(pairs: Sequence[tuple[str, str]]) -> None:
    """``label  value`` lines, aligned; empty values left out."""
    shown = [(k, _cell(v)) for k, v in pairs if v]
    width = max((len(k) for k, _ in shown), default=0)
    for key, value in shown:
        print(f"{key.ljust(width)}  {value}")


def _note(text: str) -> None:
    print(text, file=sys.stderr)


# -- start, and following an execution --------------------------------------------------------------


def _print_summary(summary: dict[str, Any], details: ExecutionDetails, bucket: str | None) -> None:
    totals = summary.get("totals", {})
    policy = summary.get("policy", {}).get("name", "?")
    rows = [
        [label, str(totals.get(key, ""))]
        for label, key in (
            ("evaluated", "total"),
            ("compliant", "compliant"),
            ("noncompliant", "noncompliant"),
            ("exempt", "exempt"),
            ("in grace period", "in_grace_period"),
        )
    ]
    rows.append(["compliance", percentage_text(totals)])
    _table(f"Tag policy {policy!r}, run {details.name}", ["instances", "count"], rows, right=["count"])
    by_rule = summary.get("by_rule") or {}
    if by_rule:
        rule_rows = [[rule, str(count)] for rule, count in list(by_rule.items())[:10]]
        _table("Violations by rule", ["tag:code", "instances"], rule_rows, right=["instances"])
        if len(by_rule) > 10:
            print(f"+{len(by_rule) - 10} more (tagwarden report --run {details.name})")
    by_region = summary.get("by_region") or {}
    if by_region:
        region_rows = [
            [region, str(c.get("compliant", 0)), str(c.get("noncompliant", 0))]
            for region, c in by_region.items()
        ]
        _table(
            "By region",
            ["region", "compliant", "noncompliant"],
            region_rows,
            right=["compliant", "noncompliant"],
        )
    for line in coverage_lines(summary):
        print(_cell(line))
    report = details.report or {}
    if bucket and report.get("findings_key"):
        print(f"Findings: s3://{bucket}/{report['findings_key']}")


def _finish(
    args: argparse.Namespace, aws: _Aws, sfn: Any, resources: StackResources, arn: str, after: int
) -> int:
    """Follow an execution to its end, then print its summary; the exit status of ``run``."""
    from workflow.operate import follow, read_summary, region_of
    from workflow.progress import ExecutionProgress

    progress = None if args.json else ExecutionProgress()
    try:
        details = follow(sfn, arn, progress, poll_interval=args.poll_interval, after_event_id=after)
    finally:
        if progress is not None:
            progress.close()
    report = details.report or {}
    bucket = resources.report_bucket or details.report_bucket
    summary: dict[str, Any] | None = None
    if details.status == "SUCCEEDED" and report.get("summary_key") and bucket:
        try:
            summary = read_summary(aws.client("s3", region_of(arn)), details, bucket)
        except TagwardenError as err:
            _note(f"tagwarden: could not read the summary: {err}")
    totals = (summary or {}).get("totals") or report.get("totals") or {}
    if args.json:
        document: dict[str, Any] = {
            "status": details.status,
            "execution_arn": details.execution_arn,
            "console_url": details.console_url,
            "summary": {
                k: totals.get(k)
                for k in ("total", "compliant", "noncompliant", "exempt", "compliance_percentage")
            }
            if totals
            else None,
            "incomplete": (summary or report).get("incomplete"),
            "coverage": (summary or {}).get("coverage"),
            "summary_uri": f"s3://{bucket}/{report['summary_key']}"
            if bucket and report.get("summary_key")
            else None,
            "findings_uri": f"s3://{bucket}/{report['findings_key']}"
            if bucket and report.get("findings_key")
            else None,
        }
        if details.status != "SUCCEEDED":
            document.update(error=details.error, cause=details.cause)
        _print_json(document)
    elif summary is not None:
        _print_summary(summary, details, bucket)
    elif totals:
        _fields([(k, str(totals.get(k, ""))) for k in ("total", "compliant", "noncompliant", "exempt")])
    status = exit_status(
        details.status,
        details.error,
        summary or (report if report.get("totals") else None),
        fail_on_violations=getattr(args, "fail_on_violations", False),
    )
    if details.status != "SUCCEEDED":
        if not args.json:
            _note(f"tagwarden: execution {details.status}: {details.error}: {_short(details.cause, 300)}")
            _note(f"timeline: tagwarden history {details.execution_arn}")
    elif status == EXIT_INCOMPLETE and not args.json:
        _note("tagwarden: incomplete scan (a target not scanned, or nothing evaluated): exit status 4")
    return status


def cmd_start(args: argparse.Namespace, aws: _Aws) -> int:
    from workflow.operate import build_execution_input, check_run_name, start_scan

    # Everything local first: a bad policy is exit 2 before any AWS call, as with validate.
    execution_input = build_execution_input(
        policy_file=args.policy,
        policy_uri=args.policy_uri,
        regions=args.regions,
        notify=args.notify,
        dry_run=args.dry_run,
        targets_file=args.targets,
        organization=args.organization,
        exclude_accounts=args.exclude_accounts,
    )
    if args.name is not None:
        check_run_name(args.name)
    resources = aws.resources("StateMachineArn")
    assert resources.state_machine_arn is not None
    sfn = aws.sfn(resources)
    started = start_scan(sfn, resources.state_machine_arn, execution_input, args.name)
    if not args.wait:
        if args.json:
            _print_json(started.to_json())
        else:
            print(started.execution_arn)
            if started.console_url:
                print(started.console_url)
        return EXIT_OK
    if not args.json:
        _note(f"Execution {started.name} of {resources.state_machine_arn}")
        if started.console_url:
            _note(f"  {started.console_url}")
    return _finish(args, aws, sfn, resources, started.execution_arn, after=0)


# -- executions, status, history ---------------------------------------------------------------------


def cmd_executions(args: argparse.Namespace, aws: _Aws) -> int:
    from workflow.operate import list_executions

    resources = aws.resources("StateMachineArn")
    assert resources.state_machine_arn is not None
    statuses = [s.strip().upper() for value in args.status or [] for s in value.split(",") if s.strip()]
    rows = list_executions(aws.sfn(resources), resources.state_machine_arn, statuses or None, args.limit)
    if args.json:
        _print_json([row.to_json() for row in rows])
        return EXIT_OK
    if not rows:
        _note("no executions" + (f" with status {', '.join(statuses)}" if statuses else ""))
        return EXIT_OK
    _table(
        f"Executions of {resources.state_machine_arn}",
        ["name", "status", "started", "duration", "redrives"],
        [
            [r.name, r.status, _when(r.start_date), _duration(r.duration), str(r.redrive_count or "")]
            for r in rows
        ],
        right=["duration", "redrives"],
    )
    return EXIT_OK


def _input_line(document: Any) -> str:
    if not isinstance(document, dict):
        return ""
    parts = []
    policy = document.get("policy")
    if isinstance(policy, dict):
        parts.append(f"policy {policy.get('name', '?')!r}")
    elif document.get("policy_uri"):
        parts.append(f"policy {document['policy_uri']}")
    else:
        parts.append("default policy")
    if document.get("regions"):
        parts.append("regions " + ",".join(map(str, document["regions"])))
    if document.get("notify"):
        parts.append(f"notify {document['notify']}")
    if document.get("dry_run"):
        parts.append("dry run")
    return ", ".join(parts)


def cmd_status(args: argparse.Namespace, aws: _Aws) -> int:
    from workflow.operate import describe, history, timeline

    arn = aws.execution(args.execution)
    sfn = aws.sfn(execution=arn)
    details = describe(sfn, arn)
    current: list[str] = []
    if details.status in {"RUNNING", "PENDING_REDRIVE"}:
        current = [row.label for row in timeline(history(sfn, arn)) if row.outcome == "running"]
    if args.json:
        document = details.to_json()
        if current:
            document["current_states"] = current
        _print_json(document)
        return EXIT_OK
    report = details.report or {}
    totals = report.get("totals") or {}
    bucket = (aws.args.bucket or details.report_bucket) if report else None
    redrive = ""
    if details.redrive_count:
        redrive = f"{details.redrive_count} (last {_when(details.redrive_date)})"
    _fields(
        [
            ("execution", details.name),
            ("status", details.status),
            ("now in", ", ".join(current)),
            ("started", _when(details.start_date)),
            ("stopped", _when(details.stop_date)),
            ("duration", _duration(details.duration)),
            ("redrives", redrive),
            (
                "redrivable",
                f"{details.redrive_status}: {details.redrive_status_reason}"
                if details.redrive_status_reason
                else details.redrive_status or "",
            ),
            ("error", details.error or ""),
            ("cause", _short(details.cause, 300)),
            ("input", _input_line(details.input_document)),
            (
                "instances",
                f"{totals.get('total')} evaluated, {totals.get('noncompliant')} noncompliant, "
                f"{totals.get('exempt')} exempt"
                if totals
                else "",
            ),
            (
                "summary",
                f"s3://{bucket}/{report['summary_key']}" if bucket and report.get("summary_key") else "",
            ),
            ("arn", details.execution_arn),
            ("console", details.console_url or ""),
        ]
    )
    return EXIT_OK


def cmd_history(args: argparse.Namespace, aws: _Aws) -> int:
    from workflow.graph import read_history_file
    from workflow.operate import history, parse_time, timeline

    if (args.execution is None) == (args.history_file is None):
        raise InvalidInput(
            [Problem("history", "give an EXECUTION (name or ARN) or --history-file HISTORY.json")]
        )
    if args.history_file is not None:
        events = read_history_file(args.history_file)
        title = args.history_file
    else:
        arn = aws.execution(args.execution)
        events = history(aws.sfn(execution=arn), arn)
        title = arn
    rows = timeline(events)
    if args.json:
        _print_json([row.to_json() for row in rows])
        return EXIT_OK
    start = parse_time(events[0].get("timestamp")) if events else None
    table_rows = []
    for row in rows:
        offset = row.entered - start if row.entered and start else None
        retries = ""
        if row.retries:
            retries = f"{row.retries} ({', '.join(row.attempt_errors[: row.retries])})"
        table_rows.append(
            [
                row.state,
                row.item or "",
                row.state_type,
                f"+{_duration(offset.total_seconds())}" if offset is not None else "",
                _duration(row.duration),
                retries,
                row.outcome,
                row.error or "",
                _short(row.cause),
            ]
        )
    _table(
        f"Timeline of {title}",
        ["state", "item", "type", "entered", "duration", "retries", "outcome", "error", "cause"],
        table_rows,
        right=["entered", "duration"],
    )
    return EXIT_OK


# -- redrive and the dead-letter queue -------------------------------------------------------------------


def cmd_redrive(args: argparse.Namespace, aws: _Aws) -> int:
    from workflow.operate import console_url, history, redrive

    arn = aws.execution(args.execution)
    sfn = aws.sfn(execution=arn)
    after = max((int(e.get("id", 0)) for e in history(sfn, arn)), default=0) if args.wait else 0
    redriven_at = redrive(sfn, arn)
    url = console_url(None, arn)
    if not args.wait:
        if args.json:
            _print_json(
                {"execution_arn": arn, "redrive_date": _when(redriven_at) or None, "console_url": url}
            )
        else:
            print(arn)
            if url:
                print(url)
        return EXIT_OK
    if not args.json:
        _note(f"Redriven {arn} at {_when(redriven_at)}")
    return _finish(args, aws, sfn, aws.resources(), arn, after=after)


def cmd_dlq(args: argparse.Namespace, aws: _Aws) -> int:
    from workflow.operate import dead_letters, redrive_dead_letters

    # Redriving needs the stack's own state machine: only its executions are redriven or restarted.
    resources = aws.resources("DeadLetterQueueUrl", *(() if args.list else ("StateMachineArn",)))
    queue_url = resources.dead_letter_queue_url
    assert queue_url is not None
    match = _QUEUE_REGION.match(queue_url)
    sqs = aws.client("sqs", args.region or (match.group(1) if match else None))
    if args.list:
        letters = dead_letters(sqs, queue_url, args.max_messages)
        if args.json:
            _print_json([letter.to_json() for letter in letters])
        elif not letters:
            _note("the dead-letter queue is empty")
        else:
            _table(
                f"Dead letters in {queue_url}",
                ["execution", "source", "failed state", "error", "failed at", "cause"],
                [
                    [
                        letter.execution_name or "?",
                        letter.source,
                        letter.failed_state or "",
                        letter.error or "",
                        letter.failed_at or "",
                        _short(letter.cause, 80),
                    ]
                    for letter in letters
                ],
            )
        return EXIT_OK
    outcomes = redrive_dead_letters(
        aws.sfn(resources),
        sqs,
        queue_url,
        purge_after_redrive=args.purge_after_redrive,
        restart_unredrivable=args.restart_unredrivable,
        dry_run=args.dry_run,
        max_messages=args.max_messages,
        state_machine_arn=resources.require("StateMachineArn"),
    )
    if args.json:
        _print_json([outcome.to_json() for outcome in outcomes])
    elif not outcomes:
        _note("the dead-letter queue is empty")
    else:
        _table(
            "Dead letters" + (" (dry run: nothing changed)" if args.dry_run else ""),
            ["execution", "source", "failed state", "error", "action", "detail", "deleted"],
            [
                [
                    o.letter.execution_name or "?",
                    o.letter.source,
                    o.letter.failed_state or "",
                    o.letter.error or "",
                    o.action,
                    _short(o.detail),
                    "yes" if o.deleted else "",
                ]
                for o in outcomes
            ],
        )
    return EXIT_FAILED if any(o.action == "failed" for o in outcomes) else EXIT_OK


# -- the parsers -----------------------------------------------------------------------------------


def cmd_subscribe_owner(args: argparse.Namespace, aws: _Aws) -> int:
    from workflow.subscriptions import owner_filter_policy, subscribe_owner

    resources = aws.resources("ComplianceTopicArn")
    topic_arn = resources.compliance_topic_arn
    assert topic_arn is not None
    sns = aws.client("sns", args.region or topic_arn.split(":")[3])
    subscription = subscribe_owner(sns, topic_arn, args.email, owner=args.owner)
    if args.json:
        _print_json({"subscription_arn": subscription, "filter_policy": owner_filter_policy(args.owner)})
    else:
        whose = f"the digests of {json.dumps(owner_filter_policy(args.owner).get('owner', ['?'])[0])}"
        _note(
            f"Subscribed {args.email} to {whose if args.owner is not None else 'every owner digest'} of "
            f"{topic_arn}: {subscription} (AWS mails a confirmation link first)"
        )
    return EXIT_OK


def cmd_exempt(args: argparse.Namespace, aws: _Aws) -> int:
    from workflow.exemption_files import new_exemption_file, validate_exemption_file

    resources = aws.resources("ReportBucketName")
    bucket = resources.report_bucket
    assert bucket is not None
    approver = args.approved_by or str(aws.client("sts").get_caller_identity()["Arn"])
    document, key = new_exemption_file(
        args.resource_id,
        days=args.days,
        reason=args.reason,
        approved_by=approver,
        today=datetime.now(UTC).date(),
    )
    problems = validate_exemption_file(document)
    if problems:  # a resource id of no checked type, a reason too long: one line, nothing written
        raise InvalidInput([Problem("exempt", f"{problems[0].path}: {problems[0].message}")])
    s3 = aws.client("s3", args.region)
    from workflow.storage import put_json_if_unchanged

    # Never over another approval: the same resource and expiry date is one file, written once.
    if not put_json_if_unchanged(s3, bucket, key, document, None):
        raise InvalidInput(
            [Problem("exempt", f"s3://{bucket}/{key} exists already (kept as it is); give other --days")]
        )
    if args.json:
        _print_json({"key": f"s3://{bucket}/{key}", "exemption": document})
    else:
        _note(
            f"Exempted {args.resource_id} through {document['expires']} (s3://{bucket}/{key}); "
            "runs from now apply it"
        )
    return EXIT_OK


def _deployment_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("deployment (a flag wins over the stack's output)")
    group.add_argument(
        "--stack",
        default=os.environ.get(STACK_ENV) or None,
        metavar="NAME",
        help=f"CloudFormation stack of the deployment (default: ${STACK_ENV})",
    )
    group.add_argument("--state-machine-arn", metavar="ARN", help="instead of the stack's StateMachineArn")
    group.add_argument(
        "--bucket", metavar="NAME", help="report bucket, instead of the stack's ReportBucketName"
    )
    group.add_argument(
        "--queue-url", metavar="URL", help="dead-letter queue, instead of the stack's DeadLetterQueueUrl"
    )
    group.add_argument(
        "--region", metavar="REGION", help="AWS region (default: from an ARN given, else the profile)"
    )
    group.add_argument("--profile", metavar="PROFILE", help="AWS profile (default: $AWS_PROFILE)")
    return parent


def _exemption_days(text: str) -> int:
    value = _positive_int(text)
    if value > 365:
        raise argparse.ArgumentTypeError(f"{value} days: at most 365 (renew it when it ends)")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 300:
        raise argparse.ArgumentTypeError(f"between 0 and 300 seconds: {text!r}")
    return value


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="follow the execution state by state to its end")
    parser.add_argument(
        "--poll-interval", type=_seconds, default=2.0, metavar="SECONDS", help="with --wait (default: 2)"
    )
    parser.add_argument(
        "--fail-on-violations",
        action="store_true",
        help="with --wait: exit 1 when any instance is noncompliant",
    )


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``start``, ``executions``, ``status``, ``history``, ``redrive``, ``dlq`` and
    ``subscribe-owner`` to the CLI.

    >>> parser = argparse.ArgumentParser(prog="tagwarden")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["executions", "--stack", "dev", "--status", "FAILED"])
    >>> args.stack, args.status, args.limit
    ('dev', ['FAILED'], 20)
    """
    common = _deployment_options()

    start = subparsers.add_parser(
        "start",
        parents=[common],
        help="start a scan on the deployed state machine (the policy is validated locally first)",
        description="Start an execution of the deployed state machine. Left-out fields take the "
        "deployment's defaults. Prints the execution ARN and its console URL.",
    )
    policy = start.add_mutually_exclusive_group()
    policy.add_argument(
        "--policy", metavar="FILE", help="tag policy file, validated as 'tagwarden validate' does"
    )
    policy.add_argument("--policy-uri", metavar="S3_URI", help="a policy already in S3 (s3://bucket/key)")
    start.add_argument("--regions", help="comma-separated regions to scan (default: the deployment's)")
    start.add_argument("--notify", choices=NOTIFY_MODES, help="when to notify (default: the deployment's)")
    start.add_argument("--name", help="execution name, the run id (default: manual-<UTC time>-<random>)")
    add_scope_arguments(start, organization_help="scan every active account of the AWS Organization")
    start.add_argument(
        "--dry-run",
        action="store_true",
        help="evaluate and report without registering partitions or notifying",
    )
    start.add_argument("--json", action="store_true", help="print one JSON object")
    _wait_options(start)
    start.set_defaults(func=_command(cmd_start))

    executions = subparsers.add_parser(
        "executions", parents=[common], help="list the newest executions of the deployed state machine"
    )
    executions.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help=f"only these statuses (repeatable or comma-separated): {', '.join(STATUSES)}",
    )
    executions.add_argument(
        "--limit", type=_positive_int, default=20, metavar="N", help="at most N (default: 20)"
    )
    executions.add_argument("--json", action="store_true", help="print a JSON list")
    executions.set_defaults(func=_command(cmd_executions))

    status = subparsers.add_parser("status", parents=[common], help="the status of one execution")
    status.add_argument("execution", metavar="EXECUTION", help="execution name or ARN")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=_command(cmd_status))

    history = subparsers.add_parser(
        "history",
        parents=[common],
        help="an execution's history as a timeline: state, duration, retries, error and cause",
    )
    history.add_argument("execution", metavar="EXECUTION", nargs="?", help="execution name or ARN")
    from workflow.cli_local_ops import add_history_file_argument

    add_history_file_argument(
        history, "read the events from a file instead (history.json of a local run)", old_name="--file"
    )
    history.add_argument("--json", action="store_true", help="print the timeline as a JSON list")
    history.set_defaults(func=_command(cmd_history))

    redrive = subparsers.add_parser(
        "redrive",
        parents=[common],
        help="redrive a failed, timed-out or aborted execution from where it stopped",
    )
    redrive.add_argument("execution", metavar="EXECUTION", help="execution name or ARN")
    redrive.add_argument("--json", action="store_true", help="print one JSON object")
    _wait_options(redrive)
    redrive.set_defaults(func=_command(cmd_redrive))

    dlq = subparsers.add_parser(
        "dlq",
        parents=[common],
        help="list the dead-letter queue and redrive each execution in it once",
        description="Read the dead-letter queue (the state machine's messages and EventBridge status "
        "events), redrive each distinct execution once and report what happened per message. Messages "
        "stay in the queue unless --purge-after-redrive and their execution was redriven or restarted. "
        "A message is only a pointer: executions of other state machines, or that Step Functions does not "
        "know, are refused and left in the queue, and a restart reads its input from Step Functions.",
    )
    dlq.add_argument(
        "--purge-after-redrive",
        action="store_true",
        help="delete a message once its execution was redriven or restarted (or has succeeded since)",
    )
    dlq.add_argument(
        "--restart-unredrivable",
        action="store_true",
        help="start executions of this stack's state machine that cannot be redriven (older than 14 days, "
        "...) again, with the input DescribeExecution returns, under the name <name>-restart<N>",
    )
    dlq.add_argument("--dry-run", action="store_true", help="say what would be done; change nothing")
    dlq.add_argument("--list", action="store_true", help="only list the messages (no Step Functions calls)")
    dlq.add_argument(
        "--max-messages",
        type=_positive_int,
        default=100,
        metavar="N",
        help="read at most N messages (default: 100)",
    )
    dlq.add_argument("--json", action="store_true", help="print a JSON list")
    dlq.set_defaults(func=_command(cmd_dlq))

    subscribe = subparsers.add_parser(
        "subscribe-owner",
        parents=[common],
        help="subscribe an email address to one owner's digests (or to every digest)",
        description="Create an email subscription to the stack's compliance topic with a filter policy that "
        "lets only owner digests through (message attribute kind=owner-digest), and with --owner only that "
        "owner's (attribute owner, normalised as the digests name owners: trimmed, lower case; "
        "'(no owner)' is the digest of resources without an owner tag). AWS mails a confirmation link.",
    )
    subscribe.add_argument("email", metavar="EMAIL", help="the address to subscribe")
    subscribe.add_argument(
        "--owner", metavar="VALUE", help="only this owner's digests (the owner tag's value)"
    )
    subscribe.add_argument("--json", action="store_true", help="print one JSON object")
    subscribe.set_defaults(func=_command(cmd_subscribe_owner))

    exempt = subparsers.add_parser(
        "exempt",
        parents=[common],
        help="exempt one resource for N days, with a reason, as a file in the report bucket",
        description="Write exemptions/<resource>-until-<date>.json to the stack's report bucket: the "
        "resource is exempt from every run through that date (UTC), then each finding says "
        "exemption_expired. The file records the reason and who approved it (default: the caller's "
        "identity); an existing file for the same resource and date is never overwritten.",
    )
    exempt.add_argument(
        "resource_id", metavar="RESOURCE_ID", help="i-..., vol-..., snap-..., ami-... or eni-..."
    )
    exempt.add_argument("--days", type=_exemption_days, required=True, metavar="N", help="1 to 365")
    exempt.add_argument("--reason", required=True, help="why (recorded with the exemption)")
    exempt.add_argument(
        "--approved-by", metavar="WHO", help="default: the caller's ARN (sts:GetCallerIdentity)"
    )
    exempt.add_argument("--json", action="store_true", help="print one JSON object")
    exempt.set_defaults(func=_command(cmd_exempt))
