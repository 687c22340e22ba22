"""Small helpers the constructs share."""

from __future__ import annotations

from typing import Final

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs

from tagwarden_cdk.settings import LOG_RETENTION_DAYS, Settings

# RetentionDays members in the order of LOG_RETENTION_DAYS (jsii enums carry names, not numbers).
_RETENTION: Final = dict(
    zip(LOG_RETENTION_DAYS, [m for m in logs.RetentionDays if m.name != "INFINITE"], strict=True)
)


def log_retention(settings: Settings) -> logs.RetentionDays:
    return _RETENTION[settings.log_retention_days]


def data_removal_policy(settings: Settings) -> RemovalPolicy:
    """For what holds data (buckets, log groups, the key): kept in prod, destroyed in dev."""
    return RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY
