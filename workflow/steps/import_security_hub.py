"""Step "Import to Security Hub" (optional, ``security_hub`` setting): the run's noncompliant
resources as Security Hub findings (FAILED, NEW, ACTIVE), and the ones an earlier run reported
that this run finds fixed or gone as PASSED and ARCHIVED, in batches of 100.

Which findings are open is kept in ``state/securityhub/<policy name>.json`` (the step may call
``securityhub:BatchImportFindings`` and nothing else of Security Hub), and only targets this run
scanned are resolved. Findings Security Hub refuses are retried twice; what is still refused is
left open in the record (a later run sends it again) and fails the step with
:class:`ImportIncomplete`, which the state machine records without failing the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from workflow import layout
from workflow.aws import aws_call
from workflow.config import SecurityHubConfig
from workflow.errors import ImportIncomplete
from workflow.report import target_key
from workflow.securityhub import BATCH_SIZE, ImportContext, failed_finding, reference_of, resolved_finding
from workflow.storage import get_json, get_json_if_exists, iter_jsonl_gz, put_json

RETRIES: Final = 2


def _import(securityhub: Any, findings: list[dict[str, Any]], sleep: Callable[[float], None]) -> set[str]:
    """Send one batch; the ids Security Hub still refuses after :data:`RETRIES` retries."""
    pending = findings
    for attempt in range(RETRIES + 1):
        with aws_call("Security Hub BatchImportFindings"):
            answer = securityhub.batch_import_findings(Findings=pending)
        refused = {f["Id"] for f in answer.get("FailedFindings", [])}
        if not refused:
            return set()
        pending = [f for f in pending if f["Id"] in refused]
        if attempt < RETRIES:
            sleep(0.5 * 2**attempt)
    return {f["Id"] for f in pending}


def import_security_hub(
    event: dict[str, Any],
    config: SecurityHubConfig,
    *,
    securityhub: Any,
    s3: Any,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Import the run's findings; returns ``{"imported", "resolved", "refused"}`` counts."""
    run, report = event["run"], event["report"]
    bucket = run["bucket"]
    policy = run["policy_name"]
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    context = ImportContext(config.product_arn, policy, run["run_id"], stamp)
    summary = get_json(s3, bucket, report["summary_key"])
    scanned = set(summary.get("scanned_targets") or {})
    state_key = layout.securityhub_state_key(policy)
    # Looked for first (a listing of its key): the role may list only this prefix, and S3 answers
    # a GetObject of a missing key with 403, not 404, to a caller who may not list it.
    previously_open: dict[str, dict[str, str]] = (get_json_if_exists(s3, bucket, state_key) or {}).get(
        "open"
    ) or {}

    now_open: dict[str, dict[str, str]] = {}
    refused: set[str] = set()
    batch: list[dict[str, Any]] = []
    imported = 0

    def flush() -> None:
        nonlocal batch
        if batch:
            refused.update(_import(securityhub, batch, sleep))
            batch = []

    for finding in iter_jsonl_gz(s3, bucket, report["findings_key"]):
        if finding.get("compliant") or finding.get("exempt"):
            continue
        asff = failed_finding(finding, context)
        now_open[asff["Id"]] = reference_of(finding)
        batch.append(asff)
        imported += 1
        if len(batch) == BATCH_SIZE:
            flush()
    resolved = 0
    for finding_id, reference in previously_open.items():
        if finding_id in now_open:
            continue
        if target_key(reference["account_id"], reference["region"]) not in scanned:
            now_open[finding_id] = reference  # not scanned this time: still open, as far as we know
            continue
        batch.append(resolved_finding(reference, context))
        resolved += 1
        if len(batch) == BATCH_SIZE:
            flush()
    flush()
    # A refused resolution stays open (sent again next run); a refused new finding too.
    for finding_id in refused:
        if finding_id in previously_open:
            now_open.setdefault(finding_id, previously_open[finding_id])
    put_json(s3, bucket, state_key, {"policy_name": policy, "run_id": run["run_id"], "open": now_open})
    if refused:
        raise ImportIncomplete(
            f"Security Hub refused {len(refused)} of {imported + resolved} findings after {RETRIES} retries "
            f"(for example {sorted(refused)[0]}); the others are imported, the next run sends them again"
        )
    return {"imported": imported, "resolved": resolved, "refused": 0}
