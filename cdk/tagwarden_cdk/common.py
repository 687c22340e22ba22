"""Small helpers the constructs share."""

from __future__ import annotations

from typing import Final

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs

from tagwarden_cdk.nag import acknowledge
from tagwarden_cdk.settings import LOG_RETENTION_DAYS, Settings
from workflow.events import CREATED_BY_TAG

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
