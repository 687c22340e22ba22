"""The member stack (``-c deploy=member``) and the organisation-wide scanning context keys.

The member stack has no assets, so it is synthesized in a fraction of a second: once with cdk-nag
and CloudFormation validation on (``member``), once with every acknowledgement off (``audit``).
What the central keys change in the central stack is tested in test_multi_account.py.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_cdk import assertions
from cfnlint.api import ManualArgs, lint_file
from tagwarden_cdk import functions
from tagwarden_cdk.main import cdk_json_context
from tagwarden_cdk.member import (
    MEMBER_ACTIONS,
    MEMBER_STACK_NAME,
    POLICY_NAME,
    RESOURCE_STAR_REASON,
    ROLE_ARN_OUTPUT,
    TagwardenMemberStack,
    build_member_app,
    deploy_kind,
)
from tagwarden_cdk.nag import AUDIT_CONTEXT
from tagwarden_cdk.settings import (
    CONTEXT_KEYS,
    DEFAULT_MEMBER_ROLE_NAME,
    MEMBER_CONTEXT_KEYS,
    MemberSettings,
    Settings,
    SettingsError,
    Target,
)

from tests.infra import cfn
from tests.infra.conftest import CDK_DIR
from workflow.events import EVENT_PATTERN

CENTRAL_ACCOUNT = "111122223333"
EXTERNAL_ID = "tagwarden-3f9c1a7e5b2d4c6e"
CENTRAL_BUS_ARN = f"arn:aws:events:eu-west-1:{CENTRAL_ACCOUNT}:event-bus/tagwarden-dev-events"
MEMBER_CONTEXT: dict[str, Any] = {
    "deploy": "member",
    "central_account_id": CENTRAL_ACCOUNT,
    "member_external_id": EXTERNAL_ID,
    "central_event_bus_arn": CENTRAL_BUS_ARN,
    "@aws-cdk/core:failSynthOnValidationErrors": False,
}
DEPLOY_DOC = CDK_DIR.parent / "docs" / "deploy.md"
MEMBER_SECTION = "## Organisation-wide scanning"
PARTITION = {"Ref": "AWS::Partition"}


@dataclass(frozen=True)
class Member:
    stack: TagwardenMemberStack
    outdir: Path
    template: assertions.Template
    json: dict[str, Any]

    @property
    def role_id(self) -> str:
        return cfn.only(self.json["Resources"], "AWS::IAM::Role", lambda p: "RoleName" in p)

    @property
    def role(self) -> dict[str, Any]:
        role: dict[str, Any] = self.json["Resources"][self.role_id]["Properties"]
        return role

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.outdir / "validation-report.json").read_text())
        return report


def _synthesize_member(outdir: Path, context: dict[str, Any], *, checks: bool = True) -> Member:
    app, stack = build_member_app(context, outdir=str(outdir), nag=checks, builtin_validation=checks)
    assembly = app.synth()
    return Member(
        stack=stack,
        outdir=outdir,
        template=assertions.Template.from_stack(stack),
        json=assembly.get_stack_artifact(stack.artifact_id).template,
    )


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Member:
    return _synthesize_member(tmp_path_factory.mktemp("cdk-member"), dict(MEMBER_CONTEXT))


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Member:
    """The same stack with every acknowledgement off: what cdk-nag finds."""
    return _synthesize_member(
        tmp_path_factory.mktemp("cdk-member-audit"), {**MEMBER_CONTEXT, AUDIT_CONTEXT: "true"}
    )


def _violations(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (construct.get("constructPath", ""), violation["ruleName"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        for construct in violation.get("violatingConstructs", violation.get("violatingResources", []))
    }


# --- the template -------------------------------------------------------------------------------


def test_the_stack_is_the_read_only_role_with_a_fixed_name_and_a_one_hour_session(member: Member) -> None:
    assert member.stack.stack_name == MEMBER_STACK_NAME
    assert sorted(r["Type"] for r in member.json["Resources"].values()) == [
        "AWS::Events::Rule",
        "AWS::IAM::Policy",
        "AWS::IAM::Role",
        "AWS::IAM::Role",
    ]
    member.template.has_resource_properties(
        "AWS::IAM::Role", {"RoleName": DEFAULT_MEMBER_ROLE_NAME, "MaxSessionDuration": 3600}
    )


def test_the_forwarding_rule_sends_the_checked_calls_to_the_central_bus_with_a_role_for_that_bus_only(
    member: Member,
) -> None:
    resources = member.json["Resources"]
    rule_id = cfn.only(resources, "AWS::Events::Rule", lambda _: True)
    rule = resources[rule_id]["Properties"]
    assert rule["EventPattern"] == json.loads(json.dumps(EVENT_PATTERN))
    assert "EventBusName" not in rule  # the account's default bus, where CloudTrail's events arrive
    (target,) = rule["Targets"]
    assert target["Arn"] == CENTRAL_BUS_ARN
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    trust = resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
        }
    ]
    policies = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and r["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    assert policies == [[{"Action": "events:PutEvents", "Effect": "Allow", "Resource": CENTRAL_BUS_ARN}]]


def test_with_tag_created_by_the_role_may_also_tag_only_that_key_on_untagged_resources(
    tmp_path: Path,
) -> None:
    tagging = _synthesize_member(tmp_path, {**MEMBER_CONTEXT, "tag_created_by": "true"}, checks=True)
    statements = tagging.role["Policies"][0]["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in statements] == [POLICY_NAME, "TagCreatedBy"]
    assert statements[1]["Action"] == "ec2:CreateTags"
    assert statements[1]["Condition"] == {
        "ForAllValues:StringEquals": {"aws:TagKeys": ["CreatedBy"]},
        "Null": {"ec2:ResourceTag/CreatedBy": "true"},
    }
    assert len(statements[1]["Resource"]) == 5
    assert _violations(tagging.report()) == set()  # its wildcards are acknowledged with the reason


def test_without_forwarding_the_stack_is_the_read_only_role_alone(tmp_path: Path) -> None:
    context = {k: v for k, v in MEMBER_CONTEXT.items() if k != "central_event_bus_arn"}
    quiet = _synthesize_member(tmp_path, {**context, "forward_events": "false"}, checks=False)
    assert [r["Type"] for r in quiet.json["Resources"].values()] == ["AWS::IAM::Role"]


def test_the_role_may_describe_the_ec2_family_and_nothing_else(member: Member) -> None:
    assert "ManagedPolicyArns" not in member.role
    assert member.role["Policies"] == [
        {
            "PolicyName": POLICY_NAME,
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": POLICY_NAME,
                        "Effect": "Allow",
                        "Action": [
                            "ec2:DescribeImages",
                            "ec2:DescribeInstances",
                            "ec2:DescribeNetworkInterfaces",
                            "ec2:DescribeSnapshots",
                            "ec2:DescribeVolumes",
                        ],
                        "Resource": "*",
                    }
                ],
            },
        }
    ]
    # The repository's allow-list view: no other statement anywhere in the template either.
    assert cfn.grants(member.json["Resources"], member.role_id) == cfn.expected((MEMBER_ACTIONS, ["*"]))
    # Besides it, only the forwarding role's one statement (tested with the forwarding rule).
    others = [
        statement
        for logical_id, statement in cfn.all_policy_statements(member.json["Resources"])
        if logical_id != member.role_id
    ]
    assert others == [{"Action": "events:PutEvents", "Effect": "Allow", "Resource": CENTRAL_BUS_ARN}]


def test_only_the_central_list_role_with_the_external_id_can_assume_it(member: Member) -> None:
    assert member.role["AssumeRolePolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {
                    "AWS": {"Fn::Join": ["", ["arn:", PARTITION, f":iam::{CENTRAL_ACCOUNT}:root"]]}
                },
                "Condition": {
                    "StringEquals": {"sts:ExternalId": EXTERNAL_ID},
                    "ArnEquals": {
                        "aws:PrincipalArn": {
                            "Fn::Join": [
                                "",
                                [
                                    "arn:",
                                    PARTITION,
                                    f":iam::{CENTRAL_ACCOUNT}:role/tagwarden-dev-list-instances",
                                ],
                            ]
                        }
                    },
                },
            }
        ],
    }


def test_the_default_central_role_name_is_the_list_functions_name_of_the_environment() -> None:
    """What functions.py must name the list role (``settings.name(LIST)``) for the default trust to match."""
    for environment in ("dev", "prod"):
        settings = MemberSettings.from_context(
            {
                "environment": environment,
                "central_account_id": CENTRAL_ACCOUNT,
                "member_external_id": EXTERNAL_ID,
                "forward_events": "false",
            }
        )
        assert settings.central_list_role_name == Settings(environment=environment).name(functions.LIST)


def test_a_full_central_role_arn_is_trusted_as_given(tmp_path: Path) -> None:
    arn = "arn:aws-cn:iam::444455556666:role/platform/tagwarden-prod-list-instances"
    context = {
        "central_list_role_arn": arn,
        "member_external_id": EXTERNAL_ID,
        "member_role_name": "SecOpsTagScanner",
        "forward_events": False,
    }
    synthesized = _synthesize_member(tmp_path, context, checks=False)
    (statement,) = synthesized.role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Condition"]["ArnEquals"] == {"aws:PrincipalArn": arn}
    assert statement["Principal"] == {
        "AWS": {"Fn::Join": ["", ["arn:", PARTITION, ":iam::444455556666:root"]]}
    }
    assert synthesized.role["RoleName"] == "SecOpsTagScanner"
    assert synthesized.stack.stack_name == f"{MEMBER_STACK_NAME}-SecOpsTagScanner"  # beside the default one


def test_the_output_is_the_role_arn(member: Member) -> None:
    member.template.has_output(ROLE_ARN_OUTPUT, {"Value": cfn.getatt(member.role_id)})
    assert set(member.json["Outputs"]) == {ROLE_ARN_OUTPUT}


def test_the_template_can_be_uploaded_as_a_stackset(member: Member) -> None:
    """No parameters, no bootstrap-version rule, no assets, no CDKMetadata: it deploys anywhere as is."""
    assert set(member.json) == {"Description", "Resources", "Outputs"}
    assert not (member.outdir / f"{MEMBER_STACK_NAME}.assets.json").exists()
    # `cdk deploy` uses the caller's credentials: no CDK deploy role, no bootstrap stack needed.
    manifest = json.loads((member.outdir / "manifest.json").read_text())
    properties = manifest["artifacts"][MEMBER_STACK_NAME]["properties"]
    assert "assumeRoleArn" not in properties
    assert "requiresBootstrapStackVersion" not in properties


# --- quality bars -------------------------------------------------------------------------------


def test_cdk_nag_and_cloudformation_validation_report_no_unacknowledged_finding(member: Member) -> None:
    assert _violations(member.report()) == set()


def test_the_two_acknowledgements_hide_exactly_the_resource_star_and_rule_dlq_findings(audit: Member) -> None:
    assert _violations(audit.report()) == {
        (f"{MEMBER_STACK_NAME}/ReadOnlyRole/Resource", "AwsSolutions-IAM5[Resource::*]"),
        (f"{MEMBER_STACK_NAME}/ForwardEc2ApiCalls/Resource", "Serverless-EventBusDLQ"),
    }
    assert "no resource-level permissions" in RESOURCE_STAR_REASON


def test_cfn_lint_is_clean(member: Member) -> None:
    matches = lint_file(member.outdir / member.stack.template_file, config=ManualArgs(regions=["us-east-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches] == []


# --- member settings: errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (
            {"central_account_id": CENTRAL_ACCOUNT},
            r"context member_external_id: required for the member stack",
        ),
        ({"central_account_id": CENTRAL_ACCOUNT, "member_external_id": ""}, r"member_external_id: required"),
        (
            {"central_account_id": CENTRAL_ACCOUNT, "member_external_id": "short"},
            r"context member_external_id: must be 16 to 1224 characters .*got 5 characters",
        ),
        (
            {"central_account_id": CENTRAL_ACCOUNT, "member_external_id": "has spaces in it, sixteen+"},
            r"context member_external_id: must be",
        ),
        ({"member_external_id": EXTERNAL_ID}, r"context central_account_id: required"),
        ({"central_account_id": "1234", "member_external_id": EXTERNAL_ID}, r"12-digit AWS account id"),
        (
            {
                "central_account_id": CENTRAL_ACCOUNT,
                "member_external_id": EXTERNAL_ID,
                "member_role_name": "a b",
            },
            r"context member_role_name: 'a b' is not an IAM role name",
        ),
        (
            {"central_list_role_arn": "arn:aws:iam::1:role/x", "member_external_id": EXTERNAL_ID},
            r"context central_list_role_arn: .* is not an IAM role ARN",
        ),
        (
            {
                "central_list_role_arn": f"arn:aws:iam::{CENTRAL_ACCOUNT}:role/x",
                "central_account_id": CENTRAL_ACCOUNT,
                "member_external_id": EXTERNAL_ID,
            },
            r"context central_account_id: give either central_list_role_arn or central_account_id",
        ),
        (
            {"central_account_id": CENTRAL_ACCOUNT, "member_external_id": EXTERNAL_ID},
            r"context central_event_bus_arn: required to forward .* or give -c forward_events=false",
        ),
        (
            {
                "central_account_id": CENTRAL_ACCOUNT,
                "member_external_id": EXTERNAL_ID,
                "central_event_bus_arn": "arn:aws:sqs:eu-west-1:111122223333:q",
            },
            r"context central_event_bus_arn: .* is not an event bus ARN",
        ),
        (
            {
                "central_account_id": CENTRAL_ACCOUNT,
                "member_external_id": EXTERNAL_ID,
                "central_event_bus_arn": "arn:aws:events:eu-west-1:999999999999:event-bus/tagwarden-dev-events",
            },
            r"context central_event_bus_arn: the bus is in account 999999999999, not in the central account",
        ),
        (
            {
                "central_account_id": CENTRAL_ACCOUNT,
                "member_external_id": EXTERNAL_ID,
                "forward_events": "maybe",
            },
            r"context forward_events: expected true or false",
        ),
    ],
)
def test_bad_member_context_stops_synthesis_naming_the_key(context: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        build_member_app(context)


@pytest.fixture
def entry_point(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.setenv("CDK_OUTDIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location("tagwarden_cdk_member_entry_point", CDK_DIR / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_app_without_an_external_id_exits_with_2_and_says_why(
    entry_point: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert entry_point.main(argv=["-c", "deploy=member", "-c", f"central_account_id={CENTRAL_ACCOUNT}"]) == 2
    assert "error: context member_external_id: required for the member stack" in capsys.readouterr().err


def test_app_with_deploy_member_synthesizes_only_the_member_stack(
    entry_point: ModuleType, tmp_path: Path
) -> None:
    argv = [
        "-c",
        "deploy=member",
        "-c",
        f"central_account_id={CENTRAL_ACCOUNT}",
        "-c",
        f"member_external_id={EXTERNAL_ID}",
        "-c",
        f"central_event_bus_arn={CENTRAL_BUS_ARN}",
    ]
    assert entry_point.main(argv=argv) == 0
    assert sorted(p.name for p in tmp_path.glob("*.template.json")) == [f"{MEMBER_STACK_NAME}.template.json"]


def test_deploy_context_selects_the_app_and_defaults_to_the_central_stack(tmp_path: Path) -> None:
    assert deploy_kind({}, outdir=str(tmp_path)) == "central"
    assert deploy_kind({"deploy": "central"}, outdir=str(tmp_path)) == "central"
    assert deploy_kind({"deploy": "Member"}, outdir=str(tmp_path)) == "member"
    with pytest.raises(SettingsError, match=r"context deploy: 'members' is not one of central, member"):
        deploy_kind({"deploy": "members"}, outdir=str(tmp_path))


# --- central settings: targets, organization, member_role_name, member_external_id ---------------


def test_the_new_central_keys_default_to_single_account_scanning() -> None:
    settings = Settings.from_context({})
    assert (settings.targets, settings.organization) == ((), False)
    assert (settings.member_role_name, settings.member_external_id) == ("TagwardenReadOnly", None)
    assert Settings.from_context(cdk_json_context()) == Settings()


def test_targets_parse_alike_from_the_command_line_and_cdk_json() -> None:
    from_cli = Settings.from_context(
        {
            "targets": '[{"account_id": "444455556666", "regions": ["eu-west-1", "us-east-1"]},'
            ' {"account_id": "777788889999"}]',
            "member_external_id": EXTERNAL_ID,
            "member_role_name": "SecOpsTagScanner",
        }
    )
    from_json = Settings.from_context(
        {
            "targets": [
                {"account_id": "444455556666", "regions": "eu-west-1,us-east-1"},
                {"account_id": 777788889999, "regions": []},
            ],
            "member_external_id": EXTERNAL_ID,
            "member_role_name": "SecOpsTagScanner",
        }
    )
    assert from_cli == from_json
    assert from_cli.targets == (
        Target("444455556666", ("eu-west-1", "us-east-1")),
        Target("777788889999", ()),
    )
    organization = Settings.from_context(
        {"organization": "true", "member_external_id": EXTERNAL_ID, "organization_id": "o-a1b2c3d4e5"}
    )
    assert organization.organization is True
    assert organization.targets == ()


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"targets": "not json"}, r"context targets: not a JSON list"),
        ({"targets": '{"account_id": "444455556666"}'}, r"context targets: expected a JSON list"),
        ({"targets": ["444455556666"]}, r"context targets\[0\]: expected an object"),
        ({"targets": [{"regions": ["eu-west-1"]}]}, r"context targets\[0\]: account_id is missing"),
        ({"targets": [{"account_id": "4444"}]}, r"context targets\[0\].account_id: '4444' is not a 12-digit"),
        (
            {"targets": [{"account_id": "444455556666", "region": "eu-west-1"}]},
            r"context targets\[0\]: unknown field\(s\) region",
        ),
        (
            {"targets": [{"account_id": "444455556666", "regions": ["mars-1"]}]},
            r"context targets\[0\].regions: 'mars-1' is not a region",
        ),
        (
            {"targets": [{"account_id": "444455556666"}, {"account_id": "444455556666"}]},
            r"context targets\[1\]: account 444455556666 is listed twice",
        ),
        ({"organization": "maybe"}, r"context organization: expected true or false"),
        (
            {
                "organization": True,
                "targets": [{"account_id": "444455556666"}],
                "member_external_id": EXTERNAL_ID,
            },
            r"context targets: give either targets or organization=true",
        ),
        ({"organization": True}, r"context member_external_id: required with targets or organization"),
        (
            {"organization": True, "member_external_id": EXTERNAL_ID},
            r"context organization_id: required with organization=true",
        ),
        (
            {"organization": True, "member_external_id": EXTERNAL_ID, "organization_id": "r-abcd"},
            r"context organization_id: 'r-abcd' is not an organisation id",
        ),
        ({"targets": [{"account_id": "444455556666"}]}, r"context member_external_id: required"),
        ({"member_external_id": "too-short"}, r"context member_external_id: must be 16 to 1224"),
        ({"member_role_name": "x" * 65}, r"context member_role_name: .* is not an IAM role name"),
    ],
)
def test_bad_central_values_name_their_key(context: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_context(context)


# --- docs ----------------------------------------------------------------------------------------


def test_the_member_section_documents_every_key() -> None:
    guide = DEPLOY_DOC.read_text(encoding="utf-8")
    assert MEMBER_SECTION in guide
    section = guide.split(MEMBER_SECTION, 1)[1]
    new_central_keys = (
        "targets",
        "organization",
        "member_role_name",
        "member_external_id",
        "distributed_map_threshold",
        "distributed_max_concurrency",
        "tolerated_failure_percentage",
    )
    assert set(new_central_keys) <= set(CONTEXT_KEYS)
    for key in (*new_central_keys, *MEMBER_CONTEXT_KEYS, "deploy"):
        assert f"`{key}`" in section, key


def test_with_a_member_role_region_one_template_deploys_to_every_region_and_creates_the_role_once(
    tmp_path: Path,
) -> None:
    synthesized = _synthesize_member(
        tmp_path, {**MEMBER_CONTEXT, "member_role_region": "eu-west-1"}, checks=False
    )
    resources = synthesized.json["Resources"]
    assert synthesized.json["Conditions"] == {
        "InMemberRoleRegion": {"Fn::Equals": [{"Ref": "AWS::Region"}, "eu-west-1"]}
    }
    assert resources[synthesized.role_id]["Condition"] == "InMemberRoleRegion"
    assert synthesized.json["Outputs"][ROLE_ARN_OUTPUT]["Condition"] == "InMemberRoleRegion"
    # The forwarding rule and its (unnamed) role are in every region's stack.
    unconditional = {r["Type"] for r in resources.values() if "Condition" not in r}
    assert unconditional == {"AWS::Events::Rule", "AWS::IAM::Role", "AWS::IAM::Policy"}


def test_with_remediation_role_a_second_role_trusts_only_the_central_remediate_role_and_may_only_mark_and_stop(
    tmp_path: Path,
) -> None:
    staged = _synthesize_member(
        tmp_path,
        {**MEMBER_CONTEXT, "remediation_role": "true", "member_role_region": "eu-west-1"},
        checks=True,
    )
    resources = staged.json["Resources"]
    remediation_id = cfn.only(
        resources, "AWS::IAM::Role", lambda p: p.get("RoleName") == "TagwardenRemediation"
    )
    role = resources[remediation_id]
    statement = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Condition"] == {
        "StringEquals": {"sts:ExternalId": EXTERNAL_ID},
        "ArnEquals": {
            "aws:PrincipalArn": {
                "Fn::Join": ["", ["arn:", PARTITION, f":iam::{CENTRAL_ACCOUNT}:role/tagwarden-dev-remediate"]]
            }
        },
    }
    assert cfn.grants(resources, remediation_id) == cfn.remediation_grants()
    # Global, like the read-only role: created in one region of a multi-region StackSet.
    assert role["Condition"] == "InMemberRoleRegion"
    assert staged.json["Outputs"]["RemediationRoleArn"]["Condition"] == "InMemberRoleRegion"
    assert _violations(staged.report()) == set()


def test_without_remediation_role_the_stack_has_no_remediation_role(member: Member) -> None:
    names = [
        r["Properties"].get("RoleName")
        for r in member.json["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
    ]
    assert "TagwardenRemediation" not in names and "RemediationRoleArn" not in member.json["Outputs"]
