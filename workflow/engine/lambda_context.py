"""A stand-in for the ``context`` object the AWS Lambda Python runtime passes to a handler.

It mirrors ``awslambdaric.lambda_context.LambdaContext`` attribute for attribute, including its
quirks: ``memory_limit_in_mb`` is a *string* (the runtime copies it from the
``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` environment variable), and ``get_remaining_time_in_millis``
counts down from a deadline fixed when the invocation starts and never goes below zero.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LambdaContext:
    """What a handler sees as its second argument.

    >>> ctx = LambdaContext.for_function("scan", region="eu-west-1", memory_mb=256, timeout_s=30)
    >>> ctx.memory_limit_in_mb, ctx.invoked_function_arn
    ('256', 'arn:aws:lambda:eu-west-1:123456789012:function:scan')
    >>> 29_000 < ctx.get_remaining_time_in_millis() <= 30_000
    True
    """

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    deadline_epoch_ms: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    client_context: Any = None
    identity: Any = None
    tenant_id: str | None = None

    @classmethod
    def for_function(
        cls,
        function_name: str,
        *,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        memory_mb: int = 128,
        timeout_s: float = 3,
        request_id: str | None = None,
        function_arn: str | None = None,
    ) -> LambdaContext:
        """A context whose deadline is ``timeout_s`` from now, named like AWS names things."""
        request_id = request_id or str(uuid.uuid4())
        today = time.strftime("%Y/%m/%d", time.gmtime())
        return cls(
            function_name=function_name,
            invoked_function_arn=function_arn
            or f"arn:aws:lambda:{region}:{account_id}:function:{function_name}",
            memory_limit_in_mb=str(memory_mb),
            deadline_epoch_ms=int(time.time() * 1000 + timeout_s * 1000),
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{function_name}",
            log_stream_name=f"{today}/[$LATEST]{request_id.replace('-', '')}",
        )

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout, 0 once it has passed."""
        return max(0, self.deadline_epoch_ms - int(time.time() * 1000))
