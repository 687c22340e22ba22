"""The command line keeps README's promises: --version, did-you-mean, help text and defaults, one
flag name for history files, graph formats from the suffix, one no-credentials line, named bad
regions, and an exit that does not linger or turn an interrupt into a failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workflow import cli
from workflow.cli_options import parse_regions
from workflow.errors import InvalidInput
from workflow.operate import build_execution_input

ROOT = Path(__file__).resolve().parents[2]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = cli.main(argv)
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    status, out, _err = run_cli(["--version"], capsys)
    assert (status, out.strip()) == (0, f"tagwarden {version('tagwarden')}")


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["run", "--polcy", "p.json"], "--polcy (did you mean --policy?)"),
        (["report", "--formt", "csv"], "--formt (did you mean --format?)"),
        (["graph", "--histroy-file", "h.json"], "--histroy-file (did you mean --history-file?)"),
        (["history", "--stak", "prod"], "--stak (did you mean --stack?)"),
        (["run", "--notify", "violation"], "(did you mean 'violations'?)"),
    ],
)
def test_a_mistyped_flag_or_choice_says_what_was_meant_in_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], suggestion: str
) -> None:
    status, _out, err = run_cli(argv, capsys)
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and suggestion in err


def test_run_help_explains_notify_and_shows_the_out_default(capsys: pytest.CaptureFixture[str]) -> None:
    _status, out, _err = run_cli(["run", "--help"], capsys)
    text = " ".join(out.split())
    assert "new_violations, only for instances that became noncompliant since the previous run" in text
    assert "where run folders go (default: tagwarden-out)" in text
    _status, out, _err = run_cli(["graph", "--help"], capsys)
    assert "write to FILE (default: standard output)" in " ".join(out.split())


def test_graph_and_history_take_one_flag_name_for_a_history_file(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("graph", "history"):
        _status, out, _err = run_cli([command, "--help"], capsys)
        assert "--history-file FILE" in out
        assert "--file" not in out.replace("--history-file", "") and "--history " not in out
    parser = cli.build_parser()
    assert parser.parse_args(["graph", "--history", "h.json"]).history_file == "h.json"  # the old names
    assert parser.parse_args(["history", "--file", "h.json"]).history_file == "h.json"


def test_graph_writes_svg_for_an_svg_name_and_refuses_a_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svg = tmp_path / "workflow.svg"
    assert run_cli(["graph", "--out", str(svg)], capsys)[0] == 0
    assert svg.read_text(encoding="utf-8").startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    status, _out, err = run_cli(["graph", "--format", "mermaid", "--out", str(tmp_path / "x.svg")], capsys)
    assert status == 2 and "x.svg is named for svg but --format is mermaid" in err
    status, _out, err = run_cli(["graph", "--out", str(tmp_path / "x.png")], capsys)
    assert status == 2 and "cannot tell the format from" in err
    assert not (tmp_path / "x.svg").exists() and not (tmp_path / "x.png").exists()
    assert run_cli(["graph", "--format", "mermaid", "--out", str(tmp_path / "x.txt")], capsys)[0] == 0


def test_graph_execution_without_credentials_is_the_same_line_as_every_other_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    arn = "arn:aws:states:eu-west-1:123456789012:execution:tagwarden:nightly"
    lines = []
    for argv in (["graph", "--execution", arn], ["status", arn]):
        status, _out, err = run_cli(argv, capsys)
        assert status == 2
        [line] = err.strip().splitlines()
        lines.append(line)
    assert lines[0] == lines[1] and lines[0].startswith(
        "tagwarden: no AWS credentials found (set AWS_PROFILE"
    )


def test_a_bad_region_is_named_by_run_and_start(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    expected = "--regions: 'us-east-9x' is not an AWS region name like eu-west-1 (in 'us-east-1,us-east-9x')"
    status, _out, err = run_cli(["run", "--regions", "us-east-1,us-east-9x", "--out", str(tmp_path)], capsys)
    assert (status, err.strip()) == (2, expected)
    with pytest.raises(InvalidInput) as raised:
        build_execution_input(regions="us-east-1,us-east-9x")
    assert str(raised.value) == expected
    with pytest.raises(InvalidInput, match="'a-1', 'b' are not AWS region names"):
        parse_regions("a-1,eu-west-1,b")


def test_an_interrupt_after_the_command_has_finished_does_not_change_its_exit_status() -> None:
    """The console script leaves as soon as ``main`` returns, ignoring Ctrl-C from then on (the
    interpreter's teardown after a run took 0.7 to 1.5 s, and an interrupt there exited 130)."""
    code = (
        "import os, signal\n"
        "from workflow import cli\n"
        "cli.main = lambda: print('Report folder: x') or 0\n"
        "real = signal.signal\n"
        "def ctrl_c_right_after(sig, handler):\n"
        "    real(sig, handler)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "signal.signal = ctrl_c_right_after\n"
        "cli.console_main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "Report folder: x\n", "")


def test_the_console_script_flushes_everything_before_it_leaves(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "tagwarden"
    if not script.exists():
        pytest.skip("the tagwarden console script is not installed next to this interpreter")
    policies = sorted(str(p) for p in (ROOT / "policies").glob("*.json"))
    done = subprocess.run(
        [str(script), "validate", *policies],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(policies)
    assert all("valid policy" in line for line in done.stdout.splitlines())
    assert done.stdout.endswith("\n")  # the last line whole: flushed before os._exit
