"""`tagwarden run --event`: the event workflow from the command line, with the run folder of a
scheduled run, and one line and exit status 2 for what it cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_events import SSO, launch
from workflow import cli

DUMP = {
    "Reservations": [
        {
            "OwnerId": "111122223333",
            "Instances": [
                {
                    "InstanceId": "i-0123456789abcdef0",
                    "InstanceType": "t3.micro",
                    "LaunchTime": "2026-12-01T10:00:00+00:00",
                    "State": {"Name": "running"},
                    "Placement": {"AvailabilityZone": "eu-west-1a"},
                    "Tags": [{"Key": "Name", "Value": "web-1"}],
                }
            ],
        }
    ]
}


def write(folder: Path, name: str, document: object) -> str:
    path = folder / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def test_an_event_run_from_the_command_line_writes_a_run_folder_and_names_the_creator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = write(tmp_path, "launch.json", launch(SSO, "i-0123456789abcdef0"))
    dump = write(tmp_path, "dump.json", DUMP)
    argv = [
        "run",
        "--event",
        event,
        "--fleet",
        dump,
        "--out",
        str(tmp_path / "out"),
        "--name",
        "ev1",
        "--json",
    ]
    assert cli.main([*argv, "--fail-on-violations"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "SUCCEEDED" and out["summary"]["noncompliant"] == 1
    folder = tmp_path / "out" / "ev1"
    assert {p.name for p in folder.iterdir()} >= {
        "findings.jsonl",
        "summary.json",
        "history.json",
        "graph.html",
    }
    (finding,) = [json.loads(line) for line in (folder / "findings.jsonl").read_text().splitlines()]
    assert finding["created_by"]["display"] == "dana@example.com" and finding["source"] == "event"
    # The default --now is the launch plus the baseline policy's grace period: nothing waited.
    assert json.loads((folder / "summary.json").read_text())["source"] == "event"
    notifications = json.loads((folder / "notifications.json").read_text())
    assert "dana@example.com" in notifications[0]["body"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--organization"],
            "--organization: an event run checks the accounts and regions its events name, of those the dumps cover; "
            "drop it",
        ),
        (["--now", "yesterday"], "--now: 'yesterday' is not an ISO 8601 time"),
    ],
)
def test_an_event_run_refuses_options_it_cannot_use_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    event = write(tmp_path, "launch.json", launch(SSO, "i-0123456789abcdef0"))
    assert cli.main(["run", "--event", event, "--out", str(tmp_path / "out"), *extra]) == 2
    assert capsys.readouterr().err.strip().endswith(message)


def test_an_event_file_that_is_not_json_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    assert cli.main(["run", "--event", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{path}: not a JSON event (or list of events)")


def test_an_event_for_a_region_the_dumps_do_not_cover_says_why_nothing_was_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = launch(SSO, "i-0123456789abcdef0", account="111122223333", region="ap-south-1")
    argv = [
        "run",
        "--event",
        write(tmp_path, "launch.json", elsewhere),
        "--fleet",
        write(tmp_path, "d.json", DUMP),
    ]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 4  # nothing evaluated: not a clean bill
    err = capsys.readouterr().err
    assert (
        "nothing to check: of 1 messages, 1 resource(s) outside the scanned accounts and regions "
        "(111122223333 ap-south-1)"
    ) in err
