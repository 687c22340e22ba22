"""Record every AWS request the code makes on the embedded engine, with who makes it.

Installed over botocore's ``BaseClient._make_api_call`` while a scenario runs, because that is the
one place that sees every request of every client with its credentials: botocore's event hooks get
the parameters but not the signing credentials, and the local engine's ``before-call`` hooks answer
EC2, STS and Organizations themselves, which ends the hook chain before a generic hook runs.

Who calls:

* inside a Lambda handler (the engine gives each invocation its own ``AWS_LAMBDA_FUNCTION_NAME``):
  that function's role, or the member role of an account when the client signs with credentials
  an AssumeRole issued for it;
* moto's States Language interpreter (its clients sign as ``ak``): the state machine's role, for
  its service integrations (lambda:invoke, sqs:sendMessage, the Distributed Map's ItemReader and
  ResultWriter);
* anything else is the test harness, recorded only while it acts for a principal on purpose
  (``acting_as``: the scheduler starting a run, the EventBridge rule's target delivery).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import threading
from collections.abc import Iterator
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
}


@dataclass(frozen=True)
class Caller:
    kind: str  # function, member, state-machine, acting
    name: str = ""  # handler (lambdas.x.handler), member account, or acting principal key


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


@dataclass
class Recorder:
    """``with recorder.recording("happy path"):`` records the calls of what runs inside.

    Besides the calls: each Lambda invocation's handler (``invocations``), each execution started
    (``executions``: scenario, ARN, who started it), and which account each AssumeRole credential
    belongs to (read from the local member registry's answers).
    """

    calls: list[RecordedCall] = field(default_factory=list)
    invocations: list[tuple[str, str]] = field(default_factory=list)  # (scenario, handler)
    executions: list[tuple[str, str, str]] = field(default_factory=list)  # (scenario, ARN, started by)
    scenario: str = ""
    _member_keys: dict[str, str] = field(default_factory=dict)
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
            call = RecordedCall(
                caller=caller,
                service=client.meta.service_model.service_name,
                operation=operation_name,
                params={k: copy.deepcopy(v) for k, v in api_params.items() if k in _KEPT_PARAMS},
                region=client.meta.region_name,
                scenario=recorder.scenario,
            )
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
                # Calls signed with these credentials are the assumed role's, in its account.
                account = str(result["AssumedRoleUser"]["Arn"]).split(":")[4]
                with recorder._lock:
                    recorder._member_keys[str(result["Credentials"]["AccessKeyId"])] = account
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
                account = self._member_keys.get(access_key or "")
            if account:
                return Caller("member", account)
            return Caller("function", handler)
        acting = getattr(self._acting, "name", None)
        if acting:
            return Caller("acting", acting)
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
                "caller": [c.caller.kind, c.caller.name],
                "service": c.service,
                "operation": c.operation,
                "params": c.params,
                "region": c.region,
                "scenario": c.scenario,
                "error": c.error,
                "status": c.status,
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
            )
        )
    into.invocations += [tuple(i) for i in document["invocations"]]  # type: ignore[misc]
    into.executions += [tuple(e) for e in document["executions"]]  # type: ignore[misc]
