"""Every AWS call the workflow makes is allowed by the synthesized policies, and every grant is used.

The scenarios of ``tests.iam.scenarios`` run on the embedded engine with every call recorded (about
25 s); each synthesized template (single account, targets, organisation, with the member stack) is
then evaluated against them. ``make iam-check`` prints the same result as a table.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.iam.check import Deployment, Result, principal_label, run_check, summary_line
from tests.iam.recorder import Recorder, dump, load
from tests.iam.report import MODES, recorded, run_everything
from tests.iam.scenarios import ORGANIZATION, SINGLE, TARGETS
from tests.iam.synth import ORGANIZATION_ID


@pytest.fixture(scope="module")
def results() -> list[tuple[Result, Deployment]]:
    found, deployments = run_everything()
    return list(zip(found, deployments, strict=True))


def _explain(result: Result, d: Deployment) -> str:
    return "\n".join(
        f"{principal_label(d, c.principal_key)}: {c.request.action} on {c.request.resource} "
        f"[{c.scenario}; {c.origin}]: {decision.reason}"
        for c, decision in result.denied
    )


def test_every_call_the_workflow_makes_is_allowed_in_every_deployment_mode(
    results: list[tuple[Result, Deployment]],
) -> None:
    for result, d in results:
        assert result.checks, f"{result.template}: no call was checked"
        assert not result.denied, f"{result.template}:\n{_explain(result, d)}"


def test_every_granted_action_and_resource_is_exercised_or_has_a_written_reason(
    results: list[tuple[Result, Deployment]],
) -> None:
    for result, d in results:
        unused = [
            f"{principal_label(d, g.principal_key)}: {g.action} on {g.resource}" for g in result.unexercised
        ]
        assert not unused, (
            f"{result.template}: granted but never used, and no reason in tests/iam/reasons.py:\n"
            + "\n".join(unused)
        )


def test_every_action_resource_and_condition_key_exists_in_the_service_authorization_reference(
    results: list[tuple[Result, Deployment]],
) -> None:
    for result, _ in results:
        assert not result.problems, f"{result.template}:\n" + "\n".join(result.problems)


def test_the_scenarios_reach_every_kind_of_principal(results: list[tuple[Result, Deployment]]) -> None:
    by_mode = {r.template: (r, d) for r, d in results}
    result, d = by_mode[ORGANIZATION]
    principals = {principal_label(d, c.principal_key).split(" (")[0] for c, _ in result.checks}
    for step in (
        "validate-input",
        "list-instances",
        "evaluate-tags",
        "persist-report",
        "remediate",
        "register-partitions",
        "notify",
    ):
        assert f"role {step}" in principals
    assert {
        "role state machine",
        "role scheduler",
        f"member role {d.member_role_name}",
        f"member role {d.remediation_role_name}",
    } <= principals
    services = {c.principal.service for c, _ in result.checks if c.principal.kind == "service"}
    assert services >= {
        "lambda.amazonaws.com",
        "states.amazonaws.com",
        "scheduler.amazonaws.com",
        "events.amazonaws.com",
        "cloudwatch.amazonaws.com",
    }
    assert "denied" in summary_line([result]) and result.grants


# -- the check fails when it should -------------------------------------------------------------


def _mutated(mode: str, mutate: Any) -> Result:
    templates, member, observations = recorded()
    central = copy.deepcopy(templates[mode])
    member_copy = copy.deepcopy(member)
    mutate(central, member_copy)
    return run_check(Deployment(mode, central, member_copy), observations)


def _policy_statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Policy" and logical_id.startswith(role_prefix):
            return resource["Properties"]["PolicyDocument"]["Statement"]  # type: ignore[no-any-return]
    raise AssertionError(role_prefix)


def test_a_role_one_action_short_is_reported_with_the_call_that_would_fail() -> None:
    def drop_list_bucket(central: dict[str, Any], member: dict[str, Any]) -> None:
        statements = _policy_statements(central, "FunctionsPersistReportRoleDefaultPolicy")
        statements[:] = [s for s in statements if s.get("Sid") != "FoundOrNotFound"]

    result = _mutated(SINGLE, drop_list_bucket)
    denied = {(c.request.action, c.origin) for c, _ in result.denied}
    # Persist lists its staged findings and asks whether the pointer exists with ListObjectsV2
    # (s3:ListBucket); it never depends on S3's hidden ListBucket check behind a 404.
    assert denied == {("s3:ListBucket", "s3.ListObjectsV2")}


def test_without_list_bucket_a_missing_policy_uri_would_be_403_not_invalid_input() -> None:
    def drop_list_bucket(central: dict[str, Any], member: dict[str, Any]) -> None:
        statements = _policy_statements(central, "FunctionsValidateInputRoleDefaultPolicy")
        statements[:] = [s for s in statements if s.get("Sid") != "FoundOrNotFound"]

    denied = {(c.request.action, c.origin) for c, _ in _mutated(SINGLE, drop_list_bucket).denied}
    assert denied == {
        ("s3:ListBucket", "S3 checks s3:ListBucket to answer 404 rather than 403 for a missing key"),
        ("s3:ListBucket", "s3.ListObjectsV2"),  # the same grant lists the exemption files
    }


def test_a_kms_grant_missing_for_the_encrypted_topic_is_reported() -> None:
    def drop_kms(central: dict[str, Any], member: dict[str, Any]) -> None:
        statements = _policy_statements(central, "FunctionsNotifyRoleDefaultPolicy")
        statements[:] = [s for s in statements if s.get("Sid") != "EncryptedTopic"]

    result = _mutated(SINGLE, drop_kms)
    assert {c.request.action for c, _ in result.denied} == {"kms:GenerateDataKey", "kms:Decrypt"}


def test_a_member_trust_without_the_external_id_condition_value_denies_assume_role() -> None:
    def other_external_id(central: dict[str, Any], member: dict[str, Any]) -> None:
        for resource in member["Resources"].values():
            if resource["Type"] == "AWS::IAM::Role" and "RoleName" in resource["Properties"]:
                for statement in resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
                    statement["Condition"]["StringEquals"]["sts:ExternalId"] = "someone-elses-external-id"

    result = _mutated(ORGANIZATION, other_external_id)
    assert {c.request.action for c, _ in result.denied} == {"sts:AssumeRole"}


def test_a_central_bus_admitting_another_organisation_refuses_the_member_accounts_forwards() -> None:
    def other_organisation(central: dict[str, Any], member: dict[str, Any]) -> None:
        for resource in central["Resources"].values():
            if resource["Type"] == "AWS::Events::EventBusPolicy":
                resource["Properties"]["Statement"]["Condition"]["StringEquals"]["aws:PrincipalOrgID"] = (
                    "o-someoneelse"
                )

    templates, member, observations = recorded()
    central = copy.deepcopy(templates[ORGANIZATION])
    other_organisation(central, member)
    d = Deployment(ORGANIZATION, central, member)
    d.organization_id = ORGANIZATION_ID  # the member accounts' own organisation
    result = run_check(d, observations)
    assert {(c.request.action, c.origin) for c, _ in result.denied} == {
        ("events:PutEvents", "the member's forwarding rule puts the event on the central bus")
    }


def test_a_lambda_invoke_grant_on_a_version_instead_of_the_function_is_reported() -> None:
    def qualified(central: dict[str, Any], member: dict[str, Any]) -> None:
        for statement in _policy_statements(central, "OrchestrationStateMachineRoleDefaultPolicy"):
            if statement.get("Sid") == "InvokeStepFunctions":
                statement["Resource"] = [{"Fn::Join": [":", [r, "1"]]} for r in statement["Resource"]]

    result = _mutated(SINGLE, qualified)
    assert {c.request.action for c, _ in result.denied} == {"lambda:InvokeFunction"}


def test_an_unused_grant_without_a_reason_is_reported() -> None:
    def extra(central: dict[str, Any], member: dict[str, Any]) -> None:
        statements = _policy_statements(central, "FunctionsEvaluateTagsRoleDefaultPolicy")
        statements.append(
            {
                "Effect": "Allow",
                "Action": "sns:Publish",
                "Resource": {
                    "Ref": next(k for k, r in central["Resources"].items() if r["Type"] == "AWS::SNS::Topic")
                },
            }
        )

    result = _mutated(SINGLE, extra)
    assert [
        (g.action, g.principal_key.startswith("FunctionsEvaluateTagsRole")) for g in result.unexercised
    ] == [("sns:Publish", True)]


def test_an_action_that_does_not_exist_is_reported() -> None:
    def typo(central: dict[str, Any], member: dict[str, Any]) -> None:
        _policy_statements(central, "FunctionsEvaluateTagsRoleDefaultPolicy").append(
            {"Effect": "Allow", "Action": "s3:HeadObject", "Resource": "*"}
        )

    result = _mutated(SINGLE, typo)
    assert any("s3:HeadObject is no action" in p for p in result.problems)


def test_every_mode_was_checked(results: list[tuple[Result, Deployment]]) -> None:
    assert tuple(r.template for r, _ in results) == MODES


def test_conditions_that_scope_assume_role_to_the_organisation_and_the_key_to_alarms_still_allow_every_call() -> (
    None
):
    def scoped(central: dict[str, Any], member: dict[str, Any]) -> None:
        for statement in _policy_statements(central, "FunctionsListInstancesRoleDefaultPolicy"):
            if statement.get("Sid") == "AssumeMemberRoles":
                statement["Condition"] = {"StringEquals": {"aws:ResourceOrgID": "${aws:PrincipalOrgID}"}}
        for resource in central["Resources"].values():
            if resource["Type"] == "AWS::KMS::Key":
                for statement in resource["Properties"]["KeyPolicy"]["Statement"]:
                    if statement.get("Sid") == "CloudWatchAlarmsPublishToEncryptedTopics":
                        statement["Condition"] = {
                            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                            "ArnLike": {
                                "aws:SourceArn": {
                                    "Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"
                                }
                            },
                        }

    result = _mutated(ORGANIZATION, scoped)
    assert not result.denied and not result.unexercised

    def other_account(central: dict[str, Any], member: dict[str, Any]) -> None:
        for resource in central["Resources"].values():
            if resource["Type"] == "AWS::KMS::Key":
                for statement in resource["Properties"]["KeyPolicy"]["Statement"]:
                    if statement.get("Sid") == "CloudWatchAlarmsPublishToEncryptedTopics":
                        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": "999999999999"}}

    denied = _mutated(ORGANIZATION, other_account).denied
    assert {c.principal.service for c, _ in denied} == {"cloudwatch.amazonaws.com"}


def test_persists_prefix_scoped_list_bucket_covers_the_first_run_because_it_never_relies_on_a_404() -> None:
    """Persist's s3:ListBucket is scoped by s3:prefix (hardening), and the first run's missing
    pointer is asked with an explicit ListObjectsV2 of that key: nothing hangs on S3's undocumented
    404 check. A scope that leaves out state/ is caught on the pointer's listing."""

    def without_state(central: dict[str, Any], member: dict[str, Any]) -> None:
        for statement in _policy_statements(central, "FunctionsPersistReportRoleDefaultPolicy"):
            if statement.get("Sid") == "FoundOrNotFound":
                assert "s3:prefix" in statement["Condition"]["StringLike"]
                statement["Condition"] = {"StringLike": {"s3:prefix": ["staging/*", "reports/*"]}}

    assert _mutated(SINGLE, lambda central, member: None).denied == []
    denied = _mutated(SINGLE, without_state).denied
    assert {(c.request.action, c.origin) for c, _ in denied} == {("s3:ListBucket", "s3.ListObjectsV2")}
    assert {c.request.context.get("s3:prefix") for c, _ in denied} >= {"state/latest-run.json"}


# -- staged remediation ---------------------------------------------------------------------------


def _remediation_role(member: dict[str, Any]) -> dict[str, Any]:
    return next(
        r
        for r in member["Resources"].values()
        if r["Type"] == "AWS::IAM::Role" and r["Properties"].get("RoleName") == "TagwardenRemediation"
    )


def _stop_statements(central: dict[str, Any], member: dict[str, Any]) -> list[dict[str, Any]]:
    """The StopMarked statements of the central remediate role and the member remediation role."""
    statements = [
        s
        for s in _policy_statements(central, "FunctionsRemediateRoleDefaultPolicy")
        if s.get("Sid") == "StopMarked"
    ]
    for policy in _remediation_role(member)["Properties"]["Policies"]:
        statements += [s for s in policy["PolicyDocument"]["Statement"] if s.get("Sid") == "StopMarked"]
    return statements


def test_stop_instances_is_decided_on_the_instances_own_tags_when_the_call_was_made() -> None:
    """The recorder keeps each instance's tags at call time, so the StopMarked condition (the mark
    must be on the instance) is evaluated, not assumed: a grant conditioned on another tag, or on
    another value of the mark, refuses every stop, the central role's and the member role's."""

    def condition(value: dict[str, Any]) -> Any:
        def mutate(central: dict[str, Any], member: dict[str, Any]) -> None:
            statements = _stop_statements(central, member)
            assert len(statements) == 2
            for statement in statements:
                statement["Condition"] = value

        return mutate

    the_mark = "ec2:ResourceTag/tagwarden:marked-for-stop"
    stop_day = {"StringEquals": {the_mark: "2026-12-08"}}  # the date every stopped instance's mark names
    assert not _mutated(ORGANIZATION, condition(stop_day)).denied
    for refusing in (
        {"Null": {"ec2:ResourceTag/someone-elses-mark": "false"}},
        {"StringEquals": {the_mark: "2020-01-01"}},
    ):
        denied = _mutated(ORGANIZATION, condition(refusing)).denied
        assert {(c.request.action, c.origin) for c, _ in denied} == {
            ("ec2:StopInstances", "ec2.StopInstances")
        }
        assert {c.principal.arn.rsplit("/", 1)[-1].split("-Functions")[0] for c, _ in denied} == {
            "TagwardenRemediation",  # a member account's instance, through its remediation role
            "tagwarden-test-remediate",  # an instance of the deployment's own account
        }


def test_tag_changes_are_decided_on_the_instances_own_tags_too() -> None:
    """CreateTags carries the instances' own tags too: a remediation grant that refuses instances
    with an Owner tag refuses the unmark of the fixed instances (they have one), not the marks."""

    def no_owner(central: dict[str, Any], member: dict[str, Any]) -> None:
        for statement in _policy_statements(central, "FunctionsRemediateRoleDefaultPolicy"):
            if statement.get("Sid") == "MarkForStop":
                statement["Condition"]["Null"]["ec2:ResourceTag/Owner"] = "true"

    denied = _mutated(SINGLE, no_owner).denied
    assert {(c.request.action, c.origin) for c, _ in denied} == {("ec2:DeleteTags", "ec2.DeleteTags")}


def test_the_member_remediation_role_admits_only_the_central_remediate_role() -> None:
    def list_role_instead(central: dict[str, Any], member: dict[str, Any]) -> None:
        role = _remediation_role(member)
        trust = json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
        assert "role/tagwarden-test-remediate" in trust
        role["Properties"]["AssumeRolePolicyDocument"] = json.loads(
            trust.replace("role/tagwarden-test-remediate", "role/tagwarden-test-list-instances")
        )

    for mode in (TARGETS, ORGANIZATION):
        denied = _mutated(mode, list_role_instead).denied
        assert {(c.request.action, c.request.resource.rsplit("/", 1)[-1]) for c, _ in denied} == {
            ("sts:AssumeRole", "TagwardenRemediation")
        }


def test_a_recording_keeps_the_member_role_and_the_instances_tags() -> None:
    """What the functional suites record (dump, load) keeps which member role made a call and the
    instances' tags at call time."""
    _, _, observations = recorded()
    again = Recorder()
    load(json.loads(json.dumps(dump(observations.recorder))), again)
    assert again.calls == observations.recorder.calls
    assert {c.caller.role for c in again.calls if c.caller.kind == "member"} == {
        "TagwardenReadOnly",
        "TagwardenRemediation",
    }
    stops = [c for c in again.calls if c.operation == "StopInstances"]
    assert stops and all(
        "tagwarden:marked-for-stop" in c.resource_tags[i] for c in stops for i in c.params["InstanceIds"]
    )
