"""Report bucket, topics, dead-letter queue, key, and what changes between dev and prod."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template

from tests.infra.cfn import getatt, only, ref
from tests.infra.conftest import Synthesized


def _bucket(synthesized: Synthesized, kind: str) -> tuple[str, dict[str, Any]]:
    env = synthesized.stack.settings.environment
    logical_id = only(
        synthesized.resources,
        "AWS::S3::Bucket",
        lambda p: f"tagwarden-{env}-{kind}-" in str(p.get("BucketName")),
    )
    return logical_id, synthesized.resources[logical_id]


def _bucket_policy_statements(synthesized: Synthesized, bucket_id: str) -> list[dict[str, Any]]:
    policies = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in synthesized.of_type("AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == ref(bucket_id)
    ]
    assert len(policies) == 1
    return policies[0]


def test_report_bucket_is_versioned_encrypted_private_and_named_for_the_environment(
    synthesized: Synthesized,
) -> None:
    _, bucket = _bucket(synthesized, "reports")
    properties = bucket["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert properties["BucketName"] == {
        "Fn::Join": ["", ["tagwarden-test-reports-", {"Ref": "AWS::AccountId"}, "-", {"Ref": "AWS::Region"}]]
    }


def test_report_bucket_denies_requests_without_tls(synthesized: Synthesized) -> None:
    bucket_id, _ = _bucket(synthesized, "reports")
    statements = _bucket_policy_statements(synthesized, bucket_id)
    deny_insecure = [
        s
        for s in statements
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert deny_insecure and deny_insecure[0]["Action"] == "s3:*"
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"NumericLessThan": {"s3:TlsVersion": 1.2}}
        for s in statements
    )


def test_report_bucket_writes_server_access_logs_to_a_private_log_bucket(synthesized: Synthesized) -> None:
    logs_id, logs_bucket = _bucket(synthesized, "access-logs")
    _, bucket = _bucket(synthesized, "reports")
    assert bucket["Properties"]["LoggingConfiguration"] == {
        "DestinationBucketName": ref(logs_id),
        "LogFilePrefix": "reports-bucket/",
    }
    assert logs_bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True
    statements = _bucket_policy_statements(synthesized, logs_id)
    assert any(
        s["Effect"] == "Allow" and s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
        for s in statements
    )


def test_report_lifecycle_tiers_reports_and_expires_noncurrent_versions_after_the_context_days(
    synthesized: Synthesized,
) -> None:
    _, bucket = _bucket(synthesized, "reports")
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    tiering = rules["reports-to-infrequent-access-then-glacier"]
    assert tiering["Prefix"] == "reports/"
    assert tiering["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": 30},
        {"StorageClass": "GLACIER_IR", "TransitionInDays": 90},
    ]
    noncurrent = rules["expire-noncurrent-versions"]
    assert noncurrent["NoncurrentVersionExpiration"] == {"NoncurrentDays": 45}
    assert noncurrent["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rules["expire-staging"]["Prefix"] == "staging/"
    assert rules["expire-athena-results"]["Prefix"] == "athena-results/"
    assert all(rule["Status"] == "Enabled" for rule in rules.values())
    assert not any(r.get("Prefix", "").startswith(("policies", "state")) for r in rules.values())


def test_dev_buckets_are_destroyed_with_their_objects_and_prod_buckets_are_retained(
    synthesized: Synthesized, prod: Synthesized
) -> None:
    for kind in ("reports", "access-logs"):
        _, dev_bucket = _bucket(synthesized, kind)
        assert dev_bucket["DeletionPolicy"] == "Delete"
        _, prod_bucket = _bucket(prod, kind)
        assert prod_bucket["DeletionPolicy"] == "Retain"
        assert prod_bucket["UpdateReplacePolicy"] == "Retain"
    assert len(synthesized.of_type("Custom::S3AutoDeleteObjects")) == 2
    assert not prod.of_type("Custom::S3AutoDeleteObjects")


def test_prod_retains_log_groups_and_the_key_and_dev_destroys_them(
    synthesized: Synthesized, prod: Synthesized
) -> None:
    for synth, policy in ((synthesized, "Delete"), (prod, "Retain")):
        for kind in ("AWS::Logs::LogGroup", "AWS::KMS::Key"):
            for logical_id, resource in synth.of_type(kind).items():
                if "DefaultPolicyDeploymentLogs" in logical_id:
                    continue  # the deployment-time handler's logs are never worth keeping
                assert resource["DeletionPolicy"] == policy, logical_id
    assert prod.stack.termination_protection is True
    assert synthesized.stack.termination_protection is False


def test_topics_are_encrypted_with_the_stack_key_and_require_tls(
    synthesized: Synthesized, template: Template
) -> None:
    key = only(synthesized.resources, "AWS::KMS::Key", lambda p: True)
    for name in ("tagwarden-test-compliance", "tagwarden-test-operations"):
        topic = only(synthesized.resources, "AWS::SNS::Topic", lambda p, n=name: p["TopicName"] == n)
        assert synthesized.resources[topic]["Properties"]["KmsMasterKeyId"] == getatt(key)
        template.has_resource_properties(
            "AWS::SNS::TopicPolicy",
            {
                "Topics": [ref(topic)],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                            )
                        ]
                    )
                },
            },
        )


def test_key_rotates_and_lets_cloudwatch_alarms_publish_to_the_encrypted_topics(
    synthesized: Synthesized,
) -> None:
    (key,) = synthesized.of_type("AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert any(
        s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        and set(s["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
        for s in statements
    )


def test_email_subscriptions_from_context_subscribe_to_their_topics(synthesized: Synthesized) -> None:
    subscriptions = {
        (r["Properties"]["Endpoint"], r["Properties"]["TopicArn"]["Ref"])
        for r in synthesized.of_type("AWS::SNS::Subscription").values()
        if r["Properties"]["Protocol"] == "email"
    }
    compliance = only(
        synthesized.resources, "AWS::SNS::Topic", lambda p: p["TopicName"] == "tagwarden-test-compliance"
    )
    operations = only(
        synthesized.resources, "AWS::SNS::Topic", lambda p: p["TopicName"] == "tagwarden-test-operations"
    )
    assert subscriptions == {
        ("secops@example.com", compliance),
        ("finops@example.com", compliance),
        ("oncall@example.com", operations),
    }


def test_compliance_email_subscriptions_receive_the_summary_only_not_owner_digests(
    synthesized: Synthesized,
) -> None:
    policies = {
        r["Properties"]["Endpoint"]: r["Properties"].get("FilterPolicy")
        for r in synthesized.of_type("AWS::SNS::Subscription").values()
    }
    assert policies == {
        "secops@example.com": {"kind": ["summary"]},
        "finops@example.com": {"kind": ["summary"]},
        "oncall@example.com": None,  # the operations topic has no digests
    }


def test_without_email_context_nothing_is_subscribed(prod: Synthesized) -> None:
    assert not prod.of_type("AWS::SNS::Subscription")


def test_dead_letter_queue_is_encrypted_tls_only_and_keeps_messages_14_days(
    synthesized: Synthesized, template: Template
) -> None:
    queue = only(
        synthesized.resources, "AWS::SQS::Queue", lambda p: p["QueueName"] == "tagwarden-test-dead-letters"
    )
    properties = synthesized.resources[queue]["Properties"]
    assert properties["SqsManagedSseEnabled"] is True
    assert properties["MessageRetentionPeriod"] == 14 * 24 * 3600
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [ref(queue)],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "sqs:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_every_named_resource_carries_the_environment(synthesized: Synthesized) -> None:
    name_properties = {
        "AWS::Lambda::Function": "FunctionName",
        "AWS::StepFunctions::StateMachine": "StateMachineName",
        "AWS::SNS::Topic": "TopicName",
        "AWS::SQS::Queue": "QueueName",
        "AWS::Events::Rule": "Name",
        "AWS::Scheduler::Schedule": "Name",
        "AWS::Glue::Crawler": "Name",
        "AWS::Glue::SecurityConfiguration": "Name",
        "AWS::Athena::WorkGroup": "Name",
        "AWS::CloudWatch::Alarm": "AlarmName",
        "AWS::CloudWatch::Dashboard": "DashboardName",
        "AWS::KMS::Alias": "AliasName",
        "AWS::Lambda::LayerVersion": "LayerName",
    }
    for resource_type, name_property in name_properties.items():
        for logical_id, resource in synthesized.of_type(resource_type).items():
            name = resource["Properties"].get(name_property)
            if logical_id.startswith(("CustomCDKBucketDeployment", "CustomS3AutoDeleteObjects")) or (
                "AwsCliLayer" in logical_id
            ):
                continue  # CDK's own deployment-time handlers and the AWS CLI layer they use
            assert isinstance(name, str) and "tagwarden-test" in name, (logical_id, name)
