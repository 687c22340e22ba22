"""Loading describe-instances documents: good files load, bad ones give one line per problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workflow.errors import FleetError
from workflow.fleet import demo_fleet, iter_fleet_document, load_fleet_file

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "describe-instances.two-regions.json"


def test_fixture_loads_with_account_and_region_of_each_instance() -> None:
    fleet = load_fleet_file(FIXTURE)
    assert [(i.account_id, i.region, i.instance["InstanceId"]) for i in fleet] == [
        ("111122223333", "us-east-1", "i-0a00000000000001"),
        ("111122223333", "us-east-1", "i-0a00000000000002"),
        ("111122223333", "us-east-1", "i-0a00000000000003"),
        ("444455556666", "eu-west-1", "i-0b00000000000001"),
    ]


def test_not_a_describe_instances_document(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text("[1, 2]")
    with pytest.raises(FleetError) as caught:
        load_fleet_file(path)
    assert caught.value.lines() == [
        f'{path}: $: expected the output of "aws ec2 describe-instances" (an object with "Reservations"), '
        "or of describe-volumes, describe-snapshots, describe-images or describe-network-interfaces"
    ]


def test_broken_instances_are_listed_with_their_paths() -> None:
    doc = {
        "Reservations": [
            {
                "Instances": [
                    {
                        "InstanceId": "i-1",
                        "State": {"Name": "running"},
                        "Placement": {"AvailabilityZone": "nowhere"},
                    },
                    {
                        "InstanceId": 5,
                        "State": {},
                        "Placement": {"AvailabilityZone": "us-east-1a"},
                        "Tags": [{"Value": "x"}],
                    },
                ]
            },
            {"Instances": None},
        ]
    }
    with pytest.raises(FleetError) as caught:
        list(iter_fleet_document(doc))
    assert [str(p) for p in caught.value.problems] == [
        "$.Reservations[0].Instances[0].Placement.AvailabilityZone: "
        "missing or not an availability zone like us-east-1a",
        "$.Reservations[0].Instances[1].InstanceId: missing or not a string",
        "$.Reservations[0].Instances[1].State.Name: missing or not a string",
        "$.Reservations[0].Instances[1].Tags[0].Key: missing or not a string",
        "$.Reservations[1].Instances: missing or not a list",
    ]


def test_invalid_json_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text('{"Reservations": [')
    with pytest.raises(FleetError, match="invalid JSON at line 1, column 19"):
        load_fleet_file(path)
    with pytest.raises(FleetError, match="cannot read file"):
        load_fleet_file(tmp_path / "nope.json")


def test_demo_fleet_is_deterministic_and_realistic() -> None:
    first, second = demo_fleet(), demo_fleet()
    assert json.dumps(first) == json.dumps(second)
    instances = [i for r in first["Reservations"] for i in r["Instances"]]
    assert len(instances) == 360
    assert any("Tags" not in i for i in instances)
    assert {i["State"]["Name"] for i in instances} >= {"running", "stopped", "terminated"}
    keys = {t["Key"] for i in instances for t in i.get("Tags", [])}
    assert {"owner", "Owner", "temp", "compliance:exempt"} <= keys
