"""Persist report assembles the report from the gzip members Evaluate tag compliance staged:
copied byte for byte, re-encoded only for a target that repeats an instance already reported.
The summary comes from the staged summary fields, or from the findings when a target has none
(staged by an Evaluate that predates them); both give the same summary."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.evaluator import evaluate_instance
from workflow.policy import compile_policy
from workflow.report import SummaryBuilder, summary_fields
from workflow.steps.persist_report import _merge_target
from workflow.storage import REPORT_GZIP_LEVEL, STAGING_GZIP_LEVEL, JsonLinesWriter

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


def fields_of(*findings: dict[str, Any]) -> bytes:
    writer = JsonLinesWriter(compresslevel=STAGING_GZIP_LEVEL)
    writer.write_all(summary_fields(f) for f in findings)
    return writer.finish().read()


# Each test runs with the staged summary fields, and without (the findings are read instead).
with_or_without_fields = pytest.mark.parametrize("with_fields", [True, False], ids=["fields", "findings"])


def merge(
    builder: SummaryBuilder,
    writer: JsonLinesWriter,
    target: str,
    *findings: dict[str, Any],
    with_fields: bool,
) -> bytes:
    compressed = staged(*findings)
    _merge_target(builder, writer, target, compressed, fields=fields_of(*findings) if with_fields else None)
    return compressed


def ids(report: bytes) -> list[str]:
    return [json.loads(line)["instance_id"] for line in gzip.decompress(report).splitlines()]


@with_or_without_fields
def test_targets_without_repeats_are_copied_into_the_report_byte_for_byte(with_fields: bool) -> None:
    builder, writer = SummaryBuilder(), JsonLinesWriter()

    first = merge(
        builder,
        writer,
        "111122223333/eu-west-1",
        finding("i-1", {"Owner": "ana"}),
        finding("i-2", {}),
        with_fields=with_fields,
    )
    second = merge(
        builder, writer, "111122223333/us-east-1", finding("i-3", {"owner": "bo"}), with_fields=with_fields
    )
    report = writer.finish().read()

    assert report == first + second
    assert ids(report) == ["i-1", "i-2", "i-3"]
    assert (builder.total, builder.compliant, writer.lines) == (3, 1, 3)


@with_or_without_fields
def test_an_instance_repeated_by_a_later_target_is_reported_once_as_first_seen(with_fields: bool) -> None:
    builder, writer = SummaryBuilder(), JsonLinesWriter()

    first = merge(
        builder,
        writer,
        "a/eu-west-1",
        finding("i-1", {"Owner": "ana"}),
        finding("i-2", {}),
        with_fields=with_fields,
    )
    merge(
        builder,
        writer,
        "b/eu-west-1",
        finding("i-2", {"Owner": "changed"}),
        finding("i-4", {}),
        with_fields=with_fields,
    )
    report = writer.finish().read()

    assert report.startswith(first)
    assert ids(report) == ["i-1", "i-2", "i-4"]
    lines = [json.loads(line) for line in gzip.decompress(report).splitlines()]
    assert lines[1]["compliant"] is False  # the first listing of i-2 (no Owner), not the repeat
    assert (builder.total, builder.duplicates_dropped, writer.lines) == (3, 1, 3)


@with_or_without_fields
def test_a_report_with_no_findings_is_still_one_valid_gzip_member(with_fields: bool) -> None:
    writer = JsonLinesWriter()
    merge(SummaryBuilder(), writer, "a/eu-west-1", with_fields=with_fields)
    assert gzip.decompress(writer.finish().read()) == b""
    assert gzip.decompress(JsonLinesWriter().finish().read()) == b""


_text = st.text(min_size=1, max_size=6)
_violation = st.fixed_dictionaries(
    {
        "code": st.sampled_from(["missing", "key_case", "prohibited", "not_inherited"]),
        "key": _text,
        "message": _text,
    }
)
_finding = st.fixed_dictionaries(
    {
        "resource_type": st.sampled_from(["instance", "volume", "snapshot", "image"]),
        "resource_id": st.sampled_from(["i-1", "i-2", "vol-1", "snap-1", "ami-1"]),
        "compliant": st.booleans(),
        "exempt": st.booleans(),
        "in_grace_period": st.booleans(),
        "region": st.sampled_from(["eu-west-1", "us-east-1", None]),
        "account_id": st.sampled_from(["111122223333", None]),
        "owner": st.none() | _text,
        "tags": st.dictionaries(_text, _text, max_size=3),
        "violations": st.lists(_violation, max_size=3),
    },
    optional={
        "instance_id": st.none() | st.just("i-9"),
        "size_gib": st.none() | st.integers(0, 16384),
        "exemption": st.fixed_dictionaries(
            {"id": _text, "expires": st.none() | st.just("2026-12-31"), "expired": st.booleans()}
        ),
        "created_by": st.fixed_dictionaries({"display": st.none() | _text, "arn": _text}),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a/eu-west-1", "b/us-east-1"]), _finding), max_size=12))
def test_the_summary_fields_fold_into_the_same_summary_as_the_findings(
    findings: list[tuple[str, dict[str, Any]]],
) -> None:
    from_findings, from_fields = SummaryBuilder(), SummaryBuilder()
    for target, one in findings:
        kept = from_findings.add(one, target=target)
        assert from_fields.add(json.loads(json.dumps(summary_fields(one))), target=target) is kept
    assert from_fields == from_findings


_operation = st.one_of(
    st.tuples(st.just("write"), st.dictionaries(_text, _text, max_size=2)),
    st.tuples(
        st.just("write_line"), st.binary(min_size=1, max_size=300_000).map(lambda b: b.replace(b"\n", b"."))
    ),
    st.tuples(st.just("append_member"), st.lists(st.dictionaries(_text, _text, max_size=2), max_size=3)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_operation, max_size=8))
def test_the_writer_keeps_every_line_in_order_across_batches_and_copied_members(
    operations: list[tuple[str, Any]],
) -> None:
    from workflow.storage import dumps_bytes

    writer, expected = JsonLinesWriter(), b""
    for kind, value in operations:
        if kind == "write":
            writer.write(value)
            expected += dumps_bytes(value) + b"\n"
        elif kind == "write_line":
            writer.write_line(value)
            expected += value + b"\n"
        else:
            member = staged(*value)
            writer.append_member(member, len(value))
            expected += gzip.decompress(member)
    assert gzip.decompress(writer.finish().read()) == expected
    assert writer.lines == expected.count(b"\n")
