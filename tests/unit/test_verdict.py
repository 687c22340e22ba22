"""The pure parts of a trustworthy verdict: coverage, null percentages, drift over common targets,
bounded tables, exit statuses, the metrics an incomplete scan emits, and how every surface shows
"nothing evaluated"."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow.metrics import emit_run_metrics
from workflow.notifications import build_message
from workflow.render import report_html, report_table
from workflow.report import MAX_TABLE_ROWS, OTHER_ROWS, Baseline, SummaryBuilder, TargetTally, compute_drift
from workflow.steps.persist_report import _choose_baseline, index_entry, indexed_runs
from workflow.verdict import exit_status


def finding(
    instance_id: str, *, compliant: bool = True, region: str = "us-east-1", **extra: Any
) -> dict[str, Any]:
    return {
        "instance_id": instance_id,
        "region": region,
        "account_id": "111122223333",
        "owner": None,
        "compliant": compliant,
        "exempt": False,
        "in_grace_period": False,
        "violations": [] if compliant else [{"code": "missing", "key": "Owner"}],
        **extra,
    }


def empty_summary() -> dict[str, Any]:
    return SummaryBuilder().summary(
        run_id="r", policy_name="p", policy_sha256="0" * 64, evaluated_at="2026-12-01"
    )


def test_nothing_evaluated_has_no_percentage_and_is_never_shown_as_100() -> None:
    summary = empty_summary()
    assert summary["totals"]["compliance_percentage"] is None
    table = report_table(summary, [])
    html_page = report_html(summary, [], history=[summary, summary])
    message = build_message(
        summary, environment="dev", report_uri="s3://b/k", execution_arn="arn", console_region=None
    )
    for text in (table, html_page, message["body"]):
        assert "nothing evaluated" in text
        assert "100.0%" not in text and "None%" not in text
    assert 'class="point nothing-evaluated"' in html_page  # the trend shows a hollow point, no line
    assert "<polyline" not in html_page
    assert message["attributes"]["severity"]["StringValue"] == "high"


def test_each_instance_id_counts_once_across_targets() -> None:
    builder = SummaryBuilder()
    assert builder.add(finding("i-1", compliant=False), target="a/us-east-1") is True
    assert builder.add(finding("i-1"), target="a/eu-west-1") is False
    assert (builder.total, builder.duplicates_dropped) == (1, 1)
    assert builder.totals()["noncompliant"] == 1


def test_a_hundred_thousand_prohibited_keys_cannot_grow_the_summary() -> None:
    violations = [{"code": "prohibited", "key": f"tmp-{i}"} for i in range(100_000)]
    builder = SummaryBuilder()
    builder.add(finding("i-1", compliant=False) | {"violations": violations})
    summary = builder.summary(run_id="r", policy_name="p", policy_sha256="0" * 64, evaluated_at="x")
    assert len(summary["by_rule"]) == MAX_TABLE_ROWS + 1
    assert summary["by_rule"][OTHER_ROWS] == 100_000 - MAX_TABLE_ROWS
    assert sum(summary["by_rule"].values()) == 100_000
    assert len(json.dumps(summary)) < 20_000


def test_drift_ignores_targets_only_one_run_scanned() -> None:
    now = {"1/us-east-1": TargetTally(3, {"i-1"})}
    baseline = Baseline(
        "full",
        {
            "1/us-east-1": {"evaluated": 3, "noncompliant": ["i-1"]},
            "1/eu-west-1": {"evaluated": 40, "noncompliant": ["i-7", "i-8"]},
        },
    )
    drift = compute_drift(now, baseline)
    assert (drift["newly_noncompliant"], drift["newly_compliant"]) == ([], [])
    assert drift["targets_compared"] == ["1/us-east-1"] and drift["targets_not_compared_count"] == 0
    assert drift["evaluated"] == {"baseline": 3, "now": 3, "drop_percentage": 0.0}


def test_drift_reports_the_drop_in_instances_evaluated_over_common_targets() -> None:
    now = {"1/a": TargetTally(5, set())}
    drift = compute_drift(now, Baseline("b", {"1/a": {"evaluated": 10, "noncompliant": []}}))
    assert drift["evaluated"]["drop_percentage"] == 50.0


def test_the_baseline_is_the_latest_run_that_covers_this_runs_targets() -> None:
    full = index_entry("full", "2026-12-01T06:00", "k-full", {"1/a", "1/b", "1/c"})
    narrow = index_entry("narrow", "2026-12-01T09:00", "k-narrow", {"1/a"})
    index = {"runs": indexed_runs(indexed_runs([], full), narrow)}
    run = {"run_id": "next", "started_at": "2026-12-02T06:00"}
    entry, reason = _choose_baseline(index, run, {"1/a", "1/b", "1/c"})
    assert entry is not None and entry["run_id"] == "full" and "every target" in reason
    entry, _ = _choose_baseline(index, run, {"1/a"})
    assert entry is not None and entry["run_id"] == "narrow"
    entry, reason = _choose_baseline(index, run, {"1/a", "1/z"})
    assert entry is not None and entry["run_id"] == "narrow" and "most targets in common (1 of 2)" in reason
    assert _choose_baseline(index, run, {"2/x"}) == (None, "")
    # A run never compares with itself or with a later run (a redrive of an older run).
    assert _choose_baseline(index, {"run_id": "full", "started_at": "2026-12-01T06:00"}, {"1/a"})[0] is None


@given(st.lists(st.frozensets(st.sampled_from("abcdef"), min_size=1), min_size=1, max_size=30))
def test_the_index_keeps_every_scope_no_newer_run_covered(scopes: list[frozenset[str]]) -> None:
    runs: list[dict[str, Any]] = []
    for i, scope in enumerate(scopes):
        runs = indexed_runs(runs, index_entry(f"r{i}", f"2026-12-01T{i:02d}", f"k{i}", set(scope)))
    kept = [set(r["scanned"]) for r in runs]
    assert runs[0]["run_id"] == f"r{len(scopes) - 1}"  # the newest run is always a baseline
    for older_index, older in enumerate(kept):
        assert not any(older <= newer for newer in kept[:older_index])


@pytest.mark.parametrize(
    ("status", "error", "outcome", "strict", "expected"),
    [
        ("SUCCEEDED", None, {"totals": {"total": 3, "noncompliant": 0}}, True, 0),
        ("SUCCEEDED", None, {"totals": {"total": 3, "noncompliant": 1}}, False, 0),
        ("SUCCEEDED", None, {"totals": {"total": 3, "noncompliant": 1}}, True, 1),
        ("SUCCEEDED", None, {"totals": {"total": 3, "noncompliant": 1}, "partial": True}, True, 4),
        ("SUCCEEDED", None, {"totals": {"total": 0, "noncompliant": 0}}, False, 4),
        ("SUCCEEDED", None, None, False, 4),
        ("FAILED", "InvalidInput", None, False, 2),
        ("TIMED_OUT", "States.Timeout", None, False, 3),
    ],
)
def test_exit_statuses_follow_the_readme_table(
    status: str, error: str | None, outcome: dict[str, Any] | None, strict: bool, expected: int
) -> None:
    assert exit_status(status, error, outcome, fail_on_violations=strict) == expected


def test_an_incomplete_scan_emits_targets_not_scanned_and_no_percentage() -> None:
    summary = empty_summary() | {"target_counts": {"error": 2}}
    [run, *_] = emit_run_metrics(summary, environment="dev", namespace="Tagwarden", sink=lambda _: None)
    assert run["TargetsNotScanned"] == [2.0] and run["InstancesEvaluated"] == [0.0]
    assert "CompliancePercentage" not in run and "InstancesEvaluatedDropPercent" not in run


def test_the_evaluated_drop_metric_comes_from_the_baseline_comparison() -> None:
    builder = SummaryBuilder()
    builder.add(finding("i-1"), target="1/a")
    summary = builder.summary(
        run_id="r",
        policy_name="p",
        policy_sha256="0" * 64,
        evaluated_at="x",
        baseline=Baseline("b", {"1/a": {"evaluated": 4, "noncompliant": []}}),
    )
    [run, *_] = emit_run_metrics(summary, environment="dev", namespace="Tagwarden", sink=lambda _: None)
    assert run["InstancesEvaluatedDropPercent"] == [75.0]


def test_a_family_summary_groups_by_type_and_names_the_untagged_ebs_gib_everywhere() -> None:
    builder = SummaryBuilder().add_all(
        [
            finding("i-1", compliant=False),
            finding("vol-1", compliant=False, resource_type="volume", resource_id="vol-1", size_gib=500),
            finding("vol-2", resource_type="volume", resource_id="vol-2", size_gib=8),
            finding("snap-1", compliant=False, resource_type="snapshot", resource_id="snap-1", size_gib=100),
            finding("eni-1", compliant=False, resource_type="network-interface", resource_id="eni-1"),
        ]
    )
    summary = builder.summary(run_id="r", policy_name="p", policy_sha256="0" * 64, evaluated_at="2026-12-01")
    assert summary["by_resource_type"] == {
        "instance": {"compliant": 0, "noncompliant": 1},
        "network-interface": {"compliant": 0, "noncompliant": 1},
        "snapshot": {"compliant": 0, "noncompliant": 1},
        "volume": {"compliant": 1, "noncompliant": 1},
    }
    assert summary["untagged_ebs_gib"] == {"volumes": 500, "snapshots": 100, "total": 600}
    assert summary["noncompliant_instance_ids"] == ["i-1"]
    line = "Untagged EBS: 600 GiB noncompliant (volumes 500 GiB, snapshots 100 GiB)"
    message = build_message(
        summary, environment="dev", report_uri="s3://b/k", execution_arn="arn", console_region=None
    )
    assert message["subject"] == "[tagwarden dev] 4 of 5 EC2 resources noncompliant"
    for text in (report_table(summary, []), report_html(summary, []), message["body"]):
        assert line in text and "network-interface" in text


def test_each_resource_counts_once_by_its_resource_id() -> None:
    builder = SummaryBuilder()
    assert builder.add(finding("vol-1", resource_type="volume", resource_id="vol-1")) is True
    assert builder.add(finding("vol-1", resource_type="volume", resource_id="vol-1")) is False
    assert builder.add(finding(None, resource_type="image", resource_id="ami-1")) is True  # type: ignore[arg-type]
    assert builder.total == 2
