"""Deployment settings, read once from CDK context (``cdk.json`` or ``-c key=value``) and checked.

Every key, its default and what it does is in :data:`CONTEXT_KEYS` (``docs/deploy.md`` lists the
same table). Values given with ``-c`` arrive as strings, values in ``cdk.json`` as JSON: both work.
A bad value stops synthesis with a message naming the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from workflow.config import NOTIFY_MODES

CONTEXT_KEYS: Final[dict[str, str]] = {
    "environment": "dev: suffix of every resource name; several environments coexist in one account",
    "regions": "the stack's region: regions a scheduled scan covers (list or comma-separated)",
    "schedule": "cron(0 6 * * ? *): EventBridge Scheduler expression (UTC); 'none' disables the schedule",
    "notify": "violations: default notify mode (always, violations, new_violations, never)",
    "email_subscriptions": "[]: emails subscribed to the compliance topic (list or comma-separated)",
    "operations_email_subscriptions": "[]: emails subscribed to the operations (alarms) topic",
    "noncompliant_threshold": "50: alarm when the latest run has more noncompliant instances than this",
    "compliance_percentage_threshold": "90: alarm when the latest run's compliance percentage is below this",
    "map_max_concurrency": "4: regions scanned at once (0 = all at once)",
    "noncurrent_version_expiration_days": "90: days a replaced or deleted report version is kept",
    "retain_data": "true for environment prod, false otherwise: keep bucket, logs and key on stack deletion",
    "log_retention_days": "90: retention of the Lambda, state machine and crawler log groups",
    "athena_bytes_scanned_cutoff": "10737418240 (10 GiB): per-query scan limit of the Athena workgroup",
    "log_level": "INFO: POWERTOOLS_LOG_LEVEL and the Lambda application log level",
}

DEFAULT_SCHEDULE: Final = "cron(0 6 * * ? *)"
_ENVIRONMENT: Final = re.compile(r"^[a-z][a-z0-9-]{0,11}$")
_REGION: Final = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$")
_EMAIL: Final = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
_SCHEDULE: Final = re.compile(r"^(cron|rate|at)\(.+\)$")
_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARN", "ERROR")
# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
_MIN_ATHENA_CUTOFF: Final = 10 * 1024 * 1024  # Athena's lower bound for BytesScannedCutoffPerQuery


class SettingsError(ValueError):
    """A context value that cannot be used; the message names the key."""


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise SettingsError(f"context {key}: expected a string, got {value!r}")
    return str(value).strip()


def _integer(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise SettingsError(f"context {key}: expected an integer, got {value!r}")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise SettingsError(f"context {key}: expected an integer, got {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"context {key}: {number} is not between {low} and {high}")
    return number


def _number(key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise SettingsError(f"context {key}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"context {key}: expected a number, got {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"context {key}: {number} is not between {low} and {high}")
    return number


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "1"}:
        return True
    if text in {"false", "no", "0"}:
        return False
    raise SettingsError(f"context {key}: expected true or false, got {value!r}")


def _list(key: str, value: Any, check: Callable[[str], bool], what: str) -> tuple[str, ...]:
    """A JSON list, a JSON-encoded list (``-c 'k=["a","b"]'``) or a comma-separated string."""
    items: list[Any]
    if isinstance(value, list | tuple):
        items = list(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                decoded = json.loads(text)
            except json.JSONDecodeError as error:
                raise SettingsError(f"context {key}: not a JSON list: {error}") from None
            if not isinstance(decoded, list):
                raise SettingsError(f"context {key}: expected a list, got {value!r}")
            items = decoded
        else:
            items = [part for part in text.split(",") if part.strip()]
    else:
        raise SettingsError(f"context {key}: expected a list, got {value!r}")
    result: list[str] = []
    for item in items:
        text = _text(key, item)
        if not check(text):
            raise SettingsError(f"context {key}: {text!r} is not {what}")
        if text not in result:
            result.append(text)
    return tuple(result)


def _schedule(value: Any) -> str | None:
    text = _text("schedule", value)
    if text.lower() in {"", "none", "off", "disabled"}:
        return None
    if _SCHEDULE.match(text):
        return text
    if len(text.split()) == 6:  # bare cron fields: minutes hours day-of-month month day-of-week year
        return f"cron({text})"
    raise SettingsError(
        f"context schedule: {text!r} is not a Scheduler expression such as {DEFAULT_SCHEDULE}, "
        "rate(12 hours) or none"
    )


@dataclass(frozen=True)
class Settings:
    """What one deployment (one environment) is configured with."""

    environment: str = "dev"
    regions: tuple[str, ...] = ()  # empty: the stack's own region
    schedule: str | None = DEFAULT_SCHEDULE
    notify: str = "violations"
    email_subscriptions: tuple[str, ...] = ()
    operations_email_subscriptions: tuple[str, ...] = ()
    noncompliant_threshold: int = 50
    compliance_percentage_threshold: float = 90.0
    map_max_concurrency: int = 4
    noncurrent_version_expiration_days: int = 90
    retain_data: bool = False
    log_retention_days: int = 90
    athena_bytes_scanned_cutoff: int = 10 * 1024**3
    log_level: str = "INFO"

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Settings:
        """Settings from context values; absent (or null) keys take their defaults.

        >>> Settings.from_context({"environment": "prod"}).retain_data
        True
        >>> Settings.from_context({"regions": "us-east-1, eu-west-1", "schedule": "none"}).regions
        ('us-east-1', 'eu-west-1')
        """
        ctx = {k: v for k, v in context.items() if k in CONTEXT_KEYS and v is not None}
        environment = _text("environment", ctx.get("environment", "dev"))
        if not _ENVIRONMENT.match(environment):
            raise SettingsError(
                f"context environment: {environment!r} must be 1 to 12 characters, lowercase letters, "
                "digits and hyphens, starting with a letter (it is part of bucket names)"
            )
        notify = _text("notify", ctx.get("notify", "violations"))
        if notify not in NOTIFY_MODES:
            raise SettingsError(f"context notify: {notify!r} is not one of {', '.join(NOTIFY_MODES)}")
        log_level = _text("log_level", ctx.get("log_level", "INFO")).upper()
        if log_level not in _LOG_LEVELS:
            raise SettingsError(f"context log_level: {log_level!r} is not one of {', '.join(_LOG_LEVELS)}")
        retention = _integer("log_retention_days", ctx.get("log_retention_days", 90), 1, 3653)
        if retention not in LOG_RETENTION_DAYS:
            raise SettingsError(
                f"context log_retention_days: {retention} is not a CloudWatch Logs retention "
                f"({', '.join(map(str, LOG_RETENTION_DAYS))})"
            )
        return cls(
            environment=environment,
            regions=_list("regions", ctx.get("regions", []), lambda r: bool(_REGION.match(r)), "a region"),
            schedule=_schedule(ctx.get("schedule", DEFAULT_SCHEDULE)),
            notify=notify,
            email_subscriptions=_list(
                "email_subscriptions",
                ctx.get("email_subscriptions", []),
                lambda e: bool(_EMAIL.match(e)),
                "an email",
            ),
            operations_email_subscriptions=_list(
                "operations_email_subscriptions",
                ctx.get("operations_email_subscriptions", []),
                lambda e: bool(_EMAIL.match(e)),
                "an email",
            ),
            noncompliant_threshold=_integer(
                "noncompliant_threshold", ctx.get("noncompliant_threshold", 50), 0, 10_000_000
            ),
            compliance_percentage_threshold=_number(
                "compliance_percentage_threshold", ctx.get("compliance_percentage_threshold", 90), 0, 100
            ),
            map_max_concurrency=_integer("map_max_concurrency", ctx.get("map_max_concurrency", 4), 0, 1000),
            noncurrent_version_expiration_days=_integer(
                "noncurrent_version_expiration_days",
                ctx.get("noncurrent_version_expiration_days", 90),
                1,
                3650,
            ),
            retain_data=_boolean("retain_data", ctx.get("retain_data", environment == "prod")),
            log_retention_days=retention,
            athena_bytes_scanned_cutoff=_integer(
                "athena_bytes_scanned_cutoff",
                ctx.get("athena_bytes_scanned_cutoff", 10 * 1024**3),
                _MIN_ATHENA_CUTOFF,
                2**62,
            ),
            log_level=log_level,
        )

    def name(self, suffix: str) -> str:
        """A resource name of this environment.

        >>> Settings(environment="prod").name("reports")
        'tagwarden-prod-reports'
        """
        return f"tagwarden-{self.environment}-{suffix}"

    @property
    def stack_name(self) -> str:
        return f"Tagwarden-{self.environment}"

    @property
    def glue_database_name(self) -> str:
        """Glue and Athena want lowercase letters, digits and underscores."""
        return f"tagwarden_{self.environment.replace('-', '_')}"
