"""Small helpers the constructs share."""

from __future__ import annotations

from typing import Final

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs

from tagwarden_cdk.nag import acknowledge
from tagwarden_cdk.settings import LOG_RETENTION_DAYS, Settings
from workflow.events import CREATED_BY_TAG
from workflow.policy.document import MARK_KEY

# RetentionDays members in the order of LOG_RETENTION_DAYS (jsii enums carry names, not numbers).
_RETENTION: Final = dict(
    zip(LOG_RETENTION_DAYS, [m for m in logs.RetentionDays if m.name != "INFINITE"], strict=True)
)


def log_retention(settings: Settings) -> logs.RetentionDays:
    return _RETENTION[settings.log_retention_days]


def data_removal_policy(settings: Settings) -> RemovalPolicy:
    """For what holds data (buckets, log groups, the key): kept in prod, destroyed in dev."""
    return RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY


# The EC2 resources an event run may tag, by ARN: snapshots and images carry no account.
_TAGGABLE: Final = ("instance", "volume", "network-interface")
_TAGGABLE_WITHOUT_ACCOUNT: Final = ("snapshot", "image")
CREATED_BY_TAGGING_REASON: Final = (
    "ec2:CreateTags on every instance, volume, snapshot, image and network interface of the account, "
    f"but only the one key {CREATED_BY_TAG} (aws:TagKeys) and only where the resource has none "
    "(Null ec2:ResourceTag): an event run attributes resources it did not create, so it cannot name them."
)


def acknowledge_created_by_tagging(role: iam.IRole) -> None:
    """cdk-nag's wildcard findings of :func:`created_by_tagging`'s resources, with the reason."""
    for kind in _TAGGABLE:
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:*:<AWS::AccountId>:{kind}/*]",
            CREATED_BY_TAGGING_REASON,
        )
    for kind in _TAGGABLE_WITHOUT_ACCOUNT:
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:*::{kind}/*]",
            CREATED_BY_TAGGING_REASON,
        )


def created_by_tagging(sid: str = "TagCreatedBy") -> iam.PolicyStatement:
    """``ec2:CreateTags`` for exactly the ``CreatedBy`` key, on resources that have none.

    Not ``ec2:CreateAction``: that key is only in the request when tags are given with the call
    that creates the resource; an event run tags afterwards, so it would refuse every call.
    """
    resources = [
        *(f"arn:{Aws.PARTITION}:ec2:*:{Aws.ACCOUNT_ID}:{kind}/*" for kind in _TAGGABLE),
        *(f"arn:{Aws.PARTITION}:ec2:*::{kind}/*" for kind in _TAGGABLE_WITHOUT_ACCOUNT),
    ]
    return iam.PolicyStatement(
        sid=sid,
        effect=iam.Effect.ALLOW,
        actions=["ec2:CreateTags"],
        resources=resources,
        conditions={
            "ForAllValues:StringEquals": {"aws:TagKeys": [CREATED_BY_TAG]},
            "Null": {f"ec2:ResourceTag/{CREATED_BY_TAG}": "true"},
        },
    )


# Staged remediation (a policy's remediation): the account's instances, by ARN.
_INSTANCES: Final = f"arn:{Aws.PARTITION}:ec2:*:{Aws.ACCOUNT_ID}:instance/*"
REMEDIATION_REASON: Final = (
    "Staged remediation acts on any instance of the account a run finds noncompliant, so it cannot "
    f"name them: ec2:CreateTags/DeleteTags only for the one key {MARK_KEY} (aws:TagKeys), "
    "ec2:StopInstances only on instances that carry that mark (ec2:ResourceTag), "
    "ec2:DescribeInstanceAttribute (stop protection) read-only; ec2:DescribeInstances supports no "
    "resource-level permissions."
)


def remediation_statements() -> list[iam.PolicyStatement]:
    """What the Remediate step does to one account's instances, and nothing else.

    ``Null aws:TagKeys false`` with ``ForAllValues``: a request naming no tag key (which
    ``ForAllValues`` alone would let through) is refused.
    """
    return [
        iam.PolicyStatement(
            sid="MarkForStop",
            effect=iam.Effect.ALLOW,
            actions=["ec2:CreateTags", "ec2:DeleteTags"],
            resources=[_INSTANCES],
            conditions={
                "ForAllValues:StringEquals": {"aws:TagKeys": [MARK_KEY]},
                "Null": {"aws:TagKeys": "false"},
            },
        ),
        iam.PolicyStatement(
            sid="StopMarked",
            effect=iam.Effect.ALLOW,
            actions=["ec2:StopInstances"],
            resources=[_INSTANCES],
            conditions={"Null": {f"ec2:ResourceTag/{MARK_KEY}": "false"}},
        ),
        iam.PolicyStatement(
            sid="CheckBeforeStop",
            effect=iam.Effect.ALLOW,
            actions=["ec2:DescribeInstanceAttribute"],
            resources=[_INSTANCES],
        ),
        iam.PolicyStatement(
            sid="DescribeInstances",
            effect=iam.Effect.ALLOW,
            actions=["ec2:DescribeInstances"],
            resources=["*"],
        ),
    ]


def acknowledge_remediation(role: iam.IRole) -> None:
    """cdk-nag's wildcard findings of :func:`remediation_statements`, with the reason."""
    for resource in ("arn:<AWS::Partition>:ec2:*:<AWS::AccountId>:instance/*", "*"):
        acknowledge(role, f"AwsSolutions-IAM5[Resource::{resource}]", REMEDIATION_REASON)
