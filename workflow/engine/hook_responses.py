"""Answers the local engine's botocore hooks give instead of an HTTP exchange.

A ``before-call`` handler that returns ``(http_response, parsed)`` ends the call there: botocore
skips the request and hands ``parsed`` to the client as if the service had answered it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse

Answer = tuple[AWSResponse, dict[str, Any]]


class LocalResponse(AWSResponse):  # type: ignore[misc]
    """An empty HTTP response with a status code: the parsed answer carries the content."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(url, status, {}, None)

    @property
    def content(self) -> bytes:
        return b""


def answer(url: str, parsed: dict[str, Any], status: int = 200) -> Answer:
    """A successful answer.

    >>> response, parsed = answer("https://sts.local", {"Accounts": []})
    >>> response.status_code, parsed["ResponseMetadata"]
    (200, {'HTTPStatusCode': 200})
    """
    return LocalResponse(url, status), {**parsed, "ResponseMetadata": {"HTTPStatusCode": status}}


def error(url: str, code: str, message: str, status: int) -> Answer:
    """An AWS error answer: the client raises ``ClientError`` with this code and message.

    >>> error("https://ec2.local", "RequestLimitExceeded", "slow down", 503)[1]["Error"]["Code"]
    'RequestLimitExceeded'
    """
    return LocalResponse(url, status), {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


def params_recorder(context_key: str) -> Callable[..., None]:
    """A ``before-parameter-build`` handler keeping the call's parameters for the answering hook
    (``before-call`` sees the serialized request, not the parameters)."""

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[context_key] = copy.deepcopy(params)

    return remember
