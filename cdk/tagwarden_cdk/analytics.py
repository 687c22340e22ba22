"""Glue database, tables and crawler over the report; the Athena workgroup and named queries."""

from __future__ import annotations

import json
import re
from typing import Final

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from tagwarden_cdk.catalog import PARTITION_KEYS, TABLES, Column, TableSpec
from tagwarden_cdk.common import data_removal_policy, log_retention
from tagwarden_cdk.nag import acknowledge, arn_finding
from tagwarden_cdk.settings import Settings
from tagwarden_cdk.storage import ATHENA_RESULTS_PREFIX, ReportStorage
from workflow.queries import NAMED_QUERIES, NamedQuery

JSON_SERDE: Final = "org.openx.data.jsonserde.JsonSerDe"
TEXT_INPUT_FORMAT: Final = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT_FORMAT: Final = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
# s3://bucket/reports/findings/: the bucket is level 1, so the tables sit at level 3.
TABLE_LEVEL: Final = 3

CRAWLER_CONFIGURATION: Final = {
    "Version": 1.0,
    # One table per target folder even if a later file adds a field; never a table per folder.
    "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas", "TableLevelConfiguration": TABLE_LEVEL},
    "CrawlerOutput": {
        # New partitions take the table's explicit schema, not one inferred from their files.
        "Partitions": {"AddOrUpdateBehavior": "InheritFromTable"},
        # Both tables exist before the first crawl; a third would be a stray table: fail instead.
        "Tables": {"TableThreshold": len(TABLES)},
    },
    "CreatePartitionIndex": False,
}


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


class Analytics(Construct):
    """``database_name``, ``tables``, ``crawler`` (and its role), ``workgroup``, ``named_queries``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        storage: ReportStorage,
        key: kms.Key,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        bucket = storage.bucket
        self.database_name = settings.glue_database_name
        self.crawler_name = settings.name("reports")

        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description=f"Tagwarden {settings.environment}: tag compliance findings and run summaries",
            ),
        )
        self.tables: dict[str, glue.CfnTable] = {}
        for spec in TABLES:
            table = self._table(spec, bucket_name=bucket.bucket_name)
            table.node.add_dependency(self.database)
            self.tables[spec.name] = table

        # -- crawler -------------------------------------------------------------------------------
        self.security_configuration_name = settings.name("crawler")
        self.security_configuration = glue.CfnSecurityConfiguration(
            self,
            "CrawlerSecurityConfiguration",
            name=self.security_configuration_name,
            encryption_configuration=glue.CfnSecurityConfiguration.EncryptionConfigurationProperty(
                cloud_watch_encryption=glue.CfnSecurityConfiguration.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=key.key_arn
                ),
                job_bookmarks_encryption=glue.CfnSecurityConfiguration.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="DISABLED"
                ),
                s3_encryptions=[
                    glue.CfnSecurityConfiguration.S3EncryptionProperty(s3_encryption_mode="SSE-S3")
                ],
            ),
        )
        self.crawler_role = iam.Role(
            self,
            "CrawlerRole",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description=f"Tagwarden {settings.environment}: the Glue crawler of the report tables",
        )
        # With a security configuration, Glue writes the crawler's logs to this group, encrypted.
        self.crawler_log_group_name = (
            f"/aws-glue/crawlers-role/{self.crawler_role.role_name}-{self.security_configuration_name}"
        )
        self.crawler_log_group = logs.LogGroup(
            self,
            "CrawlerLogs",
            log_group_name=self.crawler_log_group_name,
            retention=log_retention(settings),
            encryption_key=key,
            removal_policy=data_removal_policy(settings),
        )
        catalog_arn = stack.format_arn(service="glue", resource="catalog")
        database_arn = stack.format_arn(service="glue", resource="database", resource_name=self.database_name)
        table_arns = [
            stack.format_arn(
                service="glue", resource="table", resource_name=f"{self.database_name}/{spec.name}"
            )
            for spec in TABLES
        ]
        all_tables_arn = stack.format_arn(
            service="glue", resource="table", resource_name=f"{self.database_name}/*"
        )
        prefixes = [spec.prefix for spec in TABLES]
        for statement in (
            iam.PolicyStatement(
                sid="ReadReports",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{p}*") for p in prefixes],
            ),
            iam.PolicyStatement(
                sid="ListReports",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f(p) for p in prefixes for f in (_bare, _under)]}},
            ),
            iam.PolicyStatement(
                sid="AddPartitions",
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchGetPartition",
                    "glue:CreatePartition",
                    "glue:BatchCreatePartition",
                    "glue:UpdatePartition",
                    "glue:BatchUpdatePartition",
                ],
                resources=[catalog_arn, database_arn, *table_arns],
            ),
            iam.PolicyStatement(
                # The crawler lists the database's tables to match its S3 targets to the existing
                # findings and runs tables; GetTables is authorized against every table of the database.
                sid="MatchExistingTables",
                actions=["glue:GetTables"],
                resources=[catalog_arn, database_arn, all_tables_arn],
            ),
            iam.PolicyStatement(
                sid="WriteCrawlerLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:AssociateKmsKey",
                ],
                resources=[self.crawler_log_group.log_group_arn],
            ),
        ):
            self.crawler_role.add_to_policy(statement)

        self.crawler = glue.CfnCrawler(
            self,
            "Crawler",
            name=self.crawler_name,
            description=f"Tagwarden {settings.environment}: add new dt/run partitions of findings and runs",
            role=self.crawler_role.role_arn,
            database_name=self.database_name,
            targets=glue.CfnCrawler.TargetsProperty(
                s3_targets=[
                    glue.CfnCrawler.S3TargetProperty(path=f"s3://{bucket.bucket_name}/{spec.prefix}")
                    for spec in TABLES
                ]
            ),
            schema_change_policy=glue.CfnCrawler.SchemaChangePolicyProperty(
                update_behavior="LOG", delete_behavior="LOG"
            ),
            recrawl_policy=glue.CfnCrawler.RecrawlPolicyProperty(recrawl_behavior="CRAWL_NEW_FOLDERS_ONLY"),
            configuration=json.dumps(CRAWLER_CONFIGURATION, sort_keys=True),
            crawler_security_configuration=self.security_configuration_name,
        )
        self.crawler.node.add_dependency(self.security_configuration)
        for table in self.tables.values():
            self.crawler.node.add_dependency(table)

        for prefix in prefixes:
            acknowledge(
                self.crawler_role,
                f"AwsSolutions-IAM5[Resource::{arn_finding(bucket)}/{prefix}*]",
                f"The crawler reads every object under {prefix}: one dt=/run= folder per run, named at "
                "run time.",
            )

        acknowledge(
            self.crawler_role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>:table/"
            f"{self.database_name}/*]",
            "glue:GetTables only: Glue authorizes listing a database's tables against every table of that "
            "database; the crawler lists them to find the findings and runs tables it adds partitions to.",
        )

        # -- Athena ---------------------------------------------------------------------------------
        self.workgroup_name = settings.name("analytics")
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=self.workgroup_name,
            description=f"Tagwarden {settings.environment}: queries over the compliance reports",
            state="ENABLED",
            # Deleting the stack deletes the workgroup with its saved queries, unless data is retained.
            recursive_delete_option=not settings.retain_data,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=settings.athena_bytes_scanned_cutoff,
                requester_pays_enabled=False,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(selected_engine_version="AUTO"),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{bucket.bucket_name}/{ATHENA_RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                    expected_bucket_owner=Aws.ACCOUNT_ID,
                ),
            ),
        )
        if settings.retain_data:
            self.workgroup.apply_removal_policy(RemovalPolicy.RETAIN)

        self.named_queries: dict[str, athena.CfnNamedQuery] = {}
        for query in NAMED_QUERIES.values():
            self.named_queries[query.name] = self._named_query(query)

    def _table(self, spec: TableSpec, *, bucket_name: str) -> glue.CfnTable:
        def columns(specs: tuple[Column, ...]) -> list[glue.CfnTable.ColumnProperty]:
            return [glue.CfnTable.ColumnProperty(name=n, type=t, comment=c) for n, t, c in specs]

        parameters = {
            "classification": "json",
            "typeOfData": "file",
            "EXTERNAL": "TRUE",
            "compressionType": "gzip" if spec.compressed else "none",
        }
        return glue.CfnTable(
            self,
            f"{_pascal(spec.name)}Table",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=spec.name,
                description=spec.description,
                table_type="EXTERNAL_TABLE",
                parameters=parameters,
                partition_keys=columns(PARTITION_KEYS),
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=columns(spec.columns),
                    location=f"s3://{bucket_name}/{spec.prefix}",
                    input_format=TEXT_INPUT_FORMAT,
                    output_format=TEXT_OUTPUT_FORMAT,
                    compressed=spec.compressed,
                    stored_as_sub_directories=False,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=JSON_SERDE,
                        # Case-sensitive: tag keys differ by case (Owner vs owner is a finding).
                        parameters={"case.insensitive": "FALSE", "ignore.malformed.json": "FALSE"},
                    ),
                    parameters=parameters,
                ),
            ),
        )

    def _named_query(self, query: NamedQuery) -> athena.CfnNamedQuery:
        named = athena.CfnNamedQuery(
            self,
            f"Query{_pascal(query.name)}",
            name=query.title,
            description=query.full_description,
            database=self.database_name,
            work_group=self.workgroup_name,
            query_string=query.sql,
        )
        named.node.add_dependency(self.workgroup)
        named.node.add_dependency(self.database)
        return named


def _bare(prefix: str) -> str:
    return prefix.rstrip("/")


def _under(prefix: str) -> str:
    return f"{prefix}*"
