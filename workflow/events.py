"""CloudTrail events as EventBridge delivers them: which EC2 resources an event names, when, and
who created them. Pure: the event workflow's collect step and its tests call these.

An EventBridge event for an EC2 API call has ``source`` ``aws.ec2``, ``detail-type`` ``AWS API
Call via CloudTrail``, the ``account`` and ``region`` it happened in, and the CloudTrail record
in ``detail`` (``eventName``, ``eventTime``, ``userIdentity``, ``requestParameters``,
``responseElements``, and ``errorCode`` when the call failed).

>>> event = {"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "account": "111122223333",
...          "region": "eu-west-1", "time": "2026-12-01T10:00:05Z", "detail": {
...          "eventName": "RunInstances", "eventTime": "2026-12-01T10:00:00Z",
...          "userIdentity": {"type": "IAMUser", "userName": "alice",
...                           "arn": "arn:aws:iam::111122223333:user/alice"},
...          "responseElements": {"instancesSet": {"items": [{"instanceId": "i-0abc"}]}}}}
>>> [(r.resource_type, r.resource_id, r.created_by["display"]) for r in resources_named(event)]
[('instance', 'i-0abc', 'alice')]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from workflow.policy.document import MARK_KEY

DETAIL_TYPE: Final = "AWS API Call via CloudTrail"
# The calls the event rule matches: what creates an EC2 resource, and what changes its tags.
CREATING_CALLS: Final = (
    "RunInstances",
    "CreateVolume",
    "CreateSnapshot",
    "CreateImage",
    "CreateNetworkInterface",
)
TAGGING_CALLS: Final = ("CreateTags", "DeleteTags")
EVENT_NAMES: Final = CREATING_CALLS + TAGGING_CALLS
# The events Pipe hands on at most this many queued events at once: one event run each (1,000
# launches in a minute are four runs). CloudTrail records of RunInstances are up to about 20 KB,
# so 250 stay under the 6 MB a synchronous Lambda invocation (the Pipe's enrichment) takes.
PIPE_BATCH_SIZE: Final = 250
# The EventBridge pattern of the central rules and of the member accounts' forwarding rule:
# successful EC2 calls that create a checked resource or change tags (no ``errorCode``).
EVENT_PATTERN: Final[Mapping[str, Any]] = {
    "source": ["aws.ec2"],
    "detail-type": [DETAIL_TYPE],
    "detail": {
        "eventSource": ["ec2.amazonaws.com"],
        "eventName": list(EVENT_NAMES),
        "errorCode": [{"exists": False}],
    },
}
# Resource id prefixes of the types Tagwarden checks; CreateTags on anything else is not ours.
_TYPE_OF_PREFIX: Final = {
    "i": "instance",
    "vol": "volume",
    "snap": "snapshot",
    "ami": "image",
    "eni": "network-interface",
}
# Services that launch instances on someone's behalf, by the name CloudTrail gives them.
_SERVICES: Final = {
    "autoscaling.amazonaws.com": "Auto Scaling",
    "spotfleet.amazonaws.com": "Spot Fleet",
    "ec2fleet.amazonaws.com": "EC2 Fleet",
    "eks.amazonaws.com": "Amazon EKS",
    "eks-nodegroup.amazonaws.com": "Amazon EKS managed node group",
    "elasticmapreduce.amazonaws.com": "Amazon EMR",
    "batch.amazonaws.com": "AWS Batch",
    "cloudformation.amazonaws.com": "AWS CloudFormation",
    "ecs.amazonaws.com": "Amazon ECS",
}
# Service-linked roles that launch instances, when CloudTrail names no ``invokedBy``.
_SERVICE_ROLES: Final = {
    "AWSServiceRoleForAutoScaling": "autoscaling.amazonaws.com",
    "AWSServiceRoleForEC2SpotFleet": "spotfleet.amazonaws.com",
    "AWSServiceRoleForEC2Fleet": "ec2fleet.amazonaws.com",
    "AWSServiceRoleForAmazonEKSNodegroup": "eks-nodegroup.amazonaws.com",
}
SSO_ROLE_PREFIX: Final = "AWSReservedSSO_"
# The tag an event run may put on a resource it was told the creator of (off by default).
CREATED_BY_TAG: Final = "CreatedBy"
MAX_TAG_VALUE: Final = 256  # EC2's limit for a tag value
ASG_TAG: Final = "aws:autoscaling:groupName"


@dataclass(frozen=True)
class NamedResource:
    """One resource an event names, with what the event says about it."""

    account_id: str
    region: str
    resource_type: str
    resource_id: str
    event_name: str
    event_time: datetime
    # For the calls that create the resource: who did (see :func:`creator`); None otherwise.
    created_by: dict[str, str] | None = None
    # DeleteTags: the keys it removed.
    removed_keys: tuple[str, ...] = ()


def _last_segment(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if "/" in arn else arn.rsplit(":", 1)[-1]


def _service(invoked_by: str) -> str:
    return _SERVICES.get(invoked_by, invoked_by)


def creator(identity: Mapping[str, Any] | None, *, tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """Who made a call, from its CloudTrail ``userIdentity``: ``type``, ``principal`` (the ARN or
    id CloudTrail gives) and ``display`` (the name a person reads; for IAM Identity Center roles the
    session name, which is the person). ``tags`` are the instance's: a service launch names the
    Auto Scaling group the instance carries.

    >>> sso = creator({"type": "AssumedRole",
    ...     "arn": "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0a1b/dana@example.com",
    ...     "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "AWSReservedSSO_Admin_0a1b"}}})
    >>> sso["type"], sso["display"]
    ('IdentityCenter', 'dana@example.com')
    >>> creator({"type": "AssumedRole", "invokedBy": "autoscaling.amazonaws.com",
    ...          "arn": "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling"},
    ...         tags={"aws:autoscaling:groupName": "web"})["display"]
    'Auto Scaling (group web)'
    """
    identity = identity or {}
    kind = str(identity.get("type") or "Unknown")
    arn = str(identity.get("arn") or "")
    principal = arn or str(identity.get("principalId") or "")
    issuer = (identity.get("sessionContext") or {}).get("sessionIssuer") or {}
    invoked_by = identity.get("invokedBy")
    role = str(issuer.get("userName") or (arn.split("/")[1] if ":assumed-role/" in arn else ""))
    if kind == "AssumedRole" and not invoked_by and role in _SERVICE_ROLES:
        invoked_by = _SERVICE_ROLES[role]
    if kind == "AWSService" or (invoked_by and kind in ("AssumedRole", "AWSService")):
        service = str(invoked_by or identity.get("principalId") or "an AWS service")
        group = (tags or {}).get(ASG_TAG)
        display = _service(service) + (f" (group {group})" if group else "")
        return {"type": "AWSService", "principal": service, "display": display}
    if kind == "IAMUser":
        return {
            "type": kind,
            "principal": principal,
            "display": str(identity.get("userName") or _last_segment(arn)),
        }
    if kind == "Root":
        account = str(identity.get("accountId") or "")
        return {"type": kind, "principal": principal, "display": f"root user of {account}".strip()}
    if kind == "AssumedRole":
        session = _last_segment(arn) if ":assumed-role/" in arn else ""
        if role.startswith(SSO_ROLE_PREFIX):
            return {"type": "IdentityCenter", "principal": principal, "display": session or role}
        web = (identity.get("sessionContext") or {}).get("webIdFederationData") or {}
        provider = web.get("federatedProvider")
        display = f"{role}/{session}" if session else role
        if provider:
            display += f" (web identity: {_last_segment(str(provider))})"
        return {"type": kind, "principal": principal, "display": display}
    if kind == "FederatedUser":
        # arn:aws:sts::111122223333:federated-user/Bob, issued by an IAM user (GetFederationToken).
        issued = issuer.get("userName")
        display = _last_segment(arn) + (f" (federated by {issued})" if issued else "")
        return {"type": kind, "principal": principal, "display": display}
    if kind == "WebIdentityUser":
        user = str(identity.get("userName") or identity.get("principalId") or "")
        provider = identity.get("identityProvider")
        return {
            "type": kind,
            "principal": principal or user,
            "display": user + (f" via {provider}" if provider else ""),
        }
    if kind == "IdentityCenterUser":
        user = str((identity.get("onBehalfOf") or {}).get("userId") or identity.get("principalId") or "")
        return {"type": kind, "principal": principal or user, "display": user}
    return {"type": kind, "principal": principal, "display": principal or kind}


def _items(container: Any, key: str) -> list[Any]:
    """``{"items": [...]}`` lists, as CloudTrail records EC2 sets (``instancesSet``, ``tagSet``)."""
    found = (container or {}).get(key) if isinstance(container, Mapping) else None
    items = found.get("items") if isinstance(found, Mapping) else None
    return list(items) if isinstance(items, list) else []


def event_time(event: Mapping[str, Any]) -> datetime:
    """When the call happened (``detail.eventTime``, else the event's ``time``), in UTC."""
    detail = event.get("detail") or {}
    text = str(detail.get("eventTime") or event.get("time") or "")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _created_ids(name: str, response: Mapping[str, Any]) -> Iterator[str]:
    if name == "RunInstances":
        for item in _items(response, "instancesSet"):
            if isinstance(item, Mapping) and item.get("instanceId"):
                yield str(item["instanceId"])
        return
    field = {"CreateVolume": "volumeId", "CreateSnapshot": "snapshotId", "CreateImage": "imageId"}.get(name)
    if field and response.get(field):
        yield str(response[field])
    elif name == "CreateNetworkInterface":
        interface = response.get("networkInterface") or {}
        if isinstance(interface, Mapping) and interface.get("networkInterfaceId"):
            yield str(interface["networkInterfaceId"])


def resource_type_of(resource_id: str) -> str | None:
    """The type a resource id belongs to, by its prefix (None: not a type Tagwarden checks).

    >>> resource_type_of("vol-0a1b"), resource_type_of("sg-0a1b")
    ('volume', None)
    """
    return _TYPE_OF_PREFIX.get(resource_id.split("-", 1)[0]) if "-" in resource_id else None


def resources_named(event: Mapping[str, Any]) -> list[NamedResource]:
    """The EC2 resources of the checked types that one event names; nothing for a failed call
    (``errorCode``), another source or detail type, a call the rule does not match, or a tag call
    that only places or removes staged remediation's mark."""
    detail = event.get("detail")
    if (
        event.get("source") != "aws.ec2"
        or event.get("detail-type") != DETAIL_TYPE
        or not isinstance(detail, Mapping)
        or detail.get("errorCode")
    ):
        return []
    name = str(detail.get("eventName") or "")
    if name not in EVENT_NAMES:
        return []
    # The CloudTrail record's own fields first: a bus-to-bus forward leaves the record as CloudTrail
    # wrote it, whatever happens to the envelope.
    account = str(detail.get("recipientAccountId") or event.get("account") or "")
    region = str(detail.get("awsRegion") or event.get("region") or "")
    when = event_time(event)
    request = detail.get("requestParameters") or {}
    if name in CREATING_CALLS:
        who = creator(detail.get("userIdentity"))
        ids = list(_created_ids(name, detail.get("responseElements") or {}))
        return [
            NamedResource(account, region, kind, resource_id, name, when, created_by=who)
            for resource_id in ids
            if (kind := resource_type_of(resource_id))
        ]
    removed = tuple(
        str(tag["key"]) for tag in _items(request, "tagSet") if isinstance(tag, Mapping) and "key" in tag
    )
    if removed and set(removed) == {MARK_KEY}:
        # Staged remediation's own mark or unmark: it changes no verdict (the mark is never
        # evaluated), so it starts no event run; the scheduled scan checks the instance anyway.
        return []
    return [
        NamedResource(
            account,
            region,
            kind,
            str(item["resourceId"]),
            name,
            when,
            removed_keys=removed if name == "DeleteTags" else (),
        )
        for item in _items(request, "resourcesSet")
        if isinstance(item, Mapping)
        and item.get("resourceId")
        and (kind := resource_type_of(str(item["resourceId"])))
    ]


@dataclass
class EventBatch:
    """A batch of events reduced to what the event workflow does with it: per (account, region),
    the resource ids of each type to describe, who created each one, and when the batch is due
    (the latest creation plus the policy's grace period; a tag change is due at once)."""

    targets: dict[tuple[str, str], dict[str, list[str]]]
    created_by: dict[str, dict[str, str]]
    due: datetime | None
    events: int
    ignored: int
    # Resources in (account, region) pairs outside the deployment's scope, not described.
    out_of_scope: dict[tuple[str, str], int] = field(default_factory=dict)

    def target_items(self) -> list[dict[str, Any]]:
        """The targets as work items: ``{"account_id", "region", "resource_ids": {type: [ids]}}``."""
        return [
            {"account_id": account, "region": region, "resource_ids": ids}
            for (account, region), ids in sorted(self.targets.items())
        ]


def batch_of(
    events: list[Mapping[str, Any]],
    *,
    grace_seconds: int,
    in_scope: Callable[[str, str], bool] | None = None,
) -> EventBatch:
    """Reduce a batch of EventBridge events (in any order, repeats included) to one
    :class:`EventBatch`: each resource once, its creator from the call that created it.
    ``in_scope(account, region)`` keeps resources of other (account, region) pairs out of the
    targets (and of the wait): they are only counted.

    >>> launch = {"source": "aws.ec2", "detail-type": DETAIL_TYPE, "account": "1", "region": "r",
    ...           "detail": {"eventName": "RunInstances", "eventTime": "2026-12-01T10:00:00Z",
    ...                      "userIdentity": {"type": "Root", "accountId": "1"},
    ...                      "responseElements": {"instancesSet": {"items": [{"instanceId": "i-1"}]}}}}
    >>> batch = batch_of([launch, launch], grace_seconds=900)
    >>> batch.target_items()
    [{'account_id': '1', 'region': 'r', 'resource_ids': {'instance': ['i-1']}}]
    >>> batch.due.isoformat(), batch.created_by["i-1"]["display"]
    ('2026-12-01T10:15:00+00:00', 'root user of 1')
    """
    targets: dict[tuple[str, str], dict[str, list[str]]] = {}
    seen: set[str] = set()
    created_by: dict[str, dict[str, str]] = {}
    due: datetime | None = None
    ignored = 0
    out_of_scope: dict[tuple[str, str], int] = {}
    for event in events:
        named = resources_named(event) if isinstance(event, Mapping) else []
        if not named:
            ignored += 1
        for resource in named:
            where = (resource.account_id, resource.region)
            if in_scope is not None and not in_scope(*where):
                out_of_scope[where] = out_of_scope.get(where, 0) + 1
                continue
            ready = resource.event_time
            if resource.created_by is not None:
                created_by[resource.resource_id] = resource.created_by
                ready = datetime.fromtimestamp(resource.event_time.timestamp() + grace_seconds, UTC)
            due = ready if due is None or ready > due else due
            if resource.resource_id in seen:
                continue
            seen.add(resource.resource_id)
            ids = targets.setdefault((resource.account_id, resource.region), {})
            ids.setdefault(resource.resource_type, []).append(resource.resource_id)
    return EventBatch(targets, created_by, due, len(events), ignored, out_of_scope)
