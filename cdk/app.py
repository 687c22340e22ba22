#!/usr/bin/env python3
"""CDK entry point: ``npx aws-cdk deploy`` (from cdk/) or ``make synth`` (``python app.py``).

Synthesis needs no Docker and no AWS credentials; see docs/deploy.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from tagwarden_cdk.main import build_app
from tagwarden_cdk.settings import SettingsError


def main(context: Mapping[str, Any] | None = None) -> int:
    """Synthesize; ``context`` adds to cdk.json's (the CLI's ``-c`` values still win)."""
    try:
        # The CLI passes CDK_OUTDIR; `python app.py` (make synth) writes cdk/cdk.out like the CLI does.
        app, _ = build_app(context, outdir=os.environ.get("CDK_OUTDIR", "cdk.out"))
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
