"""A region that cannot be listed within one invocation's time budget continues in the next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.functional.history import states_entered
from workflow import config
from workflow.engine.local import LocalDeployment
from workflow.fleet import demo_fleet, iter_fleet_document


@pytest.fixture(scope="module")
def tight_budget() -> Iterator[LocalDeployment]:
    fleet = [i for i in iter_fleet_document(demo_fleet(instances_per_region=40)) if i.region == "eu-west-1"]
    # A margin as long as the function timeout: after its first page, every invocation
    # finds its budget spent and hands the NextToken back to the state machine.
    with LocalDeployment(
        fleet,
        regions=["eu-west-1"],
        retry_wait_scale=0,
        function_timeouts={"list-instances": 61},
        extra_environment={config.PAGE_SIZE: "10", config.TIME_BUDGET_MARGIN_SECONDS: "61"},
    ) as deployment:
        yield deployment


def test_listing_continues_from_the_next_token_in_new_invocations(tight_budget: LocalDeployment) -> None:
    result = tight_budget.run({"notify": "never"}, name="continued-listing")
    assert result.status == "SUCCEEDED", result.cause
    visited = states_entered(result.history)
    in_scope = [
        i for i in tight_budget.fleet._by_region["eu-west-1"] if i[1]["State"]["Name"] != "terminated"
    ]
    pages = -(-len(in_scope) // 10)
    assert visited.count("List EC2 instances") == pages
    assert visited.count("Continue listing") == pages - 1
    assert result.summary is not None
    assert result.summary["totals"]["total"] == len(in_scope)
    assert sorted(f["instance_id"] for f in result.findings) == sorted(i[1]["InstanceId"] for i in in_scope)
    tokens = [params.get("NextToken") for region, params in tight_budget.fleet.calls if region == "eu-west-1"]
    assert tokens[0] is None and all(tokens[1:])
