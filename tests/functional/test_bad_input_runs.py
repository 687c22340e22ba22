"""Bad input on the embedded engine: a corrupt old summary under --out, and no stack trace in a cause.

A step that fails with an unexpected exception fails the run as before (same error type, same
Retry/Catch), but its execution's cause, the Map's cause and the dead letter carry the error type
and a one-line message only: the trace goes to the function's log, not to whoever reads the cause.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workflow.cli import main
from workflow.engine.local import LocalDeployment
from workflow.fleet import demo_fleet, iter_fleet_document

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "describe-instances.two-regions.json"
REGION = "eu-west-1"


@pytest.mark.parametrize(
    "summary",
    [
        '{"run_id": "old", "evaluated_at": 5}',
        '{"run_id": "../../escape", "evaluated_at": "2026-12-01T00:00:00+00:00"}',
        "[1, 2",
    ],
    ids=["number-timestamp", "path-run-id", "not-json"],
)
def test_a_corrupt_summary_under_out_does_not_stop_later_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], summary: str
) -> None:
    out = tmp_path / "out"
    assert main(["run", "--fleet", str(FIXTURE), "--out", str(out), "--json", "--name", "good"]) == 0
    (out / "old").mkdir()
    (out / "old" / "summary.json").write_text(summary)
    capsys.readouterr()
    assert main(["run", "--fleet", str(FIXTURE), "--out", str(out), "--json", "--name", "later"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "SUCCEEDED"
    assert f"tagwarden: ignoring {out / 'old' / 'summary.json'} for drift: " in captured.err


def _deep_failure(*_: Any, **__: Any) -> Any:
    def encode(value: str) -> bytes:
        return value.encode("utf-8")

    def serialise(document: dict[str, Any]) -> bytes:
        return encode(json.dumps(document, ensure_ascii=False))

    return serialise({"Value": "bad\ud800"})


@pytest.fixture
def failing_listing(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalDeployment]:
    import lambdas.list_instances

    fleet = [i for i in iter_fleet_document(demo_fleet(instances_per_region=2)) if i.region == REGION]
    monkeypatch.setattr(lambdas.list_instances, "list_instances", _deep_failure)
    with LocalDeployment(fleet, regions=[REGION], retry_wait_scale=0) as local:
        yield local


def _frames(cause: dict[str, Any]) -> list[str]:
    return list(cause.get("stackTrace") or [])


def test_an_unexpected_exception_leaves_no_stack_trace_in_the_cause_or_the_dead_letter(
    failing_listing: LocalDeployment, caplog: pytest.LogCaptureFixture
) -> None:
    local = failing_listing
    result = local.run({"regions": [REGION], "notify": "never"}, name="deep-failure")
    assert (result.status, result.error) == ("FAILED", "UnicodeEncodeError")
    outer = json.loads(result.cause or "")
    assert (outer["state"], outer["error"]) == ("List EC2 instances", "UnicodeEncodeError")
    inner = json.loads(outer["cause"])
    assert inner["errorType"] == "UnicodeEncodeError"
    assert "surrogates not allowed" in inner["errorMessage"]
    # Only the boundary's own frame: none of the code that failed, none of its source lines.
    frames = _frames(inner)
    assert len(frames) <= 1, frames
    assert all("lambdas/_runtime.py" in frame and "in boundary" in frame for frame in frames)
    assert result.dead_letters, "the failed run sent no dead letter"
    for text in (result.cause or "", *(json.dumps(letter) for letter in result.dead_letters)):
        assert "_deep_failure" not in text and "serialise" not in text and "workflow/" not in text
    # The trace is in the function's log, for operators.
    assert "_deep_failure" in caplog.text
