from __future__ import annotations

from collections.abc import Iterator

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
