"""IAM's matching rules as tests/iam/policy.py implements them (no AWS, no engine)."""

from __future__ import annotations

import pytest

from tests.iam.policy import Principal, Statement, UnsupportedPolicy, arn_matches, condition_matches, decide

ROLE = Principal("role", "arn:aws:iam::123456789012:role/persist", "123456789012")


def allow(**document: object) -> Statement:
    return Statement({"Effect": "Allow", **document}, "test")


def test_arn_wildcards_match_within_fields_and_actions_ignore_case() -> None:
    assert arn_matches(
        "arn:aws:iam::*:role/TagwardenReadOnly", "arn:aws:iam::111122223333:role/TagwardenReadOnly"
    )
    assert not arn_matches("arn:aws:iam::*:role/TagwardenReadOnly", "arn:aws:iam::111122223333:role/Other")
    assert arn_matches("arn:aws:s3:::b/staging/*/report/*", "arn:aws:s3:::b/staging/r1/report/summary.json")
    assert not arn_matches("arn:aws:lambda:us-east-1:1:function:f", "arn:aws:lambda:us-east-1:1:function:f:1")
    assert allow(Action="S3:getobject", Resource="*").action_applies("s3:GetObject")


@pytest.mark.parametrize(
    ("operator", "key", "values", "context", "expected"),
    [
        ("StringLike", "s3:prefix", ["staging/*"], {"s3:prefix": "staging/r1/"}, True),
        ("StringLike", "s3:prefix", ["staging/*"], {}, False),
        ("StringEquals", "sts:ExternalId", "x", {"sts:externalid": "x"}, True),
        ("StringNotEquals", "aws:ResourceOrgID", "o-1", {}, True),
        ("StringEqualsIfExists", "aws:ResourceOrgID", "o-1", {}, True),
        ("Null", "s3:prefix", "true", {}, True),
        ("Null", "s3:prefix", "true", {"s3:prefix": ""}, False),
        ("Bool", "aws:SecureTransport", "false", {"aws:SecureTransport": True}, False),
        (
            "ArnLike",
            "aws:SourceArn",
            "arn:aws:states:*:1:stateMachine:*",
            {"aws:SourceArn": "arn:aws:states:us-east-1:1:stateMachine:m"},
            True,
        ),
        (
            "ArnEquals",
            "aws:PrincipalArn",
            "arn:aws:iam::1:role/a",
            {"aws:PrincipalArn": "arn:aws:iam::1:role/b"},
            False,
        ),
        ("ForAnyValue:StringLike", "aws:TagKeys", ["a*"], {"aws:TagKeys": ["x", "ab"]}, True),
        ("ForAllValues:StringLike", "aws:TagKeys", ["a*"], {"aws:TagKeys": ["x", "ab"]}, False),
        ("ForAllValues:StringLike", "aws:TagKeys", ["a*"], {}, True),
        ("NumericLessThan", "s3:TlsVersion", 1.2, {"s3:TlsVersion": 1.3}, False),
    ],
)
def test_condition_operators(
    operator: str, key: str, values: object, context: dict[str, object], expected: bool
) -> None:
    assert condition_matches(operator, key, values, context) is expected


def test_an_unknown_operator_is_an_error_not_a_match() -> None:
    with pytest.raises(UnsupportedPolicy):
        condition_matches("IpAddressish", "aws:SourceIp", "1.2.3.4", {"aws:SourceIp": "1.2.3.4"})


def test_an_explicit_deny_wins_and_not_action_excludes() -> None:
    identity = [allow(Action="s3:*", Resource="*")]
    deny = Statement(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        "ssl",
    )
    assert (
        decide(
            ROLE,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            {"aws:SecureTransport": False},
            identity=identity,
            resource_policy=[deny],
        ).allowed
        is False
    )
    assert (
        decide(
            ROLE,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            {"aws:SecureTransport": True},
            identity=identity,
            resource_policy=[deny],
        ).allowed
        is True
    )
    assert (
        decide(
            ROLE, "s3:PutObject", "x", {}, identity=[allow(NotAction="s3:PutObject", Resource="*")]
        ).allowed
        is False
    )


def test_kms_needs_the_key_policy_and_cross_account_assume_role_needs_the_trust() -> None:
    identity = [allow(Action="kms:Decrypt", Resource="*")]
    root = Statement(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        "root",
        "key",
    )
    assert decide(ROLE, "kms:Decrypt", "k", {}, identity=identity, key_policy=[root]).allowed
    assert not decide(ROLE, "kms:Decrypt", "k", {}, identity=identity, key_policy=[]).allowed
    assert not decide(ROLE, "kms:Decrypt", "k", {}, identity=[], key_policy=[root]).allowed
    trust = Statement(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "e"}},
        },
        "trust",
        "trust",
    )
    assume = [allow(Action="sts:AssumeRole", Resource="arn:aws:iam::*:role/M")]
    assert decide(
        ROLE,
        "sts:AssumeRole",
        "arn:aws:iam::2:role/M",
        {"sts:ExternalId": "e"},
        identity=assume,
        trust_policy=[trust],
    ).allowed
    assert not decide(
        ROLE, "sts:AssumeRole", "arn:aws:iam::2:role/M", {}, identity=assume, trust_policy=[trust]
    ).allowed


def test_policy_variables_take_the_request_value_and_an_unresolved_one_never_matches() -> None:
    same_org = {"StringEquals": {"aws:ResourceOrgID": "${aws:PrincipalOrgID}"}}
    statement = allow(Action="sts:AssumeRole", Resource="*", Condition=same_org)
    inside = {"aws:PrincipalOrgID": "o-abc", "aws:ResourceOrgID": "o-abc"}
    assert statement.applies(ROLE, "sts:AssumeRole", "arn:aws:iam::2:role/M", inside)
    assert not statement.applies(
        ROLE, "sts:AssumeRole", "arn:aws:iam::2:role/M", {**inside, "aws:ResourceOrgID": "o-other"}
    )
    assert not statement.applies(
        ROLE, "sts:AssumeRole", "arn:aws:iam::2:role/M", {"aws:ResourceOrgID": "o-abc"}
    )
    own = allow(Action="s3:GetObject", Resource="arn:aws:s3:::b/${aws:PrincipalAccount}/*")
    assert own.applies(
        ROLE, "s3:GetObject", "arn:aws:s3:::b/123456789012/x", {"aws:PrincipalAccount": "123456789012"}
    )
    assert not own.applies(
        ROLE, "s3:GetObject", "arn:aws:s3:::b/999/x", {"aws:PrincipalAccount": "123456789012"}
    )
    literal = allow(Action="s3:GetObject", Resource="arn:aws:s3:::b/${*}")
    assert literal.applies(ROLE, "s3:GetObject", "arn:aws:s3:::b/*", {})
    assert not literal.applies(ROLE, "s3:GetObject", "arn:aws:s3:::b/x", {})
