#!/usr/bin/env python3
"""CDK entry point: ``npx aws-cdk deploy`` (from cdk/) or ``make synth`` (``python app.py``).

Synthesis needs no Docker and no AWS credentials; see docs/deploy.md. By default the app is the
central stack, ``Tagwarden-<environment>``; with ``-c deploy=member`` it is only the member
accounts' read-only role, ``TagwardenMember`` (tagwarden_cdk/member.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from tagwarden_cdk.main import build_app
from tagwarden_cdk.member import MEMBER, build_member_app, deploy_kind
from tagwarden_cdk.settings import SettingsError


def context_arguments(argv: Sequence[str]) -> dict[str, str]:
    """``-c key=value`` / ``--context key=value`` arguments, for ``python app.py`` without the CDK CLI."""
    context: dict[str, str] = {}
    arguments = iter(argv)
    for argument in arguments:
        if argument not in {"-c", "--context"}:
            raise SettingsError(f"unexpected argument {argument!r}: only -c key=value is accepted")
        key, equals, value = next(arguments, "").partition("=")
        if not key or not equals:
            raise SettingsError(f"{argument} needs key=value")
        context[key] = value
    return context


def main(context: Mapping[str, Any] | None = None, argv: Sequence[str] = ()) -> int:
    """Synthesize; ``context`` and ``argv``'s ``-c`` add to cdk.json's (the CLI's ``-c`` values still win)."""
    # The CLI passes CDK_OUTDIR; `python app.py` (make synth) writes cdk/cdk.out like the CLI does.
    outdir = os.environ.get("CDK_OUTDIR", "cdk.out")
    try:
        context = {**(context or {}), **context_arguments(argv)}
        if deploy_kind(context, outdir=outdir) == MEMBER:
            app, _ = build_member_app(context, outdir=outdir)
        else:
            app, _ = build_app(context, outdir=outdir)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main(argv=sys.argv[1:]))
