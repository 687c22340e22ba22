"""The report bucket, its access-log bucket and the default policy object."""

from __future__ import annotations

from typing import Final

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from tagwarden_cdk.bundling import REPO_ROOT
from tagwarden_cdk.common import data_removal_policy, log_retention
from tagwarden_cdk.settings import Settings
from workflow import layout

DEFAULT_POLICY_SOURCE: Final = REPO_ROOT / "policies" / "baseline.json"
ATHENA_RESULTS_PREFIX: Final = "athena-results/"
REPORTS_PREFIX: Final = "reports/"
INFREQUENT_ACCESS_AFTER: Final = Duration.days(30)
GLACIER_AFTER: Final = Duration.days(90)
STAGING_EXPIRATION: Final = Duration.days(30)
ATHENA_RESULTS_EXPIRATION: Final = Duration.days(30)
ACCESS_LOG_EXPIRATION: Final = Duration.days(365)


class ReportStorage(Construct):
    """``bucket`` holds policies, staging, reports, state and Athena results (see ``workflow.layout``)."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings) -> None:
        super().__init__(scope, construct_id)
        removal = data_removal_policy(settings)
        auto_delete = not settings.retain_data

        # The log destination logs nowhere itself (cdk-nag's S1 exempts log destination buckets).
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=f"{settings.name('access-logs')}-{Aws.ACCOUNT_ID}-{Aws.REGION}",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only encryption S3 server access logs accept
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", enabled=True, expiration=ACCESS_LOG_EXPIRATION),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads",
                    enabled=True,
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
            removal_policy=removal,
            auto_delete_objects=auto_delete,
        )

        self.bucket = s3.Bucket(
            self,
            "Reports",
            bucket_name=f"{settings.name('reports')}-{Aws.ACCOUNT_ID}-{Aws.REGION}",
            versioned=True,
            # SSE-S3 keeps Athena users, the crawler and every step free of key grants; the data are
            # tag inventories, and the CMK protects the notification topics instead.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="reports-bucket/",
            lifecycle_rules=[
                # Glacier Instant Retrieval, not Flexible Retrieval: Athena skips objects it cannot read
                # at once, and the trend queries read the whole history.
                s3.LifecycleRule(
                    id="reports-to-infrequent-access-then-glacier",
                    enabled=True,
                    prefix=REPORTS_PREFIX,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=INFREQUENT_ACCESS_AFTER,
                        ),
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=GLACIER_AFTER,
                        ),
                    ],
                ),
                s3.LifecycleRule(
                    id="expire-staging",
                    enabled=True,
                    prefix=layout.STAGING_PREFIX,
                    expiration=STAGING_EXPIRATION,
                ),
                s3.LifecycleRule(
                    id="expire-athena-results",
                    enabled=True,
                    prefix=ATHENA_RESULTS_PREFIX,
                    expiration=ATHENA_RESULTS_EXPIRATION,
                ),
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    enabled=True,
                    noncurrent_version_expiration=Duration.days(settings.noncurrent_version_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                    expired_object_delete_marker=True,
                ),
            ],
            removal_policy=removal,
            auto_delete_objects=auto_delete,
        )

        # The default policy, from policies/ in this repository. prune=False keeps the custom
        # policies users upload next to it under policies/.
        self.default_policy = s3deploy.BucketDeployment(
            self,
            "DefaultPolicy",
            sources=[
                s3deploy.Source.data(
                    layout.DEFAULT_POLICY_KEY.removeprefix("policies/"),
                    DEFAULT_POLICY_SOURCE.read_text(encoding="utf-8"),
                )
            ],
            destination_bucket=self.bucket,
            destination_key_prefix="policies/",
            prune=False,
            retain_on_delete=settings.retain_data,
            content_type="application/json",
            memory_limit=256,
            log_group=logs.LogGroup(
                self,
                "DefaultPolicyDeploymentLogs",
                retention=log_retention(settings),
                removal_policy=RemovalPolicy.DESTROY,
            ),
        )

    @property
    def default_policy_uri(self) -> str:
        return f"s3://{self.bucket.bucket_name}/{layout.DEFAULT_POLICY_KEY}"

    def objects(self, prefix: str) -> str:
        """The ARN pattern of the objects under ``prefix`` (which ends with '/')."""
        return self.bucket.arn_for_objects(f"{prefix}*")
