"""Trust boundaries of the stack, proven by evaluating the synthesized policies on requests.

A small evaluator of IAM's logic for Allow statements (actions and resources with wildcards,
``StringEquals``/``StringLike``/``ArnLike`` conditions where a missing key fails the condition,
policy variables) runs the statements CDK synthesized against the requests that matter:

* persist's ``s3:ListBucket`` is scoped by ``s3:prefix``, and the very first run's GetObject of
  the missing ``state/latest-run.json`` (for which S3 checks ListBucket with the key as
  ``s3:prefix``) is still allowed, so S3 answers 404, not 403;
* in organisation mode the list role may assume a member role only inside its own organisation
  (``aws:ResourceOrgID`` equal to ``${aws:PrincipalOrgID}``);
* the key lets CloudWatch use it only for this account's alarms (``aws:SourceAccount`` and
  ``aws:SourceArn``), and CloudWatch Logs only for this stack's log groups, all of which it encrypts.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from tests.infra.cfn import canonical, function_id, getatt, only, role_of
from tests.infra.conftest import TARGET_ACCOUNTS, Synthesized

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
}


def resolve(value: Any, refs: Mapping[str, str]) -> Any:
    """A template value with pseudo parameters and the given Ref/GetAtt values substituted."""
    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return PSEUDO.get(value["Ref"]) or refs.get(canonical(value), canonical(value))
        if set(value) == {"Fn::GetAtt"}:
            return refs.get(canonical(value), canonical(value))
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(str(resolve(p, refs)) for p in parts)
        return {k: resolve(v, refs) for k, v in value.items()}
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _substitute(pattern: str, context: Mapping[str, str]) -> str | None:
    """Policy variables such as ``${aws:PrincipalOrgID}``; None when one is missing."""
    while "${" in pattern:
        start = pattern.index("${")
        end = pattern.index("}", start)
        name = pattern[start + 2 : end]
        if name not in context:
            return None
        pattern = pattern[:start] + context[name] + pattern[end + 1 :]
    return pattern


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, keys in condition.items():
        for key, values in keys.items():
            if key not in context:  # no ...IfExists operators here: a missing key fails
                return False
            candidates = [_substitute(str(v), context) for v in _as_list(values)]
            actual = context[key]
            if operator == "StringEquals":
                ok = actual in candidates
            elif operator in {"StringLike", "ArnLike"}:
                ok = any(c is not None and fnmatch.fnmatchcase(actual, c) for c in candidates)
            else:
                raise AssertionError(f"operator {operator} not modelled")
            if not ok:
                return False
    return True


def allowed(
    statements: Iterable[Mapping[str, Any]], action: str, resource: str, context: Mapping[str, str]
) -> bool:
    for statement in statements:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement, statement
        if not any(fnmatch.fnmatchcase(action, a) for a in _as_list(statement["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(resource, str(r)) for r in _as_list(statement["Resource"])):
            continue
        if _condition_holds(statement.get("Condition", {}), context):
            return True
    return False


def role_statements(synthesized: Synthesized, step: str, refs: Mapping[str, str]) -> list[dict[str, Any]]:
    resources = synthesized.resources
    role = role_of(resources, function_id(resources, f"tagwarden-test-{step}"))
    statements = []
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]:
            statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return [resolve(s, refs) for s in statements]


@pytest.fixture(scope="module")
def bucket_refs(synthesized: Synthesized) -> dict[str, str]:
    bucket = only(
        synthesized.resources, "AWS::S3::Bucket", lambda p: "reports" in str(p.get("BucketName", ""))
    )
    return {canonical(getatt(bucket)): "arn:aws:s3:::reports", canonical({"Ref": bucket}): "reports"}


@pytest.mark.parametrize(
    ("request_prefix", "allowed_listing"),
    [
        ("state/latest-run.json", True),  # object_exists() of the first run's missing pointer
        ("staging/run-1/findings/", True),  # what persist lists
        ("staging/run-1/target-errors/", True),
        ("reports/runs/dt=2026-12-01/run=r1/summary.json", True),
        ("policies/", False),
        ("", False),
        (None, False),  # a listing of the whole bucket
    ],
)
def test_persist_lists_only_under_its_prefixes_and_the_first_run_still_gets_404(
    synthesized: Synthesized, bucket_refs: dict[str, str], request_prefix: str | None, allowed_listing: bool
) -> None:
    statements = role_statements(synthesized, "persist-report", bucket_refs)
    context = {} if request_prefix is None else {"s3:prefix": request_prefix}
    assert allowed(statements, "s3:ListBucket", "arn:aws:s3:::reports", context) is allowed_listing
    # And the object itself stays readable where persist reads it.
    assert allowed(statements, "s3:GetObject", "arn:aws:s3:::reports/state/latest-run.json", {})


def test_organisation_mode_assumes_member_roles_only_inside_its_own_organisation(
    organization: Synthesized,
) -> None:
    statements = role_statements(organization, "list-instances", {})
    role = "arn:aws:iam::444455556666:role/TagwardenReadOnly"
    ours = {"aws:PrincipalOrgID": "o-ours12345", "aws:ResourceOrgID": "o-ours12345"}
    theirs = {"aws:PrincipalOrgID": "o-ours12345", "aws:ResourceOrgID": "o-theirs6789"}
    standalone = {"aws:PrincipalOrgID": "o-ours12345"}  # an account in no organisation
    assert allowed(statements, "sts:AssumeRole", role, ours)
    assert not allowed(statements, "sts:AssumeRole", role, theirs)
    assert not allowed(statements, "sts:AssumeRole", role, standalone)
    assert not allowed(statements, "sts:AssumeRole", "arn:aws:iam::444455556666:role/Admin", ours)


def test_targets_mode_assumes_exactly_the_named_accounts_roles(targets: Synthesized) -> None:
    statements = role_statements(targets, "list-instances", {})
    assert allowed(
        statements, "sts:AssumeRole", f"arn:aws:iam::{TARGET_ACCOUNTS[0]}:role/SecOpsTagScanner", {}
    )
    assert not allowed(statements, "sts:AssumeRole", "arn:aws:iam::999999999999:role/SecOpsTagScanner", {})


def key_policy(synthesized: Synthesized) -> list[dict[str, Any]]:
    key = only(synthesized.resources, "AWS::KMS::Key", lambda p: True)
    return [resolve(s, {}) for s in synthesized.resources[key]["Properties"]["KeyPolicy"]["Statement"]]


def service_statements(statements: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [s for s in statements if s.get("Principal") == {"Service": service}]


def test_cloudwatch_may_use_the_key_only_for_this_accounts_alarms(synthesized: Synthesized) -> None:
    statements = service_statements(key_policy(synthesized), "cloudwatch.amazonaws.com")
    assert statements
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:tagwarden-test-dead-letters"
    ours = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": alarm}
    assert allowed(statements, "kms:GenerateDataKey", "*", ours)
    assert allowed(statements, "kms:Decrypt", "*", ours)
    other = "999999999999"
    assert not allowed(
        statements,
        "kms:GenerateDataKey",
        "*",
        {"aws:SourceAccount": other, "aws:SourceArn": alarm.replace(ACCOUNT, other)},
    )
    assert not allowed(statements, "kms:GenerateDataKey", "*", {})  # no source named: refused
    assert not allowed(
        statements,
        "kms:Decrypt",
        "*",
        {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:x"},
    )


def test_every_log_group_is_encrypted_with_the_key_which_admits_only_those_log_groups(
    synthesized: Synthesized,
) -> None:
    resources = synthesized.resources
    key = only(resources, "AWS::KMS::Key", lambda p: True)
    groups = {
        str(resolve(r["Properties"].get("LogGroupName", logical_id), {})): r["Properties"].get("KmsKeyId")
        for logical_id, r in resources.items()
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    assert any(name.startswith("/aws/vendedlogs/states/") for name in groups)  # execution data
    # The eight workflow functions, and the event workflow's planner and the Pipe's enrichment.
    assert sum(name.startswith("/aws/lambda/tagwarden-test-") for name in groups) == 10
    unencrypted = sorted(name for name, kms_key in groups.items() if kms_key != getatt(key))
    # The one exception: the log group of CDK's BucketDeployment handler, which copies the shipped
    # default policy at deployment and logs no scan data (its generated name cannot be in the key policy).
    assert [name.startswith("StorageDefaultPolicyDeploymentLogs") for name in unencrypted] == [True]
    logs = service_statements(key_policy(synthesized), f"logs.{REGION}.amazonaws.com")
    for name, kms_key in groups.items():
        if kms_key != getatt(key):
            continue
        arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"
        assert allowed(logs, "kms:GenerateDataKey", "*", {"kms:EncryptionContext:aws:logs:arn": arn}), name
    stranger = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/someone-else"
    assert not allowed(logs, "kms:Decrypt", "*", {"kms:EncryptionContext:aws:logs:arn": stranger})
