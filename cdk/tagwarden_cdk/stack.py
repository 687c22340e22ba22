"""``Tagwarden-<environment>``: everything one deployment of the scan needs."""

from __future__ import annotations

from typing import Any, Final

from aws_cdk import Aws, CfnOutput, Duration, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from tagwarden_cdk.analytics import Analytics
from tagwarden_cdk.bundling import LambdaAssets
from tagwarden_cdk.common import data_removal_policy
from tagwarden_cdk.events import EventWorkflow
from tagwarden_cdk.functions import WorkflowFunctions
from tagwarden_cdk.monitoring import Monitoring
from tagwarden_cdk.nag import acknowledge, acknowledge_all, arn_finding
from tagwarden_cdk.orchestration import Orchestration
from tagwarden_cdk.settings import Settings
from tagwarden_cdk.storage import ReportStorage
from workflow.deployment import EVENT_STEP_FUNCTIONS, STEP_FUNCTIONS, STORE_EVENT_BATCH
from workflow.notifications import KIND_ATTRIBUTE, SUMMARY_KIND
from workflow.stack import OUTPUT_FIELDS

# The CLI finds the deployment through these output keys (workflow/stack.py reads them): one list.
OUTPUT_KEYS: Final = tuple(OUTPUT_FIELDS)
DEAD_LETTER_RETENTION: Final = Duration.days(14)


class TagwardenStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        assets: LambdaAssets,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        Tags.of(self).add("tagwarden:environment", settings.environment)

        # One customer managed key for what needs one: SNS topics that CloudWatch alarms publish to
        # (the AWS managed SNS key cannot grant CloudWatch) and the log groups (the functions', the
        # state machine's execution data, the crawler's).
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{settings.name('key')}",
            description=f"Tagwarden {settings.environment}: notification topics and log groups",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=data_removal_policy(settings),
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToEncryptedTopics",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                # Only on behalf of this account's alarms: CloudWatch is a service every account
                # shares, and without these a confused deputy could use the key for another's alarm.
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {
                        "aws:SourceArn": (
                            f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
                        )
                    },
                },
            )
        )

        self.storage = ReportStorage(self, "Storage", settings=settings)
        self.analytics = Analytics(self, "Analytics", settings=settings, storage=self.storage, key=self.key)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsEncryptLogs",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": [
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:{name}"
                            for name in (
                                self.analytics.crawler_log_group_name,
                                *(
                                    f"/aws/lambda/{settings.name(step.name)}"
                                    for step in (*STEP_FUNCTIONS, *EVENT_STEP_FUNCTIONS, STORE_EVENT_BATCH)
                                ),
                                f"/aws/vendedlogs/states/{settings.name('scan')}",
                                f"/aws/vendedlogs/states/{settings.name('events')}",
                            )
                        ]
                    }
                },
            )
        )

        self.compliance_topic = sns.Topic(
            self,
            "ComplianceTopic",
            topic_name=settings.name("compliance"),
            display_name=f"Tagwarden compliance ({settings.environment})",
            master_key=self.key,
            enforce_ssl=True,
        )
        self.operations_topic = sns.Topic(
            self,
            "OperationsTopic",
            topic_name=settings.name("operations"),
            display_name=f"Tagwarden operations ({settings.environment})",
            master_key=self.key,
            enforce_ssl=True,
        )
        for topic, emails in (
            (self.compliance_topic, settings.email_subscriptions),
            (self.operations_topic, settings.operations_email_subscriptions),
        ):
            for email in emails:
                topic.add_subscription(
                    subscriptions.EmailSubscription(
                        email,
                        # The run's summary only: owner digests go to their owners' subscriptions.
                        filter_policy=(
                            {KIND_ATTRIBUTE: sns.SubscriptionFilter.string_filter(allowlist=[SUMMARY_KIND])}
                            if topic is self.compliance_topic
                            else None
                        ),
                    )
                )
            if emails:
                acknowledge(
                    topic,
                    "Serverless-SNSRedrivePolicy",
                    "Email subscriptions only: SNS retries email delivery itself, and every message is "
                    "reproducible (compliance summaries are stored in S3, alarms stay visible in "
                    "CloudWatch), "
                    "so a queue of undelivered emails would hold nothing worth redriving.",
                )

        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=settings.name("dead-letters"),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            acknowledge(
                self.dead_letter_queue,
                rule,
                "This queue is the workflow's dead-letter queue (fed by the Catch states, the failed-"
                "execution rule and the schedule). Nothing consumes it automatically, so no message can "
                "fail processing and a second-level DLQ would stay empty.",
            )

        assets_layer = assets.layer(self, "DependenciesLayer", layer_name=settings.name("dependencies"))
        self.workflow_functions = WorkflowFunctions(
            self,
            "Functions",
            settings=settings,
            storage=self.storage,
            compliance_topic=self.compliance_topic,
            topic_key=self.key,
            glue_database=self.analytics.database_name,
            glue_tables=sorted(self.analytics.tables),
            code=assets.code(),
            layer=assets_layer,
        )
        functions = self.workflow_functions.functions
        self.orchestration = Orchestration(
            self,
            "Orchestration",
            settings=settings,
            functions=functions,
            dead_letter_queue=self.dead_letter_queue,
            storage=self.storage,
            log_key=self.key,
        )
        self.event_workflow = EventWorkflow(
            self,
            "Events",
            settings=settings,
            functions=functions,
            dead_letter_queue=self.dead_letter_queue,
            log_key=self.key,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            settings=settings,
            state_machine=self.orchestration.state_machine,
            functions=functions,
            dead_letter_queue=self.dead_letter_queue,
            failed_executions_rule=self.orchestration.failed_executions_rule,
            operations_topic=self.operations_topic,
            state_machine_log_group_name=self.orchestration.log_group.log_group_name,
            event_workflow=self.event_workflow,
        )
        self._acknowledge_cdk_internals()

        outputs = {
            "StateMachineArn": (self.orchestration.state_machine.state_machine_arn, "the scan state machine"),
            "ReportBucketName": (self.storage.bucket.bucket_name, "the report bucket"),
            "ComplianceTopicArn": (self.compliance_topic.topic_arn, "compliance notifications"),
            "OperationsTopicArn": (self.operations_topic.topic_arn, "alarms"),
            "DeadLetterQueueUrl": (self.dead_letter_queue.queue_url, "failed scans"),
            "AthenaWorkGroupName": (self.analytics.workgroup_name, "Athena workgroup with the named queries"),
            "GlueDatabaseName": (
                self.analytics.database_name,
                "Glue database of the findings and runs tables",
            ),
            "CrawlerName": (
                self.analytics.crawler_name,
                "Glue crawler for backfilling report partitions by hand",
            ),
            "DashboardUrl": (self.monitoring.dashboard_url, "CloudWatch dashboard"),
        }
        assert tuple(outputs) == OUTPUT_KEYS
        for key, (value, description) in outputs.items():
            CfnOutput(self, key, value=value, description=f"Tagwarden {settings.environment}: {description}")

    def _acknowledge_cdk_internals(self) -> None:
        """Findings on the Lambda CDK adds to upload policies/default.json (BucketDeployment)."""
        handler = next(
            (c for c in self.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")), None
        )
        if handler is None:
            return
        why = (
            "CDK's BucketDeployment handler, run only while CloudFormation deploys the stack to copy "
            "policies/default.json: "
        )
        acknowledge_all(
            handler,
            [
                *(
                    (
                        f"AwsSolutions-IAM5[Action::{action}]",
                        why + "CDK grants it read on the asset object and read/write on the report bucket "
                        "through its grant helpers, which use these action wildcards.",
                    )
                    for action in (
                        "s3:GetBucket*",
                        "s3:GetObject*",
                        "s3:List*",
                        "s3:Abort*",
                        "s3:DeleteObject*",
                    )
                ),
                (
                    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-"
                    "<AWS::AccountId>-<AWS::Region>/*]",
                    why + "it reads the deployment's source zip from the CDK bootstrap asset bucket, whose "
                    "object key is a content hash.",
                ),
                (
                    f"AwsSolutions-IAM5[Resource::{arn_finding(self.storage.bucket)}/*]",
                    why + "it writes the default policy into the report bucket (prune is off, so it deletes "
                    "nothing it did not put there).",
                ),
                (
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSLambdaBasicExecutionRole]",
                    why + "CDK attaches this managed policy (CloudWatch Logs writes) to the handler's role.",
                ),
                (
                    "AwsSolutions-L1",
                    why + "aws-cdk-lib pins the runtime of its own handler and moves it forward on upgrades.",
                ),
                (
                    "Serverless-LambdaDLQ",
                    why + "CloudFormation invokes it as a custom resource and fails the deployment on error; "
                    "there is no asynchronous event to keep.",
                ),
                (
                    "Serverless-LambdaTracing",
                    why + "a one-off copy of a small object at deploy time, with nothing to trace.",
                ),
                (
                    "Serverless-LambdaLatestVersion",
                    why + "aws-cdk-lib pins the runtime of its own handler and moves it forward on upgrades.",
                ),
            ],
        )
