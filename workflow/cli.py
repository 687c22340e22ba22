"""The ``tagwarden`` command line.

Exit status (:mod:`workflow.verdict` has the table): 0 success, 1 noncompliant instances with
``--fail-on-violations``, 2 bad input (policy, fleet file, arguments: one clear line each), 3 the
execution failed or an AWS error, 4 an incomplete scan (a target not scanned, or nothing evaluated).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from workflow.cli_options import add_scope_arguments
from workflow.errors import InvalidInput, TagwardenError
from workflow.verdict import EXIT_BAD_INPUT, EXIT_OK
from workflow.verdict import EXIT_FAILED as EXIT_EXECUTION_FAILED

_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<given>[^']*)' \(choose from (?P<choices>.*)\)")


def _closest(given: str, candidates: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(given, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


class _Parser(argparse.ArgumentParser):
    """argparse prints usage and exits 2 on bad arguments; keep that to one line plus a hint, and
    say which choice was meant when one is close (Python 3.14's ``suggest_on_error``, on every
    version)."""

    def error(self, message: str) -> NoReturn:
        match = _INVALID_CHOICE.search(message)
        if match:
            choices = [c.strip().strip("'") for c in match["choices"].split(",")]
            close = _closest(match["given"], choices)
            if close and "did you mean" not in message:
                message += f" (did you mean {close!r}?)"
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command that was given: ``policy convert`` -> its own parser."""
    current = parser
    for name in (getattr(args, "command", None), getattr(args, "policy_command", None)):
        found = dict(_subparsers(current)).get(name or "")
        if found is None:
            break
        current = found
    return current


def _unknown_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> str:
    """``unrecognized arguments: --polcy (did you mean --policy?)``."""
    command = _command_parser(parser, args)
    flags = [
        flag for flag, action in command._option_string_actions.items() if action.help != argparse.SUPPRESS
    ]
    words = []
    for extra in extras:
        close = _closest(extra.split("=", 1)[0], flags) if extra.startswith("--") else None
        words.append(f"{extra} (did you mean {close}?)" if close else extra)
    return f"unrecognized arguments: {' '.join(words)}"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"tagwarden {version('tagwarden')}"
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "tagwarden (not installed)"


def _print_problems(err: InvalidInput) -> None:
    from workflow.render import printable

    for line in err.lines():
        # A problem may quote the input (a key, a value, a pattern): escaped like every CLI table.
        print(printable(line), file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    from workflow.policy import load_policy

    worst = EXIT_OK
    for path in args.files:
        try:
            policy = load_policy(path)
        except InvalidInput as err:
            _print_problems(err)
            worst = EXIT_BAD_INPUT
            continue
        if not args.quiet:
            rules = len(policy.rules)
            print(f"{path}: valid policy {policy.name!r} ({rules} rules, sha256 {policy.sha256[:12]})")
    return worst


def cmd_policy_convert(args: argparse.Namespace) -> int:
    from workflow.policy import load_policy_document, read_policy_file

    doc = read_policy_file(args.file)
    converted = load_policy_document(
        doc, source=args.file, name=args.name or _policy_name_from_path(args.file)
    )
    print(json.dumps(converted, indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_policy_schema(_args: argparse.Namespace) -> int:
    from workflow.policy import policy_schema

    print(json.dumps(policy_schema(), indent=2))
    return EXIT_OK


def _policy_name_from_path(path: str) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in Path(path).stem).lstrip("._-")
    return stem[:128] or "converted"


def cmd_run(args: argparse.Namespace) -> int:
    from workflow.local_run import run_locally

    return run_locally(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tagwarden", description="EC2 tag compliance monitor.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    validate = sub.add_parser("validate", help="check tag policy files; exit 2 with one line per problem")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    validate.set_defaults(func=cmd_validate)

    policy = sub.add_parser("policy", help="work with policy documents")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, parser_class=_Parser)
    convert = policy_sub.add_parser(
        "convert",
        help="print an AWS Organizations tag policy or Config required-tags parameters as version 1",
    )
    convert.add_argument("file", metavar="FILE")
    convert.add_argument("--name", help="name of the converted policy (default: from the file name)")
    convert.set_defaults(func=cmd_policy_convert)
    schema = policy_sub.add_parser("schema", help="print the JSON Schema of policy version 1")
    schema.set_defaults(func=cmd_policy_schema)

    run = sub.add_parser("run", help="run a scan locally on the embedded engine")
    run.add_argument("--policy", metavar="FILE", help="tag policy (default: policies/baseline.json shipped)")
    run.add_argument(
        "--fleet",
        metavar="[ACCOUNT:][REGION:]FILE",
        action="append",
        default=[],
        help="output of 'aws ec2 describe-instances', or of describe-volumes, describe-snapshots, "
        "describe-images or describe-network-interfaces (detected by their top-level key; "
        "ACCOUNT: and REGION: for what the file does not say); repeatable; default: the demo fleet",
    )
    run.add_argument(
        "--event",
        metavar="EVENT.json",
        action="append",
        default=[],
        help="run the event workflow instead: an EventBridge event (or a list of them) as EventBridge "
        "delivers it (repeatable); the resources it names are checked with the policy",
    )
    run.add_argument(
        "--now",
        metavar="TIME",
        help="with --event: the time the event run starts, ISO 8601 (default: the newest event's "
        "time plus the policy's grace period, so nothing waits)",
    )
    run.add_argument("--regions", help="comma-separated regions to scan (default: those in the fleet)")
    run.add_argument(
        "--out", default="tagwarden-out", metavar="DIR", help="where run folders go (default: %(default)s)"
    )
    run.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    run.add_argument(
        "--fail-on-violations", action="store_true", help="exit 1 when any instance is noncompliant"
    )
    run.add_argument(
        "--notify",
        choices=["always", "violations", "new_violations", "never"],
        default="violations",
        help="when the run publishes its notification (to notifications.json in the run folder): "
        "always; violations, when any instance is noncompliant (the default); new_violations, only "
        "for instances that became noncompliant since the previous run; never",
    )
    run.add_argument("--name", help="execution name (the run id); default: generated")
    add_scope_arguments(
        run,
        organization_help="scan every active account of the (local) organisation: every account in the fleet",
    )
    run.set_defaults(func=cmd_run)

    from workflow import cli_stack_ops
    from workflow.cli_local_ops import register as register_local_ops

    register_local_ops(sub)
    cli_stack_ops.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tagwarden`` console script; returns the exit status."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        _command_parser(parser, args).error(_unknown_arguments(parser, args, extras))
    interrupt_handler = signal.getsignal(signal.SIGINT)
    try:
        return _run(args)
    finally:
        if interrupt_handler is not None:
            signal.signal(signal.SIGINT, interrupt_handler)


def _run(args: argparse.Namespace) -> int:
    try:
        status: int = args.func(args)
    except InvalidInput as err:
        _print_problems(err)
        return EXIT_BAD_INPUT
    except TagwardenError as err:
        from workflow.render import printable

        print(printable(f"tagwarden: {err}"), file=sys.stderr)
        return EXIT_EXECUTION_FAILED
    except KeyboardInterrupt:
        print("tagwarden: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as err:
        if os.environ.get("TAGWARDEN_DEBUG"):
            raise
        from workflow.render import printable

        print(
            printable(f"tagwarden: internal error: {type(err).__name__}: {err} ")
            + "(set TAGWARDEN_DEBUG=1 for the traceback and please report it)",
            file=sys.stderr,
        )
        return EXIT_EXECUTION_FAILED
    return status


def console_main() -> NoReturn:
    """The ``tagwarden`` console script: :func:`main`, then exit at once.

    A run leaves hundreds of thousands of objects (the embedded engine, moto, botocore's models)
    whose teardown at interpreter exit took 0.7 to 1.5 s after "Report folder" was printed, and a
    Ctrl-C in that pause turned a complete run into exit 130. Once ``main`` has returned, everything
    is written and flushed: ignore interrupts and leave without the teardown.
    """
    status = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing left to say
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    console_main()
