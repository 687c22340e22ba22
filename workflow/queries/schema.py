"""The tables the named queries read: ``findings``, ``runs`` and ``actions``, column by column, in
Hive types.

One definition for every consumer: the CDK app creates the Glue tables from it, a local engine
can load run folders into DuckDB with the same names and types. Tags are one
``map<string,string>`` column, never a column per tag key. Every table is partitioned by ``dt``
(UTC date, ``YYYY-MM-DD``) and ``run`` (the run id), in that order.

>>> [name for name, _ in PARTITION_KEYS]
['dt', 'run']
>>> dict(FINDINGS_COLUMNS)["tags"]
'map<string,string>'
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACTIONS_COLUMNS",
    "COLUMN_COMMENTS",
    "FINDINGS_COLUMNS",
    "PARTITION_KEYS",
    "RUNS_COLUMNS",
    "VIOLATION",
]

VIOLATION: Final = (
    "struct<code:string,key:string,value:string,message:string,parent_id:string,expected:string>"
)
_COUNTS: Final = "struct<compliant:int,noncompliant:int>"

#: ``findings``: one row per evaluated instance per run (JSON Lines, gzip), in column order.
FINDINGS_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("instance_id", "string"),
    ("region", "string"),
    ("account_id", "string"),
    ("state", "string"),
    ("launch_time", "string"),
    ("instance_type", "string"),
    ("name", "string"),
    ("owner", "string"),
    ("tags", "map<string,string>"),
    ("compliant", "boolean"),
    ("exempt", "boolean"),
    ("in_grace_period", "boolean"),
    ("violations", f"array<{VIOLATION}>"),
    ("run_id", "string"),
    ("evaluated_at", "string"),
    ("policy_name", "string"),
    # The EC2 family beyond instances; appended, so older partitions read them as null.
    ("resource_type", "string"),
    ("resource_id", "string"),
    ("created_at", "string"),
    ("size_gib", "int"),
    ("volume_type", "string"),
    ("attached_to", "string"),
    ("volume_id", "string"),
    ("interface_type", "string"),
    # Event runs: their source, and who created the resource (from the CloudTrail event).
    ("source", "string"),
    ("created_by", "struct<type:string,principal:string,display:string>"),
    # The exemption that exempts the resource, or that named it and has expired.
    ("exemption", "struct<id:string,expires:string,expired:boolean>"),
)

#: ``runs``: one row per run (the run summary, one JSON object per file), in column order.
RUNS_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("run_id", "string"),
    ("evaluated_at", "string"),
    ("status", "string"),
    ("partial", "boolean"),
    ("policy", "struct<name:string,sha256:string>"),
    (
        "totals",
        "struct<total:int,compliant:int,noncompliant:int,exempt:int,in_grace_period:int,"
        "compliance_percentage:double>",
    ),
    ("by_rule", "map<string,int>"),
    ("by_code", "map<string,int>"),
    ("by_region", f"map<string,{_COUNTS}>"),
    ("by_account", f"map<string,{_COUNTS}>"),
    ("noncompliant_by_owner", "map<string,int>"),
    ("noncompliant_instance_ids", "array<string>"),
    ("by_resource_type", f"map<string,{_COUNTS}>"),
    ("untagged_ebs_gib", "struct<volumes:bigint,snapshots:bigint,total:bigint>"),
    ("source", "string"),
    (
        "drift",
        "struct<previous_run_id:string,newly_noncompliant:array<string>,newly_compliant:array<string>>",
    ),
    ("target_counts", "struct<total:int,scanned:int,error:int,accounts:int>"),
    ("targets", "array<struct<account_id:string,region:string,status:string,reason:string>>"),
    ("incomplete", "boolean"),
    (
        "coverage",
        "struct<complete:boolean,nothing_evaluated:boolean,"
        "targets:struct<asked:int,scanned:int,not_scanned:int,scanned_empty:int>,"
        "regions_scanned:array<string>,regions_not_scanned:array<string>,"
        "instances:struct<listed:int,in_scope:int,evaluated:int,out_of_scope:map<string,int>,"
        "duplicates_dropped:int>,"
        "resources:map<string,struct<listed:int,in_scope:int,evaluated:int,out_of_scope:map<string,int>,"
        "duplicates_dropped:int>>>",
    ),
    (
        "remediation",
        "struct<dry_run:boolean,marked:int,stopped:int,unmarked:int,stopped_ids:array<string>,"
        "skipped:map<string,int>,failed:int,waiting:int,ineligible:map<string,int>,marked_now:int,"
        "max_stops_per_run:int>",
    ),
)

#: ``actions``: one row per staged remediation action per run (JSON Lines, gzip): what was done, or
#: in a dry run what would have been, and what was skipped or failed, with why.
ACTIONS_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("run_id", "string"),
    ("policy_name", "string"),
    ("at", "string"),
    ("account_id", "string"),
    ("region", "string"),
    ("resource_id", "string"),
    ("owner", "string"),
    ("action", "string"),
    ("outcome", "string"),
    ("dry_run", "boolean"),
    ("stop_on", "string"),
    ("reason", "string"),
    ("error", "string"),
)

PARTITION_KEYS: Final[tuple[tuple[str, str], ...]] = (("dt", "string"), ("run", "string"))

#: Column comments for the Glue catalog (what Athena shows next to each column).
COLUMN_COMMENTS: Final[dict[str, str]] = {
    "remediation": "staged remediation: marked, stopped, unmarked (dry run: would have been), skipped by "
    "reason, failed, waiting to be marked, ineligible by reason, marked after the run, the stop limit",
    "at": "when the action was taken, ISO 8601",
    "action": "mark, stop or unmark",
    "outcome": "done, dry_run (what would have been done), skipped or failed",
    "dry_run": "true when the policy's remediation is a dry run",
    "stop_on": "the stop date the mark carries (tagwarden:marked-for-stop)",
    "reason": "why the action was planned, or why it was skipped",
    "error": "why a failed action failed",
    "target_counts": "(account, region) targets of the run: total, scanned, error, accounts",
    "targets": "targets not scanned (status error, with the reason), then up to 1,000 scanned ones",
    "instance_id": "EC2 instance id",
    "region": "AWS region of the instance",
    "account_id": "AWS account that owns the instance",
    "state": "instance state when listed (running, stopped, ...)",
    "launch_time": "launch time, ISO 8601",
    "instance_type": "instance type",
    "name": "value of the Name tag",
    "owner": "value of the policy's owner tag",
    "tags": "every tag of the instance, key to value",
    "compliant": "true when the instance passes the policy (exempt instances do)",
    "exempt": "true when an exemption of the policy matches",
    "in_grace_period": "true when launched too recently to be judged",
    "violations": "what is wrong: code, tag key, value, message",
    "run_id": "the run (Step Functions execution name)",
    "evaluated_at": "when the run evaluated the instances, ISO 8601",
    "policy_name": "name of the tag policy",
    "status": "complete when every region was evaluated",
    "partial": "true when some (account, region) targets were not scanned",
    "incomplete": "true for a partial scan or when nothing was evaluated: not a verdict to trust as green",
    "coverage": "what the run covered: targets and regions scanned or not, instances listed, in scope, "
    "out of scope by state, duplicates dropped",
    "policy": "the policy's name and SHA-256",
    "totals": "instance counts and compliance percentage (null when nothing was evaluated)",
    "by_rule": "violations per tag key and code (key:code)",
    "by_code": "violations per violation code",
    "by_region": "compliant and noncompliant instances per region",
    "by_account": "compliant and noncompliant instances per account",
    "noncompliant_by_owner": "noncompliant instances per owner",
    "noncompliant_instance_ids": "every noncompliant instance id",
    "drift": "change since the previous run",
    "resource_type": "instance, volume, snapshot, image or network-interface (null in runs before types)",
    "resource_id": "the resource's id (i-, vol-, snap-, ami-, eni-)",
    "created_at": "volume creation or newest attachment, snapshot or image creation, interface attachment",
    "size_gib": "size of a volume or of a snapshot's volume, GiB",
    "volume_type": "EBS volume type (gp3, io2, ...)",
    "attached_to": "the instance(s) a volume or interface is attached to, comma-separated",
    "volume_id": "the volume a snapshot was made from",
    "interface_type": "network interface type (interface, nat_gateway, lambda, ...)",
    "source": "event for a run of the event workflow; null for scheduled and manual runs",
    "created_by": "who created the resource, from its CloudTrail event (event runs): type, principal, name",
    "exemption": "the policy's exemption that exempts the resource (expired false), or that expired (true)",
    "by_resource_type": "compliant and noncompliant resources per resource type",
    "untagged_ebs_gib": "GiB of noncompliant EBS volumes and snapshots: spend the tags cannot allocate",
    "dt": "UTC date of the run, YYYY-MM-DD",
    "run": "run id",
}
