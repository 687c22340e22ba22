from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from workflow.engine.local import LocalDeployment
from workflow.fleet import DEMO_REGIONS, demo_fleet, iter_fleet_document


@pytest.fixture(scope="module")
def local() -> Iterator[LocalDeployment]:
    """One deployment per module (deploying costs seconds); each test runs its own executions."""
    fleet = list(iter_fleet_document(demo_fleet(instances_per_region=20)))
    with LocalDeployment(fleet, regions=list(DEMO_REGIONS), retry_wait_scale=0) as deployment:
        yield deployment


@pytest.fixture(autouse=True)
def _fresh_queues(request: pytest.FixtureRequest) -> None:
    """Nothing a previous test left in the capture queues leaks into the next test."""
    if "local" in request.fixturenames:
        deployment: LocalDeployment = request.getfixturevalue("local")
        deployment.drain_notifications()
        deployment.drain_dead_letters()


# `make iam-check` runs this suite with TAGWARDEN_IAM_RECORD=<folder>: every AWS call of every test is
# recorded with the test's id (tests/iam/recorder.py) and written there, one file per worker, for
# `python -m tests.iam --suites <folder>` to check against the synthesized IAM policies.
_IAM_RECORD = os.environ.get("TAGWARDEN_IAM_RECORD")
if _IAM_RECORD:
    from tests.iam.recorder import Recorder, dump

    _recorder = Recorder()

    @pytest.fixture(autouse=True)
    def _iam_record(request: pytest.FixtureRequest) -> Iterator[None]:
        with _recorder.recording(request.node.nodeid):
            yield

    def pytest_sessionfinish(session: pytest.Session) -> None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        folder = Path(str(_IAM_RECORD))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{worker}.json").write_text(json.dumps(dump(_recorder)), encoding="utf-8")
