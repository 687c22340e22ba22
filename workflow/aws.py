"""AWS clients for the steps, and the translation of AWS errors into Tagwarden's hierarchy.

Handlers get their clients from :func:`client`, built from one boto3 session with botocore's
``standard`` retry mode (exponential backoff with jitter inside the call) so only throttling that
outlasts it reaches the state machine, as :class:`Throttled`, where ``Retry`` backs off further.
Tests and the local engine swap the session with :func:`use_session`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from workflow.errors import (
    AccessDenied,
    PermanentError,
    RegionNotEnabled,
    ReportNotFound,
    ServiceUnavailable,
    Throttled,
    WorkflowError,
)

RETRY_CONFIG: Final = Config(
    retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=30
)
THROTTLING_CODES: Final = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
    }
)
ACCESS_DENIED_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthFailure",
        "InvalidClientTokenId",
    }
)
# The region is not enabled for the account (opt-in regions), or STS is off there.
REGION_NOT_ENABLED_CODES: Final = frozenset({"OptInRequired", "RegionDisabledException"})
NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})

_lock = threading.Lock()
_session: boto3.Session | None = None
_clients: dict[tuple[str, str | None], Any] = {}


def _current_session() -> boto3.Session:
    global _session
    if _session is None:
        _session = boto3.Session()
    return _session


def client(service: str, region: str | None = None) -> Any:
    """A cached client of the current session, with the standard retry mode.

    >>> client("s3", "us-east-1").meta.region_name
    'us-east-1'
    """
    key = (service, region)
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = _current_session().client(service, region_name=region, config=RETRY_CONFIG)
            _clients[key] = found
        return found


Credentials = dict[str, str]


def assumed_client(service: str, region: str, credentials: Credentials) -> Any:
    """A client of the current session (its event hooks included) signing with ``credentials``.

    Not cached: assumed-role credentials belong to one target and expire.
    """
    return _current_session().client(
        service,
        region_name=region,
        config=RETRY_CONFIG,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def assume_role(sts: Any, role_arn: str, *, session_name: str, external_id: str | None) -> Credentials:
    """Temporary credentials of ``role_arn`` (15 minutes: one list invocation at most).

    A missing role and a trust policy that does not admit us both answer AccessDenied, raised as
    :class:`AccessDenied`.
    """
    request: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": session_name[:64],
        "DurationSeconds": 900,
    }
    if external_id:
        request["ExternalId"] = external_id
    with aws_call(f"sts:AssumeRole {role_arn}"):
        response = sts.assume_role(**request)
    credentials = response["Credentials"]
    return {
        "AccessKeyId": credentials["AccessKeyId"],
        "SecretAccessKey": credentials["SecretAccessKey"],
        "SessionToken": credentials["SessionToken"],
    }


@contextmanager
def use_session(session: boto3.Session) -> Iterator[boto3.Session]:
    """Make every :func:`client` come from ``session`` (and its event hooks) for a while."""
    global _session
    with _lock:
        previous, saved = _session, dict(_clients)
        _session = session
        _clients.clear()
    try:
        yield session
    finally:
        with _lock:
            _session = previous
            _clients.clear()
            _clients.update(saved)


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def translate(err: Exception, what: str) -> WorkflowError:
    """Map a botocore error to the class the state machine's ``Retry``/``Catch`` match on.

    >>> throttled = ClientError({"Error": {"Code": "RequestLimitExceeded"}}, "DescribeInstances")
    >>> type(translate(throttled, "x")).__name__
    'Throttled'
    """
    if isinstance(err, ClientError):
        code = error_code(err)
        message = f"{what}: {code}: {err.response.get('Error', {}).get('Message', '')}".rstrip(": ")
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in THROTTLING_CODES:
            return Throttled(message)
        if code in REGION_NOT_ENABLED_CODES:
            return RegionNotEnabled(message)
        if code in ACCESS_DENIED_CODES:
            return AccessDenied(message)
        if code in NOT_FOUND_CODES:
            return ReportNotFound(message)
        if status >= 500 or code in {"InternalError", "ServiceUnavailable", "InternalFailure", "Unavailable"}:
            return ServiceUnavailable(message)
        return PermanentError(message)
    if isinstance(err, (ConnectionError, ReadTimeoutError)):
        return ServiceUnavailable(f"{what}: {err}")
    if isinstance(err, BotoCoreError):
        return PermanentError(f"{what}: {err}")
    return PermanentError(f"{what}: {type(err).__name__}: {err}")


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Run AWS calls, re-raising their errors as Tagwarden's named errors."""
    try:
        yield
    except (ClientError, BotoCoreError) as err:
        raise translate(err, what) from err
