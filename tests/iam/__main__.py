"""``python -m tests.iam [--write docs/iam.md]``: run the scenarios, check every template, print the table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.iam.report import render_markdown, render_text, run_everything


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.iam", description=__doc__)
    parser.add_argument("--write", type=Path, help="also write the table as Markdown to this file")
    parser.add_argument(
        "--suites",
        type=Path,
        help="also check what the functional suites recorded here (pytest with TAGWARDEN_IAM_RECORD=<folder>)",
    )
    args = parser.parse_args(argv)
    if args.suites is not None and not any(args.suites.glob("*.json")):
        print(
            f"error: no recording in {args.suites}: run the functional suites with TAGWARDEN_IAM_RECORD={args.suites}"
        )
        return 2
    results, deployments = run_everything(args.suites)
    print(render_text(results, deployments))
    if args.write:
        args.write.write_text(render_markdown(results, deployments), encoding="utf-8")
    failed = any(r.denied or r.unexercised or r.problems for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
