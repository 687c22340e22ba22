"""Every `tagwarden ...` command in README.md's (and docs/'s) code blocks parses: its subcommand
and every flag exist and take the values shown, so the examples cannot drift from the CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from workflow import cli

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)
_PLACEHOLDER = re.compile(r"<[^<>\n]+>")
_SUBSTITUTION = re.compile(r"\$\((?:[^()]|\([^()]*\))*\)")


def example_commands() -> list[tuple[str, list[str]]]:
    """``(where, argv)`` of each ``tagwarden`` line in a fenced block: a pipe, a redirection or a
    second command ends it, comments go, ``<run id>`` placeholders become one word, and a shell
    substitution (README's loop over the dumps) stands for the ``--fleet`` flags it prints."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for block in _FENCE.finditer(text):
            line_number = text[: block.start()].count("\n") + 1
            for offset, raw in enumerate(block.group(1).splitlines(), start=1):
                line = raw.strip()
                if not line.startswith("tagwarden "):
                    continue
                line = _SUBSTITUTION.sub("--fleet dump-us-east-1.json --fleet dump-eu-west-1.json", line)
                line = _PLACEHOLDER.sub("PLACEHOLDER", line)
                words = shlex.split(line, comments=True)
                for stop in ("|", ">", ";", "&&", "||"):
                    if stop in words:
                        words = words[: words.index(stop)]
                found.append((f"{document.name}:{line_number + offset}", words[1:]))
    return found


EXAMPLES = example_commands()


def test_the_documents_have_examples_for_every_command() -> None:
    commands = {argv[0] for _where, argv in EXAMPLES if argv}
    assert {
        "run",
        "graph",
        "query",
        "report",
        "start",
        "executions",
        "status",
        "history",
        "redrive",
        "dlq",
    } <= commands


@pytest.mark.parametrize(("where", "argv"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_each_example_parses_with_the_flags_it_shows(
    where: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = cli.build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: tagwarden {' '.join(argv)}: {capsys.readouterr().err.strip()}")
    assert extras == [], f"{where}: unknown arguments {extras}"
    assert callable(args.func)


def test_stack_examples_name_a_stack_the_cdk_app_creates() -> None:
    """The stack is ``Tagwarden-<env>``; ``--stack <env>`` resolves to it. ``tagwarden-prod``
    (what README used to say) names no stack at all."""
    stacks = [argv[argv.index("--stack") + 1] for _where, argv in EXAMPLES if "--stack" in argv]
    assert stacks
    for name in stacks:
        assert name.startswith("Tagwarden-") or "-" not in name, name


def test_a_flag_that_does_not_exist_is_caught(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(AssertionError, match=r"unknown arguments \['--flie'\]"):
        test_each_example_parses_with_the_flags_it_shows("x", ["history", "--flie", "h.json"], capsys)
    with pytest.raises(pytest.fail.Exception, match="invalid choice"):
        test_each_example_parses_with_the_flags_it_shows("x", ["report", "--format", "pdf"], capsys)
