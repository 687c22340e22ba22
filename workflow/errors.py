"""The one exception hierarchy of Tagwarden.

The class names of :class:`WorkflowError` subclasses are part of the contract with the state
machine: a Lambda error reaches ``Retry``/``Catch`` with the exception class name as its error
type, so ``state_machines/*.asl.json`` matches on exactly these names (a unit test checks that
every ``ErrorEquals`` name exists here or is a Step Functions/Lambda service error).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class TagwardenError(Exception):
    """Base class of every error Tagwarden raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem in a document: a JSON path such as ``$.rules[2].pattern`` and a message."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidInput(TagwardenError):
    """Input that no retry can fix: a policy, a fleet file, an execution input.

    Carries every problem found so a user fixes them all at once.

    >>> str(InvalidInput([Problem("$.version", "must be 1")]))
    '$.version: must be 1'
    """

    def __init__(self, problems: Iterable[Problem] | str, *, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem("$", problems)]
        self.problems: Sequence[Problem] = tuple(problems)
        self.source = source
        super().__init__("; ".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        """One line per problem, prefixed with the source file where known."""
        prefix = f"{self.source}: " if self.source else ""
        return [f"{prefix}{p}" for p in self.problems]


class PolicyError(InvalidInput):
    """A tag policy that fails validation (schema, regexes, duplicates, conversion)."""


class FleetError(InvalidInput):
    """A describe-instances document that cannot be read."""


class ConfigurationError(TagwardenError):
    """A missing or malformed environment variable of a step; fails the step at start."""


class WorkflowError(TagwardenError):
    """Errors raised by step handlers; their class names appear in the ASL ``ErrorEquals``."""


class TransientError(WorkflowError):
    """Worth retrying: throttling, timeouts, 5xx from an AWS service."""


class Throttled(TransientError):
    """An AWS API throttled us (EC2 ``RequestLimitExceeded``, ``ThrottlingException``, ...)."""


class ServiceUnavailable(TransientError):
    """An AWS service answered with a 5xx or the connection failed."""


class PermanentError(WorkflowError):
    """Not worth retrying: access denied, missing bucket, malformed data."""


class AccessDenied(PermanentError):
    """The step's role lacks a permission it needs."""


class RegionNotEnabled(AccessDenied):
    """The account has not enabled the region (``OptInRequired``): the target cannot be scanned.

    Unlike other access errors this is a fact about the target, not a fault of the deployment, so
    even in the deployment's own account it makes the target "not scanned" instead of failing the run.
    """


class ImportIncomplete(PermanentError):
    """Security Hub refused some findings after retries: the others are in, the run says how many."""


class RemediationIncomplete(PermanentError):
    """Some remediation actions failed (a role not assumable, a call refused): the others are done
    and recorded, the run's summary and notification say which failed, the next run tries again."""


class ReportNotFound(PermanentError):
    """An S3 object the step expected (inventory, findings, summary) does not exist."""
