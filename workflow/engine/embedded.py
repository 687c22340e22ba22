"""Run an Amazon States Language definition locally, unchanged, on moto's Step Functions interpreter.

No AWS account, no Docker: ``EmbeddedEngine`` starts ``mock_aws`` with moto's ASL interpreter
(``execute_state_machine``, a port of LocalStack's) and routes every Lambda invocation to the
handler module in this process, with Lambda's contract (error payloads, timeouts, context,
per-function environment). Everything else a state machine touches (S3, SQS, SNS, Glue, EC2, ...)
is moto's in-memory AWS.

Example (``lambdas/hello.py`` defines ``handler(event, context)``)::

    definition = {
        "StartAt": "Hello",
        "States": {"Hello": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                             "Parameters": {"FunctionName": "hello", "Payload.$": "$"},
                             "OutputPath": "$.Payload", "End": True}},
    }
    with EmbeddedEngine(retry_wait_scale=0) as engine:
        engine.create_function("hello", "lambdas.hello.handler", {"GREETING": "hi"})
        machine = engine.create_state_machine("hello", definition)
        execution = engine.start_execution(machine, {"who": "world"})
        result = engine.wait(execution, on_event=lambda event: print(event["type"]))
        assert result["status"] == "SUCCEEDED", result.get("cause")

What moto 5.2.5's interpreter runs (each row tried with a toy state machine through this engine;
"engine" = moto alone gets it wrong and this module fixes it; also docs/embedded-engine-notes.md):

========================================  =======  ===========================================================
Feature                                   Status   Notes / workaround
========================================  =======  ===========================================================
Map inline: ItemsPath, ItemSelector,      works    ``$$.Map.Item.Value``/``Index`` work. A failed iteration
legacy Iterator/Parameters                         fails the Map with its error name.
Map MaxConcurrency                        works    1 serial, 2 pairs, 0 all at once (measured).
Distributed Map, ItemReader s3:getObject  works    Parent history has MapRunStarted/Succeeded only, as on AWS;
JSON                                               list/describe_map_run work.
ItemReader CSV (FIRST_ROW) /              works    CSV values are strings, as on AWS.
s3:listObjectsV2
ItemReader InputType MANIFEST             no       Definition rejected. Use a JSON item list.
ItemBatcher                               no       Definition rejected (not in moto's grammar). Chunk first (a
                                                   Lambda, ``States.ArrayPartition``) and map over the chunks.
ResultWriter (s3:putObject)               partial  Output ``{MapRunArn, ResultWriterDetails}`` as on AWS, but
                                                   only an empty ``manifest.json`` is written, no
                                                   SUCCEEDED_n.json. Let the item processor write its own
                                                   results.
ToleratedFailurePercentage /              no       Parsed, never enforced: a Distributed Map with failing
ToleratedFailureCount                              items SUCCEEDS, failed items are ``null`` in its output,
                                                   even without tolerance. The integer literal ``50`` is a
                                                   parse error (``50.0`` and ...Path parse). Unit-test
                                                   threshold logic.
Distributed Map ExecutionType EXPRESS     no       Definition rejected; only STANDARD parses.
arn:aws:states:::sqs:sendMessage          works    Object MessageBody is JSON-serialised, as on AWS.
arn:aws:states:::sns:publish              works    moto delivers to the topic's SQS subscribers.
aws-sdk:glue:startCrawler                 engine   moto names SDK errors ``glue.X``; the engine makes them
                                                   ``Glue.CrawlerRunningException``,
                                                   ``Glue.EntityNotFoundException`` as AWS does. Other aws-sdk
                                                   calls work as far as moto implements them.
arn:aws:states:::lambda:invoke,           works    Output ``{StatusCode, ExecutedVersion, Payload}``. Legacy
``Payload.$``, Payload templates,                  ``arn:aws:lambda:...:function:x`` works too.
FunctionName name or ARN
Lambda errors in Retry/Catch              engine   Error = exception class ``__name__``; Cause = Lambda's JSON
                                                   error payload.
Lambda function Timeout                   engine   ``Sandbox.Timedout`` at the deadline, as on AWS.
Intrinsics Format, JsonToString,          works    Also UUID, ArrayPartition, ArrayContains, ArrayUnique,
StringToJson, ArrayLength, Hash                    JsonMerge, Base64Encode, MathAdd, StringSplit, Array;
                                                   inside ResultSelector too.
ResultSelector, ResultPath, OutputPath    works
Catch with ResultPath                     works    ``{"Error": ..., "Cause": ...}`` at the path.
Retry BackoffRate, MaxAttempts,           works    One TaskFailed event per attempt. Waits scaled by
JitterStrategy FULL, MaxDelaySeconds               ``retry_wait_scale`` and recorded in ``retry_waits``.
Task TimeoutSeconds                       works    ``States.Timeout``, event TaskTimedOut, empty cause.
Choice IsPresent (And, NumericEquals,     works
...)
Fail ErrorPath / CausePath                works    CausePath may be an intrinsic.
Parallel; Wait                            works    Waits scaled by ``wait_scale``.
Seconds/SecondsPath/Timestamp
States.DataLimitExceeded                  works    256 KiB per state result. An oversized execution input is
                                                   accepted by StartExecution (AWS refuses it) and fails at
                                                   the first state.
QueryLanguage JSONata                     no       moto stubs the JSONata evaluator (States.Runtime).
Variables: Assign, then ``$name``         no       Assign runs; reading a variable is States.Runtime.
RedriveExecution                          no       NotImplementedError. Start a new execution.
StartSyncExecution                        no       "Not yet implemented"; an EXPRESS machine started with
                                                   StartExecution runs.
Mock test cases (Step Functions Local     engine   moto never wires them; the engine does (see
MockConfigFile, ``arn#TestCase``)                  ``load_mock_config``). Task states only, indexed by retry
                                                   number; a lambda Return is the whole invoke response
                                                   ``{"StatusCode", "Payload"}``.
describe_execution /                      works    ``output`` JSON has spaces after separators (compare
get_execution_history                              parsed); history comes in one page.
========================================  =======  ===========================================================

How Lambda invocations behave here (see ``_LambdaRouter`` for the reasoning):

* A moto function's ``Handler`` ``package.module.function`` is imported (once per process, like a
  warm container, but shared by every function and engine) and called with the decoded event
  and a :class:`~workflow.engine.lambda_context.LambdaContext` whose deadline is the function's
  ``Timeout``, in a worker thread; one handler at a time unless ``serialize_invocations=False``
  (the interpreter's own concurrency, Map iterations included, is untouched either way).
* The function's environment variables, plus the ones Lambda sets (``AWS_REGION``,
  ``AWS_LAMBDA_FUNCTION_NAME``, ...), are visible through ``os.environ``/``os.getenv`` inside the
  handler and the threads it starts, and nowhere else (``_LayeredEnviron``).
* Results are marshalled like the Python runtime does (``Decimal`` allowed, ``bytes`` passed
  through); failures come back as ``x-amz-function-error: Unhandled`` with
  ``{"errorType", "errorMessage", "requestId", "stackTrace"}``: the exception class name,
  ``Runtime.MarshalError``, ``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``,
  ``Runtime.UserCodeSyntaxError``, ``Runtime.UnmarshalError`` or ``Sandbox.Timedout``.
* ``Event`` (asynchronous) invocations run synchronously; ``DryRun`` runs nothing.

Limits: one engine per process at a time (moto's mocks are process-wide); child processes and
code that kept a reference to the original ``os.environ`` do not see function variables; a
timed-out handler is interrupted at its next Python bytecode, not killed, so a blocking call
finishes first; executions still running when the engine stops are stopped first.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import decimal
import importlib
import json
import logging
import math
import os
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, ClassVar, Final
from unittest import mock

from moto import mock_aws

from workflow.engine import botocore_models
from workflow.engine.lambda_context import LambdaContext

__all__ = [
    "ACCOUNT_ID",
    "DEFAULT_REGION",
    "EmbeddedEngine",
    "EngineError",
    "ExecutionTimeout",
    "Invocation",
    "MockConfigError",
]

DEFAULT_REGION: Final = "us-east-1"
# moto files every request made with unknown credentials under this account.
ACCOUNT_ID: Final = "123456789012"

_FAKE_CREDENTIALS: Final[Mapping[str, str]] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

# Variables the Lambda service sets itself; CreateFunction refuses them in Environment.
_RESERVED_LAMBDA_VARIABLES: Final = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_REGION",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_RUNTIME_DIR",
        "LAMBDA_TASK_ROOT",
    }
)

# boto3 ships no type information and the mypy configuration may or may not ignore it;
# importing it this way keeps the module clean under --strict either way.
boto3 = importlib.import_module("boto3")

_sessions: list[Any] = []
_sessions_lock = threading.Lock()


def _shared_session() -> Any:
    # A new boto3 Session re-reads botocore's endpoint and service models (~0.3 s a client);
    # one per process keeps engine start-ups cheap. Clients resolve the fake credentials the
    # engine sets, whichever engine creates them, and moto answers them all.
    with _sessions_lock:
        if not _sessions:
            _sessions.append(boto3.session.Session())
        return _sessions[0]


class EngineError(Exception):
    """Misuse of the engine, or a moto version whose internals moved."""


class ExecutionTimeout(EngineError):
    """``wait`` gave up on an execution that is still RUNNING."""


class MockConfigError(EngineError):
    """A Step Functions Local mock configuration that cannot be used."""


class _SandboxKilled(BaseException):
    """Raised inside a handler thread that outlived its Lambda timeout.

    A BaseException so that a handler's ``except Exception`` cannot swallow it.
    """


@dataclass(frozen=True)
class Invocation:
    """One in-process Lambda invocation, as recorded by the engine.

    ``result`` is the decoded JSON the handler returned (``None`` on error); ``error`` is the
    payload Lambda would return for a failed invocation (``errorType``, ``errorMessage``, ...).
    """

    function_name: str
    request_id: str
    event: Any
    started_at: float
    duration: float
    result: Any = None
    error: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when the handler returned normally and its result was serialisable."""
        return self.error is None

    @property
    def error_type(self) -> str | None:
        """The ``errorType`` Step Functions sees, e.g. ``FlakyError`` or ``Sandbox.Timedout``."""
        return None if self.error is None else str(self.error.get("errorType"))


# --------------------------------------------------------------------------------------------
# Lambda: in-process execution of handlers with Lambda's contract
# --------------------------------------------------------------------------------------------


class _Fault(Exception):
    """A runtime-level failure (bad handler string, import error) with Lambda's error type."""

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


class _LambdaJSONEncoder(json.JSONEncoder):
    # The Python runtime's marshaller (awslambdaric.lambda_runtime_marshaller) accepts Decimal,
    # which boto3's DynamoDB resource returns; everything else json can't encode is an error.
    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            if o.is_nan():
                return math.nan
            return int(o) if o == o.to_integral_value() else float(o)
        return super().default(o)


def _resolve_handler(handler: str) -> Callable[[Any, Any], Any]:
    """Import ``package.module.function`` the way the Lambda Python runtime does."""
    try:
        module_name, function_name = handler.rsplit(".", 1)
    except ValueError as exc:
        raise _Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}") from exc
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _Fault("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}") from exc
    except SyntaxError as exc:
        raise _Fault(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}'],
        ) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise _Fault(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    return function  # type: ignore[no-any-return]


def _user_frames(exc: BaseException) -> list[str]:
    # Like the runtime, show the handler's frames only, not the machinery that called it.
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    return traceback.format_list(frames)


def _error_payload(error_type: str, message: str, request_id: str, trace: list[str]) -> dict[str, Any]:
    # Field for field what awslambdaric.bootstrap.make_error produces.
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": trace,
    }


@dataclass
class _Outcome:
    payload: bytes
    result: Any = None
    error: dict[str, Any] | None = None


def _call_handler(handler: str, event: Any, context: LambdaContext) -> _Outcome:
    request_id = context.aws_request_id
    try:
        response = _resolve_handler(handler)(event, context)
    except _Fault as fault:
        error = _error_payload(fault.error_type, fault.message, request_id, fault.trace)
        return _Outcome(json.dumps(error).encode(), error=error)
    except Exception as exc:
        error = _error_payload(type(exc).__name__, str(exc), request_id, _user_frames(exc))
        return _Outcome(json.dumps(error).encode(), error=error)
    if isinstance(response, bytes):
        # The runtime passes bytes through untouched (content type application/unknown).
        return _Outcome(response, result=response)
    try:
        text = json.dumps(response, cls=_LambdaJSONEncoder)
    except (TypeError, ValueError) as exc:
        error = _error_payload("Runtime.MarshalError", f"Unable to marshal response: {exc}", request_id, [])
        return _Outcome(json.dumps(error).encode(), error=error)
    return _Outcome(text.encode(), result=json.loads(text))


# The environment layer of the invocation running in this thread: the function's variables
# (None marks a variable the handler deleted). Unset outside handlers.
_invocation_layer: contextvars.ContextVar[dict[str, str | None] | None] = contextvars.ContextVar(
    "embedded_lambda_environment", default=None
)


class _LayeredEnviron(MutableMapping[str, str]):
    """Replaces ``os.environ`` while an engine runs: the real environment plus, inside a
    handler (and the threads it starts), its function's variables on top.

    Why not write the variables into the process environment for the duration of each
    invocation? Map iterations run in parallel threads, and botocore, moto and the interpreter
    iterate ``os.environ`` while creating clients; a key deleted between their ``keys()`` and
    ``[key]`` raised ``KeyError`` in about one run in ten of a 12-item Map. Setting the union of
    every function's variables once would be race-free but would hide a handler that reads a
    variable configured only on *another* function, a bug that would only show on AWS.

    Changes a handler makes to ``os.environ`` stay in its invocation, like changes made in a
    Lambda sandbox. ``os.getenv`` goes through this object too; code that saved a reference to
    the original ``os.environ`` before the engine started, and child processes, see the real
    environment only.
    """

    def __init__(self, base: MutableMapping[str, str]) -> None:
        self._base = base

    def __getitem__(self, key: str) -> str:
        layer = _invocation_layer.get()
        if layer is not None and key in layer:
            value = layer[key]
            if value is None:
                raise KeyError(key)
            return value
        return self._base[key]

    def __setitem__(self, key: str, value: str) -> None:
        layer = _invocation_layer.get()
        if layer is None:
            self._base[key] = value
        else:
            layer[key] = value

    def __delitem__(self, key: str) -> None:
        layer = _invocation_layer.get()
        if layer is None:
            del self._base[key]
        elif key not in self:
            raise KeyError(key)
        else:
            layer[key] = None

    def __iter__(self) -> Iterator[str]:
        return iter(self._snapshot())

    def __len__(self) -> int:
        return len(self._snapshot())

    def _snapshot(self) -> dict[str, str]:
        merged = dict(self._base)
        for key, value in (_invocation_layer.get() or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def copy(self) -> dict[str, str]:
        """What ``os.environ.copy()`` returns: a plain dict."""
        return self._snapshot()

    def __repr__(self) -> str:
        return f"environ({self._snapshot()!r})"


def _start_with_layer(original: Callable[[threading.Thread], None]) -> Callable[[threading.Thread], None]:
    # New threads start with an empty context in Python 3.11; hand a handler's environment on
    # to the threads it starts (thread pools, boto3 transfers), as a process would.
    def start(thread: threading.Thread) -> None:
        layer = _invocation_layer.get()
        if layer is not None:
            run = thread.run

            def run_in_layer() -> None:
                _invocation_layer.set(layer)
                run()

            thread.run = run_in_layer  # type: ignore[method-assign]
        original(thread)

    return start


def _header(headers: Any, name: str, default: str) -> str:
    for key, value in (headers or {}).items():
        if str(key).lower() == name:
            return str(value)
    return default


class _LambdaRouter:
    """Executes moto Lambda functions in this process; installed over ``LambdaFunction.invoke``.

    ``serialize`` (the engine's default) runs one handler at a time. On AWS every concurrent
    invocation has a process of its own; here they would share module-level state (cached
    boto3 sessions and clients, whose creation is not thread-safe, loggers, counters), and a
    race that cannot happen on AWS would make local runs flaky. The interpreter itself stays
    concurrent: Map iterations, Waits and service tasks still overlap, and MaxConcurrency
    behaves as on AWS. Without ``serialize`` handlers overlap too. Either way each invocation
    sees its own function's environment through ``_LayeredEnviron``.

    Timeouts: the handler runs in a worker thread and the caller waits at most the function's
    ``Timeout``. Past it the caller answers like Lambda (``Sandbox.Timedout``) at once, so Retry
    and Catch see the failure at the right moment. Python cannot kill a thread, so the engine asks
    the worker to stop by raising an exception in it at its next bytecode (a blocking call such as
    ``time.sleep`` finishes first): the code after the point where Lambda would have frozen the
    sandbox therefore mostly does not run, as on AWS. With ``serialize``, the next invocation waits
    for the stopped handler, at most ``zombie_grace`` seconds.
    """

    def __init__(self, *, serialize: bool, zombie_grace: float) -> None:
        self.serialize = serialize  # read once per invocation, so it may change while running
        self._gate = threading.Lock()
        self._records_lock = threading.Lock()
        self._records: list[Invocation] = []
        self._zombie_grace = zombie_grace

    @property
    def records(self) -> tuple[Invocation, ...]:
        with self._records_lock:
            return tuple(self._records)

    def _record(self, invocation: Invocation) -> None:
        with self._records_lock:
            self._records.append(invocation)

    def invoke(self, fn: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
        """Replacement for ``moto.awslambda.models.LambdaFunction.invoke``."""
        invocation_type = _header(request_headers, "x-amz-invocation-type", "RequestResponse")
        response_headers["x-amz-executed-version"] = "$LATEST"
        if invocation_type == "DryRun":
            return b""
        outcome = self._run(fn, body)
        if outcome.error is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
        # Asynchronous ("Event") invocations run synchronously here, which keeps tests
        # deterministic; the caller gets the empty 202 body Lambda sends.
        return b"" if invocation_type == "Event" else outcome.payload

    def _run(self, fn: Any, body: Any) -> _Outcome:
        timeout_s = float(fn.timeout or 3)
        context = LambdaContext.for_function(
            fn.function_name,
            region=fn.region,
            account_id=fn.account_id,
            memory_mb=int(fn.memory_size or 128),
            timeout_s=timeout_s,
            function_arn=fn.function_arn,
        )
        started = time.time()
        try:
            raw = body.decode() if isinstance(body, bytes) else (body or "{}")
            event = json.loads(raw) if raw else {}
        except (ValueError, UnicodeDecodeError) as exc:
            error = _error_payload(
                "Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}", context.aws_request_id, []
            )
            outcome = _Outcome(json.dumps(error).encode(), error=error)
            self._record(self._invocation(fn, context, body, started, outcome))
            return outcome

        layer: dict[str, str | None] = dict(self._environment(fn, context))
        if self.serialize and _invocation_layer.get() is not None:
            # A handler invoking a function synchronously while it holds the gate: run inline,
            # in its thread, or it would wait for itself; the timeout is checked afterwards.
            token = _invocation_layer.set(layer)
            try:
                outcome = _call_handler(fn.handler, event, context)
            finally:
                _invocation_layer.reset(token)
            if time.time() - started > timeout_s:
                outcome = self._timed_out(context, timeout_s)
        else:
            outcome = self._run_in_worker(fn, event, context, layer, timeout_s)
        self._record(self._invocation(fn, context, event, started, outcome))
        return outcome

    def _run_in_worker(
        self,
        fn: Any,
        event: Any,
        context: LambdaContext,
        layer: dict[str, str | None],
        timeout_s: float,
    ) -> _Outcome:
        box: list[_Outcome] = []
        done = threading.Event()

        def work() -> None:
            _invocation_layer.set(layer)
            try:
                try:
                    box.append(_call_handler(fn.handler, event, context))
                except _SandboxKilled:
                    raise
                except BaseException as exc:  # sys.exit() in a handler ends its runtime
                    box.append(self._exited(context, exc))
                finally:
                    done.set()
            except _SandboxKilled:
                pass

        worker = threading.Thread(
            target=work, name=f"lambda:{fn.function_name}:{context.aws_request_id}", daemon=True
        )
        gate = self._gate if self.serialize else None
        if gate is not None:
            gate.acquire()
        try:
            worker.start()
        except BaseException:
            if gate is not None:
                gate.release()
            raise
        finished = done.wait(timeout_s)
        if finished and box:
            worker.join()
            if gate is not None:
                gate.release()
            return box[0]

        # Timed out. Lambda would freeze the sandbox here: ask the thread to stop and report the
        # timeout now; with a gate, hand it to a reaper that opens it once the thread is gone.
        self._interrupt(worker)
        if gate is not None:

            def reap() -> None:
                worker.join(self._zombie_grace)
                gate.release()

            threading.Thread(target=reap, name=f"reaper:{fn.function_name}", daemon=True).start()
        return self._timed_out(context, timeout_s)

    @staticmethod
    def _interrupt(worker: threading.Thread) -> None:
        if worker.ident is not None and worker.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(worker.ident), ctypes.py_object(_SandboxKilled)
            )

    @staticmethod
    def _exited(context: LambdaContext, exc: BaseException) -> _Outcome:
        code = exc.code if isinstance(exc, SystemExit) else 1
        status = code if isinstance(code, int) else 0 if code is None else 1
        error = {
            "errorType": "Runtime.ExitError",
            "errorMessage": (
                f"RequestId: {context.aws_request_id} Error: Runtime exited with error: exit status {status}"
            ),
        }
        return _Outcome(json.dumps(error).encode(), error=error)

    @staticmethod
    def _timed_out(context: LambdaContext, timeout_s: float) -> _Outcome:
        # What Lambda returns for a timed-out invocation (FunctionError "Unhandled"), which
        # Step Functions reports as the error "Sandbox.Timedout".
        error = {
            "errorType": "Sandbox.Timedout",
            "errorMessage": (
                f"RequestId: {context.aws_request_id} Error: Task timed out after {timeout_s:.2f} seconds"
            ),
        }
        return _Outcome(json.dumps(error).encode(), error=error)

    @staticmethod
    def _environment(fn: Any, context: LambdaContext) -> dict[str, str]:
        runtime = fn.run_time or f"python{sys.version_info.major}.{sys.version_info.minor}"
        environment = {str(k): str(v) for k, v in (fn.environment_vars or {}).items()}
        # Set last: Lambda owns these and CreateFunction refuses them in Environment.
        environment.update(
            {
                "AWS_REGION": fn.region,
                "AWS_DEFAULT_REGION": fn.region,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
                "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": context.memory_limit_in_mb,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": context.log_group_name,
                "AWS_LAMBDA_LOG_STREAM_NAME": context.log_stream_name,
                "_HANDLER": str(fn.handler),
            }
        )
        return environment

    @staticmethod
    def _invocation(
        fn: Any, context: LambdaContext, event: Any, started: float, outcome: _Outcome
    ) -> Invocation:
        return Invocation(
            function_name=fn.function_name,
            request_id=context.aws_request_id,
            event=event,
            started_at=started,
            duration=time.time() - started,
            result=outcome.result,
            error=outcome.error,
        )


# --------------------------------------------------------------------------------------------
# Step Functions Local mock configuration
# --------------------------------------------------------------------------------------------


def _parse_range(text: str) -> tuple[int, int]:
    parts = text.strip().split("-")
    try:
        if len(parts) == 1:
            return int(parts[0]), int(parts[0])
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
    except ValueError:
        pass
    raise MockConfigError(f"mocked response key {text!r} is neither 'N' nor 'N-M'")


def _parse_mock_config(raw: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """Build moto ``MockTestCase`` objects from a Step Functions Local MockConfigFile document.

    Everything is checked up front so a typo fails at load time, not halfway through a run.
    """
    from moto.stepfunctions.parser.mocking.mock_config import (
        MockedResponse,
        MockedResponseReturn,
        MockedResponseThrow,
        MockTestCase,
        StateMockedResponses,
    )

    state_machines = raw.get("StateMachines")
    mocked_responses = raw.get("MockedResponses", {})
    if not isinstance(state_machines, Mapping) or not isinstance(mocked_responses, Mapping):
        raise MockConfigError("a mock config needs the objects 'StateMachines' and 'MockedResponses'")
    cases: dict[tuple[str, str], Any] = {}
    for machine_name, machine in state_machines.items():
        test_cases = machine.get("TestCases") if isinstance(machine, Mapping) else None
        if not isinstance(test_cases, Mapping):
            raise MockConfigError(f"StateMachines.{machine_name} needs a 'TestCases' object")
        for case_name, states in test_cases.items():
            if not isinstance(states, Mapping):
                raise MockConfigError(f"test case {machine_name}#{case_name} must map state names")
            per_state = []
            for state_name, response_name in states.items():
                ranges = mocked_responses.get(response_name)
                if not isinstance(ranges, Mapping) or not ranges:
                    raise MockConfigError(
                        f"test case {machine_name}#{case_name} maps state {state_name!r} to "
                        f"mocked response {response_name!r}, which MockedResponses does not define"
                    )
                responses: list[MockedResponse] = []
                for range_text, body in ranges.items():
                    start, end = _parse_range(range_text)
                    if not isinstance(body, Mapping) or len({"Return", "Throw"} & set(body)) != 1:
                        raise MockConfigError(
                            f"{response_name}.{range_text} needs exactly one of 'Return' and 'Throw'"
                        )
                    try:
                        if "Return" in body:
                            responses.append(MockedResponseReturn(start, end, body["Return"]))
                        else:
                            throw = body["Throw"]
                            responses.append(
                                MockedResponseThrow(
                                    start, end, str(throw["Error"]), str(throw.get("Cause", ""))
                                )
                            )
                    except (KeyError, TypeError, ValueError) as exc:
                        raise MockConfigError(f"{response_name}.{range_text}: {exc}") from exc
                try:
                    per_state.append(StateMockedResponses(state_name, response_name, responses))
                except RuntimeError as exc:
                    raise MockConfigError(str(exc)) from exc
            cases[(machine_name, case_name)] = MockTestCase(machine_name, case_name, per_state)
    return cases


def _read_mock_config(source: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    try:
        document = json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MockConfigError(f"cannot read mock config {source}: {exc}") from exc
    if not isinstance(document, Mapping):
        raise MockConfigError(f"mock config {source} is not a JSON object")
    return document


# --------------------------------------------------------------------------------------------
# Interpreter patches: aws-sdk error names, Retry and Wait sleeps
# --------------------------------------------------------------------------------------------

# Service names whose PascalCase form is not just a capital first letter. From the Step
# Functions guide ("AcmPca.ResourceNotFoundException") and moto's own table.
_SDK_SERVICE_ERROR_NAMES: Final[Mapping[str, str]] = {
    "acmpca": "AcmPca",
    "dynamodb": "DynamoDb",
    "sfn": "Sfn",
}


def _sdk_service_error_name(service_name: str) -> str:
    """``glue`` -> ``Glue``, ``s3`` -> ``S3``, ``ec2`` -> ``Ec2``: the prefix of aws-sdk errors."""
    lower = service_name.lower()
    return _SDK_SERVICE_ERROR_NAMES.get(lower) or lower[:1].upper() + lower[1:]


class _ScaledTime:
    """Stands in for the ``time`` module inside one moto module: scales and records ``sleep``."""

    def __init__(self, scale: Callable[[], float], record: Callable[[float], None]) -> None:
        self._scale = scale
        self._record = record

    def sleep(self, seconds: float) -> None:
        self._record(seconds)
        scale = self._scale()
        if seconds > 0 and scale > 0:
            time.sleep(seconds * scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _scaled_wait_interval(
    original: Callable[[Any, Any, int], None], scale: Callable[[], float]
) -> Callable[[Any, Any, int], None]:
    # moto's WaitFunction._wait_interval re-waits whatever it thinks is left after a wake-up,
    # so scaling the event wait alone would make it loop; replace the whole method instead.
    # The event is set when the execution stops, which ends the wait early, as in moto.
    def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        factor = scale()
        if factor == 1.0:
            original(self, env, wait_seconds)
        elif wait_seconds > 0 and factor > 0:
            env.program_state_event.wait(wait_seconds * factor)

    return _wait_interval


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class EmbeddedEngine:
    """moto with its Step Functions interpreter on and Lambda routed to in-process handlers.

    Use it as a context manager; everything it patches is restored on exit.

    >>> definition = {"StartAt": "Hello", "States": {"Hello": {"Type": "Pass", "End": True}}}
    >>> with EmbeddedEngine(retry_wait_scale=0) as engine:
    ...     machine = engine.create_state_machine("hello", definition)
    ...     execution = engine.start_execution(machine, {"who": "world"})
    ...     json.loads(engine.wait(execution)["output"])
    {'who': 'world'}

    Args:
        region: default region of :meth:`client` and of everything the helpers create.
        retry_wait_scale: factor applied to every Retry backoff wait (0: retry at once). An
            attribute too: changing it on a running engine affects the next wait.
        wait_scale: factor applied to every ``Wait`` state (0: do not wait); also an attribute.
        mock_config: a Step Functions Local MockConfigFile (path or parsed document) whose
            test cases :meth:`start_execution` can select with ``test_case``. Without it,
            the file named by the ``SFN_MOCK_CONFIG`` environment variable is used, if any.
        serialize_invocations: run one Lambda handler at a time (default), so handlers sharing
            module-level state in this one process cannot race where AWS would have given each
            invocation its own process; ``False`` lets handlers overlap like the Map iterations
            calling them. An attribute too, read at each invocation.
        zombie_grace: with ``serialize_invocations``, seconds a timed-out handler may go on
            running before the next invocation starts regardless (see ``_LambdaRouter``).
        poll_interval: the longest :meth:`wait` sleeps between two looks at a running execution
            (to hand new history events to ``on_event``); the end of an execution wakes it at
            once, so a run never waits out a poll, and a long run costs few DescribeExecution
            calls (each holds the GIL against the handlers).
        interpreter_log_level: level of moto's ``moto.stepfunctions.parser`` loggers while the
            engine runs. The interpreter logs every state failure at ERROR, even one a Retry
            or Catch handles, so the default keeps it quiet; the history has every failure.
    """

    _active_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *,
        region: str = DEFAULT_REGION,
        retry_wait_scale: float = 1.0,
        wait_scale: float = 1.0,
        mock_config: str | Path | Mapping[str, Any] | None = None,
        serialize_invocations: bool = True,
        zombie_grace: float = 5.0,
        poll_interval: float = 0.25,
        interpreter_log_level: int = logging.CRITICAL,
    ) -> None:
        if retry_wait_scale < 0 or wait_scale < 0:
            raise ValueError("retry_wait_scale and wait_scale must be >= 0")
        self.region = region
        self.retry_wait_scale = retry_wait_scale
        self.wait_scale = wait_scale
        self.poll_interval = poll_interval
        self.interpreter_log_level = interpreter_log_level
        self._mock_config_source = mock_config
        self._test_cases: dict[tuple[str, str], Any] = {}
        self._pending_test_case = threading.local()
        self._router = _LambdaRouter(serialize=serialize_invocations, zombie_grace=zombie_grace)
        self._stack: contextlib.ExitStack | None = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self._roles: dict[str, str] = {}
        self._retry_waits: list[float] = []
        self._retry_waits_lock = threading.Lock()
        # Counts executions that reached a final status; wait() sleeps on it instead of polling.
        self._terminations = threading.Condition()
        self._terminated_count = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> EmbeddedEngine:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start moto and install the patches; prefer ``with EmbeddedEngine() as engine``."""
        if self._stack is not None:
            raise EngineError("this engine is already started")
        # moto's mocks and the patched classes are process-wide: a second engine would share
        # the first one's backends (mock_aws does not reset when nested) and steal its Lambdas.
        if not EmbeddedEngine._active_lock.acquire(blocking=False):
            raise EngineError("another EmbeddedEngine is running in this process; stop it first")
        stack = contextlib.ExitStack()
        stack.callback(EmbeddedEngine._active_lock.release)
        try:
            stack.enter_context(mock.patch.dict(os.environ, self._engine_environment(), clear=False))
            for key in [k for k in os.environ if self._is_foreign_aws_setting(k)]:
                del os.environ[key]  # patch.dict restores them on exit
            stack.enter_context(mock.patch.object(os, "environ", _LayeredEnviron(os.environ)))
            stack.enter_context(
                mock.patch.object(threading.Thread, "start", _start_with_layer(threading.Thread.start))
            )
            self._install_patches(stack)
            interpreter_logger = logging.getLogger("moto.stepfunctions.parser")
            stack.callback(interpreter_logger.setLevel, interpreter_logger.level)
            interpreter_logger.setLevel(self.interpreter_log_level)
            stack.enter_context(
                mock_aws(
                    config={
                        "stepfunctions": {"execute_state_machine": True},
                        # The Docker-backed model is the one whose invoke() is replaced.
                        "lambda": {"use_docker": True},
                    }
                )
            )
            stack.callback(self._stop_running_executions)
            source = self._mock_config_source or os.environ.get("SFN_MOCK_CONFIG") or None
            if source is not None:
                self.load_mock_config(source)
        except BaseException:
            stack.close()
            raise
        self._stack = stack

    def stop(self) -> None:
        """Stop running executions, stop moto, restore every patch and the environment."""
        if self._stack is None:
            return
        try:
            self._stack.close()
        finally:
            self._stack = None
            self._clients.clear()
            self._roles.clear()

    def _engine_environment(self) -> dict[str, str]:
        return {
            **_FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            # Keep a developer's real configuration files (profiles, endpoints) out of the way.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    @staticmethod
    def _is_foreign_aws_setting(key: str) -> bool:
        return key in {"AWS_PROFILE", "AWS_DEFAULT_PROFILE"} or key.startswith("AWS_ENDPOINT_URL")

    def _install_patches(self, stack: contextlib.ExitStack) -> None:
        try:
            # moto builds its EC2 region list at import time, parsing the EC2 model per new session.
            with botocore_models.shared_by_new_sessions():
                from moto.awslambda.models import LambdaFunction
                from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
                from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
                    state_task_service_aws_sdk,
                )
                from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
                    WaitFunction,
                )
                from moto.stepfunctions.parser.backend.execution import (
                    BaseExecutionWorkerCommunication,
                    Execution,
                )
                from moto.stepfunctions.parser.models import StepFunctionsParserBackend
        except ImportError as exc:  # pragma: no cover - depends on the moto release
            raise EngineError(f"this moto release is not supported by EmbeddedEngine: {exc}") from exc

        router = self._router

        def invoke(fn: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
            return router.invoke(fn, body, request_headers, response_headers)

        stack.enter_context(mock.patch.object(LambdaFunction, "invoke", invoke))
        # Every way an execution ends (success, failure, abort, timeout; sync and redriven ones
        # are subclasses) goes through terminated(); signal wait() once the status is set.
        original_terminated = BaseExecutionWorkerCommunication.terminated

        def terminated(comm: Any) -> None:
            try:
                original_terminated(comm)
            finally:
                self._signal_termination()

        stack.enter_context(mock.patch.object(BaseExecutionWorkerCommunication, "terminated", terminated))
        # retrier_decl calls time.sleep(interval) once backoff, jitter and MaxDelaySeconds are
        # applied; replacing its module-level "time" scales (and records) exactly that sleep.
        stack.enter_context(
            mock.patch.object(
                retrier_decl, "time", _ScaledTime(lambda: self.retry_wait_scale, self._record_retry_wait)
            )
        )
        # AWS names aws-sdk errors "Glue.CrawlerRunningException"; moto keeps the lower-case
        # service name of the resource ARN ("glue.…") except for DynamoDB and SFN.
        stack.enter_context(
            mock.patch.object(
                state_task_service_aws_sdk.StateTaskServiceAwsSdk,
                "_normalise_service_error_name",
                staticmethod(_sdk_service_error_name),
            )
        )
        # Both scales are read at each wait, so a test or a CLI may change them while running.
        stack.enter_context(
            mock.patch.object(
                WaitFunction,
                "_wait_interval",
                _scaled_wait_interval(WaitFunction._wait_interval, lambda: self.wait_scale),
            )
        )

        # moto 5 never hands a mock test case to the interpreter (its LocalStack-derived
        # provider.py, which does, is not wired in); do it here.
        original_start = StepFunctionsParserBackend.start_execution
        original_worker = Execution._get_start_execution_worker
        pending = self._pending_test_case
        engine = self

        def start_execution(
            backend: Any,
            state_machine_arn: str,
            name: Any = None,
            execution_input: Any = None,
            trace_header: Any = None,
        ) -> Any:
            base_arn, _, case_name = state_machine_arn.partition("#")
            if not case_name:
                return original_start(backend, state_machine_arn, name, execution_input, trace_header)
            machine = backend.describe_state_machine(base_arn)
            pending.test_case = engine._test_case(machine.name, case_name)
            try:
                return original_start(backend, base_arn, name, execution_input, trace_header)
            finally:
                pending.test_case = None

        def get_start_execution_worker(execution: Any) -> Any:
            worker: Any = original_worker(execution)
            test_case = getattr(pending, "test_case", None)
            if test_case is not None:
                worker._mock_test_case = test_case
            return worker

        stack.enter_context(mock.patch.object(StepFunctionsParserBackend, "start_execution", start_execution))
        stack.enter_context(
            mock.patch.object(Execution, "_get_start_execution_worker", get_start_execution_worker)
        )

    def _record_retry_wait(self, seconds: float) -> None:
        with self._retry_waits_lock:
            self._retry_waits.append(float(seconds))

    def _test_case(self, machine_name: str, case_name: str) -> Any:
        from moto.stepfunctions.exceptions import InvalidName

        test_case = self._test_cases.get((machine_name, case_name))
        if test_case is None:
            raise InvalidName(
                f"Invalid mock test case name '{case_name}' for state machine '{machine_name}'. "
                "Either the test case is not defined or no mock configuration is loaded."
            )
        return test_case

    def _stop_running_executions(self) -> None:
        # Interpreter threads are daemons; stopping their executions lets them wind down
        # instead of calling into moto after it has been reset.
        with contextlib.suppress(Exception):
            sfn = self.client("stepfunctions")
            for page in sfn.get_paginator("list_state_machines").paginate():
                for machine in page["stateMachines"]:
                    running = sfn.list_executions(
                        stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING"
                    )
                    for execution in running["executions"]:
                        sfn.stop_execution(executionArn=execution["executionArn"])

    def _require_started(self) -> None:
        if self._stack is None:
            raise EngineError("start the engine first: with EmbeddedEngine() as engine: ...")

    # -- configuration -----------------------------------------------------------------------

    def load_mock_config(self, source: str | Path | Mapping[str, Any]) -> None:
        """Load (or replace) the Step Functions Local MockConfigFile that test cases come from.

        >>> config = {
        ...     "StateMachines": {"scan": {"TestCases": {"Happy": {"Validate": "ValidateOk"}}}},
        ...     "MockedResponses": {"ValidateOk": {"0": {"Return": {"StatusCode": 200, "Payload": {}}}}},
        ... }
        >>> with EmbeddedEngine() as engine:
        ...     engine.load_mock_config(config)
        """
        self._test_cases = _parse_mock_config(_read_mock_config(source))

    # -- clients and resources -----------------------------------------------------------------

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client bound to the engine's region (or ``region``), answered by moto.

        >>> with EmbeddedEngine(region="eu-west-1") as engine:
        ...     engine.client("s3").meta.region_name
        'eu-west-1'
        """
        self._require_started()
        key = (service, region or self.region)
        with self._clients_lock:
            if key not in self._clients:
                self._clients[key] = _shared_session().client(service, region_name=key[1])
            return self._clients[key]

    def _role(self, service_principal: str) -> str:
        if service_principal not in self._roles:
            name = f"embedded-{service_principal.split('.', 1)[0]}-role"
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": service_principal},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
            role = self.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
            self._roles[service_principal] = role["Role"]["Arn"]
        return self._roles[service_principal]

    def create_function(
        self,
        name: str,
        handler: str,
        environment: Mapping[str, str] | None = None,
        timeout: int = 30,
        memory: int = 256,
    ) -> str:
        """Create a Lambda function in moto whose invocations run ``handler`` in this process.

        ``handler`` is ``package.module.function`` and must be importable from ``sys.path``.
        Returns the function ARN.

        >>> with EmbeddedEngine() as engine:
        ...     engine.create_function("echo", "json.loads", {"LOG_LEVEL": "DEBUG"}, timeout=5)
        'arn:aws:lambda:us-east-1:123456789012:function:echo'
        """
        self._require_started()
        variables = dict(environment or {})
        reserved = sorted(set(variables) & _RESERVED_LAMBDA_VARIABLES)
        if reserved:
            # The message CreateFunction answers with on AWS.
            raise EngineError(
                "Lambda was unable to configure your environment variables because the environment "
                "variables you have provided contains reserved keys that are currently not supported "
                f"for modification. Reserved keys used in this request: {', '.join(reserved)}"
            )
        module = handler.rsplit(".", 1)[0].replace(".", "/")
        archive = BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr(f"{module}.py", "# Executed in-process by workflow.engine.embedded.\n")
        response = self.client("lambda").create_function(
            FunctionName=name,
            Runtime=f"python{sys.version_info.major}.{sys.version_info.minor}",
            Role=self._role("lambda.amazonaws.com"),
            Handler=handler,
            Code={"ZipFile": archive.getvalue()},
            Timeout=timeout,
            MemorySize=memory,
            Environment={"Variables": variables},
        )
        return str(response["FunctionArn"])

    def create_state_machine(
        self,
        name: str,
        definition: str | Mapping[str, Any],
        role_arn: str | None = None,
        type: str = "STANDARD",
    ) -> str:
        """Create a state machine from an ASL document (text or parsed); returns its ARN.

        >>> with EmbeddedEngine() as engine:
        ...     engine.create_state_machine("noop", {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}})
        'arn:aws:states:us-east-1:123456789012:stateMachine:noop'
        """
        self._require_started()
        text = definition if isinstance(definition, str) else json.dumps(definition)
        response = self.client("stepfunctions").create_state_machine(
            name=name,
            definition=text,
            roleArn=role_arn or self._role("states.amazonaws.com"),
            type=type,
        )
        return str(response["stateMachineArn"])

    # -- executions ----------------------------------------------------------------------------

    def start_execution(
        self,
        state_machine_arn: str,
        input: Any = None,
        name: str | None = None,
        test_case: str | None = None,
    ) -> str:
        """Start an execution; returns its ARN.

        ``input`` is any JSON-serialisable value (default ``{}``). ``test_case`` selects a test
        case of the loaded mock config: as with Step Functions Local, the request goes to
        ``<state machine ARN>#<test case>`` and the states the test case names get the mocked
        responses instead of calling their service.

        >>> definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
        >>> with EmbeddedEngine() as engine:
        ...     machine = engine.create_state_machine("m", definition)
        ...     engine.start_execution(machine, {"k": 1}, name="first")
        'arn:aws:states:us-east-1:123456789012:execution:m:first'
        """
        self._require_started()
        target = f"{state_machine_arn}#{test_case}" if test_case else state_machine_arn
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=target,
            # moto names an unnamed execution "None"; AWS generates a UUID.
            name=name or str(uuid.uuid4()),
            input=json.dumps({} if input is None else input),
        )
        return str(response["executionArn"])

    def wait(
        self,
        execution_arn: str,
        timeout: float = 60,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Block until the execution leaves RUNNING; returns its ``describe_execution`` response.

        ``on_event`` is called once per history event, in order, as events appear; the last
        call happens before ``wait`` returns. Raises :class:`ExecutionTimeout` after ``timeout``
        seconds.

        >>> definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
        >>> with EmbeddedEngine() as engine:
        ...     execution = engine.start_execution(engine.create_state_machine("m", definition))
        ...     engine.wait(execution, on_event=lambda event: print(event["type"]))["status"]
        ExecutionStarted
        PassStateEntered
        PassStateExited
        ExecutionSucceeded
        'SUCCEEDED'
        """
        self._require_started()
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            with self._terminations:
                terminations_before = self._terminated_count
            description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            description.pop("ResponseMetadata", None)
            finished = description["status"] != "RUNNING"
            if on_event is not None:
                # Read after describe: once it says finished, the history is complete.
                events = self.history(execution_arn)
                for event in events[seen:]:
                    on_event(event)
                seen = len(events)
            if finished:
                return description
            if time.monotonic() > deadline:
                raise ExecutionTimeout(f"{execution_arn} still RUNNING after {timeout} s")
            pause = min(self.poll_interval, max(0.0, deadline - time.monotonic()))
            with self._terminations:
                if self._terminated_count == terminations_before:
                    self._terminations.wait(timeout=pause)

    def _signal_termination(self) -> None:
        with self._terminations:
            self._terminated_count += 1
            self._terminations.notify_all()

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every event of the execution's history, oldest first, as boto3 returns them.

        >>> definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
        >>> with EmbeddedEngine() as engine:
        ...     execution = engine.start_execution(engine.create_state_machine("m", definition))
        ...     _ = engine.wait(execution)
        ...     [event["type"] for event in engine.history(execution)][-1]
        'ExecutionSucceeded'
        """
        self._require_started()
        paginator = self.client("stepfunctions").get_paginator("get_execution_history")
        return [event for page in paginator.paginate(executionArn=execution_arn) for event in page["events"]]

    @property
    def serialize_invocations(self) -> bool:
        """Whether Lambda handlers run one at a time; may be changed while the engine runs."""
        return self._router.serialize

    @serialize_invocations.setter
    def serialize_invocations(self, value: bool) -> None:
        self._router.serialize = value

    # -- diagnostics ---------------------------------------------------------------------------

    @property
    def invocations(self) -> tuple[Invocation, ...]:
        """Every in-process Lambda invocation so far, in completion order."""
        return self._router.records

    def invocations_of(self, function_name: str) -> list[Invocation]:
        """The invocations of one function, in completion order.

        Direct ``lambda.invoke`` calls are routed and recorded too:

        >>> with EmbeddedEngine() as engine:
        ...     _ = engine.create_function("parse", "json.loads")  # json.loads(event, context) fails
        ...     _ = engine.client("lambda").invoke(FunctionName="parse", Payload=b'"[1]"')
        ...     [(i.function_name, i.event, i.error_type) for i in engine.invocations_of("parse")]
        [('parse', '[1]', 'TypeError')]
        """
        return [i for i in self._router.records if i.function_name == function_name]

    @property
    def retry_waits(self) -> tuple[float, ...]:
        """Every Retry wait the interpreter asked for, in seconds before ``retry_wait_scale``.

        With ``"IntervalSeconds": 2, "BackoffRate": 2`` and no jitter: ``(2.0, 4.0, ...)``;
        with ``"JitterStrategy": "FULL"`` each wait is a random value up to that.
        """
        with self._retry_waits_lock:
            return tuple(self._retry_waits)
