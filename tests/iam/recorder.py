"""Record every AWS request the code makes on the embedded engine, with who makes it.

Installed over botocore's ``BaseClient._make_api_call`` while a scenario runs, because that is the
one place that sees every request of every client with its credentials: botocore's event hooks get
the parameters but not the signing credentials, and the local engine's ``before-call`` hooks answer
EC2, STS and Organizations themselves, which ends the hook chain before a generic hook runs.

Who calls:

* inside a Lambda handler (the engine gives each invocation its own ``AWS_LAMBDA_FUNCTION_NAME``):
  that function's role, or a member account's role (the read-only role, or the remediation role)
  when the client signs with credentials an AssumeRole of that role issued;
* moto's States Language interpreter (its clients sign as ``ak``): the state machine's role, for
  its service integrations (lambda:invoke, sqs:sendMessage, the Distributed Map's ItemReader and
  ResultWriter);
* anything else is the test harness, recorded only while it acts for a principal on purpose
  (``acting_as``: the scheduler starting a run, the EventBridge rule's target delivery).

The instances' own tags at call time: IAM evaluates ``ec2:ResourceTag/<key>`` of an EC2 call on
the tags the instance carries when the call is made (before a CreateTags adds, or a DeleteTags
removes, any), and those are not in the call's parameters. For the EC2 calls on instances
(:data:`INSTANCE_OPERATIONS`), the recorder reads them from the fleet the local engine serves:
``Recorder.instances_now`` (the scenarios set it to ``local.fleet.instances_now``), else the fleet
endpoint whose hook answers the call (the functional suites' recordings).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from botocore.client import BaseClient
from botocore.exceptions import ClientError

INTERPRETER_ACCESS_KEY = "ak"  # moto.stepfunctions.parser.asl.utils.boto_client
_KEPT_PARAMS = {
    "Bucket",
    "Key",
    "Resources",
    "Tags",
    "Findings",
    "Prefix",
    "Delimiter",
    "MaxKeys",
    "TopicArn",
    "QueueUrl",
    "FunctionName",
    "Qualifier",
    "InvocationType",
    "RoleArn",
    "RoleSessionName",
    "ExternalId",
    "DurationSeconds",
    "DatabaseName",
    "TableName",
    "Name",
    "CatalogId",
    "stateMachineArn",
    "executionArn",
    "name",
    "UploadId",
    "MaxResults",
    "IfMatch",
    "IfNoneMatch",
    "PartitionInputList",
    "InstanceIds",
    "InstanceId",
    "Attribute",
}
# EC2 operations on instances whose IAM requests carry the instances' tags (ec2:ResourceTag/...),
# with the parameter naming the instances.
INSTANCE_OPERATIONS: Mapping[str, str] = {
    "CreateTags": "Resources",
    "DeleteTags": "Resources",
    "StopInstances": "InstanceIds",
    "DescribeInstanceAttribute": "InstanceId",
}
InstancesNow = Callable[[], Mapping[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class Caller:
    kind: str  # function, member, state-machine, acting
    name: str = ""  # handler (lambdas.x.handler), member account, or acting principal key
    role: str = ""  # a member caller's role name (the role AssumeRole issued its credentials for)


@dataclass
class RecordedCall:
    caller: Caller
    service: str  # botocore service name (s3, stepfunctions, ...)
    operation: str
    params: dict[str, Any]
    region: str
    scenario: str
    error: str | None = None
    status: int = 200
    # Instance id -> its tags when the call was made (INSTANCE_OPERATIONS; ids the fleet knows).
    resource_tags: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Recorder:
    """``with recorder.recording("happy path"):`` records the calls of what runs inside.

    Besides the calls: each Lambda invocation's handler (``invocations``), each execution started
    (``executions``: scenario, ARN, who started it), and which account each AssumeRole credential
    belongs to and which role it is (read from the local member registry's answers).

    ``instances_now``: every instance of the fleet as EC2 answers for it now (id -> description,
    as ``FleetEndpoint.instances_now``), for the tags of the instances an EC2 call names; unset,
    the fleet endpoint answering the call is asked.
    """

    calls: list[RecordedCall] = field(default_factory=list)
    invocations: list[tuple[str, str]] = field(default_factory=list)  # (scenario, handler)
    executions: list[tuple[str, str, str]] = field(default_factory=list)  # (scenario, ARN, started by)
    scenario: str = ""
    instances_now: InstancesNow | None = None
    _member_keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (account, role)
    _acting: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def recording(self, scenario: str) -> Iterator[Recorder]:
        from workflow.engine.embedded import _LambdaRouter

        recorder = self
        original = BaseClient._make_api_call
        original_invocation = _LambdaRouter._invocation

        def invocation(fn: Any, *args: Any, **kwargs: Any) -> Any:
            with recorder._lock:
                recorder.invocations.append((recorder.scenario, str(fn.handler)))
            return original_invocation(fn, *args, **kwargs)

        def make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            caller = recorder._caller(client)
            if caller is None:
                return original(client, operation_name, api_params)
            service = client.meta.service_model.service_name
            call = RecordedCall(
                caller=caller,
                service=service,
                operation=operation_name,
                params={k: copy.deepcopy(v) for k, v in api_params.items() if k in _KEPT_PARAMS},
                region=client.meta.region_name,
                scenario=recorder.scenario,
            )
            if service == "ec2" and operation_name in INSTANCE_OPERATIONS:
                call.resource_tags = recorder._tags_now(client, operation_name, api_params)
            try:
                result = original(client, operation_name, api_params)
            except ClientError as err:
                call.error = str(err.response.get("Error", {}).get("Code", ""))
                call.status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
                recorder._add(call)
                raise
            recorder._add(call)
            return result

        def any_caller_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            result = make_api_call(client, operation_name, api_params)
            service = client.meta.service_model.service_name
            if operation_name == "AssumeRole" and service == "sts" and "Credentials" in result:
                # Calls signed with these credentials are the assumed role's, in its account:
                # arn:aws:sts::<account>:assumed-role/<role name>/<session>.
                assumed = str(result["AssumedRoleUser"]["Arn"])
                account, role = assumed.split(":")[4], assumed.split(":", 5)[5].split("/")[1]
                with recorder._lock:
                    recorder._member_keys[str(result["Credentials"]["AccessKeyId"])] = (account, role)
            if operation_name == "StartExecution" and service == "stepfunctions":
                started_by = getattr(recorder._acting, "name", None) or "harness"
                with recorder._lock:
                    recorder.executions.append((recorder.scenario, str(result["executionArn"]), started_by))
            return result

        previous = self.scenario
        self.scenario = scenario
        try:
            with (
                mock.patch.object(BaseClient, "_make_api_call", any_caller_call),
                mock.patch.object(_LambdaRouter, "_invocation", staticmethod(invocation)),
            ):
                yield self
        finally:
            self.scenario = previous

    @contextlib.contextmanager
    def acting_as(self, principal: str) -> Iterator[None]:
        """Harness calls made in this block are the named principal's (e.g. ``scheduler``)."""
        self._acting.name = principal
        try:
            yield
        finally:
            self._acting.name = None

    def _tags_now(
        self, client: Any, operation_name: str, api_params: Mapping[str, Any]
    ) -> dict[str, dict[str, str]]:
        """The tags of the instances the call names, as the fleet serves them now (before the call)."""
        named = api_params.get(INSTANCE_OPERATIONS[operation_name])
        ids = [str(i) for i in (named if isinstance(named, list) else [named]) if i]
        instances_now = self.instances_now or _fleet_instances_now(client, operation_name)
        if not ids or instances_now is None:
            return {}
        fleet = instances_now()
        return {
            i: {str(t["Key"]): str(t.get("Value", "")) for t in fleet[i].get("Tags") or ()}
            for i in ids
            if i in fleet
        }

    def _add(self, call: RecordedCall) -> None:
        with self._lock:
            self.calls.append(call)

    def _caller(self, client: Any) -> Caller | None:
        credentials = getattr(client._request_signer, "_credentials", None)
        access_key = getattr(credentials, "access_key", None) if credentials is not None else None
        if access_key == INTERPRETER_ACCESS_KEY:
            return Caller("state-machine")
        handler = os.environ.get("_HANDLER") if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else None
        if handler and _made_by_test_code():
            return None  # a test's own check running inside the handler (e.g. a fault's callback)
        if handler:
            with self._lock:
                member = self._member_keys.get(access_key or "")
            if member:
                return Caller("member", *member)
            return Caller("function", handler)
        acting = getattr(self._acting, "name", None)
        if acting:
            return Caller("acting", acting)
        return None


def _fleet_instances_now(client: Any, operation_name: str) -> InstancesNow | None:
    """``instances_now`` of the fleet endpoint whose ``before-call`` hook answers this client's
    call (``workflow.engine.fleet_endpoint.FleetEndpoint``), if one does (not with moto's EC2)."""
    events = client.meta.events
    emitter = getattr(events, "_emitter", events)
    handlers = getattr(emitter, "_handlers", None)
    if handlers is None:
        return None
    for handler in handlers.prefix_search(f"before-call.ec2.{operation_name}"):
        found = getattr(getattr(handler, "__self__", None), "instances_now", None)
        if callable(found):
            return found  # type: ignore[no-any-return]
    return None


_REPOSITORY = str(Path(__file__).resolve().parents[2])
_STEP_CODE = (f"{_REPOSITORY}/workflow/steps/", f"{_REPOSITORY}/lambdas/")
_TEST_CODE = f"{_REPOSITORY}/tests/"


def _made_by_test_code() -> bool:
    """Whether test code, not the step, makes this call from inside a handler.

    Walking out from the call: the step's own code (``workflow/steps``, ``lambdas``) reached before
    any test frame means the step makes it (a test wrapper around the step is further out); a test
    frame reached first means the test does (a fault's callback reading the bucket, say).
    """
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_STEP_CODE):
            return False
        if filename.startswith(_TEST_CODE) and not filename.startswith(f"{_TEST_CODE}iam/recorder"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def dump(recorder: Recorder) -> dict[str, Any]:
    """A JSON-safe copy of what was recorded (for recordings across the functional suites)."""
    return {
        "calls": [
            {
                "caller": [c.caller.kind, c.caller.name, c.caller.role],
                "service": c.service,
                "operation": c.operation,
                "params": c.params,
                "region": c.region,
                "scenario": c.scenario,
                "error": c.error,
                "status": c.status,
                "resource_tags": c.resource_tags,
            }
            for c in recorder.calls
        ],
        "invocations": recorder.invocations,
        "executions": recorder.executions,
    }


def load(document: dict[str, Any], into: Recorder) -> None:
    for c in document["calls"]:
        into.calls.append(
            RecordedCall(
                Caller(*c["caller"]),
                c["service"],
                c["operation"],
                c["params"],
                c["region"],
                c["scenario"],
                c["error"],
                c["status"],
                c.get("resource_tags") or {},
            )
        )
    into.invocations += [(str(s), str(h)) for s, h in document["invocations"]]
    into.executions += [(str(s), str(a), str(b)) for s, a, b in document["executions"]]
