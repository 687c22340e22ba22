"""Dumps of describe-volumes, -snapshots, -images and -network-interfaces: detected by their
top-level key, placed by zone or by an ``ACCOUNT:REGION:`` prefix, refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workflow.errors import FleetError
from workflow.fleet import dump_type, load_resource_file, parse_fleet_argument
from workflow.local_run import _load_fleet

INSTANCES = {
    "Reservations": [
        {
            "OwnerId": owner,
            "Instances": [
                {
                    "InstanceId": instance,
                    "State": {"Name": "running"},
                    "Placement": {"AvailabilityZone": "eu-west-1a"},
                }
            ],
        }
        for owner, instance in (("111122223333", "i-1"), ("444455556666", "i-2"))
    ]
}


def write(folder: Path, name: str, document: object) -> Path:
    path = folder / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        ({"Volumes": []}, "volume"),
        ({"Snapshots": []}, "snapshot"),
        ({"Images": []}, "image"),
        ({"NetworkInterfaces": []}, "network-interface"),
        ({"Reservations": []}, "instance"),
        ({"Buckets": []}, "instance"),  # the describe-instances reader says what is wrong
    ],
)
def test_a_dump_is_recognised_by_its_top_level_key(tmp_path: Path, document: object, kind: str) -> None:
    assert dump_type(write(tmp_path, "d.json", document)) == kind


def test_a_prefix_gives_account_and_region_and_an_existing_file_is_never_split(tmp_path: Path) -> None:
    odd = write(tmp_path, "111122223333:eu-west-1:odd.json", {"Volumes": []})
    assert parse_fleet_argument(str(odd)) == (None, None, str(odd))
    assert parse_fleet_argument("111122223333:us-gov-west-1:v.json") == (
        "111122223333",
        "us-gov-west-1",
        "v.json",
    )


def test_volumes_take_their_region_from_the_zone_and_the_account_from_the_prefix(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "v.json",
        {
            "Volumes": [
                {"VolumeId": "vol-1", "AvailabilityZone": "ap-south-1b", "Size": 8, "Tags": [], "Iops": 3000}
            ]
        },
    )
    (volume,) = load_resource_file(path, "volume", account="111122223333")
    assert (volume.account_id, volume.region, volume.resource) == (
        "111122223333",
        "ap-south-1",
        {"VolumeId": "vol-1", "AvailabilityZone": "ap-south-1b", "Size": 8, "Tags": []},
    )


def test_snapshots_without_a_region_are_refused_with_the_prefix_to_give(tmp_path: Path) -> None:
    path = write(tmp_path, "snaps.json", {"Snapshots": [{"SnapshotId": "snap-1", "OwnerId": "111122223333"}]})
    with pytest.raises(FleetError) as caught:
        load_resource_file(path, "snapshot")
    assert caught.value.lines() == [
        f"{path}: $.Snapshots[0]: a snapshot has no availability zone: give the file's region as a prefix "
        "(--fleet eu-west-1:snaps.json)"
    ]
    (snapshot,) = load_resource_file(path, "snapshot", region="eu-west-1")
    assert (snapshot.account_id, snapshot.region) == ("111122223333", "eu-west-1")


def test_what_is_wrong_with_each_resource_is_one_line_each(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "enis.json",
        {
            "NetworkInterfaces": [
                {"NetworkInterfaceId": "eni-1", "AvailabilityZone": "nowhere", "TagSet": []},
                {"NetworkInterfaceId": 7, "AvailabilityZone": "eu-west-1a", "TagSet": [{"Key": 1}]},
                {
                    "NetworkInterfaceId": "eni-3",
                    "AvailabilityZone": "eu-west-1a",
                    "OwnerId": "me",
                    "TagSet": "x",
                },
            ]
        },
    )
    with pytest.raises(FleetError) as caught:
        load_resource_file(path, "network-interface")
    assert caught.value.lines() == [
        f"{path}: $.NetworkInterfaces[0].AvailabilityZone: missing or not an availability zone like us-east-1a",
        f"{path}: $.NetworkInterfaces[1].NetworkInterfaceId: missing or not a string",
        f"{path}: $.NetworkInterfaces[1].TagSet[0].Key: missing or not a string",
        f'{path}: $.NetworkInterfaces[2].OwnerId: must be a 12-digit AWS account id, got "me"',
        f"{path}: $.NetworkInterfaces[2].TagSet: must be a list of {{Key, Value}} objects",
    ]


def test_broken_json_is_placed_by_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text('{"Volumes": [{"VolumeId": "vol-1",}]}', encoding="utf-8")
    with pytest.raises(FleetError) as caught:
        load_resource_file(path, "volume")
    assert caught.value.lines() == [
        f"{path}: $: invalid JSON at line 1, column 35: Expecting property name enclosed in double quotes"
    ]


def test_an_attached_volume_takes_its_instances_account(tmp_path: Path) -> None:
    dump = write(tmp_path, "instances.json", INSTANCES)
    volumes = write(
        tmp_path,
        "volumes.json",
        {
            "Volumes": [
                {
                    "VolumeId": "vol-1",
                    "AvailabilityZone": "eu-west-1a",
                    "Attachments": [{"InstanceId": "i-2"}],
                }
            ]
        },
    )
    loaded = _load_fleet([str(dump), str(volumes)])
    assert [(r.resource_type, r.account_id) for r in loaded.resources] == [("volume", "444455556666")]


def test_an_unattached_volume_in_a_many_account_run_needs_its_account(tmp_path: Path) -> None:
    dump = write(tmp_path, "instances.json", INSTANCES)
    volumes = write(
        tmp_path, "volumes.json", {"Volumes": [{"VolumeId": "vol-9", "AvailabilityZone": "eu-west-1a"}]}
    )
    with pytest.raises(FleetError) as caught:
        _load_fleet([str(dump), str(volumes)])
    assert caught.value.lines() == [
        "$: volume vol-9 is attached to no listed instance and the dumps span accounts 111122223333, "
        "444455556666: give its account as a prefix (--fleet 111122223333:us-east-1:volumes.json)"
    ]
    loaded = _load_fleet([str(dump), f"444455556666:{volumes}"])
    assert [r.account_id for r in loaded.resources] == ["444455556666"]


def test_a_prefixed_empty_dump_says_its_region_was_listed_and_a_prefix_on_instances_is_refused(
    tmp_path: Path,
) -> None:
    dump = write(tmp_path, "instances.json", INSTANCES)
    empty = write(tmp_path, "snapshots.json", {"Snapshots": []})
    loaded = _load_fleet([str(dump), f"111122223333:eu-west-1:{empty}"])
    assert loaded.covered == [("snapshot", "eu-west-1", "111122223333")]
    with pytest.raises(FleetError) as caught:
        _load_fleet([f"eu-west-1:{dump}"])
    assert caught.value.lines() == [
        f"eu-west-1:{dump}: $: an ACCOUNT: or REGION: prefix is for volumes, snapshots, images and network "
        "interfaces; describe-instances names its account and zones"
    ]


def test_the_local_endpoint_answers_id_filters_for_every_type() -> None:
    import boto3

    from workflow.engine.fleet_endpoint import FleetEndpoint
    from workflow.fleet import FleetInstance, FleetResource

    instance = {
        "InstanceId": "i-1",
        "State": {"Name": "running"},
        "Placement": {"AvailabilityZone": "eu-west-1a"},
    }
    volumes = [
        FleetResource(
            "volume", "111122223333", "eu-west-1", {"VolumeId": f"vol-{n}", "AvailabilityZone": "eu-west-1a"}
        )
        for n in range(3)
    ]
    endpoint = FleetEndpoint([FleetInstance("111122223333", "eu-west-1", instance)], resources=volumes)
    session = endpoint.attach(boto3.Session(aws_access_key_id="x", aws_secret_access_key="y"))
    ec2 = session.client("ec2", region_name="eu-west-1")
    by_id = ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": ["vol-2", "vol-9"]}])
    assert [v["VolumeId"] for v in by_id["Volumes"]] == ["vol-2"]
    found = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": ["i-1", "i-gone"]}])
    assert [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]] == ["i-1"]
    none = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": ["i-gone"]}])
    assert none["Reservations"] == []
