"""Owner digests on the embedded engine: each owner gets their own message (and the unowned a
fallback one), a subscription's filter policy routes one owner's digest only, and event runs
send digests too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.builders import fleet_instance
from tests.unit.test_events import SSO, launch
from workflow import config
from workflow.engine.local import CENTRAL_ACCOUNT, LocalDeployment
from workflow.fleet import FleetInstance
from workflow.subscriptions import subscribe_owner

POLICY = {
    "version": 1,
    "name": "digests",
    "rules": [{"key": "Owner"}, {"key": "CostCenter", "pattern": "^CC-[0-9]{4}$"}],
    "prohibited_keys": ["tmp*"],
}


def instance(instance_id: str, tags: dict[str, str]) -> FleetInstance:
    return fleet_instance(instance_id, tags)


FLEET = [
    instance("i-0000000000000a01", {"Owner": "Ana@Example.com", "CostCenter": "nope"}),
    instance("i-0000000000000a02", {"Owner": "ana@example.com", "CostCenter": "CC-0001", "tmp-x": "1"}),
    instance("i-0000000000000b01", {"Owner": "bob@example.com"}),
    instance("i-0000000000000b02", {"Owner": "bob@example.com", "CostCenter": "CC-0002"}),  # compliant
    instance("i-0000000000000c01", {"CostCenter": "CC-0003"}),  # no owner
]


@pytest.fixture(scope="module")
def local() -> Iterator[LocalDeployment]:
    with LocalDeployment(
        FLEET, regions=["eu-west-1"], default_policy=POLICY, retry_wait_scale=0
    ) as deployment:
        yield deployment


def by_owner(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["attributes"]["owner"]: m for m in messages}


def test_each_owner_gets_their_own_digest_and_resources_without_an_owner_a_fallback(
    local: LocalDeployment,
) -> None:
    result = local.run({"notify": "always"}, name="digests")
    assert result.status == "SUCCEEDED", result.cause
    digests = by_owner(result.digests)
    assert set(digests) == {"ana@example.com", "bob@example.com", "(no owner)"}
    ana = digests["ana@example.com"]["body"]
    assert "i-0000000000000a01" in ana and "i-0000000000000a02" in ana and "i-0000000000000b01" not in ana
    assert "Fix: set a value of the required form." in ana
    assert "aws ec2 delete-tags --region eu-west-1 --resources i-0000000000000a02 --tags Key=tmp-x" in ana
    assert "i-0000000000000b02" not in digests["bob@example.com"]["body"]  # compliant
    assert "i-0000000000000c01" in digests["(no owner)"]["body"]
    (summary,) = result.notifications
    assert "Owner digests: 3 message(s) to 3 owner(s)" in summary["body"]
    assert summary["attributes"]["kind"] == "summary"


def test_a_filter_policy_routes_one_owners_digest_only(local: LocalDeployment) -> None:
    sqs = local.engine.client("sqs")
    url = sqs.create_queue(QueueName="ana-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscribe_owner(
        local.engine.client("sns"), local.topic_arn, arn, owner="ANA@example.com ", protocol="sqs"
    )
    result = local.run({"notify": "always"}, name="digests-routed")
    assert result.status == "SUCCEEDED", result.cause
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    bodies = [json.loads(m["Body"]) for m in received.get("Messages", [])]
    assert [b["MessageAttributes"]["owner"]["Value"] for b in bodies] == ["ana@example.com"]
    assert "i-0000000000000a01" in bodies[0]["Message"]


def test_at_most_the_configured_number_of_digests_go_out_and_the_summary_names_who_got_none(
    local: LocalDeployment,
) -> None:
    with local.function_environment("notify", {config.MAX_OWNER_DIGESTS: "1"}):
        result = local.run({"notify": "always"}, name="digests-bounded")
    assert [d["attributes"]["owner"] for d in result.digests] == ["ana@example.com"]  # the most resources
    (summary,) = result.notifications
    assert "2 owner(s) over the limit got none (2 resources)" in summary["body"]


def test_an_event_run_sends_digests_too(local: LocalDeployment) -> None:
    local.fleet.replace([instance("i-0000000000000d01", {"Owner": "dana@example.com"})])
    event = {**launch(SSO, "i-0000000000000d01", account=CENTRAL_ACCOUNT)}
    result = local.run_events([event], now="2026-12-01T10:15:00Z", name="event-digest")
    assert result.status == "SUCCEEDED", result.cause
    assert [d["attributes"]["owner"] for d in result.digests] == ["dana@example.com"]
