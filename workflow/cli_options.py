"""Command-line options more than one ``tagwarden`` command takes (no AWS library imported)."""

from __future__ import annotations

import argparse


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
