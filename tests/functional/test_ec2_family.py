"""The EC2 family on the embedded engine: instances, volumes, snapshots, images and network
interfaces in two accounts and two regions, listed through the member roles, joined for
``inherit``, and reported per type; and what is never silently left out."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.history import states_entered
from workflow import config
from workflow.engine.local import CENTRAL_ACCOUNT, LocalDeployment
from workflow.fleet import FleetInstance, FleetResource, demo_fleet, demo_resources, iter_fleet_document
from workflow.resources import RESOURCE_TYPES, is_service_managed
from workflow.verdict import EXIT_INCOMPLETE, exit_status

ACCOUNTS = ("111111111111", "222222222222")
REGIONS = ["us-east-1", "eu-west-1"]
FINOPS = json.loads((Path(__file__).parents[2] / "policies" / "finops.json").read_text(encoding="utf-8"))


def family() -> tuple[list[FleetInstance], list[FleetResource]]:
    """The demo fleet in two regions dealt to two accounts, with its volumes and interfaces in
    their instance's account, snapshots in their volume's, and images alternating."""
    document = demo_fleet(instances_per_region=12, seed=3)
    items = [i for i in iter_fleet_document(document) if i.region in REGIONS]
    instances = [dataclasses.replace(item, account_id=ACCOUNTS[n % 2]) for n, item in enumerate(items)]
    account_of = {i.instance["InstanceId"]: i.account_id for i in instances}
    resources: list[FleetResource] = []
    volume_account: dict[str, str] = {}
    for n, resource in enumerate(r for r in demo_resources(document) if r.region in REGIONS):
        spec = RESOURCE_TYPES[resource.resource_type]
        parents = spec.parents(resource.resource)
        if resource.resource_type == "snapshot":
            account = volume_account.get(parents[0], ACCOUNTS[n % 2]) if parents else ACCOUNTS[n % 2]
        else:
            account = next((account_of[p] for p in parents if p in account_of), ACCOUNTS[n % 2])
        if resource.resource_type == "volume":
            volume_account[spec.resource_id(resource.resource)] = account
        body = dict(resource.resource)
        if "OwnerId" in body:
            body["OwnerId"] = account
        resources.append(dataclasses.replace(resource, account_id=account, resource=body))
    return instances, resources


# The management account is listed too (organisation mode): its regions were listed and are empty.
DISTRIBUTED_THRESHOLD = 4
CENTRAL_LISTED = [
    (t, region, CENTRAL_ACCOUNT) for t in RESOURCE_TYPES for region in REGIONS if t != "instance"
]


@pytest.fixture(scope="module")
def local() -> Iterator[LocalDeployment]:
    instances, resources = family()
    with LocalDeployment(
        instances,
        regions=REGIONS,
        resources=resources,
        covered=CENTRAL_LISTED,
        empty_regions=REGIONS,
        retry_wait_scale=0,
        # Organisation runs (3 accounts x 2 regions) take the Distributed Map, targets runs of the
        # two member accounts (4 pairs) the inline Map.
        extra_environment={config.DISTRIBUTED_MAP_THRESHOLD: str(DISTRIBUTED_THRESHOLD)},
    ) as deployment:
        yield deployment


@pytest.fixture(autouse=True)
def _fresh(local: LocalDeployment) -> None:
    instances, resources = family()
    local.fleet.replace(instances, resources=resources, covered=CENTRAL_LISTED)
    local.fleet.calls.clear()
    local.drain_notifications()


def by_type(findings: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for finding in findings:
        grouped.setdefault(finding["resource_type"], []).append(finding)
    return grouped


def test_an_organisation_scan_covers_all_five_types_in_each_account_through_its_role(
    local: LocalDeployment,
) -> None:
    _, resources = family()
    result = local.run({"organization": True, "regions": REGIONS, "policy": FINOPS}, name="family-org")
    assert result.status == "SUCCEEDED", result.cause
    assert result.summary is not None and result.summary["incomplete"] is False
    found = by_type(result.findings)
    assert set(found) == {"instance", "volume", "snapshot", "image", "network-interface"}
    expected = {
        t: {
            (r.account_id, RESOURCE_TYPES[t].resource_id(r.resource))
            for r in resources
            if r.resource_type == t and not (t == "network-interface" and is_service_managed(r.resource))
        }
        for t in ("volume", "snapshot", "image", "network-interface")
    }
    for resource_type, ids in expected.items():
        assert {(f["account_id"], f["resource_id"]) for f in found[resource_type]} == ids, resource_type
    # Each account's resources came through its own member role.
    assert {f["account_id"] for f in result.findings} == set(ACCOUNTS)
    operations = Counter(str(params.get("operation", "DescribeInstances")) for _, params in local.fleet.calls)
    assert set(operations) == {spec.operation for spec in RESOURCE_TYPES.values()}
    # Service-managed interfaces are out of scope, and counted.
    managed = sum(
        1 for r in resources if r.resource_type == "network-interface" and is_service_managed(r.resource)
    )
    coverage = result.summary["coverage"]["resources"]
    assert coverage["network-interface"]["out_of_scope"] == {"service-managed": managed}
    assert coverage["volume"]["evaluated"] == len(expected["volume"])
    by_resource_type = result.summary["by_resource_type"]
    for resource_type, members in found.items():
        bad = sum(not f["compliant"] for f in members)
        assert by_resource_type[resource_type] == {"compliant": len(members) - bad, "noncompliant": bad}


def test_children_must_carry_their_parents_cost_center_and_nothing_else_is_asked(
    local: LocalDeployment,
) -> None:
    instances, _ = family()
    result = local.run({"organization": True, "regions": REGIONS, "policy": FINOPS}, name="family-inherit")
    assert result.status == "SUCCEEDED", result.cause
    cost_center = {
        i.instance["InstanceId"]: next(
            (t["Value"] for t in i.instance.get("Tags", []) if t["Key"] == "CostCenter"), None
        )
        for i in instances
    }
    volumes = {f["resource_id"]: f for f in by_type(result.findings)["volume"]}
    checked = 0
    for volume in volumes.values():
        codes = [v for v in volume["violations"] if v["code"] == "not_inherited"]
        parent = volume["attached_to"]
        expected_value = cost_center.get(parent) if parent else None
        if expected_value is None:
            # Unattached, or the instance lacks CostCenter itself (its own finding says so).
            assert codes == []
            continue
        checked += 1
        carried = volume["tags"].get("CostCenter")
        if carried == expected_value:
            assert codes == []
        else:
            assert [(v["key"], v["value"], v["parent_id"], v["expected"]) for v in codes] == [
                ("CostCenter", carried, parent, expected_value)
            ]
            assert parent in codes[0]["message"] and expected_value in codes[0]["message"]
    assert checked and any(v["code"] == "not_inherited" for f in volumes.values() for v in f["violations"])
    for snapshot in by_type(result.findings)["snapshot"]:
        codes = [v for v in snapshot["violations"] if v["code"] == "not_inherited"]
        source = volumes.get(snapshot["volume_id"])
        if source is None or source["tags"].get("CostCenter") is None:
            assert codes == []  # a deleted volume, or one without the key: its own rules only
        elif snapshot["tags"].get("CostCenter") != source["tags"]["CostCenter"]:
            assert [v["parent_id"] for v in codes] == [snapshot["volume_id"]]
    noncompliant_gib = sum(
        f["size_gib"]
        for f in result.findings
        if f["resource_type"] in ("volume", "snapshot") and not f["compliant"]
    )
    assert result.summary is not None
    assert result.summary["untagged_ebs_gib"]["total"] == noncompliant_gib > 0


def test_service_managed_interfaces_are_checked_when_the_policy_brings_them_in(
    local: LocalDeployment,
) -> None:
    policy = {**FINOPS, "scope": {**FINOPS["scope"], "network_interfaces": {"include_service_managed": True}}}
    result = local.run(
        {"regions": REGIONS, "targets": [{"account_id": a} for a in ACCOUNTS], "policy": policy}
    )
    assert result.status == "SUCCEEDED", result.cause
    types = {f.get("interface_type") for f in by_type(result.findings)["network-interface"]}
    assert {"nat_gateway", "lambda", "interface"} <= types
    assert result.summary is not None
    assert result.summary["coverage"]["resources"]["network-interface"]["out_of_scope"] == {}


def test_a_policy_for_instances_alone_never_lists_the_other_types(local: LocalDeployment) -> None:
    result = local.run({"organization": True, "regions": REGIONS}, name="family-instances-only")
    assert result.status == "SUCCEEDED", result.cause
    assert {f["resource_type"] for f in result.findings} == {"instance"}
    assert {params.get("operation", "DescribeInstances") for _, params in local.fleet.calls} == {
        "DescribeInstances"
    }


def test_a_region_without_volume_data_is_not_scanned_never_clean(local: LocalDeployment) -> None:
    instances, resources = family()
    local.fleet.replace(
        instances,
        resources=[r for r in resources if not (r.resource_type == "volume" and r.region == "eu-west-1")],
        covered=CENTRAL_LISTED,
    )
    result = local.run({"organization": True, "regions": REGIONS, "policy": FINOPS}, name="family-no-volumes")
    assert result.status == "SUCCEEDED", result.cause
    assert result.summary is not None and result.summary["partial"] is True
    failed = [t for t in result.summary["targets"] if t["status"] == "error"]
    assert {(t["account_id"], t["region"], "no volume data" in t["reason"]) for t in failed} == {
        (account, "eu-west-1", True) for account in ACCOUNTS
    }
    assert exit_status(result.status, None, result.summary) == EXIT_INCOMPLETE


def test_a_single_account_scan_lists_every_type_with_the_steps_own_role(local: LocalDeployment) -> None:
    instances, resources = family()
    mine = [i for i in instances if i.account_id == ACCOUNTS[0]]
    local.fleet.replace(
        mine, resources=[r for r in resources if r.account_id == ACCOUNTS[0]], covered=CENTRAL_LISTED
    )
    result = local.run({"regions": REGIONS, "policy": FINOPS}, name="family-single")
    assert result.status == "SUCCEEDED", result.cause
    assert set(by_type(result.findings)) == {"instance", "volume", "snapshot", "image", "network-interface"}


def test_the_distributed_map_gives_the_same_findings_for_every_type(local: LocalDeployment) -> None:
    at_scale = local.run({"organization": True, "regions": REGIONS, "policy": FINOPS}, name="family-at-scale")
    inline = local.run(
        {"targets": [{"account_id": a} for a in ACCOUNTS], "regions": REGIONS, "policy": FINOPS},
        name="family-inline",
    )
    assert at_scale.status == inline.status == "SUCCEEDED", (at_scale.cause, inline.cause)
    assert "Scan regions at scale" in states_entered(at_scale.history)
    assert "Scan regions at scale" not in states_entered(inline.history)

    def verdicts(findings: list[dict[str, Any]]) -> set[tuple[str, str, bool, str]]:
        return {
            (
                f["resource_type"],
                f["resource_id"],
                f["compliant"],
                ",".join(sorted(v["code"] for v in f["violations"])),
            )
            for f in findings
        }

    assert verdicts(at_scale.findings) == verdicts(inline.findings)
    assert {f["resource_type"] for f in inline.findings} == {
        "instance",
        "volume",
        "snapshot",
        "image",
        "network-interface",
    }
