"""Staged remediation's planner (:mod:`workflow.remediation`): which instances are marked, stopped
and unmarked, what the record keeps, and the owners' notice lines. Pure: plain findings and records,
no AWS."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.remediation import (
    ASG_TAG,
    MARK_KEY,
    Action,
    Plan,
    RemediationSettings,
    owner_notices,
    plan_remediation,
    record_key,
)

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
REGION = "eu-west-1"
TARGET = f"{ACCOUNT}/{REGION}"
TODAY = date(2026, 12, 1)
REAL = RemediationSettings(mark_after_days=0, stop_after_days=7, dry_run=False, max_stops_per_run=10)
DRY = RemediationSettings(mark_after_days=0, stop_after_days=7, dry_run=True, max_stops_per_run=10)


def finding(
    instance_id: str = "i-1",
    *,
    compliant: bool = False,
    state: str = "running",
    tags: dict[str, str] | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
    owner: str | None = "ana@example.com",
    resource_type: str = "instance",
) -> dict[str, Any]:
    return {
        "resource_type": resource_type,
        "resource_id": instance_id,
        "instance_id": instance_id,
        "account_id": account,
        "region": region,
        "state": state,
        "owner": owner,
        "tags": dict(tags or {}),
        "compliant": compliant,
    }


def key(instance_id: str = "i-1", account: str = ACCOUNT, region: str = REGION) -> str:
    return record_key(account, region, instance_id)


def ours(stop_on: str, *, since: str = "2026-11-01", mode: str = "real") -> dict[str, Any]:
    return {"noncompliant_since": since, "stop_on": stop_on, "mode": mode}


def plan(
    findings: list[dict[str, Any]],
    records: dict[str, dict[str, Any]] | None = None,
    *,
    remediation: RemediationSettings = REAL,
    today: date = TODAY,
    scanned: list[str] | None = None,
) -> Plan:
    return plan_remediation(
        findings,
        records or {},
        settings=remediation,
        today=today,
        scanned=[TARGET] if scanned is None else scanned,
    )


def of_kind(result: Plan, kind: str) -> list[Action]:
    return [action for action in result.actions if action.kind == kind]


def kinds(result: Plan) -> list[tuple[str, str, str | None]]:
    return [(a.kind, a.instance_id, a.stop_on) for a in result.actions]


# --- helpers of the module -------------------------------------------------------------------


def test_record_key_names_account_region_and_instance() -> None:
    assert record_key("111122223333", "eu-west-1", "i-0abc") == "111122223333/eu-west-1/i-0abc"
    action = Action("mark", "111122223333", "eu-west-1", "i-0abc", None, "2026-12-08", "noncompliant")
    assert action.key == "111122223333/eu-west-1/i-0abc"


def test_mark_key_and_asg_tag_are_the_documented_tags() -> None:
    assert MARK_KEY == "tagwarden:marked-for-stop"
    assert ASG_TAG == "aws:autoscaling:groupName"


# --- marking ---------------------------------------------------------------------------------


def test_a_noncompliant_running_instance_is_marked_with_today_plus_stop_after_days() -> None:
    result = plan([finding("i-1")], remediation=RemediationSettings(stop_after_days=3, dry_run=False))
    assert kinds(result) == [("mark", "i-1", "2026-12-04")]
    action = result.actions[0]
    assert (action.account_id, action.region, action.owner, action.reason) == (
        ACCOUNT,
        REGION,
        "ana@example.com",
        "noncompliant",
    )
    assert result.records == {key("i-1"): ours("2026-12-04", since="2026-12-01")}
    assert result.pending == {"i-1": "2026-12-04"}
    assert result.waiting == 0
    assert not result.ineligible


def test_a_pending_instance_is_marked_like_a_running_one() -> None:
    assert kinds(plan([finding("i-1", state="pending")])) == [("mark", "i-1", "2026-12-08")]


def test_a_dry_run_plans_the_same_mark_and_records_it_as_dry_run() -> None:
    result = plan([finding("i-1")], remediation=DRY)
    assert kinds(result) == [("mark", "i-1", "2026-12-08")]
    assert result.records[key("i-1")] == ours("2026-12-08", since="2026-12-01", mode="dry_run")
    assert result.pending == {"i-1": "2026-12-08"}


def test_mark_after_days_delays_the_mark_and_counts_the_instance_as_waiting() -> None:
    settings_ = RemediationSettings(mark_after_days=3, stop_after_days=7, dry_run=False)
    first = plan([finding("i-1")], remediation=settings_)
    assert first.actions == []
    assert first.waiting == 1
    assert first.pending == {}
    assert first.records == {key("i-1"): {"noncompliant_since": "2026-12-01"}}

    # Two days later: still waiting, and noncompliant_since is kept from the record.
    second = plan([finding("i-1")], first.records, remediation=settings_, today=TODAY + timedelta(days=2))
    assert second.actions == []
    assert second.waiting == 1
    assert second.records == {key("i-1"): {"noncompliant_since": "2026-12-01"}}

    # mark_after_days after noncompliant_since: marked, stop date counted from today.
    third = plan([finding("i-1")], second.records, remediation=settings_, today=TODAY + timedelta(days=3))
    assert kinds(third) == [("mark", "i-1", "2026-12-11")]
    assert third.waiting == 0
    assert third.records == {key("i-1"): ours("2026-12-11", since="2026-12-01")}


def test_mark_after_days_counts_from_noncompliant_since_in_the_record() -> None:
    settings_ = RemediationSettings(mark_after_days=5, stop_after_days=2, dry_run=False)
    records = {key("i-1"): {"noncompliant_since": "2026-11-20"}}
    result = plan([finding("i-1")], records, remediation=settings_)
    assert kinds(result) == [("mark", "i-1", "2026-12-03")]
    assert result.records[key("i-1")]["noncompliant_since"] == "2026-11-20"


# --- compliant again -------------------------------------------------------------------------


def test_a_compliant_instance_with_our_mark_is_unmarked_and_forgotten() -> None:
    records = {key("i-1"): ours("2026-12-08")}
    result = plan([finding("i-1", compliant=True, tags={MARK_KEY: "2026-12-08"})], records)
    assert kinds(result) == [("unmark", "i-1", "2026-12-08")]
    assert result.actions[0].reason == "compliant"
    assert result.records == {}
    assert result.pending == {}


def test_a_compliant_instance_with_a_mark_we_did_not_place_is_unmarked() -> None:
    result = plan([finding("i-1", compliant=True, tags={MARK_KEY: "2020-01-01"})])
    assert kinds(result) == [("unmark", "i-1", None)]
    assert result.records == {}


def test_a_compliant_instance_with_our_record_but_no_mark_is_unmarked() -> None:
    result = plan([finding("i-1", compliant=True)], {key("i-1"): ours("2026-12-08")})
    assert kinds(result) == [("unmark", "i-1", "2026-12-08")]
    assert result.records == {}


def test_a_compliant_instance_without_mark_or_record_needs_nothing() -> None:
    result = plan([finding("i-1", compliant=True)], {key("i-1"): {"noncompliant_since": "2026-11-01"}})
    assert result.actions == []
    assert result.records == {}


# --- Auto Scaling groups ---------------------------------------------------------------------


def test_an_instance_in_an_auto_scaling_group_is_never_marked() -> None:
    result = plan([finding("i-1", tags={ASG_TAG: "web"})])
    assert result.actions == []
    assert result.ineligible == {"auto_scaling_group": 1}
    assert result.records == {}
    assert result.pending == {}


def test_a_mark_on_an_auto_scaling_group_instance_is_removed_and_its_record_dropped() -> None:
    records = {key("i-1"): ours("2026-11-20")}
    result = plan([finding("i-1", tags={ASG_TAG: "web", MARK_KEY: "2026-11-20"})], records)
    assert kinds(result) == [("unmark", "i-1", "2026-11-20")]
    assert "Auto Scaling group" in result.actions[0].reason
    assert result.records == {}
    assert result.ineligible == {"auto_scaling_group": 1}


def test_an_auto_scaling_group_instance_past_its_recorded_date_is_never_stopped() -> None:
    records = {key("i-1"): ours("2026-11-20")}
    result = plan(
        [finding("i-1", tags={ASG_TAG: "web", MARK_KEY: "2026-11-20"})],
        records,
        today=date(2027, 1, 1),
    )
    assert of_kind(result, "stop") == []


# --- not running -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["stopped", "stopping", "shutting-down"])
def test_a_noncompliant_instance_that_is_not_running_is_not_marked(state: str) -> None:
    result = plan([finding("i-1", state=state)])
    assert result.actions == []
    assert result.ineligible == {"not_running": 1}
    assert result.pending == {}
    assert result.records == {key("i-1"): {"noncompliant_since": "2026-12-01"}}


def test_a_stopped_instance_with_our_past_due_record_and_mark_gets_no_stop() -> None:
    records = {key("i-1"): ours("2026-11-20")}
    result = plan([finding("i-1", state="stopped", tags={MARK_KEY: "2026-11-20"})], records)
    assert result.actions == []
    # Still ours: it is stopped on a later run if it runs again, still noncompliant.
    assert result.records == {key("i-1"): ours("2026-11-20")}
    assert result.pending == {"i-1": "2026-11-20"}


# --- marks we did not place, marks changed ----------------------------------------------------


def test_a_foreign_mark_on_a_noncompliant_instance_is_replaced_by_a_fresh_date() -> None:
    result = plan([finding("i-1", tags={MARK_KEY: "2020-01-01"})], today=date(2026, 12, 20))
    assert kinds(result) == [("mark", "i-1", "2026-12-27")]
    assert "replaces a mark Tagwarden did not place ('2020-01-01')" in result.actions[0].reason
    assert result.records[key("i-1")]["stop_on"] == "2026-12-27"


def test_a_foreign_mark_with_a_past_date_never_yields_a_stop() -> None:
    # Even when the tag's value is today's date or long past, the run only marks.
    for mark in ("2020-01-01", "2026-12-01", "garbage"):
        result = plan([finding("i-1", tags={MARK_KEY: mark})])
        assert of_kind(result, "stop") == []
        assert [a.kind for a in result.actions] == ["mark"]


def test_a_foreign_mark_reason_is_cut_to_forty_characters() -> None:
    result = plan([finding("i-1", tags={MARK_KEY: "x" * 300})])
    assert result.actions[0].reason.endswith(f"({'x' * 40!r})")


def test_a_removed_mark_is_restored_with_the_recorded_date_and_the_stop_waits() -> None:
    records = {key("i-1"): ours("2026-11-25")}
    result = plan([finding("i-1")], records)  # past the date, but no mark: put it back first
    assert kinds(result) == [("mark", "i-1", "2026-11-25")]
    assert result.actions[0].reason == "restored"
    assert of_kind(result, "stop") == []
    assert result.records == {key("i-1"): ours("2026-11-25")}
    assert result.pending == {"i-1": "2026-11-25"}


def test_a_changed_mark_is_restored_with_the_recorded_date_and_the_stop_waits() -> None:
    records = {key("i-1"): ours("2026-11-25")}
    result = plan([finding("i-1", tags={MARK_KEY: "2099-01-01"})], records)
    assert kinds(result) == [("mark", "i-1", "2026-11-25")]
    assert result.actions[0].reason == "restored (was '2099-01-01')"
    assert of_kind(result, "stop") == []


def test_a_restored_mark_before_the_date_keeps_the_date() -> None:
    records = {key("i-1"): ours("2026-12-08")}
    result = plan([finding("i-1")], records, today=date(2026, 12, 5))
    assert kinds(result) == [("mark", "i-1", "2026-12-08")]


def test_the_next_run_after_a_restore_stops_the_instance() -> None:
    records = {key("i-1"): ours("2026-11-25")}
    restored = plan([finding("i-1")], records)
    after = plan([finding("i-1", tags={MARK_KEY: "2026-11-25"})], restored.records, today=date(2026, 12, 2))
    assert kinds(after) == [("stop", "i-1", "2026-11-25")]


# --- stops -----------------------------------------------------------------------------------


def test_our_mark_before_its_date_is_left_alone() -> None:
    records = {key("i-1"): ours("2026-12-08")}
    result = plan([finding("i-1", tags={MARK_KEY: "2026-12-08"})], records, today=date(2026, 12, 7))
    assert result.actions == []
    assert result.records == records
    assert result.pending == {"i-1": "2026-12-08"}


@pytest.mark.parametrize("today", [date(2026, 12, 8), date(2026, 12, 9), date(2027, 6, 1)])
def test_on_or_after_the_stop_date_a_running_noncompliant_instance_is_a_stop_candidate(today: date) -> None:
    records = {key("i-1"): ours("2026-12-08")}
    result = plan([finding("i-1", tags={MARK_KEY: "2026-12-08"})], records, today=today)
    assert kinds(result) == [("stop", "i-1", "2026-12-08")]
    assert result.actions[0].reason == "noncompliant on or after its stop date"
    assert result.records == records


def test_a_pending_instance_past_its_date_is_not_a_stop_candidate_yet() -> None:
    records = {key("i-1"): ours("2026-11-20")}
    result = plan([finding("i-1", state="pending", tags={MARK_KEY: "2026-11-20"})], records)
    assert result.actions == []


def test_a_compliant_instance_past_its_date_is_unmarked_not_stopped() -> None:
    records = {key("i-1"): ours("2026-11-20")}
    result = plan([finding("i-1", compliant=True, tags={MARK_KEY: "2026-11-20"})], records)
    assert kinds(result) == [("unmark", "i-1", "2026-11-20")]


def test_a_dry_run_record_past_its_date_is_a_dry_run_stop_candidate_without_any_mark() -> None:
    records = {key("i-1"): ours("2026-11-20", mode="dry_run")}
    result = plan([finding("i-1")], records, remediation=DRY)
    assert kinds(result) == [("stop", "i-1", "2026-11-20")]


# --- modes -----------------------------------------------------------------------------------


def test_a_record_made_in_a_dry_run_does_not_count_in_real_mode() -> None:
    records = {key("i-1"): ours("2026-11-20", since="2026-11-13", mode="dry_run")}
    result = plan([finding("i-1")], records)
    assert kinds(result) == [("mark", "i-1", "2026-12-08")]  # fresh date, no stop
    assert result.actions[0].reason == "noncompliant"
    # How long it has been noncompliant is still known.
    assert result.records == {key("i-1"): ours("2026-12-08", since="2026-11-13")}


def test_a_dry_run_record_with_a_matching_tag_does_not_count_in_real_mode() -> None:
    records = {key("i-1"): ours("2026-11-20", mode="dry_run")}
    result = plan([finding("i-1", tags={MARK_KEY: "2026-11-20"})], records)
    assert kinds(result) == [("mark", "i-1", "2026-12-08")]
    assert of_kind(result, "stop") == []


def test_a_real_record_does_not_count_in_a_dry_run() -> None:
    records = {key("i-1"): ours("2026-11-20", mode="real")}
    result = plan([finding("i-1", tags={MARK_KEY: "2026-11-20"})], records, remediation=DRY)
    assert kinds(result) == [("mark", "i-1", "2026-12-08")]
    assert result.records[key("i-1")]["mode"] == "dry_run"


def test_a_record_without_a_mode_never_counts() -> None:
    records = {key("i-1"): {"noncompliant_since": "2026-11-01", "stop_on": "2026-11-20"}}
    for remediation in (REAL, DRY):
        result = plan([finding("i-1", tags={MARK_KEY: "2026-11-20"})], records, remediation=remediation)
        assert kinds(result) == [("mark", "i-1", "2026-12-08")]


def test_in_a_dry_run_a_missing_mark_is_not_restored() -> None:
    records = {key("i-1"): ours("2026-12-08", mode="dry_run")}
    result = plan([finding("i-1")], records, remediation=DRY, today=date(2026, 12, 3))
    assert result.actions == []
    assert result.pending == {"i-1": "2026-12-08"}


# --- the record ------------------------------------------------------------------------------


def test_records_of_targets_not_scanned_are_kept_untouched() -> None:
    other = record_key(OTHER_ACCOUNT, REGION, "i-9")
    other_region = record_key(ACCOUNT, "us-east-1", "i-8")
    records = {
        other: ours("2026-11-20"),
        other_region: {"noncompliant_since": "2026-10-01", "whatever": [1, 2]},
    }
    result = plan([finding("i-1")], records)
    assert result.records[other] == ours("2026-11-20")
    assert result.records[other_region] == {"noncompliant_since": "2026-10-01", "whatever": [1, 2]}
    assert result.records[other] is not records[other]  # a copy: the input is not changed
    assert all(a.instance_id not in ("i-8", "i-9") for a in result.actions)


def test_records_of_scanned_targets_without_a_finding_are_dropped() -> None:
    records = {key("i-gone"): ours("2026-11-20"), key("i-1"): ours("2026-12-08")}
    result = plan([finding("i-1", tags={MARK_KEY: "2026-12-08"})], records)
    assert set(result.records) == {key("i-1")}
    assert result.actions == []


def test_a_finding_of_an_unscanned_target_still_decides_its_record() -> None:
    records = {key("i-1"): ours("2026-11-20")}
    result = plan([finding("i-1", compliant=True, tags={MARK_KEY: "2026-11-20"})], records, scanned=[])
    assert kinds(result) == [("unmark", "i-1", "2026-11-20")]
    assert result.records == {}


def test_the_input_records_are_not_changed() -> None:
    records = {key("i-1"): ours("2026-11-20", mode="dry_run"), key("i-2"): ours("2026-11-20")}
    snapshot = {k: dict(v) for k, v in records.items()}
    plan([finding("i-1"), finding("i-2", compliant=True)], records)
    assert records == snapshot


# --- other resource types, finding shapes -----------------------------------------------------


@pytest.mark.parametrize("resource_type", ["volume", "snapshot", "network-interface"])
def test_findings_of_other_resource_types_are_ignored(resource_type: str) -> None:
    vol = finding("vol-1", resource_type=resource_type, tags={MARK_KEY: "2020-01-01"})
    records = {key("vol-1"): ours("2026-11-20")}
    result = plan([vol], records)
    assert result.actions == []
    assert result.records == {}  # a scanned target's record without an instance finding goes
    assert result.waiting == 0
    assert not result.ineligible


def test_a_finding_without_resource_type_is_an_instance() -> None:
    bare = finding("i-1")
    del bare["resource_type"]
    assert kinds(plan([bare])) == [("mark", "i-1", "2026-12-08")]


def test_a_finding_with_only_instance_id_is_named_by_it() -> None:
    bare = finding("i-1")
    del bare["resource_id"]
    assert kinds(plan([bare])) == [("mark", "i-1", "2026-12-08")]


def test_a_finding_without_tags_is_handled() -> None:
    bare = finding("i-1")
    bare["tags"] = None
    assert kinds(plan([bare])) == [("mark", "i-1", "2026-12-08")]


def test_actions_are_sorted_by_kind_date_and_key() -> None:
    records = {
        key("i-3"): ours("2026-11-28"),
        key("i-4"): ours("2026-11-20"),
    }
    result = plan(
        [
            finding("i-3", tags={MARK_KEY: "2026-11-28"}),
            finding("i-4", tags={MARK_KEY: "2026-11-20"}),
            finding("i-2"),
            finding("i-1"),
            finding("i-5", compliant=True, tags={MARK_KEY: "x"}),
        ],
        records,
    )
    assert [(a.kind, a.instance_id) for a in result.actions] == [
        ("mark", "i-1"),
        ("mark", "i-2"),
        ("stop", "i-4"),
        ("stop", "i-3"),
        ("unmark", "i-5"),
    ]


def test_many_instances_across_accounts_are_counted_per_reason() -> None:
    findings = [
        finding("i-1"),
        finding("i-2", state="stopped"),
        finding("i-3", state="stopped"),
        finding("i-4", tags={ASG_TAG: "a"}),
        finding("i-5", account=OTHER_ACCOUNT),
        finding("i-6", compliant=True),
    ]
    result = plan(findings, scanned=[TARGET, f"{OTHER_ACCOUNT}/{REGION}"])
    assert result.ineligible == {"not_running": 2, "auto_scaling_group": 1}
    assert {(a.account_id, a.instance_id) for a in of_kind(result, "mark")} == {
        (ACCOUNT, "i-1"),
        (OTHER_ACCOUNT, "i-5"),
    }
    assert set(result.records) == {
        key("i-1"),
        key("i-2"),
        key("i-3"),
        record_key(OTHER_ACCOUNT, REGION, "i-5"),
    }


# --- owner notices ---------------------------------------------------------------------------


def test_owner_notices_for_real_marks_and_stops() -> None:
    lines = owner_notices({"dry_run": False, "stop_on": {"i-1": "2026-12-08"}}, ["i-2"])
    assert lines == {
        "i-1": "Marked for stop: Tagwarden stops it on 2026-12-08 unless it is fixed by then.",
        "i-2": "Stopped by Tagwarden in this run: still noncompliant on its stop date. "
        "Fix the tags, then start it.",
    }


def test_owner_notices_for_a_dry_run() -> None:
    lines = owner_notices({"dry_run": True, "stop_on": {"i-1": "2026-12-08"}}, ["i-2"])
    assert lines == {
        "i-1": "Remediation dry run: would be stopped on 2026-12-08 unless fixed by then "
        "(nothing is stopped while the policy's remediation is a dry run).",
        "i-2": "Remediation dry run: would have been stopped in this run (still noncompliant on its stop date).",
    }


def test_owner_notices_a_stopped_instance_gets_the_stop_line_over_its_mark_line() -> None:
    lines = owner_notices({"dry_run": False, "stop_on": {"i-1": "2026-12-08"}}, ["i-1"])
    assert lines == {"i-1": owner_notices({"dry_run": False}, ["i-1"])["i-1"]}
    assert lines["i-1"].startswith("Stopped by Tagwarden")


def test_owner_notices_of_nothing_are_empty() -> None:
    assert owner_notices({}, []) == {}
    assert owner_notices({"dry_run": True, "stop_on": None}, []) == {}


# --- properties ------------------------------------------------------------------------------

ACCOUNTS = [ACCOUNT, OTHER_ACCOUNT]
REGIONS = [REGION, "us-east-1"]
IDS = [f"i-{n}" for n in range(6)]
STATES = ["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]
DATES = st.dates(min_value=date(2026, 10, 1), max_value=date(2027, 2, 1))
MARKS = st.one_of(st.none(), DATES.map(date.isoformat), st.sampled_from(["", "garbage", "2020-01-01"]))
KEYS = st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(REGIONS), st.sampled_from(IDS)).map(
    lambda t: record_key(*t)
)


@st.composite
def findings_strategy(draw: st.DrawFn) -> list[dict[str, Any]]:
    keys = draw(st.lists(KEYS, unique=True, max_size=8))
    found = []
    for k in keys:
        account, region, instance_id = k.split("/")
        tags: dict[str, str] = {}
        mark = draw(MARKS)
        if mark is not None:
            tags[MARK_KEY] = mark
        if draw(st.booleans()) and draw(st.booleans()):
            tags[ASG_TAG] = "web"
        found.append(
            finding(
                instance_id,
                account=account,
                region=region,
                compliant=draw(st.booleans()),
                state=draw(st.sampled_from(STATES)),
                tags=tags,
                resource_type=draw(st.sampled_from(["instance", "instance", "instance", "volume"])),
            )
        )
    return found


RECORDS = st.dictionaries(
    KEYS,
    st.fixed_dictionaries(
        {"noncompliant_since": DATES.map(date.isoformat)},
        optional={
            "stop_on": DATES.map(date.isoformat),
            "mode": st.sampled_from(["real", "dry_run", "other"]),
        },
    ),
    max_size=8,
)
SETTINGS = st.builds(
    RemediationSettings,
    mark_after_days=st.integers(0, 10),
    stop_after_days=st.integers(1, 30),
    dry_run=st.booleans(),
    max_stops_per_run=st.integers(0, 5),
)
SCANNED = st.lists(st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(REGIONS)).map("/".join), unique=True)


@settings(max_examples=300, deadline=None)
@given(findings_strategy(), RECORDS, SETTINGS, DATES, SCANNED)
def test_a_stop_only_ever_comes_from_our_own_mark_of_a_running_noncompliant_instance(
    findings: list[dict[str, Any]],
    records: dict[str, dict[str, Any]],
    remediation: RemediationSettings,
    today: date,
    scanned: list[str],
) -> None:
    result = plan(findings, records, remediation=remediation, today=today, scanned=scanned)
    mode = "dry_run" if remediation.dry_run else "real"
    by_key = {key(f["resource_id"], f["account_id"], f["region"]): f for f in findings}
    for action in of_kind(result, "stop"):
        found = by_key[action.key]
        record = records.get(action.key) or {}
        assert found["resource_type"] == "instance"
        assert not found["compliant"]
        assert found["state"] == "running"
        assert ASG_TAG not in found["tags"]
        assert record.get("mode") == mode
        assert record.get("stop_on") == action.stop_on
        assert action.stop_on is not None
        assert date.fromisoformat(action.stop_on) <= today
        if not remediation.dry_run:
            assert found["tags"].get(MARK_KEY) == record["stop_on"]
    # Every other invariant of the plan, checked on the same examples.
    for action in result.actions:
        assert action.key in by_key
        assert by_key[action.key]["resource_type"] == "instance"
    for action in of_kind(result, "mark"):
        assert not by_key[action.key]["compliant"]
        assert ASG_TAG not in by_key[action.key]["tags"]
        assert action.stop_on is not None
        assert result.records[action.key]["stop_on"] == action.stop_on
        assert result.records[action.key]["mode"] == mode
        if action.stop_on != (records.get(action.key) or {}).get("stop_on"):
            # A fresh mark never dates the stop before stop_after_days from today.
            assert date.fromisoformat(action.stop_on) == today + timedelta(days=remediation.stop_after_days)
    for k, record in records.items():
        target = "/".join(k.split("/")[:2])
        if k not in by_key and target not in scanned:
            assert result.records[k] == record
        if k not in by_key and target in scanned:
            assert k not in result.records
    for k in result.records:
        assert k in by_key or k in records
    # A compliant or Auto Scaling group instance never stays in the record.
    for k, found in by_key.items():
        if found["resource_type"] == "instance" and (found["compliant"] or ASG_TAG in found["tags"]):
            assert k not in result.records


@settings(max_examples=100, deadline=None)
@given(findings_strategy(), SETTINGS, DATES)
def test_without_a_record_a_run_never_stops_anything(
    findings: list[dict[str, Any]], remediation: RemediationSettings, today: date
) -> None:
    scanned = [f"{a}/{r}" for a in ACCOUNTS for r in REGIONS]
    result = plan(findings, {}, remediation=remediation, today=today, scanned=scanned)
    assert of_kind(result, "stop") == []


def test_an_event_run_keeps_the_records_of_instances_its_events_did_not_name() -> None:
    # An event run scans a target but has findings only for the resources its events named: the
    # other instances of that target are not gone, and their marks keep their dates.
    records = {key("i-other"): ours("2026-12-05"), key("i-named"): ours("2026-12-06")}
    result = plan_remediation(
        [finding("i-named")], records, settings=REAL, today=TODAY, scanned=[TARGET], prune=False
    )
    assert result.records[key("i-other")] == ours("2026-12-05")
    assert key("i-named") in result.records
    assert not result.owns(key("i-another-unnamed")) and result.owns(key("i-named"))
    pruned = plan([finding("i-named")], records)
    assert key("i-other") not in pruned.records and pruned.owns(key("i-another-unnamed"))
