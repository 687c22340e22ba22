"""What every handler shares: the structured logger, the client factory and the error boundary."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger

from workflow.aws import client

logger = Logger(service="tagwarden")

Handler = TypeVar("Handler", bound=Callable[..., Any])

# The Lambda runtime puts an uncaught exception's stack trace into the error payload, which Step
# Functions copies into the Catch's Cause: into the execution's cause, the operations e-mail and
# the dead letter. Those say what failed (type and one-line message); the trace goes to the
# function's own log group, where only operators read it.
_MAX_MESSAGE_CHARS = 2000


def step_boundary(handler: Handler) -> Handler:
    """Let an exception leave the handler with its type and message only, its trace logged.

    The error type is unchanged (the ASL ``Retry``/``Catch`` match on it); the traceback is
    dropped, so the payload's ``stackTrace`` holds this one frame instead of the frames (and the
    source lines) of the code that failed; a message is cut to one bounded line.
    """

    @functools.wraps(handler)
    def boundary(event: Any, context: Any) -> Any:
        try:
            return handler(event, context)
        except Exception as err:
            logger.exception("step failed: %s", type(err).__name__)
            raise _bounded(err).with_traceback(None) from None

    return boundary  # type: ignore[return-value]


def _bounded(err: Exception) -> Exception:
    """``err`` itself when its message is one short line, else an exception of the same type name."""
    message = str(err)
    one_line = " ".join(message.split())[:_MAX_MESSAGE_CHARS]
    if one_line == message:
        return err
    # Same class name (what Step Functions matches), one bounded line of message.
    same_name: type[Exception] = type(type(err).__name__, (Exception,), {"__module__": type(err).__module__})
    return same_name(one_line)


__all__ = ["client", "logger", "step_boundary"]
