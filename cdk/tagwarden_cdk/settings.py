"""Deployment settings, read once from CDK context (``cdk.json`` or ``-c key=value``) and checked.

Every key, its default and what it does is in :data:`CONTEXT_KEYS` (``docs/deploy.md`` lists the
same table). Values given with ``-c`` arrive as strings, values in ``cdk.json`` as JSON: both work.
A bad value stops synthesis with a message naming the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from workflow.config import (
    DEFAULT_DISTRIBUTED_MAP_THRESHOLD,
    DEFAULT_REMEDIATION_ROLE_NAME,
    MAX_DISTRIBUTED_MAP_THRESHOLD,
    NOTIFY_MODES,
)

CONTEXT_KEYS: Final[dict[str, str]] = {
    "environment": "dev: suffix of every resource name; several environments coexist in one account",
    "regions": "the stack's region: regions a scheduled scan covers (list or comma-separated)",
    "schedule": "cron(0 6 * * ? *): EventBridge Scheduler expression (UTC); 'none' disables the schedule",
    "notify": "violations: default notify mode (always, violations, new_violations, never)",
    "email_subscriptions": "[]: emails subscribed to the compliance topic (list or comma-separated)",
    "operations_email_subscriptions": "[]: emails subscribed to the operations (alarms) topic",
    "noncompliant_threshold": "50: alarm when the latest run has more noncompliant instances than this",
    "compliance_percentage_threshold": "90: alarm when the latest run's compliance percentage is below this",
    "evaluated_drop_alarm_percent": (
        "20: alarm when a run evaluated this many percent fewer instances than its baseline run "
        "(same policy, over the targets both scanned)"
    ),
    "map_max_concurrency": "4: regions scanned at once (0 = all at once)",
    "noncurrent_version_expiration_days": "90: days a replaced or deleted report version is kept",
    "retain_data": "true for environment prod, false otherwise: keep bucket, logs and key on stack deletion",
    "log_retention_days": "90: retention of the Lambda, state machine and crawler log groups",
    "athena_bytes_scanned_cutoff": "10737418240 (10 GiB): per-query scan limit of the Athena workgroup",
    "log_level": "INFO: POWERTOOLS_LOG_LEVEL and the Lambda application log level",
    # Organisation-wide scanning (docs/deploy.md, "Organisation-wide scanning").
    "targets": "[]: member accounts a scheduled scan covers, a JSON list of {account_id, regions}",
    "organization": "false: scheduled scans cover every active account of the organisation",
    "organization_id": (
        "none: the organisation's id (o-...); the central event bus admits forwarded EC2 events only "
        "from its accounts (required with organization=true)"
    ),
    "member_role_name": "TagwardenReadOnly: the read-only role the list step assumes in member accounts",
    "member_external_id": "none: sts:ExternalId the member roles require (needed with targets/organization)",
    "security_hub": "false: each scheduled run imports its findings into AWS Security Hub (ASFF)",
    "remediation": (
        "false: runs of a policy with remediation may mark, stop and unmark instances (without it a "
        "policy's remediation only gets a notification line)"
    ),
    "remediation_max_stops_per_run": "10: instances a run stops at most, whatever a policy asks (0-1000)",
    "remediation_role_name": (
        "TagwardenRemediation: the member accounts' remediation role (member stacks with remediation_role)"
    ),
    "max_owner_digests": "50: owner digest messages a run sends at most (0: none); the rest are counted",
    "tag_created_by": (
        "false: event runs tag each untagged resource they were told the creator of with CreatedBy "
        "(the member stacks need tag_created_by too)"
    ),
    "distributed_map_threshold": "40: (account, region) pairs above which a run uses the Distributed Map",
    "distributed_max_concurrency": "50: child executions the Distributed Map runs at once",
    "tolerated_failure_percentage": "10: share of failed targets a Distributed Map run tolerates",
}

# Keys of the member stack (``-c deploy=member``, see member.py); member_role_name,
# member_external_id and environment (for the central role's default name) come from CONTEXT_KEYS.
MEMBER_CONTEXT_KEYS: Final[dict[str, str]] = {
    "central_account_id": "required unless central_list_role_arn: the account of the central deployment",
    "central_list_role_name": "tagwarden-<environment>-list-instances: the central list-instances role",
    "central_list_role_arn": "none: the central list role's full ARN, instead of the two keys above",
    "central_event_bus_arn": (
        "required unless forward_events=false: the central stack's EventBusArn output, where this "
        "account's EC2 API call events go"
    ),
    "forward_events": "true: forward EC2 launches and tag changes to the central event bus (event runs)",
    "tag_created_by": "false: the member role may tag CreatedBy on untagged resources (event runs)",
    "remediation_role": (
        "false: also create the remediation role (remediation_role_name) the central Remediate step "
        "assumes to mark, stop and unmark this account's instances"
    ),
    "central_remediate_role_name": "tagwarden-<environment>-remediate: the central Remediate step's role",
    "member_role_region": (
        "none: create the (global) read-only role only in this region, so one template deploys to "
        "every region (the forwarding rule is regional); none: in every region it is deployed to"
    ),
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
DEFAULT_MEMBER_ROLE_NAME: Final = "TagwardenReadOnly"
_ACCOUNT_ID: Final = re.compile(r"^[0-9]{12}$")
_EVENT_BUS_ARN: Final = re.compile(
    r"^arn:aws[a-z-]*:events:[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+:(?P<account>[0-9]{12}):event-bus/[\w.\-/]{1,256}$"
)
_ORGANIZATION_ID: Final = re.compile(r"^o-[a-z0-9]{10,32}$")  # Organizations' own pattern
_ROLE_NAME: Final = re.compile(r"^[\w+=,.@-]{1,64}$")  # IAM's rule for role names
_ROLE_ARN: Final = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>[0-9]{12}):role/(?:[\w+=,.@-]+/)*(?P<name>[\w+=,.@-]{1,64})$"
)
# STS accepts 2 to 1224 characters; a guessable short value defeats its purpose.
MIN_EXTERNAL_ID_LENGTH: Final = 16
_EXTERNAL_ID: Final = re.compile(rf"^[\w+=,.@:/-]{{{MIN_EXTERNAL_ID_LENGTH},1224}}$")
# The list role's policy names each target's member role (about 55 characters each) and IAM allows a
# role 10,240 characters of inline policy: 100 accounts leave ample room; more need organization mode.
MAX_TARGETS: Final = 100
# The validate step enforces the same ranges on its environment (workflow.config.ValidateConfig):
# a value it would reject must stop synthesis instead of every run.
DEFAULT_DISTRIBUTED_MAX_CONCURRENCY: Final = 50
# Step Functions' own MaxConcurrency limit for a Distributed Map.
MAX_DISTRIBUTED_MAX_CONCURRENCY: Final = 10_000
DEFAULT_TOLERATED_FAILURE_PERCENTAGE: Final = 10


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


def _account_id(key: str, value: Any) -> str:
    # cdk.json may hold an account id as a JSON number; one with leading zeros must be a string.
    text = _text(key, value)
    if not _ACCOUNT_ID.match(text):
        raise SettingsError(f"context {key}: {text!r} is not a 12-digit AWS account id")
    return text


def _role_name(key: str, value: Any) -> str:
    text = _text(key, value)
    if not _ROLE_NAME.match(text):
        raise SettingsError(
            f"context {key}: {text!r} is not an IAM role name (1 to 64 letters, digits and +=,.@_-)"
        )
    return text


def _external_id(key: str, value: Any) -> str:
    text = _text(key, value)
    if not _EXTERNAL_ID.match(text):
        raise SettingsError(
            f"context {key}: must be {MIN_EXTERNAL_ID_LENGTH} to 1224 characters of letters, digits "
            f"and +=,.@:/-_ (got {len(text)} characters); generate one with "
            "`python3 -c 'import secrets; print(secrets.token_hex(16))'`"
        )
    return text


@dataclass(frozen=True)
class Target:
    """One member account a scan covers; empty regions: the deployment's ``regions``."""

    account_id: str
    regions: tuple[str, ...] = ()


def _targets(value: Any) -> tuple[Target, ...]:
    """A JSON list (or JSON-encoded list) of ``{"account_id": "...", "regions": [...]}``."""
    items: Any = value
    if isinstance(value, str):
        text = value.strip()
        try:
            items = json.loads(text) if text else []
        except json.JSONDecodeError as error:
            raise SettingsError(f"context targets: not a JSON list: {error}") from None
    if not isinstance(items, list | tuple):
        raise SettingsError(
            f"context targets: expected a JSON list of {{account_id, regions}}, got {value!r}"
        )
    if len(items) > MAX_TARGETS:
        raise SettingsError(
            f"context targets: {len(items)} accounts, at most {MAX_TARGETS} (the list role's policy names "
            "each member role and IAM limits its size); use organization=true to scan more"
        )
    targets: list[Target] = []
    for index, item in enumerate(items):
        where = f"targets[{index}]"
        if not isinstance(item, dict):
            raise SettingsError(f"context {where}: expected an object {{account_id, regions}}, got {item!r}")
        unknown = sorted(set(item) - {"account_id", "regions"})
        if unknown:
            raise SettingsError(f"context {where}: unknown field(s) {', '.join(unknown)}")
        if "account_id" not in item:
            raise SettingsError(f"context {where}: account_id is missing")
        account_id = _account_id(f"{where}.account_id", item["account_id"])
        if any(t.account_id == account_id for t in targets):
            raise SettingsError(f"context {where}: account {account_id} is listed twice")
        regions = _list(
            f"{where}.regions", item.get("regions") or [], lambda r: bool(_REGION.match(r)), "a region"
        )
        targets.append(Target(account_id=account_id, regions=regions))
    return tuple(targets)


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
    evaluated_drop_alarm_percent: float = 20.0
    map_max_concurrency: int = 4
    noncurrent_version_expiration_days: int = 90
    retain_data: bool = False
    log_retention_days: int = 90
    athena_bytes_scanned_cutoff: int = 10 * 1024**3
    log_level: str = "INFO"
    # Organisation-wide scanning: what the schedule scans and which member roles the list step
    # may assume (docs/deploy.md, "Organisation-wide scanning").
    targets: tuple[Target, ...] = ()
    organization: bool = False
    organization_id: str | None = None
    member_role_name: str = DEFAULT_MEMBER_ROLE_NAME
    member_external_id: str | None = None
    tag_created_by: bool = False
    max_owner_digests: int = 50
    security_hub: bool = False
    remediation: bool = False
    remediation_max_stops_per_run: int = 10
    remediation_role_name: str = DEFAULT_REMEDIATION_ROLE_NAME
    distributed_map_threshold: int = DEFAULT_DISTRIBUTED_MAP_THRESHOLD
    distributed_max_concurrency: int = DEFAULT_DISTRIBUTED_MAX_CONCURRENCY
    tolerated_failure_percentage: int = DEFAULT_TOLERATED_FAILURE_PERCENTAGE

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
        targets = _targets(ctx.get("targets", []))
        organization = _boolean("organization", ctx.get("organization", False))
        if organization and targets:
            raise SettingsError(
                "context targets: give either targets or organization=true, not both "
                "(organization mode scans every active account of the organisation)"
            )
        external_id = (
            _external_id("member_external_id", ctx["member_external_id"])
            if "member_external_id" in ctx
            else None
        )
        if (targets or organization) and external_id is None:
            raise SettingsError(
                "context member_external_id: required with targets or organization=true "
                "(the member roles trust the list step only with this sts:ExternalId)"
            )
        organization_id = (
            _text("organization_id", ctx["organization_id"]) if ctx.get("organization_id") else None
        )
        if organization_id is not None and not _ORGANIZATION_ID.match(organization_id):
            raise SettingsError(
                f"context organization_id: {organization_id!r} is not an organisation id (o- and 10 to 32 "
                "lowercase letters or digits; aws organizations describe-organization shows it)"
            )
        if organization and organization_id is None:
            raise SettingsError(
                "context organization_id: required with organization=true: the central event bus admits "
                "the member accounts' EC2 events from this organisation only (aws:PrincipalOrgID); "
                "aws organizations describe-organization shows it"
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
            evaluated_drop_alarm_percent=_number(
                "evaluated_drop_alarm_percent", ctx.get("evaluated_drop_alarm_percent", 20), 0, 100
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
            targets=targets,
            organization=organization,
            organization_id=organization_id,
            member_role_name=_role_name(
                "member_role_name", ctx.get("member_role_name", DEFAULT_MEMBER_ROLE_NAME)
            ),
            member_external_id=external_id,
            tag_created_by=_boolean("tag_created_by", ctx.get("tag_created_by", False)),
            max_owner_digests=_integer("max_owner_digests", ctx.get("max_owner_digests", 50), 0, 1000),
            security_hub=_boolean("security_hub", ctx.get("security_hub", False)),
            remediation=_boolean("remediation", ctx.get("remediation", False)),
            remediation_max_stops_per_run=_integer(
                "remediation_max_stops_per_run", ctx.get("remediation_max_stops_per_run", 10), 0, 1000
            ),
            remediation_role_name=_role_name(
                "remediation_role_name", ctx.get("remediation_role_name", DEFAULT_REMEDIATION_ROLE_NAME)
            ),
            distributed_map_threshold=_integer(
                "distributed_map_threshold",
                ctx.get("distributed_map_threshold", DEFAULT_DISTRIBUTED_MAP_THRESHOLD),
                1,
                MAX_DISTRIBUTED_MAP_THRESHOLD,
            ),
            distributed_max_concurrency=_integer(
                "distributed_max_concurrency",
                ctx.get("distributed_max_concurrency", DEFAULT_DISTRIBUTED_MAX_CONCURRENCY),
                1,
                MAX_DISTRIBUTED_MAX_CONCURRENCY,
            ),
            tolerated_failure_percentage=_integer(
                "tolerated_failure_percentage",
                ctx.get("tolerated_failure_percentage", DEFAULT_TOLERATED_FAILURE_PERCENTAGE),
                0,
                100,
            ),
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


@dataclass(frozen=True)
class MemberSettings:
    """The member stack (``-c deploy=member``): the read-only role and whom it trusts."""

    central_account_id: str
    central_list_role_name: str
    member_external_id: str
    member_role_name: str = DEFAULT_MEMBER_ROLE_NAME
    central_role_path: str = "/"
    central_partition: str | None = None  # None: the partition the member stack is deployed in
    # The central event bus this account's EC2 API call events are forwarded to; None: not forwarded.
    central_event_bus_arn: str | None = None
    # The one region whose stack creates the read-only role (IAM is global); None: every stack does.
    member_role_region: str | None = None
    # The read-only role may also tag CreatedBy on resources that have none (event runs).
    tag_created_by: bool = False
    # The optional remediation role, and the central role it trusts (by name, in the central account).
    remediation_role: bool = False
    remediation_role_name: str = DEFAULT_REMEDIATION_ROLE_NAME
    central_remediate_role_name: str = ""

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> MemberSettings:
        """Member settings; ``member_external_id``, the central account (or role ARN) and, unless
        ``forward_events`` is false, ``central_event_bus_arn`` are required.

        >>> MemberSettings.from_context(
        ...     {"central_account_id": "111122223333", "member_external_id": "0123456789abcdef",
        ...      "forward_events": "false"}
        ... ).central_list_role_name
        'tagwarden-dev-list-instances'
        """
        keys = {
            *MEMBER_CONTEXT_KEYS,
            "environment",
            "member_role_name",
            "member_external_id",
            "remediation_role_name",
        }
        ctx = {k: v for k, v in context.items() if k in keys and v is not None and v != ""}
        settings = cls._roles(ctx)
        if _boolean("tag_created_by", ctx.get("tag_created_by", False)):
            settings = replace(settings, tag_created_by=True)
        if _boolean("remediation_role", ctx.get("remediation_role", False)):
            environment = _text("environment", ctx.get("environment", "dev"))
            settings = replace(
                settings,
                remediation_role=True,
                remediation_role_name=_role_name(
                    "remediation_role_name", ctx.get("remediation_role_name", DEFAULT_REMEDIATION_ROLE_NAME)
                ),
                central_remediate_role_name=_role_name(
                    "central_remediate_role_name",
                    ctx.get(
                        "central_remediate_role_name", Settings(environment=environment).name("remediate")
                    ),
                ),
            )
        if "member_role_region" in ctx:
            region = _text("member_role_region", ctx["member_role_region"])
            if not _REGION.match(region):
                raise SettingsError(f"context member_role_region: {region!r} is not a region")
            settings = replace(settings, member_role_region=region)
        if not _boolean("forward_events", ctx.get("forward_events", True)):
            return settings
        if "central_event_bus_arn" not in ctx:
            raise SettingsError(
                "context central_event_bus_arn: required to forward this account's EC2 API call events to "
                "the central stack (its EventBusArn output), or give -c forward_events=false"
            )
        arn = _text("central_event_bus_arn", ctx["central_event_bus_arn"])
        match = _EVENT_BUS_ARN.match(arn)
        if not match:
            raise SettingsError(
                f"context central_event_bus_arn: {arn!r} is not an event bus ARN "
                "(arn:aws:events:<region>:<12-digit account>:event-bus/<name>)"
            )
        if match["account"] != settings.central_account_id:
            raise SettingsError(
                f"context central_event_bus_arn: the bus is in account {match['account']}, not in the "
                f"central account {settings.central_account_id}"
            )
        return replace(settings, central_event_bus_arn=arn)

    @classmethod
    def _roles(cls, ctx: Mapping[str, Any]) -> MemberSettings:
        if "member_external_id" not in ctx:
            raise SettingsError(
                "context member_external_id: required for the member stack, the same value as the "
                "central deployment's (-c member_external_id=...); "
                f"at least {MIN_EXTERNAL_ID_LENGTH} characters"
            )
        external_id = _external_id("member_external_id", ctx["member_external_id"])
        role_name = _role_name("member_role_name", ctx.get("member_role_name", DEFAULT_MEMBER_ROLE_NAME))
        if "central_list_role_arn" in ctx:
            for key in ("central_account_id", "central_list_role_name"):
                if key in ctx:
                    raise SettingsError(
                        f"context {key}: give either central_list_role_arn or {key}, not both"
                    )
            arn = _text("central_list_role_arn", ctx["central_list_role_arn"])
            match = _ROLE_ARN.match(arn)
            if not match:
                raise SettingsError(
                    f"context central_list_role_arn: {arn!r} is not an IAM role ARN "
                    "(arn:aws:iam::<12-digit account>:role/<name>)"
                )
            path = arn.split(":role", 1)[1].rsplit("/", 1)[0] + "/"
            return cls(
                central_account_id=match["account"],
                central_list_role_name=match["name"],
                member_external_id=external_id,
                member_role_name=role_name,
                central_role_path=path,
                central_partition=match["partition"],
            )
        if "central_account_id" not in ctx:
            raise SettingsError(
                "context central_account_id: required for the member stack (or central_list_role_arn): "
                "the account the central Tagwarden stack is deployed in"
            )
        environment = _text("environment", ctx.get("environment", "dev"))
        if not _ENVIRONMENT.match(environment):
            raise SettingsError(f"context environment: {environment!r} is not a Tagwarden environment name")
        default_name = Settings(environment=environment).name("list-instances")
        return cls(
            central_account_id=_account_id("central_account_id", ctx["central_account_id"]),
            central_list_role_name=_role_name(
                "central_list_role_name", ctx.get("central_list_role_name", default_name)
            ),
            member_external_id=external_id,
            member_role_name=role_name,
        )


def scheduled_input(settings: Settings) -> dict[str, object]:
    """The execution input of a scheduled run: the deployment's targets, the whole organisation,
    or (single account) nothing, so every field defaults from the deployment.

    >>> from tagwarden_cdk.settings import Target
    >>> scheduled_input(Settings(targets=(Target("444455556666", ("eu-west-1",)), Target("777788889999"))))
    {'targets': [{'account_id': '444455556666', 'regions': ['eu-west-1']}, {'account_id': '777788889999'}]}
    """
    if settings.organization:
        return {"organization": True}
    if settings.targets:
        # A target without regions takes the deployment's (the input schema wants none or some).
        return {
            "targets": [
                {"account_id": t.account_id, **({"regions": list(t.regions)} if t.regions else {})}
                for t in settings.targets
            ]
        }
    return {}  # every field defaults from the deployment
