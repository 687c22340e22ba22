"""Tagwarden deployed on the embedded engine: the same ASL file and handlers as on AWS, with
moto's S3, SNS, SQS, Glue and Step Functions, and EC2 answered from a fleet.

>>> from workflow.fleet import demo_fleet, iter_fleet_document
>>> with LocalDeployment(list(iter_fleet_document(demo_fleet(instances_per_region=5)))) as local:
...     result = local.run({"notify": "always"}, name="doc-run")
>>> result.status, result.summary["totals"]["total"] > 0, len(result.notifications)
('SUCCEEDED', True, 1)
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from workflow import aws, config, deployment, layout
from workflow.digests import DIGEST_KIND, KIND_ATTRIBUTE, SUMMARY_KIND
from workflow.engine.botocore_models import handler_session
from workflow.engine.embedded import EmbeddedEngine
from workflow.engine.event_routing import EventRouting, PutResult
from workflow.engine.fleet_endpoint import FleetEndpoint
from workflow.engine.member_accounts import MemberAccounts
from workflow.fleet import FleetInstance, FleetResource
from workflow.queries import schema
from workflow.storage import get_gz_bytes, get_json, iter_jsonl_gz

ENVIRONMENT: Final = "local"
STATE_MACHINE_NAME: Final = "tagwarden"
EVENTS_STATE_MACHINE_NAME: Final = "tagwarden-events"
# The events queue and the member accounts' bus, as EventRouting names them for ENVIRONMENT.
EVENTS_QUEUE_NAME: Final = f"tagwarden-{ENVIRONMENT}-events"
BUCKET: Final = "tagwarden-reports-local"
DATABASE: Final = "tagwarden_local"
DEFAULT_POLICY: Final = deployment.ROOT / "policies" / "baseline.json"
CENTRAL_ACCOUNT: Final = "123456789012"
MEMBER_EXTERNAL_ID: Final = "tagwarden-local"


def _table_input(name: str, columns: Sequence[tuple[str, str]], prefix: str) -> dict[str, Any]:
    """The Glue table the CDK app creates (JSON SerDe, dt/run partitions), for moto's catalog."""
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "PartitionKeys": [{"Name": n, "Type": t} for n, t in schema.PARTITION_KEYS],
        "StorageDescriptor": {
            "Columns": [{"Name": n, "Type": t} for n, t in columns],
            "Location": f"s3://{BUCKET}/{prefix}",
            "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
        },
    }


class _CurrentStream(io.TextIOBase):
    """Writes to whatever the thread's log sink is (a Lambda's stdout is its CloudWatch log)."""

    def __init__(self, fallback: IO[str], sink: Callable[[], IO[str] | None]) -> None:
        self._fallback = fallback
        self._sink = sink

    def write(self, text: str) -> int:
        target = self._sink() or self._fallback
        return target.write(text)

    def flush(self) -> None:
        (self._sink() or self._fallback).flush()


@dataclass
class RunResult:
    """What one execution produced, read back from the (moto) AWS services."""

    execution_arn: str
    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    history: list[dict[str, Any]]
    summary: dict[str, Any] | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    # The report's findings object as persisted (gzip JSON Lines), when collected without parsing.
    findings_jsonl_gz: bytes | None = None
    notifications: list[dict[str, Any]] = field(default_factory=list)  # the run's summary message
    digests: list[dict[str, Any]] = field(default_factory=list)  # owner digests (workflow.digests)
    # Staged remediation's actions (the actions table), when the run remediated.
    actions: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    logs: str = ""


class LocalDeployment:
    """Deploy Tagwarden on an :class:`EmbeddedEngine` and run scans on a fleet.

    ``retry_wait_scale`` shortens Retry backoffs (tests use 0) without touching the definition.
    Every account of the fleet is a member of the local organisation with its member role
    deployed; ``members`` changes that (an account without the role, a suspended account).
    A region with no instance in the fleet is "not scanned (no data in the given dumps)", unless
    it is one of ``empty_regions`` (listed and found empty).
    """

    def __init__(
        self,
        fleet: Sequence[FleetInstance],
        *,
        regions: Sequence[str] | None = None,
        default_policy: Mapping[str, Any] | None = None,
        retry_wait_scale: float = 1.0,
        mock_config: str | Path | Mapping[str, Any] | None = None,
        environment: str = ENVIRONMENT,
        map_max_concurrency: int = 4,
        region: str = "us-east-1",
        function_timeouts: Mapping[str, int] | None = None,
        extra_environment: Mapping[str, str] | None = None,
        ec2: str = "fleet",
        empty_regions: Sequence[str] = (),
        resources: Sequence[FleetResource] = (),
        covered: Sequence[tuple[str, str, str | None]] = (),
    ) -> None:
        if ec2 not in {"fleet", "moto"}:
            raise ValueError("ec2 must be 'fleet' (DescribeInstances from the fleet) or 'moto' (moto's EC2)")
        # "moto": DescribeInstances goes to moto's own EC2 backend, seeded by the caller through the
        # EC2 API (slow, and it assigns its own ids); used to run other tools on the same backend.
        self.ec2 = ec2
        self.fleet = FleetEndpoint(
            fleet,
            account_id=CENTRAL_ACCOUNT,
            empty_regions=empty_regions,
            resources=resources,
            covered=covered,
        )
        self.members = MemberAccounts(central_account=CENTRAL_ACCOUNT, external_id=MEMBER_EXTERNAL_ID)
        # The organisation: this (management) account and every account of the fleet.
        for account in sorted({CENTRAL_ACCOUNT, *self.fleet.accounts}):
            self.members.add_account(account)
        self.fleet.account_of_key = self.members.account_of  # type: ignore[method-assign]
        self.regions = list(regions or self.fleet.regions or [region])
        self.default_policy = (
            dict(default_policy) if default_policy else json.loads(DEFAULT_POLICY.read_text())
        )
        self.environment = environment
        self.map_max_concurrency = map_max_concurrency
        self.region = region
        self.function_timeouts = dict(function_timeouts or {})
        self.extra_environment = dict(extra_environment or {})
        self.engine = EmbeddedEngine(
            region=region, retry_wait_scale=retry_wait_scale, mock_config=mock_config
        )
        self.state_machine_arn = ""
        self.events_state_machine_arn = ""
        self.queue_url = ""
        self.capture_queue_url = ""
        self.digest_queue_url = ""
        self.topic_arn = ""
        self.function_arns: dict[str, str] = {}
        # CloudTrail's events, EventBridge's buses and rules, and the Pipe (deliver_events).
        self.routing = EventRouting(
            central_account=CENTRAL_ACCOUNT, region=region, environment=environment, members=self.members
        )
        self._stack: contextlib.ExitStack | None = None
        self._log = io.StringIO()
        self._log_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> LocalDeployment:
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(self.engine)
            # A Lambda's stdout is its CloudWatch log: keep handler output (JSON logs, EMF
            # metrics) out of the terminal and in this deployment's log.
            real_stdout = sys.stdout
            stack.enter_context(contextlib.redirect_stdout(_CurrentStream(real_stdout, self._log_sink)))
            session = handler_session(self.region)
            if self.ec2 == "fleet":
                self.fleet.attach(session)
            self.members.attach(session)
            stack.enter_context(aws.use_session(session))
            self._deploy()
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def _log_sink(self) -> IO[str] | None:
        # moto's interpreter runs executions in worker threads; the main thread keeps the terminal.
        return self._log if threading.current_thread() is not threading.main_thread() else None

    @property
    def logs(self) -> str:
        return self._log.getvalue()

    # -- deployment ------------------------------------------------------------------------------

    def _deploy(self) -> None:
        s3 = self.engine.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(
            Bucket=BUCKET, Key=layout.DEFAULT_POLICY_KEY, Body=json.dumps(self.default_policy).encode()
        )
        sqs = self.engine.client("sqs")
        self.queue_url = sqs.create_queue(QueueName="tagwarden-dead-letters-local")["QueueUrl"]
        self.capture_queue_url = sqs.create_queue(QueueName="tagwarden-notifications-capture")["QueueUrl"]
        sns = self.engine.client("sns")
        self.topic_arn = sns.create_topic(Name="tagwarden-compliance-local")["TopicArn"]
        capture_arn = sqs.get_queue_attributes(QueueUrl=self.capture_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        # Two subscriptions, as people would subscribe: the run's summary, and the owner digests
        # (each routed by its filter policy on the message attribute "kind").
        self.digest_queue_url = sqs.create_queue(QueueName="tagwarden-digests-capture")["QueueUrl"]
        digest_arn = sqs.get_queue_attributes(QueueUrl=self.digest_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        for endpoint, kind in ((capture_arn, SUMMARY_KIND), (digest_arn, DIGEST_KIND)):
            sns.subscribe(
                TopicArn=self.topic_arn,
                Protocol="sqs",
                Endpoint=endpoint,
                Attributes={"FilterPolicy": json.dumps({KIND_ATTRIBUTE: [kind]})},
            )
        glue = self.engine.client("glue")
        glue.create_database(DatabaseInput={"Name": DATABASE})
        for table, columns, prefix in (
            ("findings", schema.FINDINGS_COLUMNS, layout.FINDINGS_PREFIX),
            ("runs", schema.RUNS_COLUMNS, layout.RUNS_PREFIX),
            ("actions", schema.ACTIONS_COLUMNS, layout.ACTIONS_PREFIX),
        ):
            glue.create_table(DatabaseName=DATABASE, TableInput=_table_input(table, columns, prefix))
        environment = {
            config.REPORT_BUCKET: BUCKET,
            config.DEFAULT_POLICY_URI: f"s3://{BUCKET}/{layout.DEFAULT_POLICY_KEY}",
            config.DEFAULT_REGIONS: ",".join(self.regions),
            config.DEFAULT_NOTIFY: "violations",
            config.MAP_MAX_CONCURRENCY: str(self.map_max_concurrency),
            config.ENVIRONMENT: self.environment,
            config.GLUE_DATABASE: DATABASE,
            config.TOPIC_ARN: self.topic_arn,
            config.CONSOLE_REGION: self.region,
            config.SERVICE_NAME: "tagwarden",
            config.LOG_LEVEL: "INFO",
            config.MEMBER_EXTERNAL_ID: MEMBER_EXTERNAL_ID,
            # Every account of the fleet is in the local organisation (see the class docstring).
            config.EVENT_SCOPE: json.dumps({"organization": True}),
            # Imports only when Validate input has TAGWARDEN_SECURITY_HUB=true (off, as deployed).
            config.SECURITY_HUB_PRODUCT_ARN: (
                f"arn:aws:securityhub:{self.region}:{CENTRAL_ACCOUNT}:product/{CENTRAL_ACCOUNT}/default"
            ),
            **self.extra_environment,
        }
        substitutions = {
            deployment.DEAD_LETTER_QUEUE_PLACEHOLDER: self.queue_url,
            deployment.REPORT_BUCKET_PLACEHOLDER: BUCKET,
        }
        for step in deployment.STEP_FUNCTIONS:
            arn = self.engine.create_function(
                f"tagwarden-{step.name}-local",
                step.handler,
                environment,
                timeout=self.function_timeouts.get(step.name, step.timeout_seconds),
                memory=step.memory_mb,
            )
            self.function_arns[step.name] = arn
            substitutions[step.placeholder] = arn
        for step in (*deployment.EVENT_STEP_FUNCTIONS, deployment.STORE_EVENT_BATCH):
            arn = self.engine.create_function(
                f"tagwarden-{step.name}-local",
                step.handler,
                environment,
                timeout=step.timeout_seconds,
                memory=step.memory_mb,
            )
            self.function_arns[step.name] = arn
            if step.placeholder:
                substitutions[step.placeholder] = arn
        definition = deployment.substitute(deployment.read_definition(), substitutions)
        self.state_machine_arn = self.engine.create_state_machine(STATE_MACHINE_NAME, definition)
        events_definition = deployment.substitute(deployment.read_events_definition(), substitutions)
        self.events_state_machine_arn = self.engine.create_state_machine(
            EVENTS_STATE_MACHINE_NAME, events_definition
        )
        self.routing.deploy()

    # -- runs ----------------------------------------------------------------------------------

    def start(
        self,
        execution_input: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        test_case: str | None = None,
    ) -> str:
        return self.engine.start_execution(
            self.state_machine_arn, dict(execution_input or {}), name=name, test_case=test_case
        )

    def start_events(self, events: list[Any], *, now: str | None = None, name: str | None = None) -> str:
        """Start an event run on ``events`` as one batch the Pipe hands on (as ``tagwarden run
        --event`` does: the events exactly as EventBridge delivers them)."""
        records = [{"messageId": str(n), "body": json.dumps(event)} for n, event in enumerate(events)]
        return self._start_batch(records, now=now, name=name)

    @contextlib.contextmanager
    def function_environment(self, step: str, changes: Mapping[str, str]) -> Iterator[None]:
        """One step's function with these environment variables for a while (as an operator's
        UpdateFunctionConfiguration would), then as it was."""
        client = self.engine.client("lambda")
        name = self.function_arns[step]
        variables = client.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        client.update_function_configuration(
            FunctionName=name, Environment={"Variables": {**variables, **changes}}
        )
        try:
            yield
        finally:
            client.update_function_configuration(FunctionName=name, Environment={"Variables": variables})

    def deliver_events(
        self, events: list[Any], *, now: str | None = None, name: str | None = None
    ) -> tuple[PutResult, list[str]]:
        """Put CloudTrail's events on the buses of the accounts and regions they happened in, let
        the rules route them (a member account's through its forwarding rule and the central bus),
        and hand the events queue on as the Pipe does. Returns what the buses did and the event runs
        started (``name-1``, ``name-2``, ... one per batch)."""
        put = self.routing.put(events)
        count = iter(range(1, 1_000_000))
        started = self.routing.drain(
            self.engine.client("sqs"),
            lambda records: self._start_batch(
                records, now=now, name=f"{name}-{next(count)}" if name else None
            ),
        )
        return put, started

    def _start_batch(self, records: list[dict[str, Any]], *, now: str | None, name: str | None) -> str:
        """The Pipe's enrichment Lambda stores the batch; the key it returns is the execution's input."""
        answer = self.engine.client("lambda").invoke(
            FunctionName=self.function_arns[deployment.STORE_EVENT_BATCH.name],
            Payload=json.dumps(records).encode(),
        )
        stored = json.loads(answer["Payload"].read())
        if answer.get("FunctionError"):
            raise RuntimeError(f"the Pipe's enrichment failed: {stored}")
        execution_input: dict[str, Any] = {"batch_key": stored["batch_key"]}
        if now is not None:
            execution_input["now"] = now
        return self.engine.start_execution(self.events_state_machine_arn, execution_input, name=name)

    def run_events(
        self,
        events: list[Any],
        *,
        now: str | None = None,
        name: str | None = None,
        timeout: float = 300,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        parse_findings: bool = True,
    ) -> RunResult:
        """Run the event workflow on ``events`` (see :meth:`start_events`) and collect what it made.
        ``now`` (ISO 8601) stands for the execution's start in the grace-period arithmetic."""
        arn = self.start_events(events, now=now, name=name)
        return self.collect(arn, on_event=on_event, timeout=timeout, parse_findings=parse_findings)

    def run(
        self,
        execution_input: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        test_case: str | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        timeout: float = 300,
        parse_findings: bool = True,
    ) -> RunResult:
        """Start an execution, follow it to the end and collect what it produced."""
        arn = self.start(execution_input, name=name, test_case=test_case)
        return self.collect(arn, on_event=on_event, timeout=timeout, parse_findings=parse_findings)

    def collect(
        self,
        arn: str,
        *,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        timeout: float = 300,
        parse_findings: bool = True,
    ) -> RunResult:
        """What the execution produced. ``parse_findings=False`` keeps the report's lines as
        compressed bytes (:attr:`RunResult.findings_jsonl_gz`) instead of parsing every finding: a caller that
        only writes them out (``tagwarden run``) need not decode and encode them again."""
        description = self.engine.wait(arn, timeout=timeout, on_event=on_event)
        output = json.loads(description["output"]) if description.get("output") else None
        result = RunResult(
            execution_arn=arn,
            status=description["status"],
            output=output,
            error=description.get("error"),
            cause=description.get("cause"),
            history=self.engine.history(arn),
            notifications=self.drain_notifications(),
            digests=self.drain_digests(),
            dead_letters=self.drain_dead_letters(),
            logs=self.logs,
        )
        report = (output or {}).get("result", {}).get("report") if isinstance(output, dict) else None
        if report:
            s3 = self.engine.client("s3")
            result.summary = get_json(s3, BUCKET, report["summary_key"])
            remediation = (result.summary or {}).get("remediation")
            if isinstance(remediation, dict) and remediation.get("actions_key"):
                result.actions = list(iter_jsonl_gz(s3, BUCKET, remediation["actions_key"]))
            if parse_findings:
                result.findings = list(iter_jsonl_gz(s3, BUCKET, report["findings_key"]))
            else:
                _, result.findings_jsonl_gz = get_gz_bytes(s3, BUCKET, report["findings_key"])
        return result

    def _drain(self, queue_url: str) -> Iterator[dict[str, Any]]:
        sqs = self.engine.client("sqs")
        while True:
            messages = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return
            for message in messages:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                yield message

    def drain_notifications(self) -> list[dict[str, Any]]:
        """Summary messages published since the last call: ``{"subject", "body", "attributes"}``."""
        return self._drain_messages(self.capture_queue_url)

    def drain_digests(self) -> list[dict[str, Any]]:
        """Owner digests published since the last call, as :meth:`drain_notifications` gives them."""
        return self._drain_messages(self.digest_queue_url)

    def _drain_messages(self, queue_url: str) -> list[dict[str, Any]]:
        out = []
        for message in self._drain(queue_url):
            envelope = json.loads(message["Body"])
            attributes = {k: v.get("Value") for k, v in envelope.get("MessageAttributes", {}).items()}
            out.append(
                {
                    "subject": envelope.get("Subject"),
                    "body": envelope.get("Message"),
                    "attributes": attributes,
                }
            )
        return out

    def drain_dead_letters(self) -> list[dict[str, Any]]:
        """Dead-letter messages sent since the last call, parsed."""
        return [json.loads(m["Body"]) for m in self._drain(self.queue_url)]

    def partitions(self, table: str) -> list[list[str]]:
        """The ``[dt, run]`` values of every partition registered in a Glue table."""
        glue = self.engine.client("glue")
        pages = glue.get_paginator("get_partitions").paginate(DatabaseName=DATABASE, TableName=table)
        return sorted(p["Values"] for page in pages for p in page["Partitions"])
