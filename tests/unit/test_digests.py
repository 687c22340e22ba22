"""Owner digests: grouping by normalised owner, the unowned fallback, how-to-fix lines, splitting
under SNS's size, and the bound on messages per run."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.digests import (
    DIGEST_KIND,
    MAX_PARTS_PER_OWNER,
    NO_OWNER,
    owner_counts,
    plan_digests,
    summary_lines,
)
from workflow.report import SummaryBuilder


def finding(resource_id: str, owner: str | None, *codes: str, compliant: bool = False) -> dict[str, Any]:
    return {
        "resource_type": "instance",
        "resource_id": resource_id,
        "region": "eu-west-1",
        "account_id": "111122223333",
        "owner": owner,
        "compliant": compliant,
        "exempt": False,
        "violations": [{"code": c, "key": "CostCenter", "message": f"{c} CostCenter"} for c in codes],
    }


def test_each_owner_gets_their_noncompliant_resources_and_the_unowned_go_to_one_fallback() -> None:
    plan = plan_digests(
        [
            finding("i-01", "Ana@Example.com", "missing"),
            finding("i-02", " ana@example.com ", "invalid_value"),
            finding("i-03", "bob@example.com", "prohibited"),
            finding("i-04", None, "missing"),
            finding("i-05", "", "missing"),
            finding("i-06", "bob@example.com", compliant=True),
        ],
        environment="prod",
    )
    got = {d.owner: d for d in plan.digests}
    assert set(got) == {"ana@example.com", "bob@example.com", NO_OWNER}
    assert got["ana@example.com"].resources == 2 and "i-01" in got["ana@example.com"].body
    assert "i-06" not in got["bob@example.com"].body  # compliant resources are no one's to fix
    assert got[NO_OWNER].subject == "[tagwarden prod] 2 to fix: resources without an owner tag"
    assert got["bob@example.com"].attributes == {
        "kind": {"DataType": "String", "StringValue": DIGEST_KIND},
        "owner": {"DataType": "String", "StringValue": "bob@example.com"},
    }
    assert (
        "aws ec2 delete-tags --region eu-west-1 --resources i-03 --tags Key=CostCenter"
        in got["bob@example.com"].body
    )


def test_exempt_resources_are_left_out() -> None:
    exempt = {**finding("i-01", "ana", "missing"), "exempt": True}
    assert plan_digests([exempt], environment="prod").digests == []


def test_a_long_digest_is_split_into_parts_that_each_fit_and_never_cut_a_resource() -> None:
    many = [finding(f"i-{n:04d}", "ana", "missing", "prohibited") for n in range(100)]
    parts = plan_digests(many, environment="prod", max_bytes=8 * 1024).digests
    assert len(parts) > 1
    assert all(len(d.body.encode()) <= 8 * 1024 for d in parts)
    assert sum(d.resources for d in parts) == 100
    assert [d.subject.rsplit(" ", 1)[-1] for d in parts] == [
        f"[{n}/{len(parts)}]" for n in range(1, len(parts) + 1)
    ]


def test_an_owner_past_the_most_parts_is_told_how_many_were_left_out_and_the_report_is_read_twice() -> None:
    many = [finding(f"i-{n:04d}", "ana", "missing", "prohibited") for n in range(1000)]
    reads: list[int] = []

    def read() -> list[dict[str, Any]]:
        reads.append(1)
        return many

    parts = plan_digests(read, environment="prod", max_bytes=8 * 1024).digests
    assert len(reads) == 2  # counts, then the lines of the owners who get a digest: never all in memory
    assert len(parts) == MAX_PARTS_PER_OWNER
    listed = sum(d.resources for d in parts)
    assert listed < 1000
    assert parts[-1].body.endswith(f"... and {1000 - listed} more, not listed here: the report has them all.")
    assert parts[0].subject.startswith("[tagwarden prod] 1000 to fix: ana")


def test_a_run_sends_at_most_max_messages_largest_owners_first_and_counts_the_rest() -> None:
    findings = [finding(f"i-{o}{n}", f"owner{o}", "missing") for o in range(5) for n in range(o + 1)]
    plan = plan_digests(findings, environment="prod", max_messages=2)
    assert [d.owner for d in plan.digests] == ["owner4", "owner3"]
    assert plan.not_sent == {"owner2": 3, "owner1": 2, "owner0": 1}
    (line,) = summary_lines(plan)
    assert line.startswith("Owner digests: 2 message(s) to 2 owner(s); 3 owner(s) over the limit got none")


def test_an_owner_value_with_control_characters_cannot_break_the_message_attribute() -> None:
    plan = plan_digests([finding("i-01", "ana\u2028\x00evil", "missing")], environment="prod")
    owner = plan.digests[0].attributes["owner"]["StringValue"]
    assert "\x00" not in owner and "\u2028" not in owner


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Ana", " ana ", "ANA", "bo", "", "  ", None, "(No Owner)", "ca\u0307", "Ça"]),
            st.booleans(),
            st.booleans(),
        ),
        max_size=40,
    ),
    st.integers(min_value=0, max_value=4),
)
def test_persist_reports_owner_counts_give_the_same_digests_as_counting_the_findings(
    rows: list[tuple[str | None, bool, bool]], max_messages: int
) -> None:
    findings = []
    for n, (owner, compliant, exempt) in enumerate(rows):
        item = finding(f"i-{n:04x}", owner, "missing", compliant=compliant or exempt)
        item["exempt"] = exempt
        findings.append(item)
    builder = SummaryBuilder().add_all(findings)  # what Persist report counts as it reads them
    counted = plan_digests(findings, environment="t", max_messages=max_messages)
    given_counts = plan_digests(
        findings,
        environment="t",
        max_messages=max_messages,
        counts=owner_counts(builder.noncompliant_by_owner),
    )
    assert given_counts == counted


_tag_text = st.sampled_from(["compliant", "false", '"compliant":false', "Owner", "x"]) | st.text(max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_tag_text, _tag_text, max_size=6), st.booleans())
def test_the_notify_line_filter_keeps_exactly_the_noncompliant_findings_as_the_steps_write_them(
    tags: dict[str, str], exempted: bool
) -> None:
    from datetime import UTC, datetime

    from workflow.evaluator import evaluate_instance
    from workflow.policy import compile_policy
    from workflow.steps.notify import NONCOMPLIANT_LINE
    from workflow.storage import dumps_bytes

    policy = compile_policy(
        {
            "version": 1,
            "name": "p",
            "rules": [{"key": "Owner"}, {"key": "compliant", "required": False, "allowed_values": ["false"]}],
            "exemptions": [{"id": "ex", "tag": {"key": "x"}, "expires": "2020-01-01"}] if exempted else [],
        }
    )
    instance = {
        "InstanceId": "i-1",
        "State": {"Name": "running"},
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }
    finding = evaluate_instance(instance, policy, now=datetime(2026, 12, 1, tzinfo=UTC))
    finding["created_by"] = {"display": '"compliant":false', "arn": "arn:aws:iam::1:user/compliant"}
    assert (NONCOMPLIANT_LINE in dumps_bytes(finding)) is (not finding["compliant"])
