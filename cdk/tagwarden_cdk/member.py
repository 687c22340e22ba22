"""The member stack: the read-only role the central list step assumes in every scanned account.

``cd cdk && npx aws-cdk deploy -c deploy=member -c central_account_id=... -c member_external_id=...``
deploys it into one account; ``../.venv/bin/python app.py -c ...`` (or ``npx aws-cdk synth``) writes
``cdk.out/TagwardenMember.template.json``, which can be uploaded as a CloudFormation StackSet with
service-managed permissions to an organisational unit (docs/deploy.md, "Organisation-wide
scanning: the member role").

The role, ``<member_role_name>`` (``TagwardenReadOnly``): a fixed name, so the central stack can
compute ``arn:<partition>:iam::<member account>:role/<member_role_name>``; it may call
``ec2:DescribeInstances`` and, for policies that cover them, ``DescribeVolumes``,
``DescribeSnapshots``, ``DescribeImages`` and ``DescribeNetworkInterfaces``, and nothing else (the
IAM check, ``make iam-check``, proves it is all the list step calls).

Its trust: the central account (``arn:<partition>:iam::<central>:root``) under two conditions,
``aws:PrincipalArn`` equal to the central list-instances role's ARN and ``sts:ExternalId`` equal to
``member_external_id``. Why the account with ``aws:PrincipalArn`` rather than the role ARN as
principal: IAM replaces a role principal by the role's unique id when the policy is saved, so
(1) creating the member role fails while the central role does not exist yet (a StackSet rolled out
before the central stack, a central stack torn down and redeployed), and (2) a central role that is
replaced (renamed, stack recreated) silently stops matching in every member account until each
member stack is updated. The condition compares the ARN at request time: exactly one role name in
exactly one account, with neither failure mode. Both forms need a *stable* central role name; the
default assumes ``tagwarden-<environment>-list-instances``.

Event forwarding (unless ``-c forward_events=false``): a rule on the account's default bus sends
the EC2 API call events the central event workflow checks (successful launches, creations and tag
changes: ``workflow.events.EVENT_PATTERN``) to the central stack's event bus,
``central_event_bus_arn``, with a role EventBridge assumes that may ``events:PutEvents`` on that bus
alone (EventBridge requires a role for a bus in another account of an organisation). The central
bus admits only the organisation's accounts. Deployed in every region it scans (a StackSet with
several regions), each region's events go to the one central bus, which may be in another region.

The template has no parameters, no assets and no bootstrap-version rule, and ``cdk deploy`` uses the
caller's credentials without a CDK deploy role (``LegacyStackSynthesizer``): it deploys into
accounts that were never CDK-bootstrapped, by hand or as a StackSet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from aws_cdk import (
    App,
    Aws,
    CfnCondition,
    CfnOutput,
    CfnResource,
    Duration,
    Fn,
    LegacyStackSynthesizer,
    Stack,
)
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from tagwarden_cdk.common import (
    acknowledge_created_by_tagging,
    acknowledge_remediation,
    created_by_tagging,
    remediation_statements,
)
from tagwarden_cdk.events import event_pattern
from tagwarden_cdk.main import cdk_json_context
from tagwarden_cdk.nag import acknowledge, register_nag_packs
from tagwarden_cdk.settings import (
    CONTEXT_KEYS,
    DEFAULT_MEMBER_ROLE_NAME,
    MEMBER_CONTEXT_KEYS,
    MemberSettings,
    SettingsError,
)
from workflow.resources import DESCRIBE_ACTIONS

DEPLOY_CONTEXT: Final = "deploy"
CENTRAL: Final = "central"
MEMBER: Final = "member"
DEPLOY_KINDS: Final = (CENTRAL, MEMBER)

MEMBER_STACK_NAME: Final = "TagwardenMember"
ROLE_ARN_OUTPUT: Final = "MemberRoleArn"
REMEDIATION_ROLE_ARN_OUTPUT: Final = "RemediationRoleArn"
FORWARDING_RULE_NAME: Final = "tagwarden-forward-ec2-api-calls"
POLICY_NAME: Final = "DescribeEc2Resources"
# DescribeInstances, and DescribeVolumes/Snapshots/Images/NetworkInterfaces for policies that cover
# them (workflow.resources): read-only, and nothing else.
MEMBER_ACTIONS: Final = DESCRIBE_ACTIONS
MAX_SESSION: Final = Duration.hours(1)
RESOURCE_STAR_REASON: Final = (
    "ec2:DescribeInstances, DescribeVolumes, DescribeSnapshots, DescribeImages and "
    "DescribeNetworkInterfaces support no resource-level permissions (the IAM service authorization "
    "reference lists no resource type or condition key that scopes them); the policy allows these "
    "read-only actions and nothing else."
)


def member_stack_name(settings: MemberSettings) -> str:
    """``TagwardenMember``; ``TagwardenMember-<role name>`` for another role name, so two roles
    (for two central environments, say) can be deployed into one account side by side.

    >>> from tagwarden_cdk.settings import MemberSettings
    >>> member_stack_name(MemberSettings("111122223333", "x", "0" * 16, member_role_name="Tw.Prod_Scan"))
    'TagwardenMember-Tw-Prod-Scan'
    """
    if settings.member_role_name == DEFAULT_MEMBER_ROLE_NAME:
        return MEMBER_STACK_NAME
    return f"{MEMBER_STACK_NAME}-{re.sub(r'[^A-Za-z0-9-]', '-', settings.member_role_name)}"


def central_list_role_arn(settings: MemberSettings) -> str:
    """The ARN the trust's ``aws:PrincipalArn`` condition must equal (the partition may be a token)."""
    partition = settings.central_partition or Aws.PARTITION
    return (
        f"arn:{partition}:iam::{settings.central_account_id}:role"
        f"{settings.central_role_path}{settings.central_list_role_name}"
    )


class TagwardenMemberStack(Stack):
    """The read-only role of one member account; deploy per account or upload as a StackSet."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: MemberSettings,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("synthesizer", LegacyStackSynthesizer())
        kwargs.setdefault("analytics_reporting", False)  # no CDKMetadata resource in the StackSet template
        kwargs.setdefault(
            "description",
            "Tagwarden member account: read-only role for the central EC2 tag compliance scans",
        )
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        self.central_role_arn = central_list_role_arn(settings)

        trust = iam.AccountPrincipal(settings.central_account_id).with_conditions(
            {
                "StringEquals": {"sts:ExternalId": settings.member_external_id},
                "ArnEquals": {"aws:PrincipalArn": self.central_role_arn},
            }
        )
        self.role = iam.Role(
            self,
            "ReadOnlyRole",
            role_name=settings.member_role_name,
            assumed_by=trust,
            description=(
                f"Tagwarden: lets {settings.central_list_role_name} in account "
                f"{settings.central_account_id} list this account's EC2 instances"
            ),
            max_session_duration=MAX_SESSION,
            inline_policies={
                POLICY_NAME: iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            sid=POLICY_NAME,
                            effect=iam.Effect.ALLOW,
                            actions=list(MEMBER_ACTIONS),
                            resources=["*"],
                        ),
                        # Event runs name the creator of resources that carry no CreatedBy.
                        *([created_by_tagging()] if settings.tag_created_by else []),
                    ]
                )
            },
        )
        acknowledge(self.role, "AwsSolutions-IAM5[Resource::*]", RESOURCE_STAR_REASON)
        if settings.tag_created_by:
            acknowledge_created_by_tagging(self.role)
        # One StackSet in every region for the regional forwarding rule; the global roles once.
        self._in_role_region = (
            CfnCondition(
                self,
                "InMemberRoleRegion",
                expression=Fn.condition_equals(Aws.REGION, settings.member_role_region),
            )
            if settings.member_role_region
            else None
        )
        self._global_role(
            self.role,
            ROLE_ARN_OUTPUT,
            "The role the central list-instances step assumes (with the external id)",
        )
        self.remediation_role: iam.Role | None = None
        if settings.remediation_role:
            self._remediation_role(settings)
        self.forwarding_rule: events.Rule | None = None
        self.forwarding_role: iam.Role | None = None
        if settings.central_event_bus_arn:
            self._forward_events(settings.central_event_bus_arn)

    def _global_role(self, role: iam.Role, output_id: str, description: str) -> None:
        """The role's ARN as an output; both in the member role's region only, when it has one."""
        output = CfnOutput(self, output_id, value=role.role_arn, description=description)
        if self._in_role_region is not None:
            resource = role.node.default_child
            assert isinstance(resource, CfnResource)
            resource.cfn_options.condition = self._in_role_region
            output.condition = self._in_role_region

    def _remediation_role(self, settings: MemberSettings) -> None:
        """The optional role the central Remediate step assumes: the same trust as the read-only
        role, for the central remediate role's ARN, and only the mark, its stop and the checks."""
        partition = settings.central_partition or Aws.PARTITION
        remediate_arn = (
            f"arn:{partition}:iam::{settings.central_account_id}:role"
            f"{settings.central_role_path}{settings.central_remediate_role_name}"
        )
        self.remediation_role = iam.Role(
            self,
            "RemediationRole",
            role_name=settings.remediation_role_name,
            assumed_by=iam.AccountPrincipal(settings.central_account_id).with_conditions(
                {
                    "StringEquals": {"sts:ExternalId": settings.member_external_id},
                    "ArnEquals": {"aws:PrincipalArn": remediate_arn},
                }
            ),
            description=(
                f"Tagwarden: lets {settings.central_remediate_role_name} in account "
                f"{settings.central_account_id} mark, stop and unmark this account's noncompliant instances"
            ),
            max_session_duration=MAX_SESSION,
            inline_policies={"StagedRemediation": iam.PolicyDocument(statements=remediation_statements())},
        )
        acknowledge_remediation(self.remediation_role)
        self._global_role(
            self.remediation_role,
            REMEDIATION_ROLE_ARN_OUTPUT,
            "The role the central remediate step assumes (with the external id)",
        )

    def _forward_events(self, bus_arn: str) -> None:
        # Only EventBridge, and only for this account's rules (the confused-deputy guard AWS
        # recommends for service roles).
        self.forwarding_role = iam.Role(
            self,
            "EventForwardingRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com").with_conditions(
                {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="Tagwarden: lets this account's EC2 API call events reach the central event bus",
            max_session_duration=MAX_SESSION,
        )
        central_bus = events.EventBus.from_event_bus_arn(self, "CentralEventBus", bus_arn)
        self.forwarding_rule = events.Rule(
            self,
            "ForwardEc2ApiCalls",
            rule_name=FORWARDING_RULE_NAME,
            description="Tagwarden: successful EC2 launches, creations and tag changes to the central bus",
            event_pattern=event_pattern(),
            targets=[events_targets.EventBus(central_bus, role=self.forwarding_role)],
        )
        acknowledge(
            self.forwarding_rule,
            "Serverless-EventBusDLQ",
            "An event the central bus refuses is lost to the event path only: the central stack's "
            "scheduled scans still check every resource; the rule's FailedInvocations metric shows it here.",
        )


def _merged_context(context: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**cdk_json_context(), **(context or {})}


def deploy_kind(context: Mapping[str, Any] | None = None, *, outdir: str | None = None) -> str:
    """``central`` (default) or ``member``, from context ``deploy`` (the CLI's ``-c`` included).

    A throw-away App reads the context exactly as the real one will (cdk.json, then ``context``,
    then the CLI's ``-c`` values); nothing is synthesized.
    """
    value = App(context=_merged_context(context), outdir=outdir).node.try_get_context(DEPLOY_CONTEXT)
    kind = CENTRAL if value is None or str(value).strip() == "" else str(value).strip().lower()
    if kind not in DEPLOY_KINDS:
        raise SettingsError(f"context {DEPLOY_CONTEXT}: {value!r} is not one of {', '.join(DEPLOY_KINDS)}")
    return kind


def member_settings_of(app: App) -> MemberSettings:
    keys = {*MEMBER_CONTEXT_KEYS, "environment", "member_role_name", "member_external_id"}
    assert keys - set(MEMBER_CONTEXT_KEYS) <= set(CONTEXT_KEYS)
    return MemberSettings.from_context({key: app.node.try_get_context(key) for key in keys})


def build_member_app(
    context: Mapping[str, Any] | None = None,
    *,
    outdir: str | None = None,
    nag: bool = True,
    builtin_validation: bool = True,
) -> tuple[App, TagwardenMemberStack]:
    """An app with only the member stack, always environment-agnostic (one template for every account)."""
    app = App(
        context=_merged_context(context),
        outdir=outdir,
        builtin_cloud_formation_validation=builtin_validation,
    )
    settings = member_settings_of(app)
    stack = TagwardenMemberStack(app, member_stack_name(settings), settings=settings)
    if nag:
        register_nag_packs(app)
    return app, stack
