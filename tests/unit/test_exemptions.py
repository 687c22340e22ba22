"""Exemptions that expire: in force until their last day (UTC), then the finding says
exemption_expired on top of the real violations; the summary records which applied."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from workflow.evaluator import evaluate_instance, evaluate_resource
from workflow.policy import compile_policy
from workflow.policy.document import validate_policy
from workflow.report import SummaryBuilder

BASE: dict[str, Any] = {"version": 1, "name": "p", "rules": [{"key": "Owner"}]}


def policy(*exemptions: dict[str, Any]) -> Any:
    return compile_policy({**BASE, "resource_types": ["instance", "volume"], "exemptions": list(exemptions)})


def untagged(instance_id: str = "i-0000000a", **tags: str) -> dict[str, Any]:
    return {
        "InstanceId": instance_id,
        "State": {"Name": "running"},
        "Placement": {"AvailabilityZone": "eu-west-1a"},
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }


ON_LAST_DAY = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
DAY_AFTER = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)
LEGACY = {
    "id": "legacy",
    "instance_ids": ["i-0000000a"],
    "expires": "2026-12-31",
    "reason": "r",
    "approved_by": "x",
}


def test_an_exemption_exempts_through_its_last_day_and_says_which_it_was() -> None:
    finding = evaluate_instance(untagged(), policy(LEGACY), now=ON_LAST_DAY)
    assert (finding["compliant"], finding["exempt"]) == (True, True)
    assert finding["exemption"] == {"id": "legacy", "expires": "2026-12-31", "expired": False}


def test_the_day_after_it_no_longer_exempts_and_the_finding_says_exemption_expired() -> None:
    finding = evaluate_instance(untagged(), policy(LEGACY), now=DAY_AFTER)
    assert (finding["compliant"], finding["exempt"]) == (False, False)
    assert [v["code"] for v in finding["violations"]] == ["missing", "exemption_expired"]
    assert finding["violations"][-1]["value"] == "2026-12-31"
    assert finding["exemption"] == {"id": "legacy", "expires": "2026-12-31", "expired": True}


def test_a_lapsed_exemption_does_not_make_a_compliant_resource_noncompliant() -> None:
    finding = evaluate_instance(untagged(Owner="ana"), policy(LEGACY), now=DAY_AFTER)
    assert finding["compliant"] is True and finding["violations"] == []
    assert finding["exemption"]["expired"] is True  # still visible: the exemption can go


def test_an_exemption_in_force_wins_over_one_that_expired() -> None:
    forever = {"tag": {"key": "Exempt"}}
    finding = evaluate_instance(untagged(Exempt="yes"), policy(LEGACY, forever), now=DAY_AFTER)
    assert finding["exempt"] is True and finding["exemption"] == {
        "id": "exemptions[1]",
        "expires": None,
        "expired": False,
    }


def test_volumes_expire_alike() -> None:
    volume = {"VolumeId": "vol-0000000a", "AvailabilityZone": "eu-west-1a", "Tags": []}
    lapsed = {"resource_ids": ["vol-0000000a"], "expires": "2026-12-31"}
    finding = evaluate_resource("volume", volume, policy(lapsed), now=DAY_AFTER)
    assert [v["code"] for v in finding["violations"]] == ["missing", "exemption_expired"]


def test_the_summary_counts_what_each_exemption_exempted_and_what_expired() -> None:
    findings = [
        evaluate_instance(untagged("i-0000000a"), policy(LEGACY), now=DAY_AFTER),
        evaluate_instance(
            untagged("i-0000000b", Exempt="1"), policy(LEGACY, {"tag": {"key": "Exempt"}}), now=DAY_AFTER
        ),
    ]
    summary = (
        SummaryBuilder()
        .add_all(findings)
        .summary(run_id="r", policy_name="p", policy_sha256="s", evaluated_at=DAY_AFTER.isoformat())
    )
    assert summary["exemptions"] == {
        "exemptions[1]": {"expires": None, "exempted": 1, "expired": 0},
        "legacy": {"expires": "2026-12-31", "exempted": 0, "expired": 1},
    }


@pytest.mark.parametrize(
    ("exemption", "message"),
    [
        ({"instance_ids": ["i-0000000a"], "expires": "2026-02-30"}, "'2026-02-30' is not a date"),
        ({"instance_ids": ["i-0000000a"], "expires": "next week"}, "not a date (YYYY-MM-DD, the last day"),
        ({"instance_ids": ["i-0000000a"], "approved_by": ""}, "should be non-empty"),
    ],
)
def test_a_bad_expiry_or_approver_is_one_line_naming_the_exemption(
    exemption: dict[str, Any], message: str
) -> None:
    problems = validate_policy({**BASE, "exemptions": [exemption]})
    assert len(problems) == 1 and problems[0].path.startswith("$.exemptions[0]")
    assert message in problems[0].message


def test_two_exemptions_with_one_id_are_refused() -> None:
    problems = validate_policy(
        {**BASE, "exemptions": [{"id": "a", "tag": {"key": "X"}}, {"id": "a", "tag": {"key": "Y"}}]}
    )
    assert [(p.path, p.message) for p in problems] == [
        ("$.exemptions[1].id", "'a' is already $.exemptions[0]")
    ]
