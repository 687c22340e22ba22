"""The List step over the EC2 family: only the types the policy covers, in order, each paged
with its own request, continued across invocations from the type and token it stopped at."""

from __future__ import annotations

import gzip
import json
from typing import Any

from workflow import layout
from workflow.config import ListConfig
from workflow.errors import AccessDenied
from workflow.steps.list_instances import list_instances

CONFIG = ListConfig(report_bucket="reports", page_size=1000, time_budget_margin_seconds=60)
RUN = {
    "run_id": "r1",
    "bucket": "reports",
    "states": ["running"],
    "member_role_name": "TagwardenReadOnly",
    "execution_id": "arn:aws:states:eu-west-1:111122223333:execution:tagwarden:r1",
}
EVENT = {"target": {"account_id": "self", "region": "eu-west-1"}}


class FamilyEc2:
    """Two pages of each type; records every request."""

    def __init__(self, denied: str | None = None) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.denied = denied

    def _page(
        self, operation: str, key: str, items: list[dict[str, Any]], request: dict[str, Any]
    ) -> dict[str, Any]:
        self.requests.append((operation, request))
        if operation == self.denied:
            raise AccessDenied(f"{operation}: UnauthorizedOperation")
        if request.get("NextToken"):
            return {key: items[1:]}
        return {key: items[:1], "NextToken": f"{operation}-2"}

    def describe_instances(self, **request: Any) -> dict[str, Any]:
        instance = {
            "InstanceId": "i-1",
            "State": {"Name": "running"},
            "Placement": {"AvailabilityZone": "eu-west-1a"},
        }
        stopped = {**instance, "InstanceId": "i-2", "State": {"Name": "terminated"}}
        reservations = [{"OwnerId": "111122223333", "Instances": [i]} for i in (instance, stopped)]
        return self._page("DescribeInstances", "Reservations", reservations, request)

    def describe_volumes(self, **request: Any) -> dict[str, Any]:
        volumes = [
            {"VolumeId": f"vol-{n}", "AvailabilityZone": "eu-west-1a", "Size": 8, "Iops": 3000}
            for n in (1, 2)
        ]
        return self._page("DescribeVolumes", "Volumes", volumes, request)

    def describe_snapshots(self, **request: Any) -> dict[str, Any]:
        snapshots = [
            {"SnapshotId": f"snap-{n}", "VolumeId": "vol-1", "Description": "x" * 100} for n in (1, 2)
        ]
        return self._page("DescribeSnapshots", "Snapshots", snapshots, request)

    def describe_images(self, **request: Any) -> dict[str, Any]:
        images = [
            {"ImageId": f"ami-{n}", "BlockDeviceMappings": [{"DeviceName": "/dev/xvda"}]} for n in (1, 2)
        ]
        return self._page("DescribeImages", "Images", images, request)

    def describe_network_interfaces(self, **request: Any) -> dict[str, Any]:
        interfaces = [
            {"NetworkInterfaceId": "eni-1", "InterfaceType": "interface", "AvailabilityZone": "eu-west-1a"},
            {"NetworkInterfaceId": "eni-2", "InterfaceType": "nat_gateway", "AvailabilityZone": "eu-west-1a"},
        ]
        return self._page("DescribeNetworkInterfaces", "NetworkInterfaces", interfaces, request)


class Bucket:
    def __init__(self) -> None:
        self.objects: dict[str, Any] = {}

    def put_object(self, **request: Any) -> dict[str, Any]:
        body = request["Body"]
        body = body if isinstance(body, bytes) else body.encode()
        self.objects[request["Key"]] = json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
        return {}


def run(
    types: list[str], ec2: FamilyEc2, s3: Bucket, remaining: list[int] | None = None, listing: Any = None
) -> dict[str, Any]:
    budget = iter(remaining or [])
    event = {**EVENT, "run": {**RUN, "resource_types": types}, **({"listing": listing} if listing else {})}
    return list_instances(
        event,
        CONFIG,
        ec2_factory=lambda region, credentials: ec2,
        s3=s3,
        remaining_ms=lambda: next(budget, 900_000),
    )


def test_only_the_types_the_policy_covers_are_listed_parents_first() -> None:
    ec2, s3 = FamilyEc2(), Bucket()
    result = run(["snapshot", "instance", "volume"], ec2, s3)
    operations = [operation for operation, _ in ec2.requests]
    assert operations == ["DescribeInstances"] * 2 + ["DescribeVolumes"] * 2 + ["DescribeSnapshots"] * 2
    assert result["complete"] is True and result["phase"] is None
    snapshot_requests = [r for o, r in ec2.requests if o == "DescribeSnapshots"]
    assert all(r["OwnerIds"] == ["self"] for r in snapshot_requests)
    assert [r["MaxResults"] for o, r in ec2.requests if o == "DescribeVolumes"] == [500, 500]
    assert result["resources"]["volume"] == {"pages": 2, "listed": 2, "in_scope": 2, "out_of_scope": {}}
    assert (result["instances"], result["listed"], result["out_of_scope"]) == (1, 2, {"terminated": 1})


def test_staged_pages_keep_only_what_a_finding_reads() -> None:
    ec2, s3 = FamilyEc2(), Bucket()
    run(["volume", "snapshot", "image"], ec2, s3)
    volume = s3.objects["staging/r1/inventory/self/eu-west-1/volume-00000.json.gz"]["Volumes"][0]
    assert volume == {"VolumeId": "vol-1", "AvailabilityZone": "eu-west-1a", "Size": 8}
    image = s3.objects["staging/r1/inventory/self/eu-west-1/image-00000.json.gz"]["Images"][0]
    assert image == {"ImageId": "ami-1"}
    assert [o for o, r in ec2.requests if o == "DescribeImages" and r["Owners"] == ["self"]] == [
        "DescribeImages"
    ] * 2


def test_service_managed_interfaces_are_counted_out_of_scope_not_staged() -> None:
    ec2, s3 = FamilyEc2(), Bucket()
    result = run(["network-interface"], ec2, s3)
    assert result["resources"]["network-interface"] == {
        "pages": 1,
        "listed": 2,
        "in_scope": 1,
        "out_of_scope": {"service-managed": 1},
    }
    staged = s3.objects["staging/r1/inventory/self/eu-west-1/network-interface-00000.json.gz"]
    assert [i["NetworkInterfaceId"] for i in staged["NetworkInterfaces"]] == ["eni-1"]


def test_a_spent_budget_stops_within_a_type_and_the_next_invocation_continues_there() -> None:
    ec2, s3 = FamilyEc2(), Bucket()
    # Instances' first page asks for more (budget fine), then volumes' first page finds it spent.
    first = run(["instance", "volume"], ec2, s3, remaining=[900_000, 900_000, 1_000])
    assert (first["complete"], first["phase"], first["next_token"]) == (False, "volume", "DescribeVolumes-2")
    second = run(["instance", "volume"], ec2, s3, listing=first)
    assert second["complete"] is True
    operations = [(o, r.get("NextToken")) for o, r in ec2.requests]
    assert operations == [
        ("DescribeInstances", None),
        ("DescribeInstances", "DescribeInstances-2"),
        ("DescribeVolumes", None),
        ("DescribeVolumes", "DescribeVolumes-2"),
    ]
    assert second["resources"]["volume"]["in_scope"] == 2 and second["instances"] == 1


def test_a_budget_spent_between_types_continues_with_the_next_type_from_its_start() -> None:
    ec2, s3 = FamilyEc2(), Bucket()
    first = run(["instance", "snapshot"], ec2, s3, remaining=[900_000, 1_000])
    assert (first["complete"], first["phase"], first["next_token"]) == (False, "snapshot", None)
    second = run(["instance", "snapshot"], ec2, s3, listing=first)
    assert second["complete"] is True and second["resources"]["snapshot"]["in_scope"] == 2
    assert [o for o, _ in ec2.requests].count("DescribeInstances") == 2


def test_a_member_account_that_refuses_a_later_type_is_a_target_not_scanned() -> None:
    class Sts:
        def assume_role(self, **request: Any) -> dict[str, Any]:
            return {"Credentials": {"AccessKeyId": "a", "SecretAccessKey": "b", "SessionToken": "c"}}

    ec2, s3 = FamilyEc2(denied="DescribeVolumes"), Bucket()
    event = {
        "run": {**RUN, "resource_types": ["instance", "volume"]},
        "target": {"account_id": "444455556666", "region": "eu-west-1"},
    }
    result = list_instances(
        event, CONFIG, ec2_factory=lambda r, c: ec2, s3=s3, remaining_ms=lambda: 900_000, sts=Sts()
    )
    assert "DescribeVolumes" in str(result["target_error"])
    recorded = s3.objects[layout.target_error_key("r1", "444455556666", "eu-west-1")]
    assert recorded["reason"] == result["target_error"]


class NamedEc2:
    """Answers id filters with the resources named (an id that no longer exists: nothing)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def describe_instances(self, **request: Any) -> dict[str, Any]:
        self.requests.append(("DescribeInstances", request))
        (flt,) = request["Filters"]
        assert flt["Name"] == "instance-id" and "NextToken" not in request
        instances = [
            {"InstanceId": i, "State": {"Name": "running"}, "Placement": {"AvailabilityZone": "eu-west-1a"}}
            for i in flt["Values"]
            if i != "i-gone"
        ]
        return {"Reservations": [{"OwnerId": "111122223333", "Instances": instances}]}

    def describe_volumes(self, **request: Any) -> dict[str, Any]:
        self.requests.append(("DescribeVolumes", request))
        (flt,) = request["Filters"]
        assert flt["Name"] == "volume-id"
        return {"Volumes": [{"VolumeId": v, "AvailabilityZone": "eu-west-1a"} for v in flt["Values"]]}


def test_an_event_target_describes_just_the_resources_it_names_in_chunks() -> None:
    ec2, s3 = NamedEc2(), Bucket()
    ids = [f"i-{n:04x}" for n in range(449)] + ["i-gone"]
    event = {
        "run": {**RUN, "resource_types": ["instance", "volume", "snapshot"]},
        "target": {
            "account_id": "self",
            "region": "eu-west-1",
            "resource_ids": {"instance": ids, "volume": ["vol-1"]},
        },
    }
    result = list_instances(event, CONFIG, ec2_factory=lambda r, c: ec2, s3=s3, remaining_ms=lambda: 900_000)
    calls = [(operation, len(r["Filters"][0]["Values"])) for operation, r in ec2.requests]
    assert calls == [
        ("DescribeInstances", 200),
        ("DescribeInstances", 200),
        ("DescribeInstances", 50),
        ("DescribeVolumes", 1),
    ]
    assert result["complete"] is True and "snapshot" not in result["resources"]
    assert (result["instances"], result["resources"]["volume"]["in_scope"]) == (449, 1)


def test_an_event_target_that_names_no_instance_asks_ec2_nothing_for_instances() -> None:
    ec2, s3 = NamedEc2(), Bucket()
    event = {
        "run": {**RUN, "resource_types": ["instance", "volume"]},
        "target": {"account_id": "self", "region": "eu-west-1", "resource_ids": {"volume": ["vol-1"]}},
    }
    result = list_instances(event, CONFIG, ec2_factory=lambda r, c: ec2, s3=s3, remaining_ms=lambda: 900_000)
    assert [operation for operation, _ in ec2.requests] == ["DescribeVolumes"]
    assert result["pages"] == 1 and result["instances"] == 0  # the empty first page, as always
