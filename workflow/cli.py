"""The ``tagwarden`` command line.

Exit status (:mod:`workflow.verdict` has the table): 0 success, 1 noncompliant instances with
``--fail-on-violations``, 2 bad input (policy, fleet file, arguments: one clear line each), 3 the
execution failed or an AWS error, 4 an incomplete scan (a target not scanned, or nothing evaluated).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from workflow.cli_options import add_scope_arguments
from workflow.errors import InvalidInput, TagwardenError
from workflow.verdict import EXIT_BAD_INPUT, EXIT_OK
from workflow.verdict import EXIT_FAILED as EXIT_EXECUTION_FAILED


class _Parser(argparse.ArgumentParser):
    """argparse prints usage and exits 2 on bad arguments; keep that to one line plus a hint."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _print_problems(err: InvalidInput) -> None:
    for line in err.lines():
        print(line, file=sys.stderr)


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
        metavar="FILE",
        action="append",
        default=[],
        help="output of 'aws ec2 describe-instances' (repeatable); default: the demo fleet",
    )
    run.add_argument("--regions", help="comma-separated regions to scan (default: those in the fleet)")
    run.add_argument("--out", default="tagwarden-out", metavar="DIR", help="where run folders go")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    run.add_argument(
        "--fail-on-violations", action="store_true", help="exit 1 when any instance is noncompliant"
    )
    run.add_argument(
        "--notify", choices=["always", "violations", "new_violations", "never"], default="violations"
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
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except InvalidInput as err:
        _print_problems(err)
        return EXIT_BAD_INPUT
    except TagwardenError as err:
        print(f"tagwarden: {err}", file=sys.stderr)
        return EXIT_EXECUTION_FAILED
    except KeyboardInterrupt:
        print("tagwarden: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as err:
        if os.environ.get("TAGWARDEN_DEBUG"):
            raise
        print(
            f"tagwarden: internal error: {type(err).__name__}: {err} "
            "(set TAGWARDEN_DEBUG=1 for the traceback and please report it)",
            file=sys.stderr,
        )
        return EXIT_EXECUTION_FAILED
    return status


if __name__ == "__main__":
    sys.exit(main())
