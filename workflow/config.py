"""Configuration of each workflow step, parsed once from the environment into a frozen dataclass.

Every environment variable name lives here, so the CDK app, the local engine and the handlers
agree on them. A missing or malformed variable is a :class:`ConfigurationError` at the start of the
step, naming the variable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from workflow.errors import ConfigurationError
from workflow.targets import Scope

REPORT_BUCKET: Final = "TAGWARDEN_REPORT_BUCKET"
DEFAULT_POLICY_URI: Final = "TAGWARDEN_DEFAULT_POLICY_URI"
DEFAULT_REGIONS: Final = "TAGWARDEN_DEFAULT_REGIONS"
DEFAULT_NOTIFY: Final = "TAGWARDEN_DEFAULT_NOTIFY"
MAP_MAX_CONCURRENCY: Final = "TAGWARDEN_MAP_MAX_CONCURRENCY"
ENVIRONMENT: Final = "TAGWARDEN_ENVIRONMENT"
PAGE_SIZE: Final = "TAGWARDEN_PAGE_SIZE"
TIME_BUDGET_MARGIN_SECONDS: Final = "TAGWARDEN_TIME_BUDGET_MARGIN_SECONDS"
GLUE_DATABASE: Final = "TAGWARDEN_GLUE_DATABASE"
FINDINGS_TABLE: Final = "TAGWARDEN_FINDINGS_TABLE"
RUNS_TABLE: Final = "TAGWARDEN_RUNS_TABLE"
ACTIONS_TABLE: Final = "TAGWARDEN_ACTIONS_TABLE"
MEMBER_ROLE_NAME: Final = "TAGWARDEN_MEMBER_ROLE_NAME"
MEMBER_EXTERNAL_ID: Final = "TAGWARDEN_MEMBER_EXTERNAL_ID"
DISTRIBUTED_MAP_THRESHOLD: Final = "TAGWARDEN_DISTRIBUTED_MAP_THRESHOLD"
DISTRIBUTED_MAX_CONCURRENCY: Final = "TAGWARDEN_DISTRIBUTED_MAX_CONCURRENCY"
TOLERATED_FAILURE_PERCENTAGE: Final = "TAGWARDEN_TOLERATED_FAILURE_PERCENTAGE"
TOPIC_ARN: Final = "TAGWARDEN_TOPIC_ARN"
ORGANIZATION_DEPLOYMENT: Final = "TAGWARDEN_ORGANIZATION_DEPLOYMENT"
CONSOLE_REGION: Final = "TAGWARDEN_CONSOLE_REGION"
# The Security Hub product findings go to (the account's default product); set: runs import.
SECURITY_HUB_PRODUCT_ARN: Final = "TAGWARDEN_SECURITY_HUB_PRODUCT_ARN"
# "true" on Validate input: each scheduled run imports its findings into Security Hub.
SECURITY_HUB: Final = "TAGWARDEN_SECURITY_HUB"
# At most this many owner digest messages per run (0: none); the rest are counted in the summary.
MAX_OWNER_DIGESTS: Final = "TAGWARDEN_MAX_OWNER_DIGESTS"
# "true" on Validate input: runs of a policy with ``remediation`` remediate (off: they only say
# the deployment does not allow it).
REMEDIATION: Final = "TAGWARDEN_REMEDIATION"
# The role the Remediate step assumes in member accounts (the member stack's optional role).
REMEDIATION_ROLE_NAME: Final = "TAGWARDEN_REMEDIATION_ROLE_NAME"
# The deployment's ceiling on stops per run, whatever a policy asks.
MAX_STOPS_PER_RUN: Final = "TAGWARDEN_MAX_STOPS_PER_RUN"
# "true": an event run tags each resource it was told the creator of with CreatedBy (if untagged).
TAG_CREATED_BY: Final = "TAGWARDEN_TAG_CREATED_BY"
# The scheduled scan's input ({} | {"targets": [...]} | {"organization": true}) as JSON: the event
# runs check what the scheduled scan covers and only count the rest.
EVENT_SCOPE: Final = "TAGWARDEN_EVENT_SCOPE"
METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"
SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
LOG_LEVEL: Final = "POWERTOOLS_LOG_LEVEL"

NOTIFY_MODES: Final = ("always", "violations", "new_violations", "never")
DEFAULT_METRICS_NAMESPACE: Final = "Tagwarden"
DEFAULT_MAX_OWNER_DIGESTS: Final = 50
DEFAULT_MEMBER_ROLE_NAME: Final = "TagwardenReadOnly"
DEFAULT_REMEDIATION_ROLE_NAME: Final = "TagwardenRemediation"
DEFAULT_MAX_STOPS_PER_RUN: Final = 10
# An inline Map iteration adds 14 events to the execution's history (more when a region
# needs continuation loops; benchmarks/bench_fanout.py): 40 pairs stay near 600 of the 25,000 events
# a Standard execution may have, and their work items near 2 KB of state. Above it the Distributed
# Map takes over.
DEFAULT_DISTRIBUTED_MAP_THRESHOLD: Final = 40
MAX_DISTRIBUTED_MAP_THRESHOLD: Final = 200

Environ = Mapping[str, str]


def _required(env: Environ, name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set; the deployment must set it")
    return value


def _int(env: Environ, name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigurationError(f"environment variable {name}={value} must be between {low} and {high}")
    return value


def _flag(env: Environ, name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in {"", "true", "false"}:
        raise ConfigurationError(f"environment variable {name}={raw!r} must be true or false")
    return raw == "true"


def _regions(env: Environ, name: str) -> tuple[str, ...]:
    regions = tuple(r.strip() for r in env.get(name, "").split(",") if r.strip())
    if not regions:
        raise ConfigurationError(
            f"environment variable {name} must list at least one region (comma-separated)"
        )
    return regions


@dataclass(frozen=True)
class ValidateConfig:
    """``Validate input``: defaults for fields the execution input leaves out."""

    report_bucket: str
    default_policy_uri: str
    default_regions: tuple[str, ...]
    default_notify: str
    max_concurrency: int
    member_role_name: str = DEFAULT_MEMBER_ROLE_NAME
    distributed_map_threshold: int = DEFAULT_DISTRIBUTED_MAP_THRESHOLD
    distributed_max_concurrency: int = 50
    tolerated_failure_percentage: int = 10
    security_hub: bool = False
    remediation: bool = False
    # Deployed for an organisation: explicit targets must be accounts of it (the list role could
    # not assume a role elsewhere), so they are checked against ListAccounts at validation.
    organization_deployment: bool = False

    @classmethod
    def from_env(cls, env: Environ | None = None) -> ValidateConfig:
        """Read the step's variables; a missing one is a :class:`ConfigurationError` naming it.

        >>> env = {REPORT_BUCKET: "b", DEFAULT_POLICY_URI: "s3://b/p.json",
        ...        DEFAULT_REGIONS: "us-east-1, eu-west-1"}
        >>> ValidateConfig.from_env(env).default_regions
        ('us-east-1', 'eu-west-1')
        """
        env = os.environ if env is None else env
        notify = env.get(DEFAULT_NOTIFY, "violations").strip() or "violations"
        if notify not in NOTIFY_MODES:
            raise ConfigurationError(
                f"environment variable {DEFAULT_NOTIFY}={notify!r} must be one of {NOTIFY_MODES}"
            )
        return cls(
            report_bucket=_required(env, REPORT_BUCKET),
            default_policy_uri=_required(env, DEFAULT_POLICY_URI),
            default_regions=_regions(env, DEFAULT_REGIONS),
            default_notify=notify,
            max_concurrency=_int(env, MAP_MAX_CONCURRENCY, 4, 0, 1000),
            member_role_name=env.get(MEMBER_ROLE_NAME, "").strip() or DEFAULT_MEMBER_ROLE_NAME,
            distributed_map_threshold=_int(
                env,
                DISTRIBUTED_MAP_THRESHOLD,
                DEFAULT_DISTRIBUTED_MAP_THRESHOLD,
                1,
                MAX_DISTRIBUTED_MAP_THRESHOLD,
            ),
            # Child executions run in parallel up to this; each is one Lambda at a time.
            distributed_max_concurrency=_int(env, DISTRIBUTED_MAX_CONCURRENCY, 50, 1, 10000),
            tolerated_failure_percentage=_int(env, TOLERATED_FAILURE_PERCENTAGE, 10, 0, 100),
            organization_deployment=env.get(ORGANIZATION_DEPLOYMENT, "").strip().lower() == "true",
            security_hub=_flag(env, SECURITY_HUB),
            remediation=_flag(env, REMEDIATION),
        )


_ACCOUNT: Final = re.compile(r"^[0-9]{12}$")


def _scope(env: Environ, default_regions: tuple[str, ...]) -> Scope:
    raw = env.get(EVENT_SCOPE, "").strip() or "{}"
    try:
        document = json.loads(raw)
        targets = document.get("targets") or []
        valid = (
            isinstance(document, dict)
            and isinstance(targets, list)
            and all(
                isinstance(t, dict)
                and _ACCOUNT.match(str(t.get("account_id", "")))
                and isinstance(t.get("regions", []), list)
                for t in targets
            )
        )
    except (ValueError, AttributeError):
        valid = False
    if not valid:
        raise ConfigurationError(
            f"environment variable {EVENT_SCOPE}={raw!r} is not a scheduled input "
            '({}, {"targets": [{"account_id": ..., "regions": [...]}]} or {"organization": true})'
        )
    return Scope.of_input(document, default_regions=default_regions)


@dataclass(frozen=True)
class EventsConfig:
    """The Pipe's enrichment that stores a batch: where batches and the deployed policy are."""

    report_bucket: str
    default_policy_uri: str

    @classmethod
    def from_env(cls, env: Environ | None = None) -> EventsConfig:
        """Read the step's variables; a missing one is a :class:`ConfigurationError` naming it.

        >>> EventsConfig.from_env({REPORT_BUCKET: "b", DEFAULT_POLICY_URI: "s3://b/p.json"}).report_bucket
        'b'
        """
        env = os.environ if env is None else env
        return cls(
            report_bucket=_required(env, REPORT_BUCKET), default_policy_uri=_required(env, DEFAULT_POLICY_URI)
        )


@dataclass(frozen=True)
class EventPlanConfig:
    """``Plan event run``: the deployed policy, what the scheduled scan covers (events elsewhere
    are counted, not checked), and the member role to describe resources with."""

    report_bucket: str
    default_policy_uri: str
    scope: Scope
    member_role_name: str = DEFAULT_MEMBER_ROLE_NAME
    max_concurrency: int = 4
    remediation: bool = False

    @classmethod
    def from_env(cls, env: Environ | None = None) -> EventPlanConfig:
        """Read the step's variables; a missing one is a :class:`ConfigurationError` naming it.

        >>> env = {REPORT_BUCKET: "b", DEFAULT_POLICY_URI: "s3://b/p.json", DEFAULT_REGIONS: "eu-west-1",
        ...        EVENT_SCOPE: '{"organization": true}'}
        >>> EventPlanConfig.from_env(env).scope.organization
        True
        """
        env = os.environ if env is None else env
        return cls(
            report_bucket=_required(env, REPORT_BUCKET),
            default_policy_uri=_required(env, DEFAULT_POLICY_URI),
            scope=_scope(env, _regions(env, DEFAULT_REGIONS)),
            member_role_name=env.get(MEMBER_ROLE_NAME, "").strip() or DEFAULT_MEMBER_ROLE_NAME,
            max_concurrency=_int(env, MAP_MAX_CONCURRENCY, 4, 0, 1000),
            remediation=_flag(env, REMEDIATION),
        )


@dataclass(frozen=True)
class ListConfig:
    """``List EC2 instances``: where inventory pages go, and how much of the time budget to keep."""

    report_bucket: str
    page_size: int
    time_budget_margin_seconds: int
    member_external_id: str | None = None
    tag_created_by: bool = False

    @classmethod
    def from_env(cls, env: Environ | None = None) -> ListConfig:
        """Read the step's variables; the external id is optional (only member roles need it).

        >>> ListConfig.from_env({REPORT_BUCKET: "b", MEMBER_EXTERNAL_ID: "tw-7f3a"}).member_external_id
        'tw-7f3a'
        """
        env = os.environ if env is None else env
        return cls(
            report_bucket=_required(env, REPORT_BUCKET),
            page_size=_int(env, PAGE_SIZE, 1000, 5, 1000),
            time_budget_margin_seconds=_int(env, TIME_BUDGET_MARGIN_SECONDS, 60, 1, 600),
            member_external_id=env.get(MEMBER_EXTERNAL_ID, "").strip() or None,
            tag_created_by=_flag(env, TAG_CREATED_BY),
        )


@dataclass(frozen=True)
class EvaluateConfig:
    report_bucket: str

    @classmethod
    def from_env(cls, env: Environ | None = None) -> EvaluateConfig:
        env = os.environ if env is None else env
        return cls(report_bucket=_required(env, REPORT_BUCKET))


@dataclass(frozen=True)
class PersistConfig:
    report_bucket: str
    environment: str
    metrics_namespace: str

    @classmethod
    def from_env(cls, env: Environ | None = None) -> PersistConfig:
        env = os.environ if env is None else env
        return cls(
            report_bucket=_required(env, REPORT_BUCKET),
            environment=env.get(ENVIRONMENT, "dev").strip() or "dev",
            metrics_namespace=env.get(METRICS_NAMESPACE, DEFAULT_METRICS_NAMESPACE).strip()
            or DEFAULT_METRICS_NAMESPACE,
        )


@dataclass(frozen=True)
class SecurityHubConfig:
    """``Import to Security Hub``: the product to import into, and where the run's report and the
    record of the findings it keeps open are."""

    report_bucket: str
    product_arn: str

    @classmethod
    def from_env(cls, env: Environ | None = None) -> SecurityHubConfig:
        """Read the step's variables; a missing one is a :class:`ConfigurationError` naming it.

        >>> SecurityHubConfig.from_env({REPORT_BUCKET: "b", SECURITY_HUB_PRODUCT_ARN: "arn:p"}).product_arn
        'arn:p'
        """
        env = os.environ if env is None else env
        return cls(
            report_bucket=_required(env, REPORT_BUCKET), product_arn=_required(env, SECURITY_HUB_PRODUCT_ARN)
        )


@dataclass(frozen=True)
class RemediateConfig:
    """``Remediate``: where the run's report and the remediation record are, the role to assume in
    member accounts, and the deployment's ceiling on stops per run."""

    report_bucket: str
    remediation_role_name: str = DEFAULT_REMEDIATION_ROLE_NAME
    member_external_id: str | None = None
    max_stops_per_run: int = DEFAULT_MAX_STOPS_PER_RUN

    @classmethod
    def from_env(cls, env: Environ | None = None) -> RemediateConfig:
        """Read the step's variables; a missing one is a :class:`ConfigurationError` naming it.

        >>> RemediateConfig.from_env({REPORT_BUCKET: "b", MAX_STOPS_PER_RUN: "3"}).max_stops_per_run
        3
        """
        env = os.environ if env is None else env
        return cls(
            report_bucket=_required(env, REPORT_BUCKET),
            remediation_role_name=env.get(REMEDIATION_ROLE_NAME, "").strip() or DEFAULT_REMEDIATION_ROLE_NAME,
            member_external_id=env.get(MEMBER_EXTERNAL_ID, "").strip() or None,
            max_stops_per_run=_int(env, MAX_STOPS_PER_RUN, DEFAULT_MAX_STOPS_PER_RUN, 0, 1000),
        )


@dataclass(frozen=True)
class CatalogConfig:
    """``Register partitions``: the Glue database and the tables the run adds partitions to."""

    database: str
    findings_table: str
    runs_table: str
    actions_table: str = "actions"

    @classmethod
    def from_env(cls, env: Environ | None = None) -> CatalogConfig:
        """Read the step's variables; the table names default to the deployment's.

        >>> CatalogConfig.from_env({GLUE_DATABASE: "tagwarden_dev"}).findings_table
        'findings'
        """
        env = os.environ if env is None else env
        return cls(
            database=_required(env, GLUE_DATABASE),
            findings_table=env.get(FINDINGS_TABLE, "").strip() or "findings",
            runs_table=env.get(RUNS_TABLE, "").strip() or "runs",
            actions_table=env.get(ACTIONS_TABLE, "").strip() or "actions",
        )


@dataclass(frozen=True)
class NotifyConfig:
    topic_arn: str
    report_bucket: str
    environment: str
    console_region: str | None
    max_owner_digests: int = DEFAULT_MAX_OWNER_DIGESTS

    @classmethod
    def from_env(cls, env: Environ | None = None) -> NotifyConfig:
        env = os.environ if env is None else env
        return cls(
            topic_arn=_required(env, TOPIC_ARN),
            report_bucket=_required(env, REPORT_BUCKET),
            environment=env.get(ENVIRONMENT, "dev").strip() or "dev",
            console_region=env.get(CONSOLE_REGION) or env.get("AWS_REGION") or None,
            max_owner_digests=_int(env, MAX_OWNER_DIGESTS, DEFAULT_MAX_OWNER_DIGESTS, 0, 1000),
        )
