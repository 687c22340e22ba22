"""One Lambda per Task of the state machine, each with a role holding only what its step does.

Sizing (timeout, memory) and handlers come from ``workflow.deployment.STEP_FUNCTIONS``, shared with
the local engine; environment variable names from ``workflow.config``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from tagwarden_cdk.bundling import ARCHITECTURE, RUNTIME
from tagwarden_cdk.common import (
    acknowledge_created_by_tagging,
    acknowledge_remediation,
    created_by_tagging,
    data_removal_policy,
    log_retention,
    remediation_statements,
)
from tagwarden_cdk.nag import acknowledge, arn_finding
from tagwarden_cdk.settings import Settings, scheduled_input
from tagwarden_cdk.storage import REPORTS_PREFIX, ReportStorage
from workflow import config, deployment, exemption_files, layout
from workflow.resources import DESCRIBE_ACTIONS

# Powertools reads these two; use workflow.config's constants once it names them.
SERVICE_NAME_VAR: Final[str] = getattr(config, "SERVICE_NAME", "POWERTOOLS_SERVICE_NAME")
LOG_LEVEL_VAR: Final[str] = getattr(config, "LOG_LEVEL", "POWERTOOLS_LOG_LEVEL")
SERVICE_NAME: Final = "tagwarden"
PAGE_SIZE: Final = 1000  # DescribeInstances MaxResults
POLICIES_PREFIX: Final = layout.DEFAULT_POLICY_KEY.rsplit("/", 1)[0] + "/"  # "policies/"
STATE_PREFIX: Final = layout.LATEST_RUN_KEY.rsplit("/", 1)[0] + "/"  # "state/"

VALIDATE: Final = "validate-input"
LIST: Final = "list-instances"
EVALUATE: Final = "evaluate-tags"
PERSIST: Final = "persist-report"
REGISTER: Final = "register-partitions"
NOTIFY: Final = "notify"
SECURITY_HUB: Final = "import-security-hub"
REMEDIATE: Final = "remediate"
PLAN_EVENTS: Final = "plan-event-run"
STORE_EVENTS: Final = deployment.STORE_EVENT_BATCH.name
# Where the Pipe's enrichment stores each batch of events, and where event runs read them.
EVENT_BATCHES_PREFIX: Final = layout.event_batch_key("x").rsplit("/", 1)[0] + "/"  # staging/event-batches/
# Exemption files (tagwarden exempt): every run reads them.
EXEMPTIONS_PREFIX: Final = exemption_files.EXEMPTIONS_PREFIX
# The Security Hub findings each policy's runs keep open.
SECURITY_HUB_STATE_PREFIX: Final = layout.securityhub_state_key("x").rsplit("/", 1)[0] + "/"
# What each policy's staged remediation remembers (since when noncompliant, each mark's date).
REMEDIATION_STATE_PREFIX: Final = layout.remediation_state_key("x").rsplit("/", 1)[0] + "/"
# The stop dates a run left, for the owners' digests: staging/<run id>/remediation/.
NOTICES_PREFIX: Final = layout.remediation_notices_key("*").rsplit("/", 1)[0] + "/"

DESCRIPTIONS: Final[Mapping[str, str]] = {
    VALIDATE: "Tagwarden: check the execution input and the tag policy, fix the run's parameters",
    LIST: "Tagwarden: list the EC2 instances of one region into S3, page by page",
    EVALUATE: "Tagwarden: evaluate one region's instances against the tag policy",
    PERSIST: "Tagwarden: merge the regions' findings into the run's report, summary and metrics",
    REGISTER: "Tagwarden: add the run's partitions to the Glue tables so Athena sees the report",
    NOTIFY: "Tagwarden: publish the run's summary and owner digests to the compliance topic",
    SECURITY_HUB: "Tagwarden: import the run's findings into AWS Security Hub (security_hub setting)",
    REMEDIATE: "Tagwarden: staged remediation, mark, stop and unmark instances (remediation setting)",
    PLAN_EVENTS: "Tagwarden events: plan an event run from a stored batch of CloudTrail events",
    STORE_EVENTS: "Tagwarden events: the Pipe's enrichment, store a batch of queued events in S3",
}

# Why each step's S3 access is a prefix and not a key (the cdk-nag IAM5 acknowledgements).
# A dry run's report stays out of the crawled reports/ tree, under its run's staging folder.
STAGED_REPORT_PREFIX: Final = f"{layout.STAGING_PREFIX}*/report/"
# What persist lists (the staged findings and target errors of a run) or reads and may find missing.
PERSIST_LISTS: Final = (layout.STAGING_PREFIX, REPORTS_PREFIX, STATE_PREFIX)

PREFIX_REASONS: Final[Mapping[str, str]] = {
    STAGED_REPORT_PREFIX: "A dry run's report and each run's drift baseline under staging/<run id>/report/: "
    "the run id is known only at run time; the key is fixed below it.",
    POLICIES_PREFIX: "Policies under policies/ in the report bucket: default.json and the custom "
    "policies users upload next to it, named at run time by the execution input's policy_uri.",
    layout.STAGING_PREFIX: "Objects under staging/ in the report bucket: keys contain the run id, account, "
    "region and page number, known only at run time; the prefix is the narrowest fixed scope.",
    REPORTS_PREFIX: "Objects under reports/ in the report bucket: keys contain the run's date and run id "
    "(dt=/run= partitions), known only at run time; the prefix is the narrowest fixed scope.",
    EVENT_BATCHES_PREFIX: "Batches of queued CloudTrail events under staging/event-batches/, one object "
    "per batch named by its time and a random id at run time; nothing else is written there.",
    EXEMPTIONS_PREFIX: "Exemption files under exemptions/ in the report bucket, one per exemption, named "
    "by tagwarden exempt (the resource and the expiry date): every run reads whichever are there.",
    SECURITY_HUB_STATE_PREFIX: "The Security Hub findings each policy's runs keep open, one object per "
    "policy (state/securityhub/<policy name>.json), named by the run's policy at run time.",
    REMEDIATION_STATE_PREFIX: "What each policy's staged remediation remembers, one object per policy "
    "(state/remediation/<policy name>.json), named by the run's policy at run time.",
    NOTICES_PREFIX: "The stop dates a run's remediation left for the owners' digests, "
    "staging/<run id>/remediation/notices.json: the run id is known only at run time.",
    STATE_PREFIX: "Objects under state/ in the report bucket: the workflow's run pointers "
    "(state/latest-run.json, and state/policy-runs/<policy sha256>.json: each policy's drift baselines); "
    "nothing else is written there.",
}

# How cdk-nag names the organization-mode member role ARN (format with the role name).
ORGANIZATION_MEMBER_ROLE_FINDING: Final = "arn:<AWS::Partition>:iam::*:role/{}"
ORGANIZATION_MEMBER_ROLE_REASON: Final = (
    "Organization mode: sts:AssumeRole on the member role in every account, because the accounts of "
    "an organisation are not known at synthesis (they are listed at run time and join or leave "
    "without a deployment). The role name is fixed, and each member role's trust policy admits only "
    "this exact list-instances role ARN (aws:PrincipalArn) with the deployment's sts:ExternalId."
)
ORGANIZATION_LIST_ACCOUNTS_REASON: Final = (
    " Organization mode adds organizations:ListAccounts, which supports no resource-level "
    "permissions either (the Service Authorization Reference lists no resource type for it); it "
    "only reads the account list the run expands to."
)

RUNTIME_REASON: Final = (
    "Python 3.13, one version below the newest Lambda runtime (3.14), on purpose: policy patterns are "
    "matched by RE2 (PyPI google-re2) so that no pattern can backtrack catastrophically, and google-re2 "
    "publishes manylinux aarch64 wheels for CPython 3.12 and 3.13 only. Python 3.13 is supported by "
    "Lambda until 2029; move up when a cp314 wheel exists (tests/infra/test_functions.py names the "
    "choice)."
)

_APPLICATION_LOG_LEVELS: Final[Mapping[str, lambda_.ApplicationLogLevel]] = {
    "DEBUG": lambda_.ApplicationLogLevel.DEBUG,
    "INFO": lambda_.ApplicationLogLevel.INFO,
    "WARN": lambda_.ApplicationLogLevel.WARN,
    "ERROR": lambda_.ApplicationLogLevel.ERROR,
}


@dataclass(frozen=True)
class WorkflowFunction:
    step: deployment.StepFunction
    function: lambda_.Function
    role: iam.Role
    log_group: logs.LogGroup


class WorkflowFunctions(Construct):
    """``functions[step name]`` for each entry of ``deployment.STEP_FUNCTIONS``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        storage: ReportStorage,
        compliance_topic: sns.Topic,
        topic_key: kms.IKey,
        glue_database: str,
        glue_tables: Sequence[str],
        code: lambda_.Code,
        layer: lambda_.ILayerVersion,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # The functions' logs hold tag values and error messages: encrypted with the stack's key.
        self._log_key = topic_key
        bucket = storage.bucket.bucket_name
        regions = ",".join(settings.regions) if settings.regions else Aws.REGION
        # The account's own (default) product: findings of this account's custom integration.
        security_hub_product = stack.format_arn(
            service="securityhub", resource="product", resource_name=f"{stack.account}/default"
        )
        common = {SERVICE_NAME_VAR: SERVICE_NAME, LOG_LEVEL_VAR: settings.log_level}
        environments: dict[str, dict[str, str]] = {
            VALIDATE: {
                config.REPORT_BUCKET: bucket,
                config.DEFAULT_POLICY_URI: storage.default_policy_uri,
                config.DEFAULT_REGIONS: regions,
                config.DEFAULT_NOTIFY: settings.notify,
                config.MAP_MAX_CONCURRENCY: str(settings.map_max_concurrency),
                # A manual execution may name targets in any mode, so the validate step always
                # knows the member role's name and when to switch to the Distributed Map.
                config.MEMBER_ROLE_NAME: settings.member_role_name,
                config.DISTRIBUTED_MAP_THRESHOLD: str(settings.distributed_map_threshold),
                config.DISTRIBUTED_MAX_CONCURRENCY: str(settings.distributed_max_concurrency),
                config.TOLERATED_FAILURE_PERCENTAGE: str(settings.tolerated_failure_percentage),
                # Organisation mode: explicit targets are checked against the organisation's accounts.
                **({config.ORGANIZATION_DEPLOYMENT: "true"} if settings.organization else {}),
                **({config.SECURITY_HUB: "true"} if settings.security_hub else {}),
                **({config.REMEDIATION: "true"} if settings.remediation else {}),
            },
            LIST: {
                config.REPORT_BUCKET: bucket,
                config.PAGE_SIZE: str(PAGE_SIZE),
                **({config.TAG_CREATED_BY: "true"} if settings.tag_created_by else {}),
                **(
                    {config.MEMBER_EXTERNAL_ID: settings.member_external_id}
                    if settings.member_external_id
                    else {}
                ),
            },
            EVALUATE: {config.REPORT_BUCKET: bucket},
            PERSIST: {
                config.REPORT_BUCKET: bucket,
                config.ENVIRONMENT: settings.environment,
                config.METRICS_NAMESPACE: config.DEFAULT_METRICS_NAMESPACE,
            },
            REGISTER: {config.GLUE_DATABASE: glue_database},
            NOTIFY: {
                config.TOPIC_ARN: compliance_topic.topic_arn,
                config.REPORT_BUCKET: bucket,
                config.ENVIRONMENT: settings.environment,
                config.CONSOLE_REGION: Aws.REGION,
                config.MAX_OWNER_DIGESTS: str(settings.max_owner_digests),
            },
            SECURITY_HUB: {
                config.REPORT_BUCKET: bucket,
                config.SECURITY_HUB_PRODUCT_ARN: security_hub_product,
            },
            REMEDIATE: {
                config.REPORT_BUCKET: bucket,
                config.REMEDIATION_ROLE_NAME: settings.remediation_role_name,
                config.MAX_STOPS_PER_RUN: str(settings.remediation_max_stops_per_run),
                **(
                    {config.MEMBER_EXTERNAL_ID: settings.member_external_id}
                    if settings.member_external_id
                    else {}
                ),
            },
            PLAN_EVENTS: {
                config.REPORT_BUCKET: bucket,
                config.DEFAULT_POLICY_URI: storage.default_policy_uri,
                # Event runs check what the scheduled scan covers, and only count the rest.
                config.DEFAULT_REGIONS: regions,
                config.EVENT_SCOPE: json.dumps(scheduled_input(settings), separators=(",", ":")),
                config.MEMBER_ROLE_NAME: settings.member_role_name,
                config.MAP_MAX_CONCURRENCY: str(settings.map_max_concurrency),
                **({config.REMEDIATION: "true"} if settings.remediation else {}),
            },
            STORE_EVENTS: {
                config.REPORT_BUCKET: bucket,
                config.DEFAULT_POLICY_URI: storage.default_policy_uri,
            },
        }
        # BatchCreatePartition and GetTable authorize on the catalog, the database and the table.
        catalog_arns = [
            stack.format_arn(service="glue", resource="catalog"),
            stack.format_arn(service="glue", resource="database", resource_name=glue_database),
            *(
                stack.format_arn(service="glue", resource="table", resource_name=f"{glue_database}/{table}")
                for table in glue_tables
            ),
        ]
        member_roles = member_role_arns(stack, settings)
        remediation_roles = (
            member_role_arns(stack, settings, settings.remediation_role_name) if settings.remediation else []
        )

        objects = storage.objects
        statements: dict[str, list[iam.PolicyStatement]] = {
            VALIDATE: [
                _allow(
                    ["s3:GetObject"], [objects(POLICIES_PREFIX), objects(EXEMPTIONS_PREFIX)], "ReadPolicies"
                ),
                # A policy_uri that does not exist must read as "does not exist" (invalid input), not
                # as AccessDenied (a failed run): S3 answers 404 rather than 403 only to a caller
                # allowed s3:ListBucket (found by the IAM check, tests/iam).
                # It also lists the exemption files (exemptions/) each run reads.
                _allow(["s3:ListBucket"], [storage.bucket.bucket_arn], "FoundOrNotFound"),
                _allow(["s3:PutObject"], [objects(layout.STAGING_PREFIX)], "WriteStaging"),
                # Organization mode expands to the organisation's accounts at run time.
                # ListAccounts supports no resource-level permissions (no resource type in the
                # Service Authorization Reference).
                *(
                    [_allow(["organizations:ListAccounts"], ["*"], "ListOrganizationAccounts")]
                    if settings.organization
                    else []
                ),
            ],
            LIST: [
                # The Describe calls support no resource-level permissions. The step only writes to
                # S3 (the IAM check found no read), and never calls DescribeRegions. Volumes,
                # snapshots, images and interfaces are listed only for policies that cover them.
                _allow(list(DESCRIBE_ACTIONS), ["*"], "DescribeEc2Resources"),
                _allow(["s3:PutObject"], [objects(layout.STAGING_PREFIX)], "WriteStaging"),
                # An event run's item names its resources in the run's manifest, not in the state.
                _allow(
                    ["s3:GetObject"],
                    [storage.bucket.arn_for_objects(layout.targets_manifest_key("*"))],
                    "ReadEventTargets",
                ),
                # Only the member roles of the deployment's targets (or of every account, in
                # organization mode: then only roles in this role's own organisation, so a target
                # outside it cannot be assumed); the member trust adds the external id and this
                # role's ARN.
                *([_assume_member_roles(member_roles, settings)] if member_roles else []),
                # Event runs name the creator of this account's resources (a targets deployment
                # scans other accounts only: their member roles tag).
                *([created_by_tagging()] if settings.tag_created_by and not settings.targets else []),
            ],
            EVALUATE: [
                _allow(["s3:GetObject"], [objects(layout.STAGING_PREFIX)], "ReadStaging"),
                # Staged findings go up with upload_fileobj: a multipart upload above 8 MiB, which
                # boto3 aborts when it fails (s3:AbortMultipartUpload; found by the IAM check).
                _allow(
                    ["s3:PutObject", "s3:AbortMultipartUpload"],
                    [objects(layout.STAGING_PREFIX)],
                    "WriteStaging",
                ),
            ],
            PERSIST: [
                _allow(
                    ["s3:GetObject"],
                    [objects(layout.STAGING_PREFIX), objects(REPORTS_PREFIX), objects(STATE_PREFIX)],
                    "ReadRunObjects",
                ),
                _allow(
                    ["s3:PutObject"],
                    [objects(REPORTS_PREFIX), objects(STATE_PREFIX), objects(STAGED_REPORT_PREFIX)],
                    "WriteReport",
                ),
                # The findings object goes up with upload_fileobj (multipart above 8 MiB), which boto3
                # aborts when it fails; found by the IAM check (tests/iam).
                _allow(
                    ["s3:AbortMultipartUpload"],
                    [objects(REPORTS_PREFIX), objects(STAGED_REPORT_PREFIX)],
                    "AbortFailedUploads",
                ),
                # Without s3:ListBucket, S3 answers a missing key (the very first run's
                # state/latest-run.json) with 403 instead of 404. For that check S3 puts the
                # requested key in the request context as s3:prefix, so scoping the listing to the
                # prefixes persist reads keeps the 404 (a test evaluates the statement for both).
                _list_bucket_under(storage.bucket.bucket_arn, PERSIST_LISTS, "FoundOrNotFound"),
            ],
            REGISTER: [
                _allow(["glue:GetTable", "glue:BatchCreatePartition"], catalog_arns, "RegisterPartitions")
            ],
            NOTIFY: [
                _allow(["sns:Publish"], [compliance_topic.topic_arn], "PublishSummary"),
                _allow(["kms:Decrypt", "kms:GenerateDataKey"], [topic_key.key_arn], "EncryptedTopic"),
                _allow(
                    ["s3:GetObject"],
                    [
                        objects(REPORTS_PREFIX),
                        objects(NOTICES_PREFIX),
                        storage.bucket.arn_for_objects(layout.owner_counts_key("*")),
                    ],
                    "ReadReport",
                ),
            ],
            REMEDIATE: [
                _allow(
                    ["s3:GetObject"],
                    [
                        storage.bucket.arn_for_objects(layout.policy_key("*")),
                        storage.bucket.arn_for_objects(layout.targets_manifest_key("*")),
                        objects(REPORTS_PREFIX),
                        objects(REMEDIATION_STATE_PREFIX),
                    ],
                    "ReadReportAndRecord",
                ),
                # The actions (the actions table) and the summary's remediation section; the
                # record; the notices for the digests.
                # The actions object goes up with upload_fileobj (multipart above 8 MiB); the record
                # and the notices are one PutObject each.
                _allow(
                    ["s3:PutObject", "s3:AbortMultipartUpload"], [objects(REPORTS_PREFIX)], "WriteActions"
                ),
                _allow(
                    ["s3:PutObject"],
                    [objects(REMEDIATION_STATE_PREFIX), objects(NOTICES_PREFIX)],
                    "WriteRecordAndNotices",
                ),
                # Whether a record exists yet: listed by its key, nothing else of the bucket.
                _list_bucket_under(storage.bucket.bucket_arn, [REMEDIATION_STATE_PREFIX], "FindRecord"),
                # This account's instances (not in a targets deployment, which scans member accounts
                # only: their remediation roles act there).
                *(remediation_statements() if settings.remediation and not settings.targets else []),
                *(
                    [_assume_member_roles(remediation_roles, settings, "AssumeRemediationRoles")]
                    if remediation_roles
                    else []
                ),
            ],
            SECURITY_HUB: [
                _allow(
                    ["s3:GetObject"],
                    [objects(REPORTS_PREFIX), objects(SECURITY_HUB_STATE_PREFIX)],
                    "ReadReportAndOpenFindings",
                ),
                _allow(["s3:PutObject"], [objects(SECURITY_HUB_STATE_PREFIX)], "RecordOpenFindings"),
                # Whether a record exists yet: listed by its key, nothing else of the bucket.
                _list_bucket_under(
                    storage.bucket.bucket_arn, [SECURITY_HUB_STATE_PREFIX], "FindOpenFindings"
                ),
                # Exactly the account's default product, and only where the deployment imports.
                *(
                    [_allow(["securityhub:BatchImportFindings"], [security_hub_product], "ImportFindings")]
                    if settings.security_hub
                    else []
                ),
            ],
            PLAN_EVENTS: [
                _allow(
                    ["s3:GetObject"],
                    [objects(POLICIES_PREFIX), objects(EVENT_BATCHES_PREFIX), objects(EXEMPTIONS_PREFIX)],
                    "ReadPolicyAndEvents",
                ),
                # The exemption files: listed by their prefix, nothing else of the bucket.
                _list_bucket_under(storage.bucket.bucket_arn, [EXEMPTIONS_PREFIX], "ListExemptionFiles"),
                _allow(["s3:PutObject"], [objects(layout.STAGING_PREFIX)], "WriteStaging"),
            ],
            STORE_EVENTS: [_allow(["s3:PutObject"], [objects(EVENT_BATCHES_PREFIX)], "StoreEventBatches")],
        }

        self.functions: dict[str, WorkflowFunction] = {}
        for step in (
            *deployment.STEP_FUNCTIONS,
            *deployment.EVENT_STEP_FUNCTIONS,
            deployment.STORE_EVENT_BATCH,
        ):
            self.functions[step.name] = self._function(
                step,
                settings=settings,
                environment={**environments[step.name], **common},
                statements=statements[step.name],
                code=code,
                layer=layer,
            )

        for name, prefix in (
            (VALIDATE, POLICIES_PREFIX),
            (VALIDATE, layout.STAGING_PREFIX),
            (LIST, layout.STAGING_PREFIX),
            (EVALUATE, layout.STAGING_PREFIX),
            (PERSIST, layout.STAGING_PREFIX),
            (PERSIST, REPORTS_PREFIX),
            (PERSIST, STATE_PREFIX),
            (PERSIST, STAGED_REPORT_PREFIX),
            (NOTIFY, REPORTS_PREFIX),
            (SECURITY_HUB, REPORTS_PREFIX),
            (SECURITY_HUB, SECURITY_HUB_STATE_PREFIX),
            (NOTIFY, NOTICES_PREFIX),
            (REMEDIATE, REPORTS_PREFIX),
            (REMEDIATE, REMEDIATION_STATE_PREFIX),
            (REMEDIATE, NOTICES_PREFIX),
            (VALIDATE, EXEMPTIONS_PREFIX),
            (PLAN_EVENTS, POLICIES_PREFIX),
            (PLAN_EVENTS, EXEMPTIONS_PREFIX),
            (PLAN_EVENTS, EVENT_BATCHES_PREFIX),
            (PLAN_EVENTS, layout.STAGING_PREFIX),
            (STORE_EVENTS, EVENT_BATCHES_PREFIX),
        ):
            acknowledge(
                self.functions[name].role,
                f"AwsSolutions-IAM5[Resource::{arn_finding(storage.bucket)}/{prefix}*]",
                PREFIX_REASONS[prefix],
            )
        acknowledge(
            self.functions[LIST].role,
            f"AwsSolutions-IAM5[Resource::{arn_finding(storage.bucket)}/{layout.targets_manifest_key('*')}]",
            "An event run's items name their resources in staging/<run id>/targets.json: the run id is "
            "known only at run time, the object name is fixed below it.",
        )
        acknowledge(
            self.functions[LIST].role,
            "AwsSolutions-IAM5[Resource::*]",
            "ec2:DescribeInstances/Volumes/Snapshots/Images/NetworkInterfaces support no resource-level "
            "permissions "
            "(the IAM service authorization reference lists no resource type for them), and X-Ray's "
            "PutTraceSegments/PutTelemetryRecords neither.",
        )
        if settings.tag_created_by and not settings.targets:
            acknowledge_created_by_tagging(self.functions[LIST].role)
        if settings.remediation and not settings.targets:
            acknowledge_remediation(self.functions[REMEDIATE].role)
        acknowledge(
            self.functions[NOTIFY].role,
            f"AwsSolutions-IAM5[Resource::{arn_finding(storage.bucket)}/{layout.owner_counts_key('*')}]",
            "The run's owner counts (for the digests) under staging/<run id>/report/: the run id is known "
            "only at run time, the object name is fixed below it.",
        )
        for key in (layout.policy_key("*"), layout.targets_manifest_key("*")):
            acknowledge(
                self.functions[REMEDIATE].role,
                f"AwsSolutions-IAM5[Resource::{arn_finding(storage.bucket)}/{key}]",
                "The run's validated policy and targets manifest under staging/<run id>/: the run id is "
                "known only at run time, the object name is fixed below it.",
            )
        if settings.remediation and settings.organization:
            acknowledge(
                self.functions[REMEDIATE].role,
                "AwsSolutions-IAM5[Resource::"
                f"{ORGANIZATION_MEMBER_ROLE_FINDING.format(settings.remediation_role_name)}]",
                ORGANIZATION_MEMBER_ROLE_REASON.replace("list-instances", "remediate"),
            )
        if settings.organization:
            any_account_role = ORGANIZATION_MEMBER_ROLE_FINDING.format(settings.member_role_name)
            acknowledge(
                self.functions[LIST].role,
                f"AwsSolutions-IAM5[Resource::{any_account_role}]",
                ORGANIZATION_MEMBER_ROLE_REASON,
            )

    def _function(
        self,
        step: deployment.StepFunction,
        *,
        settings: Settings,
        environment: dict[str, str],
        statements: list[iam.PolicyStatement],
        code: lambda_.Code,
        layer: lambda_.ILayerVersion,
    ) -> WorkflowFunction:
        construct_id = "".join(part.capitalize() for part in step.name.split("-"))
        function_name = settings.name(step.name)
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=log_retention(settings),
            encryption_key=self._log_key,
            removal_policy=data_removal_policy(settings),
        )
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Tagwarden {settings.environment}: the {step.name} step",
            # Member accounts trust the list and remediate roles by their ARN: stable names.
            role_name=function_name if step.name in (LIST, REMEDIATE) else None,
        )
        role.add_to_policy(
            _allow(["logs:CreateLogStream", "logs:PutLogEvents"], [log_group.log_group_arn], "WriteOwnLogs")
        )
        for statement in statements:
            role.add_to_policy(statement)
        function = lambda_.Function(
            self,
            construct_id,
            function_name=function_name,
            description=DESCRIPTIONS[step.name],
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=code,
            layers=[layer],
            handler=step.handler,
            timeout=Duration.seconds(step.timeout_seconds),
            memory_size=step.memory_mb,
            role=role,
            environment=environment,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=_APPLICATION_LOG_LEVELS[settings.log_level],
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            log_group=log_group,
        )
        if step.name != LIST:
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level permissions; "
                "CDK adds exactly these two for active tracing."
                + (
                    ORGANIZATION_LIST_ACCOUNTS_REASON
                    if step.name == VALIDATE and settings.organization
                    else ""
                ),
            )
        acknowledge(
            function,
            "Serverless-LambdaDLQ",
            "Only Step Functions invokes this function, synchronously (lambda:invoke): there is no "
            "asynchronous event to keep; failures go to the Task's Retry/Catch and from there to the "
            "workflow's dead-letter queue."
            if step.name != STORE_EVENTS
            else "Only the EventBridge Pipe invokes this function, synchronously, as its enrichment: a "
            "batch it cannot store stays in the events queue, whose redrive policy moves it to the "
            "events dead-letter queue after five receives.",
        )
        for rule in ("AwsSolutions-L1", "Serverless-LambdaLatestVersion"):
            acknowledge(function, rule, RUNTIME_REASON)
        return WorkflowFunction(step=step, function=function, role=role, log_group=log_group)


def member_role_arns(stack: Stack, settings: Settings, role_name: str | None = None) -> list[str]:
    """The member roles the list step (or, with ``role_name``, the remediate step) may assume: one
    per target account, every account's in organization mode, none for a single-account deployment.

    The partition is the stack's: a member role lives in the central account's partition.
    """
    accounts = ["*"] if settings.organization else [t.account_id for t in settings.targets]
    return [
        stack.format_arn(
            service="iam",
            region="",
            account=account,
            resource="role",
            resource_name=role_name or settings.member_role_name,
        )
        for account in accounts
    ]


def _assume_member_roles(
    member_roles: list[str], settings: Settings, sid: str = "AssumeMemberRoles"
) -> iam.PolicyStatement:
    statement = _allow(["sts:AssumeRole"], member_roles, sid)
    if settings.organization:
        # aws:PrincipalOrgID is this role's own organisation: no organisation id to configure,
        # and a role in an account outside it is refused by IAM whatever the input names.
        statement.add_condition("StringEquals", {"aws:ResourceOrgID": "${aws:PrincipalOrgID}"})
    return statement


def _list_bucket_under(bucket_arn: str, prefixes: Sequence[str], sid: str) -> iam.PolicyStatement:
    statement = _allow(["s3:ListBucket"], [bucket_arn], sid)
    statement.add_condition("StringLike", {"s3:prefix": [f"{prefix}*" for prefix in prefixes]})
    return statement


def _allow(actions: list[str], resources: list[str], sid: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid=sid, effect=iam.Effect.ALLOW, actions=actions, resources=resources)
