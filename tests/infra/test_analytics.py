"""Glue tables with explicit schemas, the crawler that only adds partitions, Athena workgroup, queries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tests.infra.cfn import canonical, expected, getatt, grants, only, ref, role_of
from tests.infra.conftest import Synthesized
from workflow import deployment, layout
from workflow.evaluator import evaluate_instance, evaluate_resource
from workflow.fleet import demo_fleet, demo_resources, iter_fleet_document
from workflow.policy import compile_policy, load_policy
from workflow.queries import NAMED_QUERIES
from workflow.report import SummaryBuilder, coverage_section, summarize_targets

FINDINGS_SCHEMA = {
    "instance_id": "string",
    "region": "string",
    "account_id": "string",
    "state": "string",
    "launch_time": "string",
    "instance_type": "string",
    "name": "string",
    "owner": "string",
    "tags": "map<string,string>",
    "compliant": "boolean",
    "exempt": "boolean",
    "in_grace_period": "boolean",
    "violations": "array<struct<code:string,key:string,value:string,message:string,parent_id:string,"
    "expected:string>>",
    "run_id": "string",
    "evaluated_at": "string",
    "policy_name": "string",
    "resource_type": "string",
    "resource_id": "string",
    "created_at": "string",
    "size_gib": "int",
    "volume_type": "string",
    "attached_to": "string",
    "volume_id": "string",
    "interface_type": "string",
    "source": "string",
    "created_by": "struct<type:string,principal:string,display:string>",
    "exemption": "struct<id:string,expires:string,expired:boolean>",
}
RUNS_SCHEMA = {
    "run_id": "string",
    "evaluated_at": "string",
    "status": "string",
    "partial": "boolean",
    "policy": "struct<name:string,sha256:string>",
    "totals": "struct<total:int,compliant:int,noncompliant:int,exempt:int,in_grace_period:int,"
    "compliance_percentage:double>",
    "by_rule": "map<string,int>",
    "by_code": "map<string,int>",
    "by_region": "map<string,struct<compliant:int,noncompliant:int>>",
    "by_account": "map<string,struct<compliant:int,noncompliant:int>>",
    "noncompliant_by_owner": "map<string,int>",
    "noncompliant_instance_ids": "array<string>",
    "by_resource_type": "map<string,struct<compliant:int,noncompliant:int>>",
    "untagged_ebs_gib": "struct<volumes:bigint,snapshots:bigint,total:bigint>",
    "source": "string",
    "drift": "struct<previous_run_id:string,newly_noncompliant:array<string>,newly_compliant:array<string>>",
    "target_counts": "struct<total:int,scanned:int,error:int,accounts:int>",
    "targets": "array<struct<account_id:string,region:string,status:string,reason:string>>",
    "incomplete": "boolean",
    "coverage": "struct<complete:boolean,nothing_evaluated:boolean,"
    "targets:struct<asked:int,scanned:int,not_scanned:int,scanned_empty:int>,"
    "regions_scanned:array<string>,regions_not_scanned:array<string>,"
    "instances:struct<listed:int,in_scope:int,evaluated:int,out_of_scope:map<string,int>,"
    "duplicates_dropped:int>,"
    "resources:map<string,struct<listed:int,in_scope:int,evaluated:int,out_of_scope:map<string,int>,"
    "duplicates_dropped:int>>>",
    "remediation": "struct<dry_run:boolean,marked:int,stopped:int,unmarked:int,stopped_ids:array<string>,"
    "skipped:map<string,int>,failed:int,waiting:int,ineligible:map<string,int>,marked_now:int,"
    "max_stops_per_run:int>",
}
ACTIONS_SCHEMA = {
    "run_id": "string",
    "policy_name": "string",
    "at": "string",
    "account_id": "string",
    "region": "string",
    "resource_id": "string",
    "owner": "string",
    "action": "string",
    "outcome": "string",
    "dry_run": "boolean",
    "stop_on": "string",
    "reason": "string",
    "error": "string",
}


def _table(synthesized: Synthesized, name: str) -> dict[str, Any]:
    table_id = only(synthesized.resources, "AWS::Glue::Table", lambda p: p["TableInput"]["Name"] == name)
    properties: dict[str, Any] = synthesized.resources[table_id]["Properties"]
    return properties


def _bucket(synthesized: Synthesized) -> str:
    return only(
        synthesized.resources, "AWS::S3::Bucket", lambda p: "tagwarden-test-reports-" in str(p["BucketName"])
    )


def _columns(table: dict[str, Any]) -> dict[str, str]:
    return {c["Name"]: c["Type"] for c in table["TableInput"]["StorageDescriptor"]["Columns"]}


def test_glue_database_is_named_for_the_environment(synthesized: Synthesized) -> None:
    (database,) = synthesized.of_type("AWS::Glue::Database").values()
    assert database["Properties"]["DatabaseInput"]["Name"] == "tagwarden_test"


def test_findings_runs_and_actions_tables_have_their_exact_schema_and_dt_run_partitions(
    synthesized: Synthesized,
) -> None:
    for name, schema in (("findings", FINDINGS_SCHEMA), ("runs", RUNS_SCHEMA), ("actions", ACTIONS_SCHEMA)):
        table = _table(synthesized, name)
        assert table["DatabaseName"] == "tagwarden_test"
        assert _columns(table) == schema
        assert [(k["Name"], k["Type"]) for k in table["TableInput"]["PartitionKeys"]] == [
            ("dt", "string"),
            ("run", "string"),
        ]
    assert len(synthesized.of_type("AWS::Glue::Table")) == 3


def test_tags_are_one_map_column_never_a_column_per_tag_key(synthesized: Synthesized) -> None:
    columns = _columns(_table(synthesized, "findings"))
    assert columns["tags"] == "map<string,string>"
    # owner and name are derived columns (the policy's owner tag, the Name tag); other keys stay in the map.
    for key in ("CostCenter", "costcenter", "cost_center", "Environment", "environment", "Project"):
        assert key not in columns


def test_tables_read_json_lines_under_the_report_prefixes_case_sensitively(synthesized: Synthesized) -> None:
    bucket = ref(_bucket(synthesized))
    for name, prefix, compressed in (
        ("findings", layout.FINDINGS_PREFIX, True),
        ("runs", layout.RUNS_PREFIX, False),
    ):
        descriptor = _table(synthesized, name)["TableInput"]["StorageDescriptor"]
        assert descriptor["Location"] == {"Fn::Join": ["", ["s3://", bucket, f"/{prefix}"]]}
        assert descriptor["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
        assert descriptor["SerdeInfo"]["Parameters"]["case.insensitive"] == "FALSE"
        assert descriptor["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
        assert descriptor["Compressed"] is compressed


def test_local_query_engine_loads_the_same_schema_as_the_glue_tables() -> None:
    from workflow import local_query
    from workflow.queries import schema

    assert local_query.FINDINGS_COLUMNS == schema.FINDINGS_COLUMNS
    assert local_query.RUNS_COLUMNS == schema.RUNS_COLUMNS
    assert local_query.PARTITION_KEYS == schema.PARTITION_KEYS


def test_every_glue_column_has_a_comment(synthesized: Synthesized) -> None:
    for name in ("findings", "runs"):
        table = _table(synthesized, name)["TableInput"]
        for column in [*table["StorageDescriptor"]["Columns"], *table["PartitionKeys"]]:
            assert column.get("Comment"), (name, column["Name"])


def test_glue_schema_covers_every_field_the_workflow_writes() -> None:
    """Finding keys: the evaluator's plus what the evaluate step adds; summary keys: SummaryBuilder's."""
    policy = load_policy(deployment.ROOT / "policies" / "baseline.json")
    item = next(iter(iter_fleet_document(demo_fleet(instances_per_region=5))))
    finding = evaluate_instance(item.instance, policy, region=item.region, account_id=item.account_id)
    finding.update(run_id="r", evaluated_at="2026-11-28T00:00:00+00:00", policy_name=policy.name)
    written = set(finding)
    family = load_policy(deployment.ROOT / "policies" / "finops.json")
    for resource in demo_resources(demo_fleet(instances_per_region=5)):
        written |= set(
            evaluate_resource(resource.resource_type, resource.resource, family, region=resource.region)
        )
    # What Evaluate adds for event runs: the run's source and the resource's creator.
    written |= {"source", "created_by"}
    # An exempt resource says which exemption applied.
    exempting = compile_policy(
        {
            **policy.document,
            "exemptions": [{"instance_ids": [item.instance["InstanceId"]], "expires": "2099-01-01"}],
        }
    )
    written |= set(evaluate_instance(item.instance, exempting, region=item.region))
    assert written == set(FINDINGS_SCHEMA)
    violation = set(FINDINGS_SCHEMA["violations"].removeprefix("array<struct<").removesuffix(">>").split(","))
    assert {
        f"{field}:string" for field in ("code", "key", "value", "message", "parent_id", "expected")
    } == violation
    outcomes = [{"account_id": "self", "region": item.region, "status": "ok"}]
    builder = SummaryBuilder().add_all([finding])
    summary = builder.summary(
        run_id="r",
        policy_name=policy.name,
        policy_sha256=policy.sha256,
        evaluated_at=datetime.now(UTC).isoformat(),
        extra={
            "status": "complete",
            **summarize_targets(outcomes),
            # As Persist report adds them:
            "coverage": coverage_section(outcomes, {}, builder),
            "incomplete": False,
        },
    )
    # source: event runs only; remediation: runs that remediated (the Remediate step adds it)
    assert set(RUNS_SCHEMA) - {"source", "remediation"} <= set(summary)
    assert set(summary["coverage"]) == {
        "complete",
        "nothing_evaluated",
        "targets",
        "not_scanned",
        "regions_scanned",
        "regions_not_scanned",
        "instances",
        "resources",
    }
    assert set(summary["totals"]) == {
        "total",
        "compliant",
        "noncompliant",
        "exempt",
        "in_grace_period",
        "compliance_percentage",
    }


def test_crawler_adds_new_partitions_only_and_never_creates_or_changes_tables(
    synthesized: Synthesized,
) -> None:
    bucket = ref(_bucket(synthesized))
    (crawler,) = synthesized.of_type("AWS::Glue::Crawler").values()
    properties = crawler["Properties"]
    assert properties["Name"] == "tagwarden-test-reports"
    assert properties["DatabaseName"] == "tagwarden_test"
    assert properties["Targets"] == {
        "S3Targets": [
            {"Path": {"Fn::Join": ["", ["s3://", bucket, f"/{layout.FINDINGS_PREFIX}"]]}},
            {"Path": {"Fn::Join": ["", ["s3://", bucket, f"/{layout.RUNS_PREFIX}"]]}},
            {"Path": {"Fn::Join": ["", ["s3://", bucket, f"/{layout.ACTIONS_PREFIX}"]]}},
        ]
    }
    assert properties["RecrawlPolicy"] == {"RecrawlBehavior": "CRAWL_NEW_FOLDERS_ONLY"}
    assert properties["SchemaChangePolicy"] == {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}
    assert "Schedule" not in properties  # run by hand to backfill; runs register their partitions
    configuration = json.loads(properties["Configuration"])
    assert configuration["Grouping"] == {
        "TableGroupingPolicy": "CombineCompatibleSchemas",
        "TableLevelConfiguration": 3,
    }
    assert configuration["CrawlerOutput"]["Partitions"] == {"AddOrUpdateBehavior": "InheritFromTable"}
    assert configuration["CrawlerOutput"]["Tables"] == {"TableThreshold": 3}
    assert properties["CrawlerSecurityConfiguration"] == "tagwarden-test-crawler"


def test_crawler_logs_are_encrypted_with_the_stack_key(synthesized: Synthesized) -> None:
    (configuration,) = synthesized.of_type("AWS::Glue::SecurityConfiguration").values()
    key = only(synthesized.resources, "AWS::KMS::Key", lambda p: True)
    assert configuration["Properties"]["EncryptionConfiguration"]["CloudWatchEncryption"] == {
        "CloudWatchEncryptionMode": "SSE-KMS",
        "KmsKeyArn": getatt(key),
    }


def test_crawler_role_reads_only_the_report_tables_and_cannot_create_tables(synthesized: Synthesized) -> None:
    resources = synthesized.resources
    crawler_id = only(resources, "AWS::Glue::Crawler", lambda p: True)
    role = role_of(resources, crawler_id)
    bucket = _bucket(synthesized)
    log_group = only(
        resources,
        "AWS::Logs::LogGroup",
        lambda p: "/aws-glue/crawlers-role/" in canonical(p.get("LogGroupName")),
    )

    def glue_arn(resource: str) -> dict[str, Any]:
        parts = [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":glue:",
            {"Ref": "AWS::Region"},
            ":",
            {"Ref": "AWS::AccountId"},
        ]
        return {"Fn::Join": ["", [*parts, f":{resource}"]]}

    prefixes = [layout.FINDINGS_PREFIX, layout.RUNS_PREFIX, layout.ACTIONS_PREFIX]
    assert grants(resources, role) == expected(
        (["s3:GetObject"], [{"Fn::Join": ["", [getatt(bucket), f"/{p}*"]]} for p in prefixes]),
        (
            ["s3:ListBucket"],
            [getatt(bucket)],
            {
                "StringLike": {
                    "s3:prefix": [
                        "reports/findings",
                        "reports/findings/*",
                        "reports/runs",
                        "reports/runs/*",
                        "reports/actions",
                        "reports/actions/*",
                    ]
                }
            },
        ),
        (
            [
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
            [
                glue_arn("catalog"),
                glue_arn("database/tagwarden_test"),
                glue_arn("table/tagwarden_test/findings"),
                glue_arn("table/tagwarden_test/runs"),
                glue_arn("table/tagwarden_test/actions"),
            ],
        ),
        (
            ["glue:GetTables"],
            [glue_arn("catalog"), glue_arn("database/tagwarden_test"), glue_arn("table/tagwarden_test/*")],
        ),
        (
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"],
            [getatt(log_group)],
        ),
    )
    assert resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "glue.amazonaws.com"
    }


def test_athena_workgroup_enforces_an_encrypted_result_location_and_a_scan_cutoff(
    synthesized: Synthesized,
) -> None:
    (workgroup,) = synthesized.of_type("AWS::Athena::WorkGroup").values()
    properties = workgroup["Properties"]
    assert properties["Name"] == "tagwarden-test-analytics"
    configuration = properties["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == 1073741824
    assert configuration["PublishCloudWatchMetricsEnabled"] is True
    result = configuration["ResultConfiguration"]
    assert result["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert result["OutputLocation"] == {
        "Fn::Join": ["", ["s3://", ref(_bucket(synthesized)), "/athena-results/"]]
    }


def test_every_named_query_file_is_deployed_verbatim_in_the_workgroup(synthesized: Synthesized) -> None:
    deployed = {
        r["Properties"]["Name"]: r["Properties"]
        for r in synthesized.of_type("AWS::Athena::NamedQuery").values()
    }
    assert set(deployed) == {q.title for q in NAMED_QUERIES.values()}
    for query in NAMED_QUERIES.values():
        properties = deployed[query.title]
        assert properties["QueryString"] == query.sql
        assert properties["Database"] == "tagwarden_test"
        assert properties["WorkGroup"] == "tagwarden-test-analytics"
        assert properties["Description"] == query.full_description
        for parameter in query.parameters:
            assert parameter.name in properties["Description"]


def test_day_one_queries_exist() -> None:
    assert set(NAMED_QUERIES) == {
        "noncompliant_latest_run",
        "compliance_trend_daily",
        "noncompliant_by_owner",
        "noncompliant_by_rule",
        "noncompliant_by_region",
        "noncompliant_longer_than_days",
        # Organisation-wide runs: the same questions per account.
        "compliance_by_account",
        "compliance_trend_by_account",
        "noncompliant_by_account_and_owner",
        "noncompliant_by_account_and_rule",
        # The EC2 family: per resource type, and the untagged EBS GiB FinOps looks for.
        "noncompliant_by_resource_type",
        "untagged_ebs_gib",
        # Which exemption exempted whom in each run, and which ran out.
        "exemption_history",
    }
    assert [p.name for p in NAMED_QUERIES["noncompliant_longer_than_days"].parameters] == ["days"]
    assert [p.name for p in NAMED_QUERIES["compliance_trend_by_account"].parameters] == ["days"]
