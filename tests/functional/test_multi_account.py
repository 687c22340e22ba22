"""Organisation-wide scans on the embedded engine: targets, organisation mode, member roles that
are missing or refuse us, the Distributed Map above the threshold, and what the history costs."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.history import payload_sizes, states_entered
from workflow import config, layout
from workflow.engine.local import BUCKET, CENTRAL_ACCOUNT, LocalDeployment
from workflow.fleet import DEMO_REGIONS, FleetInstance, demo_fleet, iter_fleet_document
from workflow.storage import get_json

ACCOUNTS = ("111111111111", "222222222222", "333333333333")
NO_ROLE = "444444444444"
THRESHOLD = 6


def spread(per_region: int, accounts: tuple[str, ...] = ACCOUNTS, seed: int = 11) -> list[FleetInstance]:
    """The demo fleet dealt round-robin to ``accounts`` (each account has instances in each region)."""
    items = list(iter_fleet_document(demo_fleet(instances_per_region=per_region, seed=seed)))
    return [dataclasses.replace(item, account_id=accounts[i % len(accounts)]) for i, item in enumerate(items)]


def in_scope(items: list[FleetInstance]) -> list[FleetInstance]:
    return [i for i in items if i.instance["State"]["Name"] != "terminated"]


@pytest.fixture(scope="module")
def org() -> Iterator[LocalDeployment]:
    """Three member accounts with the role, one organisation account without it; fan-outs of more
    than THRESHOLD (account, region) pairs take the Distributed Map. As on AWS, an account's
    enabled region with no instance (the management account's) is listed and found empty."""
    with LocalDeployment(
        spread(9),
        regions=list(DEMO_REGIONS),
        empty_regions=list(DEMO_REGIONS),
        retry_wait_scale=0,
        extra_environment={config.DISTRIBUTED_MAP_THRESHOLD: str(THRESHOLD)},
    ) as deployment:
        deployment.members.add_account(NO_ROLE, role=False)
        yield deployment


@pytest.fixture(autouse=True)
def _fresh(org: LocalDeployment) -> None:
    org.fleet.replace(spread(9))
    for account in ACCOUNTS:
        org.members.add_account(account)
    org.drain_notifications()
    org.drain_dead_letters()


def test_targets_scan_each_account_through_its_role_and_only_its_instances(org: LocalDeployment) -> None:
    fleet = spread(9)
    targets = [{"account_id": ACCOUNTS[0]}, {"account_id": ACCOUNTS[1], "regions": ["eu-west-1"]}]
    result = org.run({"targets": targets, "notify": "always"}, name="targets-two-accounts")
    assert result.status == "SUCCEEDED", result.cause
    assert result.summary is not None
    expected = {
        i.instance["InstanceId"]: i.account_id
        for i in in_scope(fleet)
        if i.account_id == ACCOUNTS[0] or (i.account_id == ACCOUNTS[1] and i.region == "eu-west-1")
    }
    assert {f["instance_id"]: f["account_id"] for f in result.findings} == expected
    assert result.summary["partial"] is False
    assert result.summary["target_counts"] == {"total": 4, "scanned": 4, "error": 0, "accounts": 2}
    assert set(result.summary["by_account"]) == {ACCOUNTS[0], ACCOUNTS[1]}
    assert "Scan regions" in states_entered(result.history)  # 4 pairs: the inline Map
    calls = [c for c in org.members.assume_calls if c["RoleArn"].endswith(":role/TagwardenReadOnly")]
    assert {c["ExternalId"] for c in calls} == {"tagwarden-local"}
    assert result.dead_letters == []


def test_a_missing_member_role_fails_only_that_target_and_the_scan_is_partial(org: LocalDeployment) -> None:
    targets = [
        {"account_id": ACCOUNTS[0], "regions": ["us-east-1"]},
        {"account_id": NO_ROLE, "regions": ["us-east-1"]},
    ]
    result = org.run({"targets": targets, "notify": "always"}, name="targets-missing-role")
    assert result.status == "SUCCEEDED", result.cause
    summary = result.summary
    assert summary is not None
    assert summary["partial"] is True
    failed = [t for t in summary["targets"] if t["status"] == "error"]
    assert [(t["account_id"], t["region"]) for t in failed] == [(NO_ROLE, "us-east-1")]
    assert "AccessDenied" in failed[0]["reason"]
    assert f"arn:aws:iam::{NO_ROLE}:role/TagwardenReadOnly" in failed[0]["reason"]
    assert {f["account_id"] for f in result.findings} == {ACCOUNTS[0]}
    assert "Target not scanned" in states_entered(result.history)
    [message] = result.notifications
    assert message["subject"].startswith("[tagwarden local] PARTIAL scan:")
    assert f"{NO_ROLE} us-east-1: sts:AssumeRole" in message["body"]
    assert message["attributes"]["partial"] == "true"
    assert result.dead_letters == []


def test_a_role_that_requires_another_external_id_refuses_the_scan(org: LocalDeployment) -> None:
    org.members.roles[org.members.role_arn(ACCOUNTS[2])].external_id = "someone-elses-id"
    result = org.run(
        {"targets": [{"account_id": ACCOUNTS[2], "regions": ["us-east-1"]}]}, name="wrong-external-id"
    )
    assert result.status == "SUCCEEDED", result.cause
    assert result.summary is not None
    assert result.summary["partial"] is True
    assert result.summary["targets"][0]["status"] == "error"
    assert result.findings == []


def test_an_explicit_role_arn_is_assumed_instead_of_the_conventional_one(org: LocalDeployment) -> None:
    custom = f"arn:aws:iam::{ACCOUNTS[1]}:role/SecurityAudit"
    org.members.roles[custom] = dataclasses.replace(org.members.roles[org.members.role_arn(ACCOUNTS[1])])
    result = org.run(
        {"targets": [{"account_id": ACCOUNTS[1], "role_arn": custom, "regions": ["ap-southeast-2"]}]},
        name="explicit-role-arn",
    )
    assert result.status == "SUCCEEDED", result.cause
    assert org.members.assume_calls[-1]["RoleArn"] == custom
    assert {f["account_id"] for f in result.findings} == {ACCOUNTS[1]}
    assert result.summary is not None and result.summary["partial"] is False


def test_organization_mode_scans_active_accounts_on_the_distributed_map(org: LocalDeployment) -> None:
    org.members.add_account("555555555555", role=True, state="SUSPENDED")
    try:
        result = org.run({"organization": True, "notify": "always"}, name="organization-all")
    finally:
        org.members.accounts.pop("555555555555")
    assert result.status == "SUCCEEDED", result.cause
    summary = result.summary
    assert summary is not None
    # Active accounts: the central one, three members and one without the role (3 regions each).
    counts = summary["target_counts"]
    assert counts == {"total": 15, "scanned": 12, "error": 3, "accounts": 5}
    assert {t["account_id"] for t in summary["targets"] if t["status"] == "error"} == {NO_ROLE}
    assert "555555555555" not in {t["account_id"] for t in summary["targets"]}
    entered = states_entered(result.history)
    assert "Scan regions at scale" in entered and "Scan regions" not in entered
    # Every in-scope instance of the fleet, attributed to its own account, exactly once.
    findings = Counter(f["instance_id"] for f in result.findings)
    assert set(findings.values()) == {1}
    assert {f["instance_id"]: f["account_id"] for f in result.findings} == {
        i.instance["InstanceId"]: i.account_id for i in in_scope(spread(9))
    }
    manifest = get_json(org.engine.client("s3"), BUCKET, layout.targets_manifest_key("organization-all"))
    assert len(manifest) == 15 and {"account_id", "region"} <= set(manifest[0])


def test_exclude_accounts_leaves_them_out_of_an_organisation_scan(org: LocalDeployment) -> None:
    result = org.run(
        {"organization": True, "exclude_accounts": [NO_ROLE, CENTRAL_ACCOUNT]}, name="organization-excluded"
    )
    assert result.status == "SUCCEEDED", result.cause
    assert result.summary is not None
    assert result.summary["partial"] is False
    assert {t["account_id"] for t in result.summary["targets"]} == set(ACCOUNTS)


def test_distributed_parent_history_does_not_grow_with_the_number_of_targets(org: LocalDeployment) -> None:
    """The proof that 500 accounts x 20 regions fit: the parent's events do not depend on the
    number of (account, region) pairs; each pair's events are in its own child execution."""
    many = [f"{n:012d}" for n in range(600000000001, 600000000013)]
    for account in many:
        org.members.add_account(account)
    try:
        small = org.run({"targets": [{"account_id": a} for a in many[:3]]}, name="scale-9-pairs")
        large = org.run({"targets": [{"account_id": a} for a in many]}, name="scale-36-pairs")
    finally:
        for account in many:
            org.members.accounts.pop(account)
            org.members.remove_role(account)
    assert small.status == large.status == "SUCCEEDED", (small.cause, large.cause)
    assert small.summary is not None and large.summary is not None
    assert small.summary["target_counts"]["total"] == 9
    assert large.summary["target_counts"]["total"] == 36
    assert len(large.history) == len(small.history)
    assert [e["type"] for e in large.history] == [e["type"] for e in small.history]
    assert max(size for *_, size in payload_sizes(large.history)) < 8 * 1024


def test_inline_fan_out_up_to_the_threshold_stays_under_8_kb_per_state(org: LocalDeployment) -> None:
    targets = [{"account_id": a, "regions": list(DEMO_REGIONS)[:2]} for a in ACCOUNTS]
    result = org.run({"targets": targets}, name="inline-at-threshold")
    assert result.status == "SUCCEEDED", result.cause
    assert "Scan regions" in states_entered(result.history)
    assert result.summary is not None and result.summary["target_counts"]["total"] == THRESHOLD
    largest: Any = max(payload_sizes(result.history), key=lambda s: s[2])
    assert largest[2] < 8 * 1024, largest


def test_a_partial_scan_does_not_call_the_unscanned_accounts_instances_newly_compliant(
    org: LocalDeployment,
) -> None:
    targets = [{"account_id": a, "regions": ["us-east-1"]} for a in ACCOUNTS[:2]]
    first = org.run({"targets": targets}, name="drift-full")
    org.members.remove_role(ACCOUNTS[1])
    second = org.run({"targets": targets}, name="drift-partial")
    assert first.summary is not None and second.summary is not None
    assert second.summary["partial"] is True
    unscanned_noncompliant = {
        f["instance_id"] for f in first.findings if f["account_id"] == ACCOUNTS[1] and not f["compliant"]
    }
    assert unscanned_noncompliant, "the fixture must have something to lose"
    assert second.summary["drift"]["previous_run_id"] == "drift-full"
    assert not unscanned_noncompliant & set(second.summary["drift"]["newly_compliant"])


@pytest.mark.parametrize(
    ("execution_input", "expected"),
    [
        ({"targets": [{"account_id": "1234"}]}, "$.targets[0].account_id: '1234' does not match"),
        (
            {"targets": [{"account_id": ACCOUNTS[0]}, {"account_id": ACCOUNTS[0]}]},
            f"$.targets[1].account_id: account {ACCOUNTS[0]} is already targets[0]",
        ),
        (
            {"targets": [{"account_id": ACCOUNTS[0], "role_arn": f"arn:aws:iam::{ACCOUNTS[1]}:role/R"}]},
            f"$.targets[0].role_arn: the role is in account {ACCOUNTS[1]}, not in {ACCOUNTS[0]}",
        ),
        (
            {"targets": [{"account_id": ACCOUNTS[0]}], "organization": True},
            "$.organization: give either 'targets' or 'organization': true, not both",
        ),
        ({"exclude_accounts": [ACCOUNTS[0]]}, "$.exclude_accounts: only applies with 'organization': true"),
        (
            {"targets": [{"account_id": ACCOUNTS[0], "region": "us-east-1"}]},
            "$.targets[0].region: unknown field",
        ),
    ],
)
def test_invalid_targets_are_rejected_before_anything_is_scanned(
    org: LocalDeployment, execution_input: dict[str, Any], expected: str
) -> None:
    calls = len(org.members.assume_calls)
    result = org.run(execution_input)
    assert result.status == "FAILED"
    assert result.error == "InvalidInput"
    assert result.cause is not None and expected in result.cause
    assert len(org.members.assume_calls) == calls


def test_an_organisation_deployment_refuses_targets_outside_the_organisation(
    org: LocalDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deployed for an organisation (CDK sets TAGWARDEN_ORGANIZATION_DEPLOYMENT), a manual run's
    targets must be its accounts: IAM (aws:ResourceOrgID) would refuse the role anyway, and the
    validation says so first, in one line per target, before anything is assumed."""
    original = config.ValidateConfig.from_env
    monkeypatch.setattr(
        config.ValidateConfig,
        "from_env",
        classmethod(lambda cls, env=None: dataclasses.replace(original(env), organization_deployment=True)),
    )
    outsider = "999999999999"
    calls = len(org.members.assume_calls)
    result = org.run({"targets": [{"account_id": ACCOUNTS[0]}, {"account_id": outsider}]}, name="outsider")
    assert (result.status, result.error) == ("FAILED", "InvalidInput")
    assert result.cause is not None
    assert (
        f"$.targets[1].account_id: {outsider} is not an active account of this organisation" in result.cause
    )
    assert ACCOUNTS[0] not in result.cause
    assert len(org.members.assume_calls) == calls
    inside = org.run({"targets": [{"account_id": ACCOUNTS[0], "regions": ["us-east-1"]}]}, name="insider")
    assert inside.status == "SUCCEEDED", inside.cause


def test_organization_mode_outside_an_organisation_is_invalid_input(org: LocalDeployment) -> None:
    org.members.organization = False
    try:
        result = org.run({"organization": True}, name="not-in-an-organization")
    finally:
        org.members.organization = True
    assert result.status == "FAILED"
    assert result.error == "InvalidInput"
    assert (
        result.cause is not None
        and "$.organization: this account is not in an AWS Organization" in result.cause
    )


def test_a_failed_child_execution_within_the_tolerance_is_reported_as_an_error_target(
    org: LocalDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pair of 15 (6.7%, under the default 10% tolerance) fails for good in its child
    execution: the Distributed Map goes on, and Persist report marks that pair as not scanned.
    (moto does not enforce the tolerance at all; AWS would fail the Map above 10%.)"""
    import lambdas.evaluate_tags
    from workflow.errors import PermanentError

    real = lambdas.evaluate_tags.evaluate_tags

    def failing_for_one_pair(event: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if event["target"] == {"account_id": ACCOUNTS[2], "region": "eu-west-1"}:
            raise PermanentError("injected: evaluation failed for good")
        return real(event, *args, **kwargs)

    monkeypatch.setattr(lambdas.evaluate_tags, "evaluate_tags", failing_for_one_pair)
    result = org.run({"organization": True}, name="distributed-one-child-fails")
    assert result.status == "SUCCEEDED", result.cause
    summary = result.summary
    assert summary is not None and summary["partial"] is True
    failed = [t for t in summary["targets"] if t["status"] == "error"]
    assert {(t["account_id"], t["region"]) for t in failed} == {(ACCOUNTS[2], "eu-west-1")} | {
        (NO_ROLE, region) for region in DEMO_REGIONS
    }
    [child] = [t for t in failed if t["account_id"] == ACCOUNTS[2]]
    assert "iteration failed" in child["reason"]
    assert not [f for f in result.findings if f["account_id"] == ACCOUNTS[2] and f["region"] == "eu-west-1"]
    assert result.dead_letters == []
