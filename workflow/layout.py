"""Where a run's objects live in the report bucket. One run id (the execution name), one set of
keys: a retried or redriven step overwrites the same objects instead of adding new ones.
"""

from __future__ import annotations

from typing import Final

FINDINGS_PREFIX: Final = "reports/findings/"
# What staged remediation did (or, in a dry run, would do): the actions table.
ACTIONS_PREFIX: Final = "reports/actions/"
RUNS_PREFIX: Final = "reports/runs/"
STAGING_PREFIX: Final = "staging/"
LATEST_RUN_KEY: Final = "state/latest-run.json"
POLICY_RUNS_PREFIX: Final = "state/policy-runs/"
DEFAULT_POLICY_KEY: Final = "policies/default.json"
SELF_ACCOUNT: Final = "self"


def policy_key(run_id: str) -> str:
    """The validated policy of a run.

    >>> policy_key("nightly-2026-11-28")
    'staging/nightly-2026-11-28/policy.json'
    """
    return f"{STAGING_PREFIX}{run_id}/policy.json"


def event_reported_key(policy_sha256: str) -> str:
    """What event runs of one policy reported noncompliant since its last scheduled run.

    >>> event_reported_key("0b91")
    'state/event-reported/0b91.json'
    """
    return f"state/event-reported/{policy_sha256}.json"


def securityhub_state_key(policy_name: str) -> str:
    """The Security Hub findings one policy's runs keep open (to resolve them once fixed).

    >>> securityhub_state_key("baseline")
    'state/securityhub/baseline.json'
    """
    return f"state/securityhub/{policy_name}.json"


def remediation_state_key(policy_name: str) -> str:
    """What one policy's staged remediation remembers: since when each instance is noncompliant
    and the stop date of each mark it placed.

    >>> remediation_state_key("baseline")
    'state/remediation/baseline.json'
    """
    return f"state/remediation/{policy_name}.json"


def remediation_notices_key(run_id: str) -> str:
    """The stop date of each instance a run left marked, for the owners' digests."""
    return f"{STAGING_PREFIX}{run_id}/remediation/notices.json"


def actions_key(dt: str, run_id: str) -> str:
    """The run's remediation actions: one object in the run's partition of the actions table.

    >>> actions_key("2026-12-01", "r1")
    'reports/actions/dt=2026-12-01/run=r1/actions.jsonl.gz'
    """
    return f"{partition_prefix(ACTIONS_PREFIX, dt, run_id)}actions.jsonl.gz"


def policy_runs_key(policy_sha256: str) -> str:
    """The index of one policy's finished runs and the targets each scanned: drift's baselines.

    >>> policy_runs_key("0b91")
    'state/policy-runs/0b91.json'
    """
    return f"{POLICY_RUNS_PREFIX}{policy_sha256}.json"


def inventory_page_key(
    run_id: str, account: str, region: str, page: int, resource_type: str = "instance"
) -> str:
    """Where the List step stages one page of one resource type (instances keep the plain name).

    >>> inventory_page_key("r", "self", "eu-west-1", 2, "volume")
    'staging/r/inventory/self/eu-west-1/volume-00002.json.gz'
    """
    name = "page" if resource_type == "instance" else resource_type
    return f"{STAGING_PREFIX}{run_id}/inventory/{account}/{region}/{name}-{page:05d}.json.gz"


def staged_findings_key(run_id: str, account: str, region: str) -> str:
    return f"{staged_findings_prefix(run_id)}{account}/{region}.jsonl.gz"


def staged_findings_prefix(run_id: str) -> str:
    return f"{STAGING_PREFIX}{run_id}/findings/"


def staged_summary_fields_key(run_id: str, account: str, region: str) -> str:
    """What Persist report folds into the summary for one target (:func:`workflow.report.summary_fields`
    of each staged finding, in the same order), written before the findings.

    >>> staged_summary_fields_key("r1", "self", "eu-west-1")
    'staging/r1/summary-fields/self/eu-west-1.jsonl.gz'
    """
    return f"{staged_summary_fields_prefix(run_id)}{account}/{region}.jsonl.gz"


def staged_summary_fields_prefix(run_id: str) -> str:
    return f"{STAGING_PREFIX}{run_id}/summary-fields/"


def targets_manifest_key(run_id: str) -> str:
    """The run's (account, region) work items: a JSON array, the Distributed Map's ItemReader input.

    >>> targets_manifest_key("r1")
    'staging/r1/targets.json'
    """
    return f"{STAGING_PREFIX}{run_id}/targets.json"


def event_batch_key(batch_id: str) -> str:
    """A batch of queued events as the Pipe handed it on (the event run's claim check).

    >>> event_batch_key("20261201T100000Z-0a1b2c")
    'staging/event-batches/20261201T100000Z-0a1b2c.json'
    """
    return f"{STAGING_PREFIX}event-batches/{batch_id}.json"


def creators_key(run_id: str) -> str:
    """Who created each resource an event run checks, by resource id (from the events)."""
    return f"{STAGING_PREFIX}{run_id}/creators.json"


def target_error_key(run_id: str, account: str, region: str) -> str:
    """Why one target was not scanned (its role could not be assumed, or access was denied).

    >>> target_error_key("r1", "111122223333", "eu-west-1")
    'staging/r1/target-errors/111122223333/eu-west-1.json'
    """
    return f"{target_errors_prefix(run_id)}{account}/{region}.json"


def target_errors_prefix(run_id: str) -> str:
    return f"{STAGING_PREFIX}{run_id}/target-errors/"


def map_results_prefix(run_id: str) -> str:
    """Where the Distributed Map's ResultWriter puts its manifest and result files."""
    return f"{STAGING_PREFIX}{run_id}/map-results/"


def baseline_key(run_id: str) -> str:
    """The run its drift compares with, fixed at its first Persist report attempt."""
    return f"{STAGING_PREFIX}{run_id}/report/baseline.json"


def staged_summary_key(run_id: str) -> str:
    """Where a dry run's summary goes: out of the crawled ``reports/`` tree."""
    return f"{STAGING_PREFIX}{run_id}/report/summary.json"


def owner_counts_key(run_id: str) -> str:
    """Noncompliant resources per owner (as digests name owners), counted by Persist report as it
    builds the summary, so Notify reads the findings once, not twice.

    >>> owner_counts_key("r1")
    'staging/r1/report/owners.json'
    """
    return f"{STAGING_PREFIX}{run_id}/report/owners.json"


def staged_report_findings_key(run_id: str) -> str:
    """Where a dry run's findings go: out of the crawled ``reports/`` tree."""
    return f"{STAGING_PREFIX}{run_id}/report/findings.jsonl.gz"


def findings_key(dt: str, run_id: str) -> str:
    """The run's findings: one object, so a report is whole or absent.

    >>> findings_key("2026-11-28", "r1")
    'reports/findings/dt=2026-11-28/run=r1/findings.jsonl.gz'
    """
    return f"{partition_prefix(FINDINGS_PREFIX, dt, run_id)}findings.jsonl.gz"


def summary_key(dt: str, run_id: str) -> str:
    return f"{partition_prefix(RUNS_PREFIX, dt, run_id)}summary.json"


def partition_prefix(table_prefix: str, dt: str, run_id: str) -> str:
    """The folder of one run's partition of a table (what Glue's partition Location names).

    >>> partition_prefix(FINDINGS_PREFIX, "2026-11-28", "r1")
    'reports/findings/dt=2026-11-28/run=r1/'
    """
    return f"{table_prefix}dt={dt}/run={run_id}/"


def parse_s3_uri(uri: str) -> tuple[str, str] | None:
    """Bucket and key of an ``s3://`` URI, or None.

    >>> parse_s3_uri("s3://bucket/policies/a.json")
    ('bucket', 'policies/a.json')
    """
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri[5:].partition("/")
    return (bucket, key) if bucket and key else None
