"""Findings for AWS Security Hub in the AWS Security Finding Format (ASFF): pure.

One Security Hub finding per resource and policy, with a stable ``Id``
(``tagwarden/<policy>/<account>/<region>/<resource id>``), so every run updates the same finding:
noncompliant resources are ``Compliance.Status`` FAILED, ``Workflow.Status`` NEW and
``RecordState`` ACTIVE; a resource fixed (or gone) since a run reported it is sent again as PASSED
and ARCHIVED, and Security Hub resolves it. Only resources of targets the run scanned are
archived: a target not scanned says nothing about its resources.

>>> finding = {"resource_type": "instance", "resource_id": "i-0a", "account_id": "111122223333",
...            "region": "eu-west-1", "compliant": False, "exempt": False,
...            "tags": {"Name": "web"}, "violations": [{"code": "missing", "key": "Owner",
...            "message": "required tag 'Owner' is missing"}]}
>>> product = "arn:aws:securityhub:eu-west-1:999988887777:product/999988887777/default"
>>> asff = failed_finding(finding, ImportContext(product, "baseline", "r1", "2026-12-04T06:00:00Z"))
>>> asff["Id"], asff["Compliance"], asff["RecordState"]
('tagwarden/baseline/111122223333/eu-west-1/i-0a', {'Status': 'FAILED'}, 'ACTIVE')
>>> asff["Resources"][0]["Id"]
'arn:aws:ec2:eu-west-1:111122223333:instance/i-0a'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

SCHEMA_VERSION: Final = "2018-10-08"
BATCH_SIZE: Final = 100  # BatchImportFindings takes at most 100 findings a call
FINDING_TYPE: Final = "Software and Configuration Checks/AWS Security Best Practices/Resource Tagging"
# ASFF resource types; snapshots and images have none of their own.
_ASFF_TYPE: Final = {
    "instance": "AwsEc2Instance",
    "volume": "AwsEc2Volume",
    "network-interface": "AwsEc2NetworkInterface",
    "snapshot": "Other",
    "image": "Other",
}
# ARN resource types; snapshots and images carry no account in their ARN.
_ARN_TYPE: Final = {
    "instance": ("instance", True),
    "volume": ("volume", True),
    "network-interface": ("network-interface", True),
    "snapshot": ("snapshot", False),
    "image": ("image", False),
}


def finding_id(policy_name: str, account: str, region: str, resource_id: str) -> str:
    return f"tagwarden/{policy_name}/{account}/{region}/{resource_id}"


def resource_arn(
    resource_type: str, resource_id: str, account: str, region: str, partition: str = "aws"
) -> str:
    kind, owned = _ARN_TYPE.get(resource_type, ("instance", True))
    return f"arn:{partition}:ec2:{region}:{account if owned else ''}:{kind}/{resource_id}"


@dataclass(frozen=True)
class ImportContext:
    """What every finding of one import shares: the product (the account's default one), the
    policy, the run and the time stamp."""

    product_arn: str
    policy_name: str
    run_id: str
    now: str

    @property
    def caller_account(self) -> str:
        """The default product takes findings of the calling account, the product's."""
        return self.product_arn.split(":")[4]

    @property
    def partition(self) -> str:
        return self.product_arn.split(":")[1]


def _base(
    reference: Mapping[str, Any],
    context: ImportContext,
) -> dict[str, Any]:
    resource_type = str(reference.get("resource_type") or "instance")
    resource_id = str(reference["resource_id"])
    account, region = str(reference["account_id"]), str(reference["region"])
    resource: dict[str, Any] = {
        "Type": _ASFF_TYPE.get(resource_type, "Other"),
        "Id": resource_arn(resource_type, resource_id, account, region, context.partition),
        "Partition": context.partition,
        "Region": region,
    }
    return {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(context.policy_name, account, region, resource_id),
        "ProductArn": context.product_arn,
        "GeneratorId": f"tagwarden/{context.policy_name}",
        # The default product takes findings of the calling account; the resource's own account
        # is in its ARN and in ProductFields.
        "AwsAccountId": context.caller_account,
        "Types": [FINDING_TYPE],
        "CreatedAt": context.now,
        "UpdatedAt": context.now,
        "Resources": [resource],
        "ProductFields": {
            "tagwarden/resource_account": account,
            "tagwarden/resource_type": resource_type,
            "tagwarden/run_id": context.run_id,
        },
    }


def failed_finding(
    finding: Mapping[str, Any],
    context: ImportContext,
) -> dict[str, Any]:
    """A noncompliant resource: FAILED, NEW, ACTIVE, with its violations as the description."""
    asff = _base(finding, context)
    violations = "; ".join(str(v.get("message")) for v in finding.get("violations") or ())
    tags = {str(k)[:128]: str(v)[:256] for k, v in list((finding.get("tags") or {}).items())[:50]}
    if tags:
        asff["Resources"][0]["Tags"] = tags
    asff.update(
        Severity={"Label": "LOW"},
        Title=f"EC2 {finding.get('resource_type') or 'instance'} {finding['resource_id']} breaks tag policy "
        f"{context.policy_name}"[:256],
        Description=(violations or "noncompliant")[:1024],
        Compliance={"Status": "FAILED"},
        Workflow={"Status": "NEW"},
        RecordState="ACTIVE",
    )
    return asff


def resolved_finding(
    reference: Mapping[str, Any],
    context: ImportContext,
) -> dict[str, Any]:
    """A resource a run reported before and now finds compliant (or no longer finds): PASSED and
    ARCHIVED, so Security Hub resolves the finding."""
    asff = _base(reference, context)
    asff.update(
        Severity={"Label": "INFORMATIONAL"},
        Title=f"EC2 {reference.get('resource_type') or 'instance'} {reference['resource_id']} meets tag "
        f"policy {context.policy_name} again"[:256],
        Description="Compliant in the latest scan, or no longer present.",
        Compliance={"Status": "PASSED"},
        RecordState="ARCHIVED",
    )
    return asff


def reference_of(finding: Mapping[str, Any]) -> dict[str, str]:
    """What a later run needs to resolve the finding: the resource, its type and target."""
    return {
        "resource_id": str(finding["resource_id"]),
        "resource_type": str(finding.get("resource_type") or "instance"),
        "account_id": str(finding["account_id"]),
        "region": str(finding["region"]),
    }
