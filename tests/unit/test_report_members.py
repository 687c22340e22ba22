"""Persist report assembles the report from the gzip members Evaluate tag compliance staged:
copied byte for byte, re-encoded only for a target that repeats an instance already reported."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

from workflow.evaluator import evaluate_instance
from workflow.policy import compile_policy
from workflow.report import SummaryBuilder
from workflow.steps.persist_report import _merge_target
from workflow.storage import REPORT_GZIP_LEVEL, JsonLinesWriter

POLICY = compile_policy({"version": 1, "name": "p", "rules": [{"key": "Owner"}]})
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def finding(instance_id: str, tags: dict[str, str]) -> dict[str, Any]:
    instance = {
        "InstanceId": instance_id,
        "State": {"Name": "running"},
        "Placement": {"AvailabilityZone": "eu-west-1a"},
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }
    return evaluate_instance(instance, POLICY, account_id="111122223333", now=NOW)


def staged(*findings: dict[str, Any]) -> bytes:
    writer = JsonLinesWriter(compresslevel=REPORT_GZIP_LEVEL)
    writer.write_all(findings)
    return writer.finish().read()


def ids(report: bytes) -> list[str]:
    return [json.loads(line)["instance_id"] for line in gzip.decompress(report).splitlines()]


def test_targets_without_repeats_are_copied_into_the_report_byte_for_byte() -> None:
    first = staged(finding("i-1", {"Owner": "ana"}), finding("i-2", {}))
    second = staged(finding("i-3", {"owner": "bo"}))
    builder, writer = SummaryBuilder(), JsonLinesWriter()

    _merge_target(builder, writer, "111122223333/eu-west-1", first)
    _merge_target(builder, writer, "111122223333/us-east-1", second)
    report = writer.finish().read()

    assert report == first + second
    assert ids(report) == ["i-1", "i-2", "i-3"]
    assert (builder.total, builder.compliant, writer.lines) == (3, 1, 3)


def test_an_instance_repeated_by_a_later_target_is_reported_once_as_first_seen() -> None:
    first = staged(finding("i-1", {"Owner": "ana"}), finding("i-2", {}))
    repeated = staged(finding("i-2", {"Owner": "changed"}), finding("i-4", {}))
    builder, writer = SummaryBuilder(), JsonLinesWriter()

    _merge_target(builder, writer, "a/eu-west-1", first)
    _merge_target(builder, writer, "b/eu-west-1", repeated)
    report = writer.finish().read()

    assert report.startswith(first)
    assert ids(report) == ["i-1", "i-2", "i-4"]
    lines = [json.loads(line) for line in gzip.decompress(report).splitlines()]
    assert lines[1]["compliant"] is False  # the first listing of i-2 (no Owner), not the repeat
    assert (builder.total, builder.duplicates_dropped, writer.lines) == (3, 1, 3)


def test_a_report_with_no_findings_is_still_one_valid_gzip_member() -> None:
    writer = JsonLinesWriter()
    _merge_target(SummaryBuilder(), writer, "a/eu-west-1", staged())
    assert gzip.decompress(writer.finish().read()) == b""
    assert gzip.decompress(JsonLinesWriter().finish().read()) == b""
