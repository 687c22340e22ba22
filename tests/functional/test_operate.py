"""Operating a deployed stack: `tagwarden start | executions | status | history | redrive | dlq`.

Every AWS call runs against moto: a CloudFormation stack whose outputs name a state machine (moto
executes it), a report bucket and a dead-letter queue. moto does not implement RedriveExecution,
so redrive goes through botocore's Stubber on a real client. Two tests run the real ASL on the
embedded engine to check the timeline and the dead letters against what the workflow really emits.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from workflow import cli, cli_stack_ops, operate
from workflow.errors import InvalidInput
from workflow.exemption_files import validate_exemption_file
from workflow.stack import resolve

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "tagwarden-test"
BUCKET = "tagwarden-reports-test"
MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:tagwarden"
ROOT = Path(__file__).resolve().parents[2]

# A stand-in for the real workflow with the same shape of output: a Map over two regions, then a
# report under result.report; a policy_uri makes it fail the way a missing object would.
DEFINITION = {
    "StartAt": "Validate input",
    "States": {
        "Validate input": {
            "Type": "Pass",
            "Parameters": {
                "input.$": "$",
                "regions": ["us-east-1", "eu-west-1"],
                "run": {"run_id.$": "$$.Execution.Name", "bucket": BUCKET},
            },
            "Next": "Policy in S3?",
        },
        "Policy in S3?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.input.policy_uri", "IsPresent": True, "Next": "Scan failed permanently"}
            ],
            "Default": "Scan regions",
        },
        "Scan regions": {
            "Type": "Map",
            "ItemsPath": "$.regions",
            "ItemSelector": {"region.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "List EC2 instances",
                "States": {"List EC2 instances": {"Type": "Pass", "End": True}},
            },
            "ResultPath": None,
            "Next": "Persist report",
        },
        "Persist report": {
            "Type": "Pass",
            "Parameters": {
                "report": {
                    "summary_key.$": "States.Format('reports/runs/run={}/summary.json', $$.Execution.Name)",
                    "findings_key.$": "States.Format('reports/findings/run={}/findings.jsonl.gz', $$.Execution.Name)",
                    "totals": {"total": 3, "compliant": 1, "noncompliant": 2, "exempt": 0},
                }
            },
            "ResultPath": "$.result",
            "Next": "Scan complete",
        },
        "Scan complete": {"Type": "Succeed"},
        "Scan failed permanently": {
            "Type": "Fail",
            "Error": "ReportNotFound",
            "Cause": "GetObject s3://policies/p.json: NoSuchKey",
        },
    },
}


def summary(run_id: str, noncompliant: int = 2) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "evaluated_at": "2026-11-28T09:00:00+00:00",
        "policy": {"name": "baseline"},
        "totals": {
            "total": 3,
            "compliant": 3 - noncompliant,
            "noncompliant": noncompliant,
            "exempt": 0,
            "in_grace_period": 0,
            "compliance_percentage": round(100 * (3 - noncompliant) / 3, 1),
        },
        "by_rule": {"CostCenter:missing": noncompliant},
        "by_region": {"us-east-1": {"compliant": 3 - noncompliant, "noncompliant": noncompliant}},
    }


class Deployment:
    """The moto side of a deployed stack, and helpers to drive it."""

    def __init__(self) -> None:
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.cfn = boto3.client("cloudformation", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        self.machine = self.sfn.create_state_machine(
            name="tagwarden",
            definition=json.dumps(DEFINITION),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/tagwarden-states",
        )["stateMachineArn"]
        assert self.machine == MACHINE_ARN
        outputs = {
            "StateMachineArn": self.machine,
            "ReportBucketName": BUCKET,
            "ComplianceTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:tagwarden-compliance",
            "OperationsTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:tagwarden-operations",
            "DeadLetterQueueUrl": {"Ref": "DeadLetterQueue"},
            "AthenaWorkGroupName": "tagwarden",
            "GlueDatabaseName": "tagwarden",
            "CrawlerName": "tagwarden-reports",
            "DashboardUrl": "https://console.aws.amazon.com/cloudwatch/home#dashboards:name=tagwarden",
        }
        self.cfn.create_stack(StackName=STACK, TemplateBody=self.template("tagwarden-dead-letters", outputs))
        partial = {k: v for k, v in outputs.items() if k not in {"StateMachineArn", "DeadLetterQueueUrl"}}
        self.cfn.create_stack(
            StackName="tagwarden-partial", TemplateBody=self.template("other-queue", partial)
        )
        self.queue_url = self.sqs.get_queue_url(QueueName="tagwarden-dead-letters")["QueueUrl"]

    @staticmethod
    def template(queue_name: str, outputs: dict[str, Any]) -> str:
        return json.dumps(
            {
                "Resources": {
                    "DeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": queue_name}}
                },
                "Outputs": {key: {"Value": value} for key, value in outputs.items()},
            }
        )

    def start(self, name: str, execution_input: dict[str, Any] | None = None) -> str:
        arn: str = self.sfn.start_execution(
            stateMachineArn=self.machine, name=name, input=json.dumps(execution_input or {})
        )["executionArn"]
        return arn

    def wait(self, arn: str) -> dict[str, Any]:
        for _ in range(500):
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.01)
        raise AssertionError(f"{arn} still running")

    def failed_execution(self, name: str) -> str:
        arn = self.start(name, {"policy_uri": "s3://policies/p.json", "notify": "never"})
        assert self.wait(arn)["status"] == "FAILED"
        return arn

    def send(self, body: Any) -> None:
        self.sqs.send_message(
            QueueUrl=self.queue_url, MessageBody=body if isinstance(body, str) else json.dumps(body)
        )

    def visible_messages(self) -> list[dict[str, Any]]:
        """Every message visible now (made visible again right after counting)."""
        seen: dict[str, dict[str, Any]] = {}
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30
            ).get("Messages", [])
            if not batch:
                break
            seen.update({m["MessageId"]: m for m in batch})
        for message in seen.values():
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return list(seen.values())


def state_machine_letter(arn: str, execution_input: dict[str, Any]) -> dict[str, Any]:
    """What the `Send to dead-letter queue` state sends."""
    return {
        "execution_id": arn,
        "execution_name": operate.name_of(arn),
        "state_machine_id": MACHINE_ARN,
        "failed_state": "Persist report",
        "error": "AccessDenied",
        "cause": "PutObject s3://tagwarden-reports-test/...: AccessDenied",
        "input": execution_input,
        "failed_at": "2026-11-28T09:00:07.100Z",
    }


def status_change_event(arn: str, execution_input: dict[str, Any], status: str = "FAILED") -> dict[str, Any]:
    """What the EventBridge rule on failed executions sends."""
    return {
        "version": "0",
        "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": ACCOUNT,
        "time": "2026-11-28T09:00:08Z",
        "region": REGION,
        "resources": [arn],
        "detail": {
            "executionArn": arn,
            "stateMachineArn": MACHINE_ARN,
            "name": operate.name_of(arn),
            "status": status,
            "startDate": 1795856400000,
            "stopDate": 1795856408000,
            "input": json.dumps(execution_input),
            "output": None,
            "error": "ReportNotFound",
            "cause": "GetObject s3://policies/p.json: NoSuchKey",
        },
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    monkeypatch.delenv("TAGWARDEN_STACK", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield Deployment()


@pytest.fixture
def tagwarden(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """`tagwarden` through workflow.cli.main, with the operations commands registered."""
    build_parser = cli.build_parser

    def with_operations() -> argparse.ArgumentParser:
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "start" not in sub.choices:  # until workflow/cli.py calls register() itself
            cli_stack_ops.register(sub)
        return parser

    monkeypatch.setattr(cli, "build_parser", with_operations)

    def run(*argv: str) -> int:
        return cli.main(list(argv))

    return run


def only_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


class RedriveStub:
    """moto for everything, a Stubber'd real client for RedriveExecution (moto lacks it)."""

    def __init__(self, moto_client: Any) -> None:
        self.moto = moto_client
        self.client = boto3.client("stepfunctions", region_name=REGION)
        self.stub = Stubber(self.client)
        self.stub.activate()

    def redrive_execution(self, **kwargs: Any) -> Any:
        return self.client.redrive_execution(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.moto, name)


@pytest.fixture
def redrive_stub(aws: Deployment, monkeypatch: pytest.MonkeyPatch) -> Stubber:
    """The Stubber every Step Functions client of the CLI redrives through."""
    sfn = RedriveStub(aws.sfn)
    original = cli_stack_ops.make_client

    def make_client(session: Any, service: str, region: str | None) -> Any:
        return sfn if service == "stepfunctions" else original(session, service, region)

    monkeypatch.setattr(cli_stack_ops, "make_client", make_client)
    return sfn.stub


def test_registering_the_commands_imports_no_aws_library_and_offers_the_same_choices() -> None:
    import subprocess
    import sys

    code = (
        "import argparse, sys; import workflow.cli_stack_ops as ops; "
        "ops.register(argparse.ArgumentParser().add_subparsers()); "
        "print(sorted(m for m in ('boto3', 'botocore', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    assert cli_stack_ops.NOTIFY_MODES == operate.NOTIFY_MODES
    assert cli_stack_ops.STATUSES == operate.STATUSES


# -- the stack -----------------------------------------------------------------------------------


def test_stack_outputs_name_the_deployment_and_a_flag_wins_over_an_output(aws: Deployment) -> None:
    resources = resolve(aws.cfn, STACK)
    assert resources.state_machine_arn == MACHINE_ARN
    assert resources.report_bucket == BUCKET
    assert resources.dead_letter_queue_url == aws.queue_url
    assert resources.crawler_name == "tagwarden-reports"
    assert resources.stack_status == "CREATE_COMPLETE"
    assert set(resources.to_json()) == {
        "StateMachineArn",
        "ReportBucketName",
        "ComplianceTopicArn",
        "OperationsTopicArn",
        "DeadLetterQueueUrl",
        "AthenaWorkGroupName",
        "GlueDatabaseName",
        "CrawlerName",
        "DashboardUrl",
    }
    assert None not in resources.to_json().values()
    assert resolve(aws.cfn, STACK, {"ReportBucketName": "elsewhere"}).report_bucket == "elsewhere"


def test_a_stack_missing_an_output_is_one_line_naming_the_output_and_the_flag(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden("executions", "--stack", "tagwarden-partial") == 2
    assert only_line(capsys.readouterr().err) == (
        "tagwarden: stack 'tagwarden-partial' has no output StateMachineArn; pass --state-machine-arn ARN instead"
    )
    assert tagwarden("dlq", "--stack", "tagwarden-partial", "--list") == 2
    assert only_line(capsys.readouterr().err) == (
        "tagwarden: stack 'tagwarden-partial' has no output DeadLetterQueueUrl; pass --queue-url URL instead"
    )
    # The flag replaces the missing output.
    assert tagwarden("executions", "--stack", "tagwarden-partial", "--state-machine-arn", MACHINE_ARN) == 0


def test_an_unknown_stack_is_one_line(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden("executions", "--stack", "no-such-stack") == 2
    assert only_line(capsys.readouterr().err) == (
        "tagwarden: no stack 'no-such-stack' or 'Tagwarden-no-such-stack' in us-east-1; "
        "no stack named Tagwarden-* in us-east-1 (check --region)"
    )


def test_stack_takes_the_environment_name_and_an_unknown_one_lists_the_tagwarden_stacks(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = {"StateMachineArn": MACHINE_ARN, "ReportBucketName": "tagwarden-reports-test"}
    for name in ("Tagwarden-prod", "Tagwarden-dev"):
        aws.cfn.create_stack(StackName=name, TemplateBody=aws.template(f"{name}-queue", outputs))
    # "prod" is the environment: the stack Tagwarden-prod, as README's examples say.
    assert tagwarden("executions", "--stack", "prod", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert tagwarden("executions", "--stack", "Tagwarden-prod", "--json") == 0
    capsys.readouterr()
    assert tagwarden("executions", "--stack", "staging") == 2
    assert only_line(capsys.readouterr().err) == (
        "tagwarden: no stack 'staging' or 'Tagwarden-staging' in us-east-1; Tagwarden stacks in us-east-1: "
        "Tagwarden-dev, Tagwarden-prod (check --stack and --region)"
    )
    # The old README spelling: names are case-sensitive, so say which one was meant.
    assert tagwarden("executions", "--stack", "tagwarden-prod") == 2
    assert only_line(capsys.readouterr().err).endswith(
        "did you mean --stack Tagwarden-prod? (stack names are case-sensitive)"
    )


def test_without_stack_or_flag_the_command_says_what_to_pass(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden("executions") == 2
    assert only_line(capsys.readouterr().err) == (
        "tagwarden: no state machine: pass --stack NAME or --state-machine-arn ARN"
    )
    assert tagwarden("executions", "--state-machine-arn", "arn:aws:states:nope") == 2
    assert only_line(capsys.readouterr().err).startswith("--state-machine-arn: not a state machine ARN")


# -- start -----------------------------------------------------------------------------------------


def test_start_with_an_invalid_policy_exits_2_with_the_lines_of_validate(
    aws: Deployment, tagwarden: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps({"version": 1, "name": "p", "rules": [{"key": "A", "pattern": "("}], "x": 1})
    )
    assert tagwarden("validate", str(policy)) == 2
    expected = capsys.readouterr().err
    assert len(expected.splitlines()) == 2
    assert tagwarden("start", "--stack", STACK, "--policy", str(policy)) == 2
    assert capsys.readouterr().err == expected
    assert aws.sfn.list_executions(stateMachineArn=MACHINE_ARN)["executions"] == []


def test_start_sends_the_validated_policy_as_input_and_prints_the_arn_and_console_url(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    policy = ROOT / "policies" / "baseline.json"
    status = tagwarden(
        "start",
        "--stack",
        STACK,
        "--policy",
        str(policy),
        "--regions",
        "eu-west-1,us-east-1",
        "--notify",
        "never",
        "--name",
        "manual-1",
    )
    assert status == 0
    arn, url = capsys.readouterr().out.splitlines()
    assert arn == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:tagwarden:manual-1"
    assert url.startswith(
        "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/"
    )
    sent = json.loads(aws.sfn.describe_execution(executionArn=arn)["input"])
    assert sent["regions"] == ["eu-west-1", "us-east-1"] and sent["notify"] == "never"
    assert sent["policy"] == json.loads(policy.read_text())
    assert set(sent) == {"policy", "regions", "notify"}


def test_start_sends_targets_checked_locally_first(
    aws: Deployment, tagwarden: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"targets": [{"account_id": "111122223333", "regions": ["eu-west-1"]}]}))
    assert tagwarden("start", "--stack", STACK, "--targets", str(targets), "--name", "manual-targets") == 0
    arn = capsys.readouterr().out.splitlines()[0]
    sent = json.loads(aws.sfn.describe_execution(executionArn=arn)["input"])
    assert sent == {"targets": [{"account_id": "111122223333", "regions": ["eu-west-1"]}]}

    targets.write_text(
        json.dumps([{"account_id": "111122223333", "role_arn": "arn:aws:iam::444455556666:role/R"}])
    )
    before = len(aws.sfn.list_executions(stateMachineArn=MACHINE_ARN)["executions"])
    assert tagwarden("start", "--stack", STACK, "--targets", str(targets)) == 2
    assert capsys.readouterr().err.strip() == (
        "--targets: $.targets[0].role_arn: the role is in account 444455556666, not in 111122223333"
    )
    assert len(aws.sfn.list_executions(stateMachineArn=MACHINE_ARN)["executions"]) == before


def test_start_under_a_name_already_used_is_one_line(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    aws.start("nightly")
    assert tagwarden("start", "--stack", STACK, "--name", "nightly") == 2
    assert only_line(capsys.readouterr().err) == (
        "--name: an execution named 'nightly' already exists; the name is the run id, pick another"
    )


def test_start_wait_follows_each_state_and_ends_with_the_summary(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    aws.s3.put_object(
        Bucket=BUCKET, Key="reports/runs/run=waited/summary.json", Body=json.dumps(summary("waited")).encode()
    )
    status = tagwarden("start", "--stack", STACK, "--name", "waited", "--wait", "--poll-interval", "0.05")
    out, err = capsys.readouterr()
    assert status == 0
    progress = [line.strip() for line in err.splitlines()]
    assert progress[0] == f"Execution waited of {MACHINE_ARN}"
    assert [line.split()[1] for line in progress if line.startswith("ok ")] == [
        "Validate",
        "Policy",
        "List",
        "List",
        "Scan",
        "Persist",
        "Scan",
    ]
    assert progress[-1] == "execution succeeded"
    assert "Tag policy 'baseline', run waited" not in out  # plain output: no table titles
    lines = [line.split() for line in out.splitlines()]
    assert ["noncompliant", "2"] in lines and ["compliance", "33.3%"] in lines
    assert ["CostCenter:missing", "2"] in lines
    assert out.splitlines()[-1] == f"Findings: s3://{BUCKET}/reports/findings/run=waited/findings.jsonl.gz"


def test_start_wait_json_and_fail_on_violations_exit_1(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    aws.s3.put_object(
        Bucket=BUCKET, Key="reports/runs/run=strict/summary.json", Body=json.dumps(summary("strict"))
    )
    argv = ("start", "--stack", STACK, "--name", "strict", "--wait", "--json", "--poll-interval", "0")
    assert tagwarden(*argv, "--fail-on-violations") == 1
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "SUCCEEDED"
    assert document["summary"] == {
        "total": 3,
        "compliant": 1,
        "noncompliant": 2,
        "exempt": 0,
        "compliance_percentage": 33.3,
    }
    assert document["summary_uri"] == f"s3://{BUCKET}/reports/runs/run=strict/summary.json"


def test_start_wait_on_a_partial_scan_exits_4_even_with_fail_on_violations(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    partial = {
        **summary("partial-run"),
        "partial": True,
        "incomplete": True,
        "targets": [{"account_id": "111122223333", "region": "eu-west-1", "status": "error", "reason": "x"}],
    }
    aws.s3.put_object(
        Bucket=BUCKET, Key="reports/runs/run=partial-run/summary.json", Body=json.dumps(partial)
    )
    argv = ("start", "--stack", STACK, "--name", "partial-run", "--wait", "--poll-interval", "0")
    assert tagwarden(*argv, "--fail-on-violations") == 4
    assert "incomplete scan" in capsys.readouterr().err


def test_start_wait_when_nothing_was_evaluated_exits_4_and_never_shows_100_percent(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    empty = summary("empty-run")
    empty["totals"] = {**empty["totals"], "total": 0, "compliant": 0, "noncompliant": 0}
    empty["totals"]["compliance_percentage"] = None
    aws.s3.put_object(Bucket=BUCKET, Key="reports/runs/run=empty-run/summary.json", Body=json.dumps(empty))
    argv = ("start", "--stack", STACK, "--name", "empty-run", "--wait", "--poll-interval", "0")
    assert tagwarden(*argv) == 4
    out = capsys.readouterr().out
    assert "nothing evaluated" in out and "100" not in out


def test_start_wait_on_an_execution_that_fails_exits_3_with_its_error(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("start", "--stack", STACK, "--name", "doomed", "--policy-uri", "s3://policies/p.json")
    assert tagwarden(*argv, "--wait", "--poll-interval", "0") == 3
    err = capsys.readouterr().err.splitlines()
    assert "  FAILED  ReportNotFound: GetObject s3://policies/p.json: NoSuchKey" in err
    assert err[-2] == "tagwarden: execution FAILED: ReportNotFound: GetObject s3://policies/p.json: NoSuchKey"
    assert (
        err[-1] == f"timeline: tagwarden history arn:aws:states:{REGION}:{ACCOUNT}:execution:tagwarden:doomed"
    )


# -- executions, status, history ---------------------------------------------------------------------


def test_list_executions_reads_every_page_it_needs(aws: Deployment) -> None:
    for i in range(23):
        aws.start(f"run-{i:03d}")
    calls: list[str] = []
    aws.sfn.meta.events.register("before-call.sfn.ListExecutions", lambda **_: calls.append("page"))
    rows = operate.list_executions(aws.sfn, MACHINE_ARN, limit=20, page_size=7)
    assert len(rows) == 20 and len(calls) == 3
    assert len({row.name for row in rows}) == 20
    calls.clear()
    assert len(operate.list_executions(aws.sfn, MACHINE_ARN, limit=100, page_size=7)) == 23
    assert len(calls) == 4


def test_executions_lists_more_than_one_page_of_the_api(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    names = [f"scan-{i:03d}" for i in range(130)]
    for name in names:
        aws.start(name)
    assert tagwarden("executions", "--stack", STACK, "--limit", "500", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(row["name"] for row in listed) == names  # ListExecutions returns at most 100 per page
    assert tagwarden("executions", "--stack", STACK, "--limit", "5") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "STARTED", "DURATION", "REDRIVES"]
    assert len(out) == 6


def test_executions_filters_by_status_newest_first(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    aws.wait(aws.start("good-1"))
    aws.failed_execution("bad-1")
    aws.wait(aws.start("good-2"))
    assert tagwarden("executions", "--stack", STACK, "--status", "FAILED", "--json") == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)] == ["bad-1"]
    assert tagwarden("executions", "--stack", STACK, "--status", "failed,SUCCEEDED", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["name"], row["status"]) for row in rows] == [
        ("good-2", "SUCCEEDED"),
        ("bad-1", "FAILED"),
        ("good-1", "SUCCEEDED"),
    ]
    assert tagwarden("executions", "--stack", STACK, "--status", "BROKEN") == 2
    assert only_line(capsys.readouterr().err).startswith("--status: one of RUNNING, SUCCEEDED, FAILED")


def test_status_finds_an_execution_by_name_through_the_stack_or_by_arn_alone(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    arn = aws.failed_execution("broken")
    assert tagwarden("status", "broken", "--stack", STACK, "--json") == 0
    by_name = json.loads(capsys.readouterr().out)
    assert tagwarden("status", arn, "--json") == 0  # region and everything else from the ARN
    assert json.loads(capsys.readouterr().out) == by_name
    assert by_name["status"] == "FAILED"
    assert by_name["error"] == "ReportNotFound"
    assert by_name["input"] == {"policy_uri": "s3://policies/p.json", "notify": "never"}
    assert tagwarden("status", "broken", "--stack", STACK) == 0
    fields = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert fields["status"] == "FAILED"
    assert fields["input"] == "policy s3://policies/p.json, notify never"
    assert fields["arn"] == arn


def test_an_unknown_execution_is_one_line_and_exit_2(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:tagwarden:nope"
    for command in ("status", "history"):
        assert tagwarden(command, "nope", "--stack", STACK) == 2
        assert only_line(capsys.readouterr().err) == f"tagwarden: execution 'nope' does not exist ({missing})"
    assert tagwarden("status", "nope") == 2
    assert only_line(capsys.readouterr().err).startswith(
        "tagwarden: cannot look up execution 'nope' by name without the state machine"
    )
    assert tagwarden("status", "arn:aws:states:us-east-1:1:stateMachine:x") == 2
    assert only_line(capsys.readouterr().err).startswith("tagwarden: not an execution ARN")


def test_history_is_a_timeline_with_map_iterations_and_the_failure(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    aws.wait(aws.start("ok"))
    assert tagwarden("history", "ok", "--stack", STACK, "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    # The two iterations run concurrently: the timeline lists them in the order they started.
    timeline = [(row["state"], row["iteration"], row["outcome"]) for row in rows]
    timeline[3:5] = sorted(timeline[3:5], key=lambda row: str(row[1]))
    assert timeline == [
        ("Validate input", None, "succeeded"),
        ("Policy in S3?", None, "succeeded"),
        ("Scan regions", None, "succeeded"),
        ("List EC2 instances", "Scan regions[0]", "succeeded"),
        ("List EC2 instances", "Scan regions[1]", "succeeded"),
        ("Persist report", None, "succeeded"),
        ("Scan complete", None, "succeeded"),
    ]
    assert all(row["duration_seconds"] is not None for row in rows)
    # Each iteration is named by its item (this definition's items are bare regions).
    assert sorted(row["item"] for row in rows if row["iteration"]) == ["eu-west-1", "us-east-1"]
    aws.failed_execution("ko")
    assert tagwarden("history", "ko", "--stack", STACK) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "STATE",
        "ITEM",
        "TYPE",
        "ENTERED",
        "DURATION",
        "RETRIES",
        "OUTCOME",
        "ERROR",
        "CAUSE",
    ]
    cells = re.split(r"\s{2,}", table[-1])
    assert cells[:2] == ["Scan failed permanently", "Fail"] and cells[2].startswith("+")
    assert cells[-3:] == ["failed", "ReportNotFound", "GetObject s3://policies/p.json: NoSuchKey"]


def test_history_reads_the_history_json_of_a_local_run(
    tagwarden: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [
        {"id": 1, "previousEventId": 0, "type": "ExecutionStarted", "timestamp": "2026-11-28T09:00:00+00:00"},
        {
            "id": 2,
            "previousEventId": 1,
            "type": "PassStateEntered",
            "timestamp": "2026-11-28T09:00:00+00:00",
            "stateEnteredEventDetails": {"name": "A"},
        },
        {
            "id": 3,
            "previousEventId": 2,
            "type": "PassStateExited",
            "timestamp": "2026-11-28T09:00:01.5+00:00",
            "stateExitedEventDetails": {"name": "A"},
        },
    ]
    path = tmp_path / "history.json"
    path.write_text(json.dumps(events))
    assert tagwarden("history", "--history-file", str(path), "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["state"], row["duration_seconds"], row["outcome"]) == ("A", 1.5, "succeeded")
    # The old spelling still works; both commands read a saved history with one reader.
    assert tagwarden("history", "--file", str(path), "--json") == 0
    capsys.readouterr()
    path.write_text("[1, 2]")
    assert tagwarden("history", "--history-file", str(path)) == 2
    assert only_line(capsys.readouterr().err).startswith(f"--history-file: {path}: not an execution history")


# -- credentials and region --------------------------------------------------------------------------


@pytest.fixture
def no_aws_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "TAGWARDEN_STACK",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_aws_configuration")
def test_no_credentials_is_one_line_not_a_traceback(
    tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden("executions", "--state-machine-arn", MACHINE_ARN) == 2
    assert only_line(capsys.readouterr().err) == (
        "tagwarden: no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or run 'aws sso login')"
    )


@pytest.mark.usefixtures("no_aws_configuration")
def test_no_region_and_an_unknown_profile_are_one_line(
    tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert tagwarden("executions", "--stack", STACK) == 2
    assert only_line(capsys.readouterr().err) == (
        "tagwarden: no AWS region: pass --region, or set AWS_REGION or a region in the AWS profile"
    )
    assert tagwarden("dlq", "--stack", STACK, "--profile", "ghost") == 2
    assert only_line(capsys.readouterr().err) == (
        "tagwarden: The config profile (ghost) could not be found (check --profile, AWS_PROFILE and ~/.aws/config)"
    )


# -- redrive ---------------------------------------------------------------------------------------------


def test_redrive_of_a_failed_execution_prints_it_and_a_not_redrivable_one_is_one_line(
    aws: Deployment,
    tagwarden: Callable[..., int],
    redrive_stub: Stubber,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arn = aws.failed_execution("broken")
    stub = redrive_stub
    stub.add_response(
        "redrive_execution", {"redriveDate": datetime(2026, 11, 28, tzinfo=UTC)}, {"executionArn": arn}
    )
    assert tagwarden("redrive", "broken", "--stack", STACK, "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "execution_arn": arn,
        "redrive_date": "2026-11-28 00:00:00Z",
        "console_url": operate.console_url(None, arn),
    }
    stub.add_client_error(
        "redrive_execution",
        "ExecutionNotRedrivable",
        "Execution redrivable period exceeded.",
        expected_params={"executionArn": arn},
    )
    assert tagwarden("redrive", arn) == 2
    assert only_line(capsys.readouterr().err) == (
        "tagwarden: execution 'broken' cannot be redriven: Execution redrivable period exceeded."
    )
    stub.assert_no_pending_responses()


def test_redrive_maps_every_refusal_to_one_line() -> None:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:tagwarden:x"
    with Stubber(sfn) as stub:
        stub.add_client_error("redrive_execution", "ExecutionDoesNotExist", "gone")
        stub.add_client_error("redrive_execution", "ExecutionLimitExceeded", "1,000,000 open")
        stub.add_client_error(
            "redrive_execution", "AccessDeniedException", "not allowed", http_status_code=400
        )
        with pytest.raises(InvalidInput) as missing:
            operate.redrive(sfn, arn)
        assert missing.value.lines() == [f"tagwarden: execution 'x' does not exist ({arn})"]
        with pytest.raises(operate.OperationError, match="too many open executions"):
            operate.redrive(sfn, arn)
        with pytest.raises(operate.OperationError) as denied, operate.aws_errors():
            operate.redrive(sfn, arn)
        assert str(denied.value) == "RedriveExecution: access denied (AccessDeniedException): not allowed"


# -- the dead-letter queue ---------------------------------------------------------------------------------


def test_dead_letters_of_both_shapes_are_listed_and_left_in_the_queue(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:tagwarden:nightly"
    aws.send(state_machine_letter(arn, {"notify": "never"}))
    aws.send(status_change_event(arn, {"notify": "never"}))
    aws.send("something else")
    assert tagwarden("dlq", "--stack", STACK, "--list", "--json") == 0
    letters = sorted(json.loads(capsys.readouterr().out), key=lambda letter: letter["source"])
    assert [(x["source"], x["execution_arn"], x["input"]) for x in letters] == [
        ("eventbridge", arn, {"notify": "never"}),
        ("state machine", arn, {"notify": "never"}),
        ("unrecognized", None, None),
    ]
    assert letters[0]["status"] == "FAILED" and letters[0]["error"] == "ReportNotFound"
    assert letters[0]["failed_at"] == "2026-11-28T09:00:08Z"
    assert letters[1]["failed_state"] == "Persist report" and letters[1]["error"] == "AccessDenied"
    assert all(letter["sent_at"] for letter in letters)
    assert len(aws.visible_messages()) == 3  # listing consumed nothing, and nothing waits out a timeout
    assert tagwarden("dlq", "--stack", STACK, "--list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["EXECUTION", "SOURCE", "FAILED"] and len(out) == 4


def test_dlq_redrives_each_execution_once_and_purges_only_messages_whose_redrive_succeeded(
    aws: Deployment,
    tagwarden: Callable[..., int],
    redrive_stub: Stubber,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = aws.failed_execution("first")
    second = aws.failed_execution("second")
    failed_input = {"policy_uri": "s3://policies/p.json", "notify": "never"}
    aws.send(state_machine_letter(first, failed_input))
    aws.send(status_change_event(first, failed_input))  # the EventBridge rule reports the same failure
    aws.send(state_machine_letter(second, failed_input))
    aws.send("{not json")
    stub = redrive_stub
    stub.add_response("redrive_execution", {"redriveDate": datetime.now(UTC)}, {"executionArn": first})
    stub.add_client_error(
        "redrive_execution",
        "ExecutionNotRedrivable",
        "Execution history event limit exceeded.",
        expected_params={"executionArn": second},
    )
    assert tagwarden("dlq", "--stack", STACK, "--purge-after-redrive", "--json") == 0
    stub.assert_no_pending_responses()  # one redrive per execution, however many messages
    outcomes = json.loads(capsys.readouterr().out)
    summary_rows = sorted(
        (o["execution_arn"] or "", o["source"], o["action"], o["deleted"]) for o in outcomes
    )
    assert summary_rows == [
        ("", "unrecognized", "unrecognized", False),
        (first, "eventbridge", "redriven", True),
        (first, "state machine", "redriven", True),
        (second, "state machine", "not redrivable", False),
    ]
    refused = next(o for o in outcomes if o["execution_arn"] == second)
    assert refused["detail"] == (
        "execution 'second' cannot be redriven: Execution history event limit exceeded.; "
        "pass --restart-unredrivable to start it again with the same input"
    )
    left = sorted(m["Body"] for m in aws.visible_messages())
    assert left == sorted(["{not json", json.dumps(state_machine_letter(second, failed_input))])


def test_dlq_restarts_an_unredrivable_execution_with_the_same_input_once(
    aws: Deployment,
    tagwarden: Callable[..., int],
    redrive_stub: Stubber,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = aws.failed_execution("old")
    aws.send(status_change_event(old, {"ignored": "the execution's own input wins"}))
    stub = redrive_stub
    stub.add_client_error(
        "redrive_execution", "ExecutionNotRedrivable", "Execution redrivable period exceeded."
    )
    assert tagwarden("dlq", "--stack", STACK, "--restart-unredrivable") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "EXECUTION",
        "SOURCE",
        "FAILED",
        "STATE",
        "ERROR",
        "ACTION",
        "DETAIL",
        "DELETED",
    ]
    assert "restarted" in out[1] and "started old-restart1 with the same input" in out[1]
    restarted = aws.sfn.describe_execution(executionArn=operate.execution_arn("old-restart1", MACHINE_ARN))
    assert restarted["input"] == aws.sfn.describe_execution(executionArn=old)["input"]
    aws.wait(restarted["executionArn"])
    # Again: the restart already exists, nothing new starts; with purge the message goes.
    stub.add_client_error(
        "redrive_execution", "ExecutionNotRedrivable", "Execution redrivable period exceeded."
    )
    assert (
        tagwarden("dlq", "--stack", STACK, "--restart-unredrivable", "--purge-after-redrive", "--json") == 0
    )
    [outcome] = json.loads(capsys.readouterr().out)
    assert (outcome["action"], outcome["deleted"]) == ("already restarted", True)
    assert outcome["new_execution_arn"] == restarted["executionArn"]
    assert aws.visible_messages() == []
    assert len(aws.sfn.list_executions(stateMachineArn=MACHINE_ARN)["executions"]) == 2


def test_dlq_refuses_forged_messages_and_starts_nothing_they_name(
    aws: Deployment,
    tagwarden: Callable[..., int],
    redrive_stub: Stubber,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Anyone who can send to the queue can write a dead letter: none may steer the operator."""
    payments = aws.sfn.create_state_machine(
        name="payments-admin-ops",
        definition=json.dumps(DEFINITION),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/payments",
    )["stateMachineArn"]
    victim = aws.sfn.start_execution(
        stateMachineArn=payments, name="wire", input=json.dumps({"policy_uri": "s3://policies/p.json"})
    )["executionArn"]
    assert aws.wait(victim)["status"] == "FAILED"
    ours = aws.failed_execution("ours")
    forged_input = {"transfer": "everything", "to": "attacker"}
    forgeries = {
        # another state machine's execution, named outright
        "other machine": {**state_machine_letter(victim, forged_input), "state_machine_id": payments},
        # our execution ARN, but another state machine claimed for it
        "claimed machine": {**state_machine_letter(ours, forged_input), "state_machine_id": payments},
        # an execution of ours that never ran: nothing to read the input from
        "never ran": state_machine_letter(operate.execution_arn("never-ran", MACHINE_ARN), forged_input),
        # an EventBridge-shaped event about the other machine
        "event": {
            **status_change_event(victim, forged_input),
            "detail": {**status_change_event(victim, forged_input)["detail"], "stateMachineArn": payments},
        },
    }
    for body in forgeries.values():
        aws.send(body)
    # The stub holds no redrive answer: a RedriveExecution call would show as "failed" below.
    assert (
        tagwarden("dlq", "--stack", STACK, "--restart-unredrivable", "--purge-after-redrive", "--json") == 0
    )
    outcomes = json.loads(capsys.readouterr().out)
    assert sorted(o["action"] for o in outcomes) == ["refused"] * 4
    assert all("left in the queue" in o["detail"] for o in outcomes)
    assert not any(o["deleted"] or o["new_execution_arn"] for o in outcomes)
    assert len(aws.sfn.list_executions(stateMachineArn=payments)["executions"]) == 1
    assert [e["name"] for e in aws.sfn.list_executions(stateMachineArn=MACHINE_ARN)["executions"]] == ["ours"]
    assert len(aws.visible_messages()) == 4
    assert tagwarden("dlq", "--stack", STACK) == 0
    table = capsys.readouterr().out
    assert table.count("refused") == 4


def test_dlq_without_the_stacks_state_machine_redrives_nothing(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    aws.send(state_machine_letter(aws.failed_execution("broken"), {}))
    assert tagwarden("dlq", "--queue-url", aws.queue_url, "--region", REGION) == 2
    assert "state machine" in only_line(capsys.readouterr().err)
    assert tagwarden("dlq", "--queue-url", aws.queue_url, "--region", REGION, "--list") == 0


def test_dlq_dry_run_applies_the_14_day_rule_and_changes_nothing(aws: Deployment) -> None:
    recent, old = aws.failed_execution("recent"), aws.failed_execution("old")
    aws.send(state_machine_letter(recent, {}))
    aws.send(state_machine_letter(old, {}))
    later = datetime.now(UTC) + timedelta(days=15)
    outcomes = operate.redrive_dead_letters(
        aws.sfn,
        aws.sqs,
        aws.queue_url,
        state_machine_arn=MACHINE_ARN,
        purge_after_redrive=True,
        restart_unredrivable=True,
        dry_run=True,
        now=later,
        wait_seconds=0,
    )
    assert {o.letter.execution_name: (o.action, o.deleted) for o in outcomes} == {
        "recent": ("would restart", False),
        "old": ("would restart", False),
    }
    assert "can be redriven for 14 days" in outcomes[0].detail
    outcomes = operate.redrive_dead_letters(
        aws.sfn, aws.sqs, aws.queue_url, state_machine_arn=MACHINE_ARN, dry_run=True, wait_seconds=0
    )
    assert {o.action for o in outcomes} == {"would redrive"}
    assert len(aws.visible_messages()) == 2
    assert len(aws.sfn.list_executions(stateMachineArn=MACHINE_ARN)["executions"]) == 2


def test_dlq_of_a_queue_that_does_not_exist_is_one_line(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    queue = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/gone"
    assert tagwarden("dlq", "--queue-url", queue, "--list") == 2
    assert only_line(capsys.readouterr().err) == (
        f"tagwarden: queue {queue} does not exist (check --stack, --queue-url and --region)"
    )


# -- against the real workflow on the embedded engine ----------------------------------------------------


@pytest.fixture
def throttled_run() -> Iterator[tuple[Any, str]]:
    """A real execution whose region listing stays throttled past its retries, and its deployment."""
    from workflow.engine.local import LocalDeployment
    from workflow.fleet import demo_fleet, iter_fleet_document

    fleet = [i for i in iter_fleet_document(demo_fleet(instances_per_region=3)) if i.region == "eu-west-1"]
    with LocalDeployment(fleet, regions=["eu-west-1"], retry_wait_scale=0) as local:
        local.fleet.throttle("eu-west-1", 100)
        arn = local.start({"regions": ["eu-west-1"], "notify": "never"}, name="throttled")
        assert local.engine.wait(arn, timeout=120)["status"] == "FAILED"
        local.fleet.throttle("eu-west-1", 0)
        yield local, arn


def test_timeline_of_a_real_failed_scan_shows_the_retries_in_the_map_and_the_caught_failure(
    throttled_run: tuple[Any, str],
) -> None:
    local, arn = throttled_run
    rows = {row.label: row for row in operate.timeline(local.engine.history(arn))}
    listing = rows[f"List EC2 instances  {ACCOUNT}/eu-west-1"]
    assert (listing.attempts, listing.retries, listing.outcome, listing.error) == (
        6,
        5,
        "caught",
        "Throttled",
    )
    assert listing.attempt_errors == ("Throttled",) * 6
    # The iteration's own Catch leads to its Fail state, which fails the iteration; the Map catches that.
    assert rows[f"Listing failed  {ACCOUNT}/eu-west-1"].outcome == "succeeded"
    assert rows[f"Region failed  {ACCOUNT}/eu-west-1"].outcome == "failed"
    assert rows["Scan regions"].outcome == "caught"
    assert [row.label for row in rows.values()][-3:] == [
        "Scan failed",
        "Send to dead-letter queue",
        "Scan failed permanently",
    ]
    assert rows["Send to dead-letter queue"].outcome == "succeeded"
    final = rows["Scan failed permanently"]
    assert (final.outcome, final.error) == ("failed", "Throttled")


def test_a_real_dead_letter_too_old_to_redrive_is_restarted_with_its_input_and_purged(
    throttled_run: tuple[Any, str],
) -> None:
    local, arn = throttled_run
    sqs, sfn = local.engine.client("sqs"), local.engine.client("stepfunctions")
    [letter] = operate.dead_letters(sqs, local.queue_url, wait_seconds=0)
    assert (letter.source, letter.execution_arn, letter.failed_state) == (
        "state machine",
        arn,
        "Scan regions",
    )
    assert json.loads(letter.input or "") == {"regions": ["eu-west-1"], "notify": "never"}
    [outcome] = operate.redrive_dead_letters(
        sfn,
        sqs,
        local.queue_url,
        state_machine_arn=local.state_machine_arn,
        purge_after_redrive=True,
        restart_unredrivable=True,
        now=datetime.now(UTC) + timedelta(days=15),
        wait_seconds=0,
    )
    assert (outcome.action, outcome.deleted) == ("restarted", True)
    assert outcome.new_execution_arn == operate.execution_arn("throttled-restart1", local.state_machine_arn)
    assert local.engine.wait(outcome.new_execution_arn, timeout=120)["status"] == "SUCCEEDED"
    assert operate.dead_letters(sqs, local.queue_url, wait_seconds=0) == []


# --- subscribe-owner ------------------------------------------------------------------------------


def test_subscribe_owner_creates_an_email_subscription_that_lets_only_that_owners_digests_through(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="tagwarden-compliance")["TopicArn"]
    assert (
        tagwarden(
            "subscribe-owner", "--stack", STACK, "ana@example.com", "--owner", " Ana@Example.com", "--json"
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["filter_policy"] == {"kind": ["owner-digest"], "owner": ["ana@example.com"]}
    (subscription,) = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "ana@example.com")
    attributes = sns.get_subscription_attributes(SubscriptionArn=printed["subscription_arn"])["Attributes"]
    assert json.loads(attributes["FilterPolicy"]) == printed["filter_policy"]


def test_subscribe_owner_refuses_what_is_not_an_email_address_with_one_line(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("sns", region_name=REGION).create_topic(Name="tagwarden-compliance")
    assert tagwarden("subscribe-owner", "--stack", STACK, "not-an-address") == 2
    assert only_line(capsys.readouterr().err).endswith("'not-an-address' is not an email address")


# --- exempt -------------------------------------------------------------------------------------


def test_exempt_writes_one_validated_exemption_file_with_who_approved_it_and_never_overwrites_one(
    aws: Deployment, tagwarden: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "exempt",
        "--stack",
        STACK,
        "i-0abc1234def567890",
        "--days",
        "30",
        "--reason",
        "batch migration",
        "--json",
    ]
    assert tagwarden(*argv) == 0
    printed = json.loads(capsys.readouterr().out)
    key = printed["key"].removeprefix(f"s3://{BUCKET}/")
    stored = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert stored == printed["exemption"]
    assert stored["approved_by"].startswith("arn:aws:")  # the caller, from sts:GetCallerIdentity
    assert stored["reason"] == "batch migration" and stored["resource_ids"] == ["i-0abc1234def567890"]
    assert validate_exemption_file(stored) == []
    # The same resource and day again: refused, and the first approval stays as it was.
    assert tagwarden(*argv[:-1], "--approved-by", "someone-else") == 2
    assert only_line(capsys.readouterr().err).endswith("exists already (kept as it is); give other --days")
    assert json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) == stored


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sg-0abc1234", "--days", "3", "--reason", "r"], "does not match"),
        (["i-0abc1234", "--days", "400", "--reason", "r"], "at most 365"),
    ],
)
def test_exempt_refuses_what_it_cannot_record_with_one_line(
    aws: Deployment,
    tagwarden: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    try:
        status = tagwarden("exempt", "--stack", STACK, *argv)
    except SystemExit as err:  # argparse refuses --days itself
        status = int(err.code or 0)
    assert status == 2
    assert message in capsys.readouterr().err
    assert not aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="exemptions/").get("Contents")
