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
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from botocore.client import BaseClient
from botocore.exceptions import ClientError

INTERPRETER_ACCESS_KEY = "ak"  # moto.stepfunctions.parser.asl.utils.boto_client
_KEPT_PARAMS = {
    "Bucket",
    "Key",
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
    name: str = ""  # function name, member account, or acting principal key


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
    """``with recorder.recording("happy path"):`` records the calls of what runs inside."""

    member_account_of: Callable[[str | None], str | None] = lambda key: None
    calls: list[RecordedCall] = field(default_factory=list)
    scenario: str = ""
    _acting: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def recording(self, scenario: str) -> Iterator[Recorder]:
        recorder = self
        original = BaseClient._make_api_call

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

        previous = self.scenario
        self.scenario = scenario
        try:
            with mock.patch.object(BaseClient, "_make_api_call", make_api_call):
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
        function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        if function:
            account = self.member_account_of(access_key)
            if account:
                return Caller("member", account)
            return Caller("function", function)
        acting = getattr(self._acting, "name", None)
        if acting:
            return Caller("acting", acting)
        return None
