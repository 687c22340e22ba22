"""The event path in the template: the EventBridge rule on CloudTrail's EC2 calls, the events
queue and its dead-letter queue, the Pipe that batches, stores and starts event runs, and the
event state machine with exactly the grants its Tasks need."""

from __future__ import annotations

from typing import Any

from tests.infra.cfn import expected, function_id, getatt, grants, only, ref
from tests.infra.conftest import Synthesized
from workflow import deployment
from workflow.events import EVENT_NAMES

EVENT_TASKS = [
    "plan-event-run",
    "list-instances",
    "evaluate-tags",
    "persist-report",
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
