"""From an API call to the IAM authorization requests AWS makes for it.

The action comes from AWS's Service Authorization Reference (``sar``): by default the operation's
own name, which must exist there; ``ACTION_OF`` lists the operations whose action has another name.
The resources are built for each resource type the SAR says the action authorizes on (all of the
required ones, e.g. Glue's catalog, database and table), and each must match that type's ARN format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.iam import sar

# botocore service name -> IAM service prefix, where they differ.
IAM_PREFIX: Mapping[str, str] = {"stepfunctions": "states"}

# Operations whose IAM action is not their own name (Service Authorization Reference, "Actions").
ACTION_OF: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "ListObjects"): ("s3:ListBucket",),
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    ("s3", "ListParts"): ("s3:ListMultipartUploadParts",),
    ("s3", "CopyObject"): ("s3:PutObject",),
    ("lambda", "Invoke"): ("lambda:InvokeFunction",),
    ("stepfunctions", "StartSyncExecution"): ("states:StartSyncExecution",),
}


class UnmappedCall(ValueError):
    """A call this module cannot turn into IAM requests: map it before the check can pass."""


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


def _queue_arn(url: str, region: str) -> str:
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def _function_arn(name: str, qualifier: str | None, region: str, account: str) -> str:
    if name.startswith("arn:"):
        arn = name
    elif name.count(":") >= 1 and not name.startswith("arn:"):
        # "account:function:name" or "name:qualifier"
        parts = name.split(":")
        arn = (
            f"arn:aws:lambda:{region}:{parts[0]}:function:{parts[2]}"
            if len(parts) >= 3
            else (f"arn:aws:lambda:{region}:{account}:function:{parts[0]}:{parts[1]}")
        )
    else:
        arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier and arn.count(":") == 6 else arn


# EC2 resource id prefix -> its ARN's resource type; snapshots and images carry no account.
_EC2_TYPES: Mapping[str, tuple[str, bool]] = {
    "i": ("instance", True),
    "vol": ("volume", True),
    "eni": ("network-interface", True),
    "snap": ("snapshot", False),
    "ami": ("image", False),
}


def _ec2_arn(resource_id: str, region: str, account: str) -> str:
    kind, owned = _EC2_TYPES[resource_id.split("-", 1)[0]]
    return f"arn:aws:ec2:{region}:{account if owned else ''}:{kind}/{resource_id}"


def resources_for(
    action: str, service: str, params: Mapping[str, Any], region: str, account: str
) -> list[str]:
    """The ARN(s) ``action`` is authorized on for this call (``["*"]`` when it has no resource type)."""
    types = sar.resource_types(action)
    if not types:
        return ["*"]
    names = {t.name for t in types}
    if service == "s3":
        bucket = params.get("Bucket")
        if "object" in names and "Key" in params:
            return [f"arn:aws:s3:::{bucket}/{params['Key']}"]
        if "bucket" in names:
            return [f"arn:aws:s3:::{bucket}"]
    if service == "ec2" and action in ("ec2:CreateTags", "ec2:DeleteTags"):
        return [_ec2_arn(str(r), region, account) for r in params.get("Resources", [])]
    if service == "ec2" and "InstanceIds" in params and "instance" in names:
        return [_ec2_arn(str(i), region, account) for i in params["InstanceIds"]]
    if service == "ec2" and "InstanceId" in params and "instance" in names:
        return [_ec2_arn(str(params["InstanceId"]), region, account)]
    if service == "securityhub" and action == "securityhub:BatchImportFindings":
        return sorted({str(f["ProductArn"]) for f in params.get("Findings", [])})
    if service == "sns" and "TopicArn" in params:
        return [str(params["TopicArn"])]
    if service == "sqs" and "QueueUrl" in params:
        return [_queue_arn(str(params["QueueUrl"]), region)]
    if service == "lambda" and "FunctionName" in params:
        return [_function_arn(str(params["FunctionName"]), params.get("Qualifier"), region, account)]
    if service == "sts" and "RoleArn" in params:
        return [str(params["RoleArn"])]
    if service == "stepfunctions":
        for key in ("stateMachineArn", "executionArn"):
            if key in params:
                return [str(params[key])]
    if service == "glue" and "crawler" in names and "Name" in params and "DatabaseName" not in params:
        return [f"arn:aws:glue:{region}:{account}:crawler/{params['Name']}"]
    if service == "glue":
        database = params.get("DatabaseName")
        table = params.get("TableName") or params.get("Name")
        arns = []
        for resource_type in types:
            if not resource_type.required:
                continue
            if resource_type.name == "rootcatalog":
                arns.append(f"arn:aws:glue:{region}:{account}:catalog")
            elif resource_type.name == "database" and database:
                arns.append(f"arn:aws:glue:{region}:{account}:database/{database}")
            elif resource_type.name == "table" and database and table:
                arns.append(f"arn:aws:glue:{region}:{account}:table/{database}/{table}")
        if arns:
            return arns
    if not any(t.required for t in types):
        return ["*"]
    raise UnmappedCall(f"{action}: no resource ARN for {service} parameters {sorted(params)}")


def actions_for(service: str, operation: str) -> tuple[str, ...]:
    actions = ACTION_OF.get((service, operation))
    if actions is None:
        actions = (f"{IAM_PREFIX.get(service, service)}:{operation}",)
    for action in actions:
        if not sar.exists(action):
            raise UnmappedCall(
                f"{service}.{operation}: {action} is not an action of the Service Authorization Reference; "
                "add the operation to tests/iam/requests.py ACTION_OF"
            )
    return actions


def requests_for(
    service: str,
    operation: str,
    params: Mapping[str, Any],
    region: str,
    account: str,
    resource_tags: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Request]:
    """Every IAM request one call makes, with the request context its parameters supply.

    ``resource_tags`` (resource id -> its tags when the call was made, as the recorder saw them)
    adds each EC2 resource's ``ec2:ResourceTag/<key>`` and ``aws:ResourceTag/<key>`` to the
    request on that resource; a resource not in it has none in the context (unknown).
    """
    found = []
    for action in actions_for(service, operation):
        context: dict[str, Any] = {"aws:SecureTransport": True, "aws:RequestedRegion": region}
        if service == "s3":
            context.update(
                {
                    "s3:TlsVersion": 1.3,
                    "s3:signatureversion": "AWS4-HMAC-SHA256",
                    "s3:authType": "REST-HEADER",
                }
            )
            if action == "s3:ListBucket":
                for param, key in (
                    ("Prefix", "s3:prefix"),
                    ("Delimiter", "s3:delimiter"),
                    ("MaxKeys", "s3:max-keys"),
                ):
                    if param in params:
                        context[key] = params[param]
        if service == "ec2" and operation in ("CreateTags", "DeleteTags"):
            named = params.get("Tags", [])
            context["aws:TagKeys"] = sorted({str(t["Key"]) for t in named})
            # DeleteTags may name a key alone (whatever its value): no request tag value then.
            context.update({f"aws:RequestTag/{t['Key']}": str(t["Value"]) for t in named if "Value" in t})
        if service == "sts" and operation == "AssumeRole":
            context["sts:RoleSessionName"] = params.get("RoleSessionName")
            if "ExternalId" in params:
                context["sts:ExternalId"] = params["ExternalId"]
        for resource in resources_for(action, service, params, region, account):
            if resource != "*" and sar.resource_type_of(action, resource) is None:
                raise UnmappedCall(f"{action}: {resource} matches no resource type of the action in the SAR")
            found.append(
                Request(action, resource, {**context, **_resource_tag_context(resource, resource_tags)})
            )
    return found


def _resource_tag_context(
    resource: str, resource_tags: Mapping[str, Mapping[str, str]] | None
) -> dict[str, str]:
    """The EC2 resource's own tags, as ``ec2:ResourceTag/<key>`` and ``aws:ResourceTag/<key>``."""
    if not resource_tags or not resource.startswith("arn:aws:ec2:"):
        return {}
    tags = resource_tags.get(resource.rsplit("/", 1)[-1])
    if tags is None:
        return {}
    context = {f"ec2:ResourceTag/{k}": v for k, v in tags.items()}
    context.update({f"aws:ResourceTag/{k}": v for k, v in tags.items()})
    return context
