"""Operating a deployed Tagwarden: start scans, list and inspect executions, read an execution's
history as a timeline, redrive failures and work through the dead-letter queue.

Every function takes the boto3 clients it uses (``sfn``, ``sqs``, ``s3``), so tests hand in moto
or stubbed clients and the CLI hands in real ones. Errors a person can fix (an unknown execution,
a stack without the expected output, missing credentials) are :class:`InvalidInput` with one
line each; AWS refusing or failing a call is :class:`OperationError`. :func:`aws_errors` is the
one place where botocore's exceptions become those lines.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOTokenLoadError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)

from workflow.cli_options import parse_regions
from workflow.errors import InvalidInput, Problem, TagwardenError
from workflow.iteration_names import item_name, own_account, target_error
from workflow.notifications import console_url as _notification_console_url

STATUSES: Final = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
UNSUCCESSFUL: Final = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
NOTIFY_MODES: Final = ("always", "violations", "new_violations", "never")
MAX_INPUT_BYTES: Final = 256 * 1024
REDRIVABLE_DAYS: Final = 14

_RUN_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
# What Step Functions refuses in a name: whitespace, brackets, wildcards, special and control characters.
_FORBIDDEN_IN_NAME: Final = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]")
_POLICY_URI: Final = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$")
_RESTART_SUFFIX: Final = re.compile(r"^(?P<base>.+)-restart(?P<n>\d+)$")

CREDENTIALS_HINT: Final = (
    "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run 'aws sso login'"
)


class OperationError(TagwardenError):
    """An AWS call failed for a reason no argument fixes: access denied, throttling, an outage."""


def _line(message: str) -> InvalidInput:
    return InvalidInput([Problem("tagwarden", message)])


# -- AWS errors, in one place --------------------------------------------------------------------

_EXPIRED: Final = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
)
_REJECTED: Final = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "AuthFailure",
        "MissingAuthenticationToken",
    }
)
_DENIED: Final = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
_THROTTLED: Final = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
)
_BAD_INPUT: Final = frozenset(
    {
        "ExecutionDoesNotExist",
        "StateMachineDoesNotExist",
        "StateMachineDeleting",
        "ExecutionNotRedrivable",
        "ExecutionAlreadyExists",
        "InvalidArn",
        "InvalidName",
        "InvalidExecutionInput",
        "InvalidToken",
        "ValidationException",
        "ValidationError",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "InvalidAddress",
        "NoSuchBucket",
        "NoSuchKey",
    }
)


def _error(err: ClientError) -> tuple[str, str]:
    error = err.response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", "")).strip()


def translate_client_error(err: ClientError) -> TagwardenError:
    """One line for an AWS error response: bad input (exit 2) or a failed operation (exit 3).

    >>> denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListExecutions")
    >>> str(translate_client_error(denied))
    'ListExecutions: access denied (AccessDeniedException): no'
    >>> missing = {"Error": {"Code": "ExecutionDoesNotExist", "Message": "gone"}}
    >>> translate_client_error(ClientError(missing, "DescribeExecution")).lines()
    ['tagwarden: DescribeExecution: ExecutionDoesNotExist: gone']
    """
    code, message = _error(err)
    operation = err.operation_name or "AWS"
    if code in _EXPIRED:
        return _line(f"the AWS credentials have expired ({code}): refresh them, e.g. 'aws sso login'")
    if code in _REJECTED:
        return _line(f"AWS rejected the credentials ({code}): {CREDENTIALS_HINT}")
    if code in _DENIED:
        return OperationError(f"{operation}: access denied ({code}): {message}".rstrip(": "))
    if code in _THROTTLED:
        return OperationError(f"{operation}: throttled by AWS ({code}); try again in a moment")
    if code in _BAD_INPUT:
        return _line(f"{operation}: {code}: {message}".rstrip(": "))
    return OperationError(f"{operation}: {code}: {message}".rstrip(": "))


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn botocore's exceptions into one clear line: :class:`InvalidInput` or :class:`OperationError`.

    >>> try:
    ...     with aws_errors():
    ...         raise NoCredentialsError()
    ... except InvalidInput as err:
    ...     print(err.lines()[0][:42])
    tagwarden: no AWS credentials found (set A
    """
    try:
        yield
    except NoCredentialsError:
        raise _line(f"no AWS credentials found ({CREDENTIALS_HINT})") from None
    except PartialCredentialsError as err:
        raise _line(f"incomplete AWS credentials: {err} ({CREDENTIALS_HINT})") from None
    except ProfileNotFound as err:
        raise _line(f"{err} (check --profile, AWS_PROFILE and ~/.aws/config)") from None
    except NoRegionError:
        raise _line(
            "no AWS region: pass --region, or set AWS_REGION or a region in the AWS profile"
        ) from None
    except (SSOTokenLoadError, UnauthorizedSSOTokenError, TokenRetrievalError):
        raise _line("the AWS SSO session has expired or never started: run 'aws sso login'") from None
    except CredentialRetrievalError as err:
        raise _line(f"could not get AWS credentials: {err}") from None
    except ConnectionError as err:
        raise OperationError(f"cannot reach AWS: {err}") from None
    except ClientError as err:
        raise translate_client_error(err) from None
    except BotoCoreError as err:
        raise OperationError(f"AWS: {err}") from None


def message_of(err: Exception) -> str:
    """The text of an error without the ``tagwarden:`` prefix, for a report cell.

    >>> message_of(_line("execution 'x' does not exist"))
    "execution 'x' does not exist"
    """
    if isinstance(err, ClientError):
        err = translate_client_error(err)
    if isinstance(err, InvalidInput):
        return "; ".join(p.message if p.path == "tagwarden" else str(p) for p in err.problems)
    return str(err)


# -- names, ARNs, links ----------------------------------------------------------------------------


def region_of(arn: str) -> str | None:
    """The region field of an ARN.

    >>> region_of("arn:aws:states:eu-west-1:123456789012:execution:tagwarden:nightly")
    'eu-west-1'
    """
    parts = arn.split(":")
    return (parts[3] or None) if len(parts) > 3 and parts[0] == "arn" else None


def name_of(execution_arn: str) -> str:
    """The execution name at the end of an execution ARN.

    >>> name_of("arn:aws:states:eu-west-1:123456789012:execution:tagwarden:nightly")
    'nightly'
    """
    return execution_arn.rsplit(":", 1)[-1]


def execution_arn(execution: str, state_machine_arn: str | None) -> str:
    """The ARN of an execution given by ARN or by name (then built from the state machine ARN).

    >>> execution_arn("nightly-2026-11-28", "arn:aws:states:us-east-1:123456789012:stateMachine:tagwarden")
    'arn:aws:states:us-east-1:123456789012:execution:tagwarden:nightly-2026-11-28'
    >>> execution_arn("arn:aws:states:us-east-1:123456789012:execution:tagwarden:x", None)
    'arn:aws:states:us-east-1:123456789012:execution:tagwarden:x'
    """
    if execution.startswith("arn:"):
        parts = execution.split(":")
        if len(parts) >= 8 and parts[2] == "states" and parts[5] in {"execution", "express"} and parts[-1]:
            return execution
        raise _line(
            f"not an execution ARN: {execution!r} "
            "(expected arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME)"
        )
    if not execution or len(execution) > 80 or _FORBIDDEN_IN_NAME.search(execution):
        raise _line(f"not an execution name or ARN: {execution!r}")
    if not state_machine_arn:
        raise _line(
            f"cannot look up execution {execution!r} by name without the state machine: "
            "pass --stack NAME or --state-machine-arn ARN, or give the execution ARN"
        )
    parts = state_machine_arn.split(":")
    # arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME[:VERSION_OR_ALIAS]
    return ":".join([*parts[:5], "execution", parts[6], execution])


def console_url(region: str | None, execution_arn: str) -> str | None:
    """The Step Functions console page of an execution (region from the ARN when not given).

    >>> console_url(None, "arn:aws:states:eu-west-1:123456789012:execution:tw:n1")
    'https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn%3Aaws%3Astates%3Aeu-west-1%3A123456789012%3Aexecution%3Atw%3An1'
    """
    return _notification_console_url(region or region_of(execution_arn), execution_arn)


def new_execution_name(now: datetime | None = None) -> str:
    """A fresh execution name (the run id) for a manual scan.

    >>> new_execution_name(datetime(2026, 11, 28, 9, 30, tzinfo=UTC))[:24]
    'manual-20261128T093000Z-'
    """
    return f"manual-{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def restart_name(name: str) -> str:
    """The name a restarted execution gets: deterministic, so restarting twice is detected.

    >>> restart_name("nightly-2026-11-28"), restart_name("nightly-2026-11-28-restart1")
    ('nightly-2026-11-28-restart1', 'nightly-2026-11-28-restart2')
    """
    match = _RESTART_SUFFIX.match(name)
    base, number = (match["base"], int(match["n"]) + 1) if match else (name, 1)
    suffix = f"-restart{number}"
    return base[: 80 - len(suffix)] + suffix


def check_run_name(name: str) -> str:
    """An execution name usable as a run id (it becomes part of S3 keys and Athena partitions).

    >>> check_run_name("nightly-2026-11-28")
    'nightly-2026-11-28'
    """
    if not _RUN_ID.match(name):
        raise InvalidInput(
            [Problem("--name", "1 to 80 letters, digits, '-' or '_' (a Step Functions execution name)")]
        )
    return name


def parse_time(value: Any) -> datetime | None:
    """A timezone-aware datetime from a datetime, an ISO string or epoch seconds/milliseconds.

    >>> parse_time("2026-11-28T16:14:00.564000+00:00").isoformat()
    '2026-11-28T16:14:00.564000+00:00'
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    return None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def _json_or_none(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None


# -- starting a scan -----------------------------------------------------------------------------


def build_execution_input(
    *,
    policy_file: str | Path | None = None,
    policy_uri: str | None = None,
    regions: str | Sequence[str] | None = None,
    notify: str | None = None,
    dry_run: bool = False,
    targets_file: str | None = None,
    organization: bool = False,
    exclude_accounts: str | None = None,
) -> dict[str, Any]:
    """The execution input of a scan, checked locally first.

    A policy file is validated exactly as ``tagwarden validate`` does (:class:`PolicyError`, one
    line per problem) and sent converted to version 1. Fields left out take the deployment's
    defaults.

    >>> build_execution_input(regions="eu-west-1, us-east-1", notify="never")
    {'regions': ['eu-west-1', 'us-east-1'], 'notify': 'never'}
    """
    from workflow.policy import compile_policy, load_policy_document, read_policy_file
    from workflow.steps.validate_input import input_problems
    from workflow.targets import add_scope_options, target_problems

    problems: list[Problem] = []
    document: dict[str, Any] = {}
    if policy_file is not None and policy_uri is not None:
        problems.append(Problem("--policy", "give --policy or --policy-uri, not both"))
    if policy_file is not None:
        path = str(policy_file)
        policy = load_policy_document(read_policy_file(path), source=path, name=Path(path).stem)
        compile_policy(policy)
        document["policy"] = policy
    if policy_uri is not None:
        if _POLICY_URI.match(policy_uri):
            document["policy_uri"] = policy_uri
        else:
            problems.append(Problem("--policy-uri", f"not an s3://BUCKET/KEY URI: {policy_uri!r}"))
    if regions is not None:
        try:
            document["regions"] = parse_regions(regions if isinstance(regions, str) else ",".join(regions))
        except InvalidInput as err:
            problems.extend(err.problems)
    if notify is not None:
        if notify in NOTIFY_MODES:
            document["notify"] = notify
        else:
            problems.append(Problem("--notify", f"one of {', '.join(NOTIFY_MODES)}, not {notify!r}"))
    if dry_run:
        document["dry_run"] = True
    scope: dict[str, Any] = {}
    add_scope_options(
        scope, targets_file=targets_file, organization=organization, exclude_accounts=exclude_accounts
    )
    if scope:
        # The same checks Validate input makes, before anything is started.
        found = input_problems(scope) or target_problems(scope)
        flag = "--targets" if "targets" in scope else "--organization"
        problems += [Problem(f"{flag}: {p.path}", p.message) for p in found]
        document.update(scope)
    size = len(json.dumps(document, separators=(",", ":")).encode("utf-8"))
    if size > MAX_INPUT_BYTES:
        problems.append(
            Problem(
                "--policy",
                f"the execution input would be {size:,} bytes and Step Functions accepts "
                f"{MAX_INPUT_BYTES:,}: upload the policy to S3 and pass --policy-uri",
            )
        )
    if problems:
        raise InvalidInput(problems)
    return document


@dataclass(frozen=True)
class StartedExecution:
    """An execution :func:`start_scan` started."""

    execution_arn: str
    name: str
    start_date: datetime | None

    @property
    def console_url(self) -> str | None:
        return console_url(None, self.execution_arn)

    def to_json(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "name": self.name,
            "start_date": _iso(self.start_date),
            "console_url": self.console_url,
        }


def start_scan(
    sfn: Any,
    state_machine_arn: str,
    execution_input: Mapping[str, Any] | str,
    name: str | None = None,
) -> StartedExecution:
    """Start one scan; ``execution_input`` is a document or the exact JSON text to send.

    >>> import boto3
    >>> from botocore.stub import Stubber
    >>> sfn = boto3.client("stepfunctions", region_name="us-east-1")
    >>> machine = "arn:aws:states:us-east-1:123456789012:stateMachine:tagwarden"
    >>> with Stubber(sfn) as stub:
    ...     stub.add_response("start_execution", {"executionArn": machine.replace("stateMachine", "execution")
    ...                       + ":adhoc", "startDate": datetime(2026, 11, 28)})
    ...     start_scan(sfn, machine, {"notify": "never"}, name="adhoc").execution_arn
    'arn:aws:states:us-east-1:123456789012:execution:tagwarden:adhoc'
    """
    name = check_run_name(name) if name is not None else new_execution_name()
    text = (
        execution_input
        if isinstance(execution_input, str)
        else json.dumps(execution_input, separators=(",", ":"), ensure_ascii=False)
    )
    try:
        response = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=text)
    except ClientError as err:
        code, message = _error(err)
        if code == "ExecutionAlreadyExists":
            raise InvalidInput(
                [
                    Problem(
                        "--name",
                        f"an execution named {name!r} already exists; the name is the run id, pick another",
                    )
                ]
            ) from None
        if code in {"StateMachineDoesNotExist", "InvalidArn"}:
            raise _line(
                f"state machine {state_machine_arn} does not exist "
                "(check --stack, --state-machine-arn and --region)"
            ) from None
        if code == "InvalidExecutionInput":
            raise InvalidInput([Problem("input", message)]) from None
        raise
    return StartedExecution(str(response["executionArn"]), name, parse_time(response.get("startDate")))


# -- executions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionSummary:
    """One row of :func:`list_executions`."""

    execution_arn: str
    name: str
    status: str
    start_date: datetime | None
    stop_date: datetime | None
    redrive_count: int = 0

    @property
    def duration(self) -> float | None:
        """Seconds from start to stop; ``None`` while running."""
        return _seconds(self.start_date, self.stop_date)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "start_date": _iso(self.start_date),
            "stop_date": _iso(self.stop_date),
            "duration_seconds": self.duration,
            "redrive_count": self.redrive_count,
            "execution_arn": self.execution_arn,
        }


def _machine_missing(err: ClientError, state_machine_arn: str) -> InvalidInput | None:
    code, _ = _error(err)
    if code in {"StateMachineDoesNotExist", "InvalidArn"}:
        return _line(
            f"state machine {state_machine_arn} does not exist "
            "(check --stack, --state-machine-arn and --region)"
        )
    return None


def list_executions(
    sfn: Any,
    state_machine_arn: str,
    status: str | Sequence[str] | None = None,
    limit: int = 20,
    *,
    page_size: int = 100,
) -> list[ExecutionSummary]:
    """The newest ``limit`` executions, through as many ListExecutions pages as it takes.

    ``status`` is one status or several (one filtered listing each, merged newest first).

    >>> import boto3
    >>> from botocore.stub import Stubber
    >>> sfn = boto3.client("stepfunctions", region_name="us-east-1")
    >>> machine = "arn:aws:states:us-east-1:123456789012:stateMachine:tagwarden"
    >>> row = {"executionArn": machine + ":x", "stateMachineArn": machine, "name": "x",
    ...        "status": "FAILED", "startDate": datetime(2026, 11, 28)}
    >>> with Stubber(sfn) as stub:
    ...     stub.add_response("list_executions", {"executions": [row], "nextToken": "t"})
    ...     stub.add_response("list_executions", {"executions": [dict(row, name="y")]})
    ...     [e.name for e in list_executions(sfn, machine, "FAILED", limit=5)]
    ['x', 'y']
    """
    statuses = [status] if isinstance(status, str) else list(dict.fromkeys(status or []))
    problems = [
        Problem("--status", f"one of {', '.join(STATUSES)}, not {s!r}") for s in statuses if s not in STATUSES
    ]
    if limit < 1:
        problems.append(Problem("--limit", "must be at least 1"))
    if problems:
        raise InvalidInput(problems)

    def listing(status_filter: str | None) -> Iterator[ExecutionSummary]:
        kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn}
        if status_filter:
            kwargs["statusFilter"] = status_filter
        config = {"MaxItems": limit, "PageSize": max(1, min(page_size, 1000))}
        paginator = sfn.get_paginator("list_executions")
        for page in paginator.paginate(**kwargs, PaginationConfig=config):
            for item in page.get("executions", []):
                yield ExecutionSummary(
                    execution_arn=str(item["executionArn"]),
                    name=str(item.get("name") or name_of(item["executionArn"])),
                    status=str(item.get("status", "")),
                    start_date=parse_time(item.get("startDate")),
                    stop_date=parse_time(item.get("stopDate")),
                    redrive_count=int(item.get("redriveCount") or 0),
                )

    try:
        if len(statuses) <= 1:
            return list(listing(statuses[0] if statuses else None))[:limit]
        merged = [row for s in statuses for row in listing(s)]
    except ClientError as err:
        raise (_machine_missing(err, state_machine_arn) or err) from None
    oldest = datetime.min.replace(tzinfo=UTC)
    merged.sort(key=lambda row: row.start_date or oldest, reverse=True)
    return merged[:limit]


@dataclass(frozen=True)
class ExecutionDetails:
    """What DescribeExecution says about one execution, with the input and output parsed."""

    execution_arn: str
    name: str
    state_machine_arn: str
    status: str
    start_date: datetime | None
    stop_date: datetime | None
    input: str | None = field(default=None, repr=False)
    output: str | None = field(default=None, repr=False)
    error: str | None = None
    cause: str | None = None
    redrive_count: int = 0
    redrive_date: datetime | None = None
    redrive_status: str | None = None
    redrive_status_reason: str | None = None

    @property
    def duration(self) -> float | None:
        return _seconds(self.start_date, self.stop_date)

    @property
    def input_document(self) -> Any:
        return _json_or_none(self.input)

    @property
    def output_document(self) -> Any:
        return _json_or_none(self.output)

    @property
    def report(self) -> dict[str, Any] | None:
        """``result.report`` of a successful scan: ``summary_key``, ``findings_key``, ``totals``."""
        output = self.output_document
        result = output.get("result") if isinstance(output, dict) else None
        report = result.get("report") if isinstance(result, dict) else None
        return report if isinstance(report, dict) else None

    @property
    def report_bucket(self) -> str | None:
        """The bucket the run wrote to, as its output says (``run.bucket``)."""
        output = self.output_document
        run = output.get("run") if isinstance(output, dict) else None
        bucket = run.get("bucket") if isinstance(run, dict) else None
        return str(bucket) if bucket else None

    @property
    def console_url(self) -> str | None:
        return console_url(None, self.execution_arn)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "execution_arn": self.execution_arn,
            "state_machine_arn": self.state_machine_arn,
            "status": self.status,
            "start_date": _iso(self.start_date),
            "stop_date": _iso(self.stop_date),
            "duration_seconds": self.duration,
            "error": self.error,
            "cause": self.cause,
            "redrive_count": self.redrive_count,
            "redrive_date": _iso(self.redrive_date),
            "redrive_status": self.redrive_status,
            "redrive_status_reason": self.redrive_status_reason,
            "input": self.input_document,
            "report": self.report,
            "console_url": self.console_url,
        }


def _execution_missing(err: ClientError, arn: str) -> InvalidInput | None:
    code, _ = _error(err)
    if code == "ExecutionDoesNotExist":
        return _line(f"execution {name_of(arn)!r} does not exist ({arn})")
    if code == "InvalidArn":
        return _line(f"not a valid execution ARN: {arn}")
    return None


def describe(sfn: Any, execution_arn: str) -> ExecutionDetails:
    """DescribeExecution, with an unknown execution as one clear line.

    >>> import boto3
    >>> from botocore.stub import Stubber
    >>> sfn = boto3.client("stepfunctions", region_name="us-east-1")
    >>> arn = "arn:aws:states:us-east-1:123456789012:execution:tagwarden:gone"
    >>> with Stubber(sfn) as stub:
    ...     stub.add_client_error("describe_execution", "ExecutionDoesNotExist")
    ...     try:
    ...         describe(sfn, arn)
    ...     except InvalidInput as err:
    ...         print(err.lines()[0].split(" (")[0])
    tagwarden: execution 'gone' does not exist
    """
    try:
        d = sfn.describe_execution(executionArn=execution_arn)
    except ClientError as err:
        raise (_execution_missing(err, execution_arn) or err) from None
    return ExecutionDetails(
        execution_arn=str(d.get("executionArn", execution_arn)),
        name=str(d.get("name") or name_of(execution_arn)),
        state_machine_arn=str(d.get("stateMachineArn", "")),
        status=str(d.get("status", "")),
        start_date=parse_time(d.get("startDate")),
        stop_date=parse_time(d.get("stopDate")),
        input=d.get("input"),
        output=d.get("output"),
        error=d.get("error"),
        cause=d.get("cause"),
        redrive_count=int(d.get("redriveCount") or 0),
        redrive_date=parse_time(d.get("redriveDate")),
        redrive_status=d.get("redriveStatus"),
        redrive_status_reason=d.get("redriveStatusReason"),
    )


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution's history, oldest first, through all pages.

    >>> import boto3
    >>> from botocore.stub import Stubber
    >>> sfn = boto3.client("stepfunctions", region_name="us-east-1")
    >>> event = {"id": 1, "type": "ExecutionStarted", "timestamp": datetime(2026, 11, 28)}
    >>> with Stubber(sfn) as stub:
    ...     stub.add_response("get_execution_history", {"events": [event], "nextToken": "t"})
    ...     last = dict(event, id=2, type="ExecutionSucceeded")
    ...     stub.add_response("get_execution_history", {"events": [last]})
    ...     [e["type"] for e in history(sfn, "arn:aws:states:us-east-1:123456789012:execution:tw:x")]
    ['ExecutionStarted', 'ExecutionSucceeded']
    """
    paginator = sfn.get_paginator("get_execution_history")
    try:
        return [
            event
            for page in paginator.paginate(executionArn=execution_arn, PaginationConfig={"PageSize": 1000})
            for event in page.get("events", [])
        ]
    except ClientError as err:
        raise (_execution_missing(err, execution_arn) or err) from None


def follow(
    sfn: Any,
    execution_arn: str,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    *,
    poll_interval: float = 2.0,
    after_event_id: int = 0,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ExecutionDetails:
    """Poll until the execution stops, handing every new history event to ``on_event``.

    Events with ids up to ``after_event_id`` are skipped (a redriven execution keeps its old
    history). Returns the final :func:`describe`.

    >>> import boto3
    >>> from botocore.stub import Stubber
    >>> sfn = boto3.client("stepfunctions", region_name="us-east-1")
    >>> arn = "arn:aws:states:us-east-1:123456789012:execution:tw:x"
    >>> done = {"executionArn": arn, "stateMachineArn": arn, "status": "SUCCEEDED",
    ...         "startDate": datetime(2026, 11, 28)}
    >>> with Stubber(sfn) as stub:
    ...     stub.add_response("describe_execution", done)
    ...     stub.add_response("get_execution_history", {"events": [
    ...         {"id": 1, "type": "ExecutionSucceeded", "timestamp": datetime(2026, 11, 28)}]})
    ...     follow(sfn, arn, lambda event: print(event["type"])).status
    ExecutionSucceeded
    'SUCCEEDED'
    """
    last = after_event_id
    started = time.monotonic()
    while True:
        details = describe(sfn, execution_arn)
        if on_event is not None:
            # Read after describe: once it says stopped, the history is complete.
            for event in history(sfn, execution_arn):
                if int(event.get("id", 0)) > last:
                    on_event(event)
                    last = int(event.get("id", 0))
        if details.status not in {"RUNNING", "PENDING_REDRIVE"}:
            return details
        if timeout is not None and time.monotonic() - started > timeout:
            raise OperationError(
                f"execution {details.name!r} still {details.status} after {timeout:g} s; "
                f"follow it with 'tagwarden status {details.name}'"
            )
        sleep(poll_interval)


def read_summary(s3: Any, details: ExecutionDetails, bucket: str | None = None) -> dict[str, Any] | None:
    """The summary object of a successful scan (``result.report.summary_key``), or ``None``.

    The bucket is ``bucket`` when given, else the one in the execution's output.

    >>> details = ExecutionDetails("arn:x", "x", "arn:m", "FAILED", None, None)
    >>> read_summary(None, details) is None
    True
    """
    from workflow.storage import get_json

    report = details.report
    key = report.get("summary_key") if report else None
    bucket = bucket or details.report_bucket
    if not key or not bucket:
        return None
    summary = get_json(s3, bucket, str(key))
    return summary if isinstance(summary, dict) else None


def redrive(sfn: Any, execution_arn: str) -> datetime | None:
    """RedriveExecution: restart a failed, timed-out or aborted execution from where it stopped.

    An execution that cannot be redriven (running, succeeded, more than 14 days old, ...) is
    one clear line.

    >>> import boto3
    >>> from botocore.stub import Stubber
    >>> sfn = boto3.client("stepfunctions", region_name="us-east-1")
    >>> arn = "arn:aws:states:us-east-1:123456789012:execution:tagwarden:nightly"
    >>> with Stubber(sfn) as stub:
    ...     stub.add_response("redrive_execution", {"redriveDate": datetime(2026, 11, 28, tzinfo=UTC)},
    ...                       {"executionArn": arn})
    ...     redrive(sfn, arn)
    datetime.datetime(2026, 11, 28, 0, 0, tzinfo=datetime.timezone.utc)
    """
    try:
        response = sfn.redrive_execution(executionArn=execution_arn)
    except ClientError as err:
        code, message = _error(err)
        if code == "ExecutionNotRedrivable":
            raise _line(f"execution {name_of(execution_arn)!r} cannot be redriven: {message}") from None
        if code == "ExecutionLimitExceeded":
            raise OperationError(
                f"cannot redrive {name_of(execution_arn)!r} now: too many open executions ({message})"
            ) from None
        raise (_execution_missing(err, execution_arn) or err) from None
    return parse_time(response.get("redriveDate"))


# -- the timeline of an execution ----------------------------------------------------------------

_SCHEDULED: Final = frozenset({"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"})
_SUCCEEDED: Final = frozenset({"TaskSucceeded", "LambdaFunctionSucceeded", "ActivitySucceeded"})
_FAILED: Final = frozenset(
    {
        "TaskFailed",
        "TaskTimedOut",
        "TaskStartFailed",
        "TaskSubmitFailed",
        "LambdaFunctionFailed",
        "LambdaFunctionTimedOut",
        "LambdaFunctionStartFailed",
        "LambdaFunctionScheduleFailed",
        "ActivityFailed",
        "ActivityTimedOut",
        "ActivityScheduleFailed",
        "MapStateFailed",
        "ParallelStateFailed",
        "MapRunFailed",
    }
)
_STATE_FAILED: Final = frozenset({"MapStateFailed", "ParallelStateFailed", "MapRunFailed"})
_ITERATION_ENDS: Final = frozenset({"MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted"})
_EXECUTION_ENDS: Final[Mapping[str, str]] = {
    "ExecutionFailed": "failed",
    "ExecutionTimedOut": "timed out",
    "ExecutionAborted": "aborted",
}


@dataclass(frozen=True)
class TimelineRow:
    """One state as it ran: when, for how long, how many attempts, how it ended.

    ``iteration`` names the Map iteration a state ran in (``Scan regions[2]``; nested ones joined
    with `` / ``); ``item`` says what that iteration worked on, ``123456789012/eu-west-1`` (see
    :mod:`workflow.iteration_names`), or repeats ``iteration`` when its input names no target.
    ``outcome`` is ``succeeded``, ``not scanned`` (the state said its target could not be scanned;
    ``cause`` says why), ``caught`` (failed, and a ``Catch`` moved on), ``failed``,
    ``aborted``, ``timed out``, ``running`` or, for the marker row of a redrive, ``redriven``.
    ``error`` and ``cause`` are the last failure seen in the state, even one a retry got past;
    ``attempt_errors`` lists the error of every failed attempt.
    """

    state: str
    state_type: str
    iteration: str | None
    entered: datetime | None
    ended: datetime | None
    attempts: int
    attempt_errors: tuple[str, ...]
    outcome: str
    error: str | None
    cause: str | None
    event_id: int
    item: str | None = None

    @property
    def label(self) -> str:
        """The state name, then what its Map iteration worked on (as the ``run`` progress prints it).

        >>> TimelineRow("List EC2 instances", "Task", "Scan regions[0]", None, None, 1, (), "running",
        ...             None, None, 5, item="123456789012/eu-west-1").label
        'List EC2 instances  123456789012/eu-west-1'
        """
        where = self.item or self.iteration
        return f"{self.state}  {where}" if where else self.state

    @property
    def duration(self) -> float | None:
        """Seconds spent in the state; ``None`` while it runs."""
        return _seconds(self.entered, self.ended)

    @property
    def retries(self) -> int:
        return max(self.attempts - 1, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "type": self.state_type,
            "iteration": self.iteration,
            "item": self.item,
            "entered": _iso(self.entered),
            "ended": _iso(self.ended),
            "duration_seconds": self.duration,
            "attempts": self.attempts,
            "retries": self.retries,
            "attempt_errors": list(self.attempt_errors),
            "outcome": self.outcome,
            "error": self.error,
            "cause": self.cause,
        }


@dataclass
class _Open:
    state: str
    state_type: str
    context: tuple[str, ...]
    entered: datetime | None
    event_id: int
    ended: datetime | None = None
    attempts: int = 0
    attempt_errors: list[str] = field(default_factory=list)
    last_failed: bool = False
    error: str | None = None
    cause: str | None = None
    outcome: str | None = None

    def row(self, names: Mapping[tuple[str, ...], str]) -> TimelineRow:
        items = [names.get(self.context[: i + 1], part) for i, part in enumerate(self.context)]
        return TimelineRow(
            state=self.state,
            state_type=self.state_type,
            iteration=" / ".join(self.context) or None,
            entered=self.entered,
            ended=self.ended,
            attempts=self.attempts,
            attempt_errors=tuple(self.attempt_errors),
            outcome=self.outcome or "running",
            error=self.error,
            cause=self.cause,
            event_id=self.event_id,
            item=" / ".join(items) or None,
        )


def _details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping):
            return value
    return {}


def timeline(events: Iterable[Mapping[str, Any]]) -> list[TimelineRow]:
    """An execution history (GetExecutionHistory events, oldest first) as one row per state run.

    Events are attributed through ``previousEventId``, so the interleaved events of concurrent
    Map iterations land on the right state, and each state inside a Map is labelled with its
    iteration index. Timestamps may be datetimes or ISO strings (``history.json`` of a local run).

    >>> t = lambda s: datetime(2026, 11, 28, 0, 0, s, tzinfo=UTC)
    >>> rows = timeline([
    ...     {"id": 1, "previousEventId": 0, "type": "ExecutionStarted", "timestamp": t(0)},
    ...     {"id": 2, "previousEventId": 1, "type": "TaskStateEntered", "timestamp": t(0),
    ...      "stateEnteredEventDetails": {"name": "Validate input"}},
    ...     {"id": 3, "previousEventId": 2, "type": "TaskScheduled", "timestamp": t(0)},
    ...     {"id": 4, "previousEventId": 3, "type": "TaskFailed", "timestamp": t(1),
    ...      "taskFailedEventDetails": {"error": "Throttled", "cause": "slow down"}},
    ...     {"id": 5, "previousEventId": 4, "type": "TaskScheduled", "timestamp": t(2)},
    ...     {"id": 6, "previousEventId": 5, "type": "TaskSucceeded", "timestamp": t(3)},
    ...     {"id": 7, "previousEventId": 6, "type": "TaskStateExited", "timestamp": t(3),
    ...      "stateExitedEventDetails": {"name": "Validate input"}},
    ... ])
    >>> [(r.label, r.outcome, r.duration, r.retries, r.error) for r in rows]
    [('Validate input', 'succeeded', 3.0, 1, 'Throttled')]
    """
    events = list(events)
    account = own_account(events)
    names: dict[tuple[str, ...], str] = {}
    iteration_starts: set[int] = set()
    rows: list[_Open] = []
    context: dict[int, tuple[str, ...]] = {}
    owner: dict[int, _Open | None] = {}
    open_rows: list[_Open] = []

    def open_map(name: str, ctx: tuple[str, ...]) -> _Open | None:
        """The open Map state an iteration event belongs to (previousEventId is not reliable there)."""
        maps = [r for r in reversed(open_rows) if r.state_type == "Map" and r.state == name]
        enclosing = [r for r in maps if ctx[: len(r.context)] == r.context]
        return max(enclosing, key=lambda r: len(r.context), default=maps[0] if maps else None)

    def close(row: _Open, stamp: datetime | None, outcome: str) -> None:
        row.ended = stamp
        row.outcome = outcome
        if row in open_rows:
            open_rows.remove(row)

    for event in events:
        kind = str(event.get("type", ""))
        event_id = int(event.get("id", 0))
        previous = int(event.get("previousEventId") or 0)
        stamp = parse_time(event.get("timestamp"))
        details = _details(event)
        ctx = context.get(previous, ())
        mine: _Open | None = owner[previous] if previous in owner else (open_rows[-1] if open_rows else None)

        if kind.endswith("StateEntered"):
            row = _Open(str(details.get("name", "?")), kind[: -len("StateEntered")], ctx, stamp, event_id)
            rows.append(row)
            open_rows.append(row)
            context[event_id], owner[event_id] = ctx, row
            if previous in iteration_starts and ctx and ctx not in names:
                name = item_name(details.get("input"), account)
                if name:
                    names[ctx] = name
        elif kind.endswith("StateExited"):
            name = str(details.get("name", "?"))
            candidates = [r for r in reversed(open_rows) if r.state == name]
            match = next((r for r in candidates if r.context == ctx), candidates[0] if candidates else None)
            if match is not None:
                reason = target_error(details.get("output"))
                if reason:  # the run went on, but this target is a hole in the verdict
                    match.cause = reason
                    close(match, stamp, "not scanned")
                else:
                    close(match, stamp, "caught" if match.last_failed else "succeeded")
                ctx = match.context
            context[event_id], owner[event_id] = ctx, None
        elif kind == "MapIterationStarted":
            map_row = open_map(str(details.get("name", "?")), ctx)
            parent = map_row.context if map_row is not None else ctx
            label = f"{details.get('name', '?')}[{details.get('index', '?')}]"
            context[event_id], owner[event_id] = (*parent, label), map_row
            iteration_starts.add(event_id)
        elif kind in _ITERATION_ENDS:
            map_row = open_map(str(details.get("name", "?")), ctx)
            label = f"{details.get('name', '?')}[{details.get('index', '?')}]"
            if map_row is not None:
                parent = map_row.context
            else:
                parent = ctx[: ctx.index(label)] if label in ctx else ctx
            inner = (*parent, label)
            if kind != "MapIterationSucceeded":
                for row in [r for r in open_rows if r.context[: len(inner)] == inner]:
                    failed = kind == "MapIterationFailed" and (row.last_failed or row.state_type == "Fail")
                    close(row, stamp, "failed" if failed else "aborted")
                    if failed and map_row is not None and map_row.error is None:
                        map_row.error, map_row.cause = row.error, row.cause
            context[event_id], owner[event_id] = parent, map_row
        elif kind in _EXECUTION_ENDS:
            error, cause = details.get("error"), details.get("cause")
            for row in list(open_rows):
                if row.error is None:
                    row.error, row.cause = error, cause
                close(row, stamp, _EXECUTION_ENDS[kind])
            context[event_id], owner[event_id] = (), None
        elif kind == "ExecutionRedriven":
            count = details.get("redriveCount")
            marker = _Open("(execution redriven)", "Execution", (), stamp, event_id, ended=stamp)
            marker.outcome = f"redriven #{count}" if count else "redriven"
            rows.append(marker)
            context[event_id], owner[event_id] = (), None
        else:
            if kind in _STATE_FAILED:
                # previousEventId may be the failed iteration's last event: the innermost open Map
                # or Parallel is the state that failed.
                mine = next((r for r in reversed(open_rows) if r.state_type in {"Map", "Parallel"}), mine)
            context[event_id], owner[event_id] = ctx, mine
            if mine is not None:
                if kind in _SCHEDULED:
                    mine.attempts += 1
                    mine.last_failed = False
                elif kind in _SUCCEEDED:
                    mine.last_failed = False
                elif kind in _FAILED:
                    mine.last_failed = True
                    error, cause = details.get("error"), details.get("cause")
                    if kind in _STATE_FAILED:
                        if error is not None:
                            mine.error, mine.cause = str(error), None if cause is None else str(cause)
                    else:
                        mine.error = str(error) if error is not None else kind
                        mine.cause = None if cause is None else str(cause)
                        mine.attempt_errors.append(mine.error)
    return [row.row(names) for row in rows]


# -- the dead-letter queue -----------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """One dead-letter message, whichever shape it has.

    ``source`` is ``state machine`` (the ``Send to dead-letter queue`` state's message),
    ``eventbridge`` (a "Step Functions Execution Status Change" event) or ``unrecognized``.
    ``input`` is the execution input as JSON text.
    """

    message_id: str
    receipt_handle: str = field(repr=False)
    source: str
    execution_arn: str | None
    execution_name: str | None = None
    state_machine_arn: str | None = None
    status: str | None = None
    failed_state: str | None = None
    error: str | None = None
    cause: str | None = None
    input: str | None = field(default=None, repr=False)
    failed_at: str | None = None
    sent_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "source": self.source,
            "execution_arn": self.execution_arn,
            "execution_name": self.execution_name,
            "state_machine_arn": self.state_machine_arn,
            "status": self.status,
            "failed_state": self.failed_state,
            "error": self.error,
            "cause": self.cause,
            "failed_at": self.failed_at,
            "sent_at": _iso(self.sent_at),
            "input": _json_or_none(self.input),
        }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse_dead_letter(message: Mapping[str, Any]) -> DeadLetter:
    """Read an SQS message of the dead-letter queue (a ReceiveMessage ``Messages`` item).

    >>> body = {"execution_id": "arn:aws:states:us-east-1:123456789012:execution:tw:n1",
    ...         "execution_name": "n1", "failed_state": "Persist report", "error": "AccessDenied",
    ...         "cause": "no", "input": {"notify": "never"}, "failed_at": "2026-11-28T00:00:00Z"}
    >>> letter = parse_dead_letter({"MessageId": "m1", "ReceiptHandle": "r", "Body": json.dumps(body)})
    >>> letter.source, letter.execution_name, letter.failed_state, letter.input
    ('state machine', 'n1', 'Persist report', '{"notify":"never"}')
    """
    body_text = str(message.get("Body", ""))
    attributes = message.get("Attributes") or {}
    sent = attributes.get("SentTimestamp")
    common: dict[str, Any] = {
        "message_id": str(message.get("MessageId", "")),
        "receipt_handle": str(message.get("ReceiptHandle", "")),
        "sent_at": parse_time(int(sent)) if isinstance(sent, str) and sent.isdigit() else None,
    }
    doc = _json_or_none(body_text)
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        doc = _json_or_none(doc["Message"])  # delivered through an SNS subscription
    if isinstance(doc, dict) and isinstance(doc.get("execution_id"), str):
        arn = doc["execution_id"]
        return DeadLetter(
            **common,
            source="state machine",
            execution_arn=arn,
            execution_name=str(doc.get("execution_name") or name_of(arn)),
            state_machine_arn=doc.get("state_machine_id"),
            status="FAILED",
            failed_state=doc.get("failed_state"),
            error=_text(doc.get("error")),
            cause=_text(doc.get("cause")),
            input=_text(doc.get("input")),
            failed_at=_text(doc.get("failed_at")),
        )
    detail = doc.get("detail") if isinstance(doc, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("executionArn"), str):
        arn = detail["executionArn"]
        stopped = parse_time(detail.get("stopDate"))
        return DeadLetter(
            **common,
            source="eventbridge",
            execution_arn=arn,
            execution_name=str(detail.get("name") or name_of(arn)),
            state_machine_arn=detail.get("stateMachineArn"),
            status=detail.get("status"),
            error=_text(detail.get("error")),
            cause=_text(detail.get("cause")),
            input=_text(detail.get("input")),
            failed_at=_iso(stopped) or _text(doc.get("time") if isinstance(doc, dict) else None),
        )
    return DeadLetter(**common, source="unrecognized", execution_arn=None, cause=body_text[:200] or None)


def _queue_missing(err: ClientError, queue_url: str) -> InvalidInput | None:
    code, _ = _error(err)
    if code in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "InvalidAddress"}:
        return _line(f"queue {queue_url} does not exist (check --stack, --queue-url and --region)")
    return None


def _receive(
    sqs: Any, queue_url: str, max_messages: int, visibility_timeout: int, wait_seconds: int
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    seen: set[str] = set()
    try:
        while len(messages) < max_messages:
            batch = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=max(1, min(10, max_messages - len(messages))),
                VisibilityTimeout=visibility_timeout,
                WaitTimeSeconds=wait_seconds,
                MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                if message["MessageId"] not in seen:  # SQS delivers at least once
                    seen.add(message["MessageId"])
                    messages.append(message)
    except ClientError as err:
        raise (_queue_missing(err, queue_url) or err) from None
    return messages


def _release(sqs: Any, queue_url: str, receipt_handles: Sequence[str]) -> None:
    """Make received messages visible again at once instead of after the visibility timeout."""
    for start in range(0, len(receipt_handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(receipt_handles[start : start + 10])
        ]
        with contextlib.suppress(ClientError):  # they reappear after the visibility timeout anyway
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)


def dead_letters(
    sqs: Any, queue_url: str, max_messages: int = 100, *, wait_seconds: int = 1
) -> list[DeadLetter]:
    """What is in the dead-letter queue, without consuming it (messages are visible again after).

    >>> import boto3
    >>> from botocore.stub import Stubber
    >>> sqs = boto3.client("sqs", region_name="us-east-1")
    >>> url = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"
    >>> with Stubber(sqs) as stub:
    ...     stub.add_response("receive_message", {"Messages": [{"MessageId": "m1", "ReceiptHandle": "r1",
    ...                       "Body": "not json"}]})
    ...     stub.add_response("receive_message", {})
    ...     stub.add_response("change_message_visibility_batch", {"Successful": [{"Id": "0"}], "Failed": []})
    ...     [letter.source for letter in dead_letters(sqs, url)]
    ['unrecognized']
    """
    raw = _receive(sqs, queue_url, max_messages, visibility_timeout=30, wait_seconds=wait_seconds)
    _release(sqs, queue_url, [m["ReceiptHandle"] for m in raw])
    return [parse_dead_letter(m) for m in raw]


#: Outcomes after which a dead letter has nothing left to ask for (deleted with ``purge_after_redrive``).
SETTLED: Final = frozenset({"redriven", "restarted", "already restarted", "succeeded"})


@dataclass(frozen=True)
class DeadLetterOutcome:
    """What :func:`redrive_dead_letters` did about one message."""

    letter: DeadLetter
    action: str
    detail: str = ""
    new_execution_arn: str | None = None
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.letter.message_id,
            "execution_arn": self.letter.execution_arn,
            "source": self.letter.source,
            "failed_state": self.letter.failed_state,
            "error": self.letter.error,
            "action": self.action,
            "detail": self.detail,
            "new_execution_arn": self.new_execution_arn,
            "deleted": self.deleted,
        }


@dataclass(frozen=True)
class _Decision:
    action: str
    detail: str = ""
    new_execution_arn: str | None = None


def _not_redrivable_reason(details: ExecutionDetails, now: datetime) -> str | None:
    if details.redrive_status == "NOT_REDRIVABLE":
        return details.redrive_status_reason or "Step Functions says it cannot be redriven"
    if details.redrive_status in {"REDRIVABLE", "REDRIVABLE_BY_MAP_RUN"}:
        return None
    # No redriveStatus (an emulator, an old API version): apply the documented rules.
    if details.status not in UNSUCCESSFUL:
        return f"it is {details.status}"
    ended = details.stop_date or details.start_date
    if ended is not None and now - ended > timedelta(days=REDRIVABLE_DAYS):
        return f"it stopped {(now - ended).days} days ago and can be redriven for {REDRIVABLE_DAYS} days"
    return None


def _restart(
    sfn: Any, letter: DeadLetter, reason: str, input_text: str | None, machine: str, dry_run: bool
) -> _Decision:
    if input_text is None:
        return _Decision(
            "not redrivable", f"{reason}; cannot restart it: Step Functions did not return its input"
        )
    new_name = restart_name(letter.execution_name or name_of(letter.execution_arn or ""))
    new_arn = execution_arn(new_name, machine)
    if dry_run:
        return _Decision("would restart", f"{reason}; would start {new_name} with the same input", new_arn)
    try:
        response = sfn.start_execution(stateMachineArn=machine, name=new_name, input=input_text)
    except ClientError as err:
        code, message = _error(err)
        if code == "ExecutionAlreadyExists":
            return _Decision("already restarted", f"{new_name} was started before", new_arn)
        return _Decision("failed", f"{reason}; restarting it failed: {code}: {message}")
    return _Decision(
        "restarted", f"{reason}; started {new_name} with the same input", str(response["executionArn"])
    )


def _machine_of_execution(arn: str) -> str | None:
    """``arn:aws:states:r:a:execution:machine:name`` -> ``arn:aws:states:r:a:stateMachine:machine``.

    >>> _machine_of_execution("arn:aws:states:us-east-1:123456789012:execution:tagwarden:nightly")
    'arn:aws:states:us-east-1:123456789012:stateMachine:tagwarden'
    >>> _machine_of_execution("arn:aws:states:us-east-1:123456789012:stateMachine:x") is None
    True
    """
    parts = arn.split(":")
    if len(parts) != 8 or parts[:3] != ["arn", parts[1], "states"] or parts[5] != "execution":
        return None
    return ":".join([*parts[:5], "stateMachine", parts[6]])


def _decide(
    sfn: Any,
    letter: DeadLetter,
    *,
    restart_unredrivable: bool,
    dry_run: bool,
    state_machine_arn: str,
    now: datetime,
) -> _Decision:
    # A dead letter is a claim by whoever could send to the queue, not a fact: only executions of
    # the stack's own state machine that Step Functions itself describes are redriven or restarted,
    # and a restart's input is read from that execution, never from the message.
    assert letter.execution_arn is not None
    named_machine = _machine_of_execution(letter.execution_arn)
    if named_machine != state_machine_arn:
        return _Decision(
            "refused",
            f"the message names an execution of {named_machine or 'no state machine'}, not of this "
            f"stack's {state_machine_arn}; left in the queue",
        )
    if letter.state_machine_arn and letter.state_machine_arn != state_machine_arn:
        return _Decision(
            "refused",
            f"the message names state machine {letter.state_machine_arn}, not this stack's; "
            "left in the queue",
        )
    hint = "; pass --restart-unredrivable to start it again with the same input"
    try:
        details: ExecutionDetails | None = describe(sfn, letter.execution_arn)
    except InvalidInput:
        details = None
    if details is None:
        return _Decision(
            "refused",
            "Step Functions has no such execution (gone after 90 days, or never run): its input cannot "
            "be read from Step Functions, and the message's is not trusted; left in the queue",
        )
    if details.state_machine_arn and details.state_machine_arn != state_machine_arn:
        return _Decision(
            "refused",
            f"the execution belongs to {details.state_machine_arn}, not this stack's; left in the queue",
        )
    if details.status == "SUCCEEDED":
        return _Decision("succeeded", "the execution has succeeded since; nothing to redrive")
    if details.status in {"RUNNING", "PENDING_REDRIVE"}:
        return _Decision("running", f"the execution is {details.status} (redriven already?)")
    reason = _not_redrivable_reason(details, now)
    if reason is None:
        if dry_run:
            return _Decision("would redrive", f"redrive #{details.redrive_count + 1}")
        try:
            redrive(sfn, details.execution_arn)
        except InvalidInput as err:
            reason = message_of(err)
        except OperationError as err:
            return _Decision("failed", str(err))
        else:
            return _Decision("redriven", f"redrive #{details.redrive_count + 1} started")
    if not restart_unredrivable:
        return _Decision("not redrivable", reason + hint)
    return _restart(sfn, letter, reason, details.input, state_machine_arn, dry_run)


def redrive_dead_letters(
    sfn: Any,
    sqs: Any,
    queue_url: str,
    *,
    state_machine_arn: str,
    purge_after_redrive: bool = False,
    restart_unredrivable: bool = False,
    dry_run: bool = False,
    max_messages: int = 100,
    now: datetime | None = None,
    wait_seconds: int = 1,
) -> list[DeadLetterOutcome]:
    """Redrive every distinct execution in the dead-letter queue once; report per message.

    Anyone allowed to send to the queue can write a message, so a message only points at an
    execution: one of ``state_machine_arn`` (the stack's own) that DescribeExecution finds. Any
    other message (another state machine, an execution that does not exist) is ``refused`` and left
    in the queue. An execution that cannot be redriven (older than 14 days, not redrivable) is
    started again under :func:`restart_name` when ``restart_unredrivable``, with the input
    DescribeExecution returns (never the message's). With
    ``purge_after_redrive`` a message is deleted only once its execution was redriven or
    restarted (or has succeeded since); every other message stays in the queue, visible again at
    once. ``dry_run`` decides without changing anything.

    >>> import boto3
    >>> from botocore.stub import Stubber
    >>> sqs = boto3.client("sqs", region_name="us-east-1")
    >>> with Stubber(sqs) as stub:
    ...     stub.add_response("receive_message", {})
    ...     redrive_dead_letters(None, sqs, "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    ...                          state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:tw")
    []
    """
    moment = now or datetime.now(UTC)
    raw = _receive(sqs, queue_url, max_messages, visibility_timeout=300, wait_seconds=wait_seconds)
    deleted: set[str] = set()
    outcomes: list[DeadLetterOutcome] = []
    try:
        decisions: dict[str, _Decision] = {}
        for message in raw:
            letter = parse_dead_letter(message)
            if letter.execution_arn is None:
                outcomes.append(
                    DeadLetterOutcome(
                        letter, "unrecognized", "neither a Tagwarden dead letter nor a status event"
                    )
                )
                continue
            decision = decisions.get(letter.execution_arn)
            if decision is None:
                try:
                    decision = _decide(
                        sfn,
                        letter,
                        restart_unredrivable=restart_unredrivable,
                        dry_run=dry_run,
                        state_machine_arn=state_machine_arn,
                        now=moment,
                    )
                except (ClientError, TagwardenError) as err:
                    decision = _Decision("failed", message_of(err))
                decisions[letter.execution_arn] = decision
            removed = False
            detail = decision.detail
            if purge_after_redrive and not dry_run and decision.action in SETTLED:
                try:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=letter.receipt_handle)
                except ClientError as err:
                    code, message_text = _error(err)
                    detail = f"{detail}; deleting the message failed: {code}: {message_text}"
                else:
                    removed = True
                    deleted.add(letter.receipt_handle)
            outcomes.append(
                DeadLetterOutcome(letter, decision.action, detail, decision.new_execution_arn, removed)
            )
    finally:
        _release(sqs, queue_url, [m["ReceiptHandle"] for m in raw if m["ReceiptHandle"] not in deleted])
    return outcomes
