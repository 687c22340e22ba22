"""Volumes, snapshots, images and network interfaces: rules per type, ``not_inherited``, scope,
grace periods and exemptions per resource, on plain describe-* shaped fixtures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.builders import NOW
from workflow.evaluator import ParentValues, evaluate_resource, inherited_values
from workflow.policy import compile_policy
from workflow.resources import SERVICE_MANAGED, out_of_scope_reason

FAMILY = {
    "version": 1,
    "name": "family",
    "resource_types": ["instance", "volume", "snapshot", "image", "network-interface"],
    "rules": [
        {"key": "CostCenter", "pattern": "^CC-[0-9]{4}$", "resource_types": ["instance", "volume"]},
        {"key": "Environment", "allowed_values": ["prod", "dev"], "value_case": "insensitive"},
        {"key": "Owner", "resource_types": ["instance", "image"]},
    ],
    "inherit": [
        {"keys": ["CostCenter", "Environment"], "from": "instance", "to": ["volume", "network-interface"]},
        {"keys": ["CostCenter"], "from": "volume", "to": ["snapshot"]},
    ],
}
POLICY = compile_policy(FAMILY)


def tags(**values: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in values.items()]


def volume(volume_id: str = "vol-0a", attached: str | None = "i-0a", **values: str) -> dict[str, Any]:
    return {
        "VolumeId": volume_id,
        "AvailabilityZone": "eu-west-1a",
        "CreateTime": (NOW - timedelta(days=30)).isoformat(),
        "Size": 100,
        "VolumeType": "gp3",
        "State": "in-use" if attached else "available",
        "Attachments": [{"InstanceId": attached, "AttachTime": (NOW - timedelta(days=30)).isoformat()}]
        if attached
        else [],
        "Tags": tags(**values),
    }


def codes(finding: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((v["code"], v["key"]) for v in finding["violations"])


def parents(**instances: dict[str, str]) -> ParentValues:
    listed = {
        instance_id: inherited_values("instance", {"Tags": tags(**values)}, POLICY) or ()
        for instance_id, values in instances.items()
    }
    return {"instance": listed}


def test_rules_apply_only_to_their_resource_types() -> None:
    finding = evaluate_resource("volume", volume(attached=None, Environment="prod"), POLICY, now=NOW)
    # Owner is an instance and image rule: a volume is not asked for it.
    assert codes(finding) == [("missing", "CostCenter")]
    image = {
        "ImageId": "ami-0a",
        "OwnerId": "111122223333",
        "CreationDate": "2026-01-01T00:00:00.000Z",
        "Tags": [],
    }
    assert codes(evaluate_resource("image", image, POLICY, region="eu-west-1", now=NOW)) == [
        ("missing", "Environment"),
        ("missing", "Owner"),
    ]


def test_a_child_without_its_parents_value_is_not_inherited_naming_the_parent() -> None:
    listed = parents(**{"i-0a": {"CostCenter": "CC-0001", "Environment": "prod"}})
    finding = evaluate_resource("volume", volume(Environment="prod"), POLICY, parents=listed, now=NOW)
    (inherited,) = [v for v in finding["violations"] if v["code"] == "not_inherited"]
    assert (inherited["key"], inherited["value"], inherited["parent_id"], inherited["expected"]) == (
        "CostCenter",
        None,
        "i-0a",
        "CC-0001",
    )
    assert "i-0a" in inherited["message"] and "'CC-0001'" in inherited["message"]
    assert finding["compliant"] is False


def test_a_different_value_is_not_inherited_and_the_rules_value_case_applies() -> None:
    listed = parents(**{"i-0a": {"CostCenter": "CC-0001", "Environment": "prod"}})
    other = evaluate_resource(
        "volume", volume(CostCenter="CC-0002", Environment="PROD"), POLICY, parents=listed, now=NOW
    )
    # Environment compares ignoring case (its rule says so); CostCenter exactly.
    assert [(v["key"], v["value"]) for v in other["violations"] if v["code"] == "not_inherited"] == [
        ("CostCenter", "CC-0002")
    ]


def test_a_parent_without_the_key_asks_nothing_of_its_children() -> None:
    listed = parents(**{"i-0a": {"Environment": "prod"}})
    finding = evaluate_resource("volume", volume(Environment="prod"), POLICY, parents=listed, now=NOW)
    assert ("not_inherited", "CostCenter") not in codes(finding)


def test_a_parent_outside_the_listing_or_a_deleted_volume_gives_own_rules_only() -> None:
    snapshot = {"SnapshotId": "snap-0a", "OwnerId": "111122223333", "VolumeId": "vol-gone", "VolumeSize": 8}
    listed: ParentValues = {"volume": {"vol-0a": ("CC-0001",)}}
    assert codes(
        evaluate_resource("snapshot", snapshot, POLICY, region="eu-west-1", parents=listed, now=NOW)
    ) == [("missing", "Environment")]
    assert codes(
        evaluate_resource("volume", volume(attached="i-elsewhere"), POLICY, parents={}, now=NOW)
    ) == [
        ("missing", "CostCenter"),
        ("missing", "Environment"),
    ]


def test_a_snapshot_inherits_from_its_volume_and_says_which() -> None:
    snapshot = {
        "SnapshotId": "snap-0a",
        "OwnerId": "111122223333",
        "VolumeId": "vol-0a",
        "VolumeSize": 100,
        "StartTime": NOW.isoformat(),
        "Tags": tags(Environment="dev", CostCenter="CC-0009"),
    }
    listed: ParentValues = {"volume": {"vol-0a": ("CC-0001",)}}
    finding = evaluate_resource("snapshot", snapshot, POLICY, region="eu-west-1", parents=listed, now=NOW)
    assert [(v["code"], v["parent_id"]) for v in finding["violations"]] == [("not_inherited", "vol-0a")]
    assert (finding["volume_id"], finding["size_gib"], finding["account_id"]) == (
        "vol-0a",
        100,
        "111122223333",
    )


def test_an_interface_finding_names_its_instance_and_type() -> None:
    interface = {
        "NetworkInterfaceId": "eni-0a",
        "AvailabilityZone": "us-east-2b",
        "OwnerId": "111122223333",
        "InterfaceType": "interface",
        "Attachment": {"InstanceId": "i-0a", "AttachTime": NOW.isoformat()},
        "TagSet": tags(Environment="prod", CostCenter="CC-0001"),
    }
    listed = parents(**{"i-0a": {"CostCenter": "CC-0001", "Environment": "prod"}})
    finding = evaluate_resource("network-interface", interface, POLICY, parents=listed, now=NOW)
    assert (finding["attached_to"], finding["interface_type"], finding["region"]) == (
        "i-0a",
        "interface",
        "us-east-2",
    )
    assert finding["violations"] == [] and finding["compliant"] is True


def test_service_managed_interfaces_are_out_of_scope_unless_brought_in() -> None:
    nat = {"InterfaceType": "nat_gateway", "RequesterManaged": False}
    lambda_eni = {"InterfaceType": "lambda", "RequesterManaged": True}
    plain = {"InterfaceType": "interface", "RequesterManaged": False}
    for interface in (nat, lambda_eni):
        assert (
            out_of_scope_reason("network-interface", interface, states=set(), include_service_managed=False)
            == SERVICE_MANAGED
        )
        assert (
            out_of_scope_reason("network-interface", interface, states=set(), include_service_managed=True)
            is None
        )
    assert (
        out_of_scope_reason("network-interface", plain, states=set(), include_service_managed=False) is None
    )
    brought_in = compile_policy(
        {**FAMILY, "scope": {"network_interfaces": {"include_service_managed": True}}}
    )
    assert (
        brought_in.include_service_managed_interfaces is True
        and POLICY.include_service_managed_interfaces is False
    )


def test_grace_counts_from_the_newest_attachment_of_a_volume() -> None:
    policy = compile_policy({**FAMILY, "scope": {"grace_period_minutes": 60}})
    fresh = volume(Environment="prod")
    fresh["Attachments"][0]["AttachTime"] = (NOW - timedelta(minutes=5)).isoformat()
    finding = evaluate_resource("volume", fresh, policy, now=NOW)
    assert finding["in_grace_period"] is True and finding["compliant"] is True
    assert codes(finding) == [("missing", "CostCenter")]  # reported, not yet judged
    assert finding["created_at"] == fresh["Attachments"][0]["AttachTime"]
    old = evaluate_resource("volume", volume(Environment="prod"), policy, now=NOW)
    assert old["in_grace_period"] is False and old["compliant"] is False


def test_exemptions_work_per_resource_by_id_and_by_tag() -> None:
    policy = compile_policy(
        {
            **FAMILY,
            "exemptions": [
                {"resource_ids": ["vol-0b0b0b0b0b"]},
                {"tag": {"key": "finops:exempt", "value": "true"}},
            ],
        }
    )
    by_id = evaluate_resource("volume", volume("vol-0b0b0b0b0b"), policy, now=NOW)
    by_tag = evaluate_resource(
        "volume", volume("vol-0c0c0c0c0c", **{"finops:exempt": "true"}), policy, now=NOW
    )
    neither = evaluate_resource("volume", volume("vol-0d0d0d0d0d"), policy, now=NOW)
    assert (by_id["exempt"], by_tag["exempt"], neither["exempt"]) == (True, True, False)
    assert by_id["compliant"] and by_tag["compliant"] and not neither["compliant"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"rules": [{"key": "CostCenter", "resource_types": ["volume"]}]},
            "$.rules[0].resource_types[0]: 'volume' is not in the policy's resource_types (instance); "
            "add it there or remove it here",
        ),
        (
            {
                "resource_types": ["instance", "snapshot"],
                "inherit": [{"keys": ["CostCenter"], "from": "instance", "to": ["snapshot"]}],
            },
            "$.inherit[0].to[0]: a snapshot inherits from a volume, not from 'instance'; "
            'move it to an entry with that "from"',
        ),
        (
            {
                "resource_types": ["volume", "snapshot"],
                "inherit": [{"keys": ["CostCenter"], "from": "instance", "to": ["volume"]}],
            },
            "$.inherit[0].from: 'instance' is not in the policy's resource_types (volume, snapshot): its "
            "values cannot be compared unless it is listed too; add it there",
        ),
        (
            {
                "resource_types": ["instance", "volume"],
                "prohibited_keys": ["cost*"],
                "rules": [{"key": "Owner"}],
                "inherit": [{"keys": ["CostCenter"], "from": "instance", "to": ["volume"]}],
            },
            "$.prohibited_keys[0]: prohibits 'CostCenter', which $.inherit[0] asks children to carry; "
            "remove one of them",
        ),
        (
            {"resource_types": ["ec2:volume"]},
            "$.resource_types[0]: 'ec2:volume' is not one of ['instance', 'volume', 'snapshot', 'image', "
            "'network-interface']",
        ),
    ],
)
def test_a_policy_that_would_silently_check_nothing_is_refused_with_one_line(
    change: dict[str, Any], message: str
) -> None:
    from workflow.policy.document import validate_policy

    document = {"version": 1, "name": "p", "rules": [{"key": "CostCenter"}], **change}
    assert [str(p) for p in validate_policy(document)] == [message]


VALUES = st.sampled_from(["CC-0001", "CC-0002", "cc-0001", "", " ", "prod", "PROD", "dev", "x" * 40])
KEYS = st.sampled_from(["CostCenter", "costcenter", "Environment", "environment", "Owner", "Team"])


@given(
    parent=st.fixed_dictionaries(
        {
            "CostCenter": st.sampled_from(["CC-0001", "CC-0042"]),
            "Environment": st.sampled_from(["prod", "dev"]),
        }
    ),
    child=st.dictionaries(KEYS, VALUES, max_size=6),
    key=st.sampled_from(["CostCenter", "Environment"]),
    insensitive=st.booleans(),
)
def test_adding_the_parents_value_to_a_child_never_adds_a_violation(
    parent: dict[str, str], child: dict[str, str], key: str, insensitive: bool
) -> None:
    policy = compile_policy({**FAMILY, "key_case": "insensitive"}) if insensitive else POLICY
    listed: ParentValues = {
        "instance": {"i-0a": inherited_values("instance", {"Tags": tags(**parent)}, policy) or ()}
    }

    def found(values: dict[str, str]) -> set[tuple[str, str]]:
        finding = evaluate_resource("volume", volume(**values), policy, parents=listed, now=NOW)
        return {(v["code"], v["key"]) for v in finding["violations"]}

    before, after = found(child), found({**child, key: parent[key]})
    assert after <= before
    assert ("not_inherited", key) not in after
