"""Command-line options more than one ``tagwarden`` command takes (no AWS library imported)."""

from __future__ import annotations

import argparse
import re
import signal
import threading
from typing import Final

from workflow.errors import InvalidInput, Problem

REGION_NAME: Final = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")
MAX_REGIONS: Final = 50


def parse_regions(text: str, flag: str = "--regions") -> list[str]:
    """A comma-separated region list, without duplicates; a bad item is named in one line.

    >>> parse_regions("us-east-1, eu-west-1,us-east-1")
    ['us-east-1', 'eu-west-1']
    >>> try:
    ...     parse_regions("us-east-1,us-east-9x")
    ... except InvalidInput as err:
    ...     print(err.problems[0].message)
    'us-east-9x' is not an AWS region name like eu-west-1 (in 'us-east-1,us-east-9x')
    """
    wanted = list(dict.fromkeys(r.strip() for r in text.split(",") if r.strip()))
    bad = [r for r in wanted if not REGION_NAME.match(r)]
    if bad:
        names = ", ".join(repr(r) for r in bad)
        verb = "is not an AWS region name" if len(bad) == 1 else "are not AWS region names"
        raise InvalidInput([Problem(flag, f"{names} {verb} like eu-west-1 (in {text!r})")])
    if not wanted:
        raise InvalidInput(
            [Problem(flag, "no region given: a comma-separated list like us-east-1,eu-west-1")]
        )
    if len(wanted) > MAX_REGIONS:
        raise InvalidInput([Problem(flag, f"at most {MAX_REGIONS} regions, not {len(wanted)}")])
    return wanted


def add_scope_arguments(parser: argparse.ArgumentParser, *, organization_help: str) -> None:
    """``--targets FILE`` or ``--organization`` (one of them), and ``--exclude-accounts``.

    >>> parser = argparse.ArgumentParser()
    >>> add_scope_arguments(parser, organization_help="every account")
    >>> parser.parse_args(["--organization", "--exclude-accounts", "1"]).organization
    True
    """
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--targets",
        metavar="FILE",
        help='accounts to scan through their member role: JSON [{"account_id", "regions"?, "role_arn"?}]',
    )
    scope.add_argument("--organization", action="store_true", help=organization_help)
    parser.add_argument(
        "--exclude-accounts", metavar="IDS", help="with --organization: comma-separated accounts"
    )


def results_kept() -> None:
    """Say that the command's results are on disk: a Ctrl-C from now on (while the summary prints)
    must not turn a complete run into a failure, so it is ignored until :func:`workflow.cli.main`
    returns (and restores the handler it found)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
