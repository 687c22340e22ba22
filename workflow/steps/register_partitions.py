"""Step "Register partitions": add the run's ``dt``/``run`` partitions to the Glue tables.

Why not a crawler: the tables' schema is fixed by the deployment (``workflow/queries/schema.py``),
so the only thing a crawl would find is the new partition, and every crawl bills a minimum of about
ten minutes of DPU time (docs/cost.md: 97 to 99% of a run's cost). ``BatchCreatePartition`` does
the same in two catalog requests, and the partition exists as soon as the step ends. A partition
that already exists (a retried step, a repeated run) is fine. Never fails a persisted run: the
state machine catches any error and says so in the notification.
"""

from __future__ import annotations

from typing import Any, Final

from workflow import layout
from workflow.aws import aws_call
from workflow.config import CatalogConfig
from workflow.errors import PermanentError, Throttled

# StorageDescriptor fields a PartitionInput accepts; GetTable returns more (e.g. read-only ones).
_DESCRIPTOR_FIELDS: Final = (
    "Columns",
    "InputFormat",
    "OutputFormat",
    "Compressed",
    "NumberOfBuckets",
    "SerdeInfo",
    "BucketColumns",
    "SortColumns",
    "Parameters",
    "StoredAsSubDirectories",
)


def partition_input(table: dict[str, Any], location: str, values: list[str]) -> dict[str, Any]:
    """A PartitionInput that reads ``location`` with the table's own columns and SerDe.

    >>> table = {"StorageDescriptor": {"Columns": [{"Name": "a", "Type": "string"}],
    ...          "Location": "s3://b/reports/findings/", "CreateTime": "x"}}
    >>> partition_input(table, "s3://b/reports/findings/dt=d/run=r/", ["d", "r"])["StorageDescriptor"]
    {'Columns': [{'Name': 'a', 'Type': 'string'}], 'Location': 's3://b/reports/findings/dt=d/run=r/'}
    """
    descriptor = table.get("StorageDescriptor", {})
    kept = {k: descriptor[k] for k in _DESCRIPTOR_FIELDS if k in descriptor}
    return {"Values": values, "StorageDescriptor": {**kept, "Location": location}}


def register_partitions(event: dict[str, Any], config: CatalogConfig, *, glue: Any) -> dict[str, Any]:
    """Register the run's partition in the findings and runs tables (and actions, when it remediated).

    Returns ``{"registered": [tables added], "existing": [tables that had it already]}``.
    """
    run = event["run"]
    bucket, dt, run_id = run["bucket"], run["dt"], run["run_id"]
    registered: list[str] = []
    existing: list[str] = []
    tables = [(config.findings_table, layout.FINDINGS_PREFIX), (config.runs_table, layout.RUNS_PREFIX)]
    if run.get("remediation") is True:  # the run remediated: its actions have a partition too
        tables.append((config.actions_table, layout.ACTIONS_PREFIX))
    for table_name, prefix in tables:
        where = f"{config.database}.{table_name}"
        with aws_call(f"glue:GetTable {where}"):
            table = glue.get_table(DatabaseName=config.database, Name=table_name)["Table"]
        location = f"s3://{bucket}/{layout.partition_prefix(prefix, dt, run_id)}"
        with aws_call(f"glue:BatchCreatePartition {where}"):
            response = glue.batch_create_partition(
                DatabaseName=config.database,
                TableName=table_name,
                PartitionInputList=[partition_input(table, location, [dt, run_id])],
            )
        errors = response.get("Errors", [])
        codes = {e.get("ErrorDetail", {}).get("ErrorCode") for e in errors}
        if not errors:
            registered.append(table_name)
        elif codes == {"AlreadyExistsException"}:
            existing.append(table_name)
        else:
            detail = errors[0].get("ErrorDetail", {})
            code, text = detail.get("ErrorCode"), detail.get("ErrorMessage")
            message = f"glue:BatchCreatePartition {where}: {code}: {text}"
            if codes & {"ThrottlingException", "InternalServiceException", "OperationTimeoutException"}:
                raise Throttled(message)
            raise PermanentError(message)
    return {"registered": registered, "existing": existing}
