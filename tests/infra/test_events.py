"""The event path in the template: the EventBridge rule on CloudTrail's EC2 calls, the events
queue and its dead-letter queue, the Pipe that batches, stores and starts event runs, and the
event state machine with exactly the grants its Tasks need."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tagwarden_cdk.bundling import LambdaAssets

from tests.infra.cfn import expected, function_id, getatt, grants, only, ref
from tests.infra.conftest import ORGANIZATION_CONTEXT, TARGET_ACCOUNTS, TEST_CONTEXT, Synthesized, _synthesize
from tests.infra.test_quality_bars import _violations as quality_bar_violations
from workflow import config, deployment
from workflow.events import EVENT_NAMES, EVENT_PATTERN

EVENT_TASKS = [
    "plan-event-run",
    "list-instances",
    "evaluate-tags",
    "persist-report",
    "remediate",
    "register-partitions",
    "notify",
]


def _resource(
    synthesized: Synthesized, resource_type: str, name_field: str, name: str
) -> tuple[str, dict[str, Any]]:
    logical_id = only(synthesized.resources, resource_type, lambda p: p.get(name_field) == name)
    return logical_id, synthesized.resources[logical_id]["Properties"]


def test_the_rule_takes_successful_ec2_calls_that_create_or_retag_into_the_events_queue(
    synthesized: Synthesized,
) -> None:
    _, rule = _resource(synthesized, "AWS::Events::Rule", "Name", "tagwarden-test-ec2-api-calls")
    assert rule["EventPattern"] == {
        "source": ["aws.ec2"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["ec2.amazonaws.com"],
            "eventName": list(EVENT_NAMES),
            "errorCode": [{"exists": False}],
        },
    }
    queue, properties = _resource(synthesized, "AWS::SQS::Queue", "QueueName", "tagwarden-test-events")
    (target,) = rule["Targets"]
    assert target["Arn"] == getatt(queue)
    dead_letters, _ = _resource(
        synthesized, "AWS::SQS::Queue", "QueueName", "tagwarden-test-events-dead-letters"
    )
    assert properties["RedrivePolicy"] == {"deadLetterTargetArn": getatt(dead_letters), "maxReceiveCount": 5}
    assert properties["SqsManagedSseEnabled"] is True


def test_the_pipe_batches_the_queue_stores_each_batch_and_starts_one_event_run(
    synthesized: Synthesized,
) -> None:
    pipe_id, pipe = _resource(synthesized, "AWS::Pipes::Pipe", "Name", "tagwarden-test-events")
    queue, _ = _resource(synthesized, "AWS::SQS::Queue", "QueueName", "tagwarden-test-events")
    machine, _ = _resource(
        synthesized, "AWS::StepFunctions::StateMachine", "StateMachineName", "tagwarden-test-events"
    )
    store = function_id(synthesized.resources, "tagwarden-test-store-event-batch")
    assert pipe["Source"] == getatt(queue)
    assert pipe["SourceParameters"]["SqsQueueParameters"] == {
        "BatchSize": 250,
        "MaximumBatchingWindowInSeconds": 60,
    }
    assert pipe["Enrichment"] == getatt(store)
    assert pipe["Target"] == ref(machine)
    assert pipe["TargetParameters"] == {
        "StepFunctionStateMachineParameters": {"InvocationType": "FIRE_AND_FORGET"}
    }
    role = pipe["RoleArn"]["Fn::GetAtt"][0]
    assert grants(synthesized.resources, role) == expected(
        (["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [getatt(queue)]),
        (["lambda:InvokeFunction"], [getatt(store)]),
        (["states:StartExecution"], [ref(machine)]),
    )
    assert pipe_id


def test_the_event_state_machine_runs_the_event_asl_and_invokes_exactly_its_tasks(
    synthesized: Synthesized,
) -> None:
    machine, properties = _resource(
        synthesized, "AWS::StepFunctions::StateMachine", "StateMachineName", "tagwarden-test-events"
    )
    placeholders = deployment.placeholders(deployment.read_events_definition())
    assert set(properties["DefinitionSubstitutions"]) == placeholders
    assert properties["TracingConfiguration"] == {"Enabled": True}
    role = properties["RoleArn"]["Fn::GetAtt"][0]
    functions = [getatt(function_id(synthesized.resources, f"tagwarden-test-{name}")) for name in EVENT_TASKS]
    granted = grants(synthesized.resources, role)
    invoke = {g for g in granted if g[0] == "lambda:InvokeFunction"}
    assert invoke == expected((["lambda:InvokeFunction"], functions))
    dead_letters, _ = _resource(synthesized, "AWS::SQS::Queue", "QueueName", "tagwarden-test-dead-letters")
    assert {g for g in granted if g[0] == "sqs:SendMessage"} == expected(
        (["sqs:SendMessage"], [getatt(dead_letters)])
    )
    assert {g[0] for g in granted} <= {"lambda:InvokeFunction", "sqs:SendMessage"} | {
        g[0] for g in granted if g[0].startswith(("logs:", "xray:"))
    }
    assert machine


def _member_bus(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    return _resource(synthesized, "AWS::Events::EventBus", "Name", "tagwarden-test-events")


def test_a_single_account_deployment_has_no_bus_for_member_accounts(synthesized: Synthesized) -> None:
    assert not [r for r in synthesized.resources.values() if r["Type"] == "AWS::Events::EventBus"]
    assert "EventBusArn" not in synthesized.json.get("Outputs", {})


def test_an_organisation_deployments_bus_admits_put_events_only_from_the_organisation(
    organization: Synthesized,
) -> None:
    bus, _ = _member_bus(organization)
    (policy_id,) = [
        k for k, r in organization.resources.items() if r["Type"] == "AWS::Events::EventBusPolicy"
    ]
    policy = organization.resources[policy_id]["Properties"]
    assert policy["EventBusName"] == ref(bus)
    assert policy["Statement"] == {
        "Sid": "cdk-MemberAccountsForwardEc2ApiCalls",  # aws-cdk-lib prefixes it
        "Effect": "Allow",
        "Principal": "*",
        "Action": "events:PutEvents",
        "Resource": getatt(bus),
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORGANIZATION_CONTEXT["organization_id"]}},
    }
    assert organization.json["Outputs"]["EventBusArn"]["Value"] == getatt(bus)


def test_a_targets_deployments_bus_admits_the_target_accounts_alone(targets: Synthesized) -> None:
    (policy,) = [
        r["Properties"] for r in targets.resources.values() if r["Type"] == "AWS::Events::EventBusPolicy"
    ]
    principals = policy["Statement"]["Principal"]["AWS"]
    rendered = sorted(json.dumps(p) for p in principals)
    assert len(rendered) == len(TARGET_ACCOUNTS)
    assert all(any(account in r for r in rendered) for account in TARGET_ACCOUNTS)
    assert "Condition" not in policy["Statement"]


def test_the_member_bus_rule_feeds_the_events_queue_with_the_same_pattern(organization: Synthesized) -> None:
    bus, _ = _member_bus(organization)
    _, rule = _resource(organization, "AWS::Events::Rule", "Name", "tagwarden-test-member-ec2-api-calls")
    assert rule["EventBusName"] == ref(bus)
    assert rule["EventPattern"] == json.loads(json.dumps(EVENT_PATTERN))
    queue, _ = _resource(organization, "AWS::SQS::Queue", "QueueName", "tagwarden-test-events")
    (target,) = rule["Targets"]
    assert target["Arn"] == getatt(queue)


def test_the_plan_step_knows_what_the_scheduled_scan_covers(
    synthesized: Synthesized, organization: Synthesized, targets: Synthesized
) -> None:
    def scope(s: Synthesized) -> Any:
        function = s.resources[function_id(s.resources, "tagwarden-test-plan-event-run")]["Properties"]
        return json.loads(function["Environment"]["Variables"][config.EVENT_SCOPE])

    assert scope(synthesized) == {}
    assert scope(organization) == {"organization": True}
    assert [t["account_id"] for t in scope(targets)["targets"]] == list(TARGET_ACCOUNTS)


# --- CreatedBy tagging (tag_created_by) ----------------------------------------------------------

CREATED_BY_CONDITION = {
    "ForAllValues:StringEquals": {"aws:TagKeys": ["CreatedBy"]},
    "Null": {"ec2:ResourceTag/CreatedBy": "true"},
}


def _taggable(account: Any) -> list[Any]:
    partition = {"Ref": "AWS::Partition"}
    owned = [
        {"Fn::Join": ["", ["arn:", partition, ":ec2:*:", account, f":{kind}/*"]]}
        for kind in ("instance", "volume", "network-interface")
    ]
    return owned + [
        {"Fn::Join": ["", ["arn:", partition, f":ec2:*::{kind}/*"]]} for kind in ("snapshot", "image")
    ]


@pytest.fixture(scope="module")
def tagging(tmp_path_factory: pytest.TempPathFactory, lambda_assets: LambdaAssets) -> Synthesized:
    return _synthesize(
        tmp_path_factory.mktemp("cdk-tagging"),
        {**TEST_CONTEXT, "tag_created_by": True},
        lambda_assets,
        checks=True,  # cdk-nag and CloudFormation validation: no unacknowledged finding
    )


def _list_role_grants(s: Synthesized) -> set[Any]:
    function = function_id(s.resources, "tagwarden-test-list-instances")
    return grants(s.resources, s.resources[function]["Properties"]["Role"]["Fn::GetAtt"][0])


def test_created_by_tagging_lets_the_list_role_tag_only_that_key_on_untagged_resources(
    synthesized: Synthesized, tagging: Synthesized
) -> None:
    added = _list_role_grants(tagging) - _list_role_grants(synthesized)
    assert added == expected((["ec2:CreateTags"], _taggable({"Ref": "AWS::AccountId"}), CREATED_BY_CONDITION))
    function = tagging.resources[function_id(tagging.resources, "tagwarden-test-list-instances")]
    assert function["Properties"]["Environment"]["Variables"][config.TAG_CREATED_BY] == "true"
    default = synthesized.resources[function_id(synthesized.resources, "tagwarden-test-list-instances")]
    assert config.TAG_CREATED_BY not in default["Properties"]["Environment"]["Variables"]
    assert quality_bar_violations(tagging.validation_report) == []  # the wildcards are acknowledged


def test_a_targets_deployment_tags_through_the_member_roles_only(targets: Synthesized) -> None:
    assert not [g for g in _list_role_grants(targets) if g[0] == "ec2:CreateTags"]
