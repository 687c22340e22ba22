"""The EC2 resource family a policy can cover, described once: how each type is listed, where its
id, tags, zone, owner, time and parents are, and what of it a finding keeps.

Pure data and small pure functions; the List step, the evaluator, the dump reader and the local
endpoint all read this table, so a type's shape is written down in one place.

>>> RESOURCE_TYPES["volume"].operation, RESOURCE_TYPES["network-interface"].tags_field
('DescribeVolumes', 'TagSet')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

INSTANCE: Final = "instance"
VOLUME: Final = "volume"
SNAPSHOT: Final = "snapshot"
IMAGE: Final = "image"
NETWORK_INTERFACE: Final = "network-interface"
# Listing and evaluation order: parents before their children, so the evaluator has every
# parent's inherited values before the first child asks for them.
ORDER: Final = (INSTANCE, VOLUME, SNAPSHOT, NETWORK_INTERFACE, IMAGE)
# Which parent type each child type may inherit from (the policy's ``inherit`` entries).
INHERITS_FROM: Final = {VOLUME: INSTANCE, NETWORK_INTERFACE: INSTANCE, SNAPSHOT: VOLUME}
# An interface the policy leaves out unless ``scope.network_interfaces.include_service_managed``.
SERVICE_MANAGED: Final = "service-managed"


def _attached_instances(volume: dict[str, Any]) -> list[str]:
    # Multi-Attach io1/io2 volumes have several attachments; every attached instance is a parent.
    return [
        str(a["InstanceId"])
        for a in volume.get("Attachments") or ()
        if isinstance(a, dict) and isinstance(a.get("InstanceId"), str)
    ]


def _interface_instance(interface: dict[str, Any]) -> list[str]:
    attachment = interface.get("Attachment")
    instance = attachment.get("InstanceId") if isinstance(attachment, dict) else None
    return [instance] if isinstance(instance, str) else []


def _snapshot_volume(snapshot: dict[str, Any]) -> list[str]:
    volume = snapshot.get("VolumeId")
    # EC2 prints vol-ffffffff for snapshots copied from another region or made from an image.
    return [volume] if isinstance(volume, str) and volume != "vol-ffffffff" else []


def _volume_time(volume: dict[str, Any]) -> Any:
    # The later of creation and the newest attachment: a volume attached to a fresh instance gets
    # the instance's grace period for the tags it should inherit.
    latest = volume.get("CreateTime")
    for attachment in volume.get("Attachments") or ():
        attached = attachment.get("AttachTime") if isinstance(attachment, dict) else None
        if attached is not None and (latest is None or _later(attached, latest)):
            latest = attached
    return latest


def _later(one: Any, other: Any) -> bool:
    # Both datetimes (boto3) or both ISO 8601 text (a staged page, a dump): compared as they are.
    if type(one) is type(other):
        return bool(one > other)
    return _sortable_time(one) > _sortable_time(other)


def _interface_time(interface: dict[str, Any]) -> Any:
    attachment = interface.get("Attachment")
    return attachment.get("AttachTime") if isinstance(attachment, dict) else None


def _sortable_time(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def is_service_managed(interface: dict[str, Any]) -> bool:
    """An interface a service created and manages (NAT gateway, load balancer, Lambda, endpoint).

    >>> is_service_managed({"InterfaceType": "interface", "RequesterManaged": False})
    False
    >>> is_service_managed({"InterfaceType": "nat_gateway"}), is_service_managed({"RequesterManaged": True})
    (True, True)
    """
    return bool(interface.get("RequesterManaged")) or interface.get("InterfaceType", "interface") not in (
        "interface",
        None,
    )


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One member of the EC2 family, as its Describe call returns it."""

    name: str
    operation: str
    method: str
    list_key: str
    id_field: str
    # Extra request parameters: snapshots and images are listed for the account itself only
    # (without them DescribeSnapshots returns every public snapshot in the region).
    request: dict[str, Any]
    max_page_size: int
    # The fields a finding is made of; the List step stages only these.
    fields: tuple[str, ...]
    tags_field: str = "Tags"
    # The Describe filter that selects resources by id (an event run describes just those; a
    # filter, unlike the ...Ids parameters, answers an id that no longer exists with nothing).
    id_filter: str = ""
    state: Callable[[dict[str, Any]], Any] = field(default=lambda r: r.get("State"))
    time: Callable[[dict[str, Any]], Any] = field(default=lambda r: None)
    parents: Callable[[dict[str, Any]], list[str]] = field(default=lambda r: [])
    # The finding's own columns for this type: finding name -> function of the resource.
    columns: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = ()

    def resource_id(self, resource: dict[str, Any]) -> str:
        return str(resource.get(self.id_field) or "")

    def tags(self, resource: dict[str, Any]) -> Any:
        return resource.get(self.tags_field)

    def project(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The part of a Describe* item that a finding is made of (a few hundred bytes)."""
        return {name: resource[name] for name in self.fields if name in resource}


RESOURCE_TYPES: Final[dict[str, ResourceType]] = {
    # Instances keep their own loop (the evaluator's hot path) and projection; this entry serves
    # the parts that treat every type alike (names, ids, listing).
    INSTANCE: ResourceType(
        name=INSTANCE,
        operation="DescribeInstances",
        method="describe_instances",
        list_key="Reservations",
        id_field="InstanceId",
        id_filter="instance-id",
        request={},
        max_page_size=1000,
        fields=("InstanceId", "State", "Placement", "LaunchTime", "InstanceType", "Tags"),
        state=lambda r: (r.get("State") or {}).get("Name"),
        time=lambda r: r.get("LaunchTime"),
    ),
    VOLUME: ResourceType(
        name=VOLUME,
        operation="DescribeVolumes",
        method="describe_volumes",
        list_key="Volumes",
        id_field="VolumeId",
        id_filter="volume-id",
        request={},
        max_page_size=500,
        # DescribeVolumes prints no OwnerId; the local endpoint adds it to another account's volumes
        # when it serves several accounts' dumps as one (see FleetEndpoint), so it is kept if there.
        fields=(
            "VolumeId",
            "State",
            "AvailabilityZone",
            "CreateTime",
            "Size",
            "VolumeType",
            "Attachments",
            "Tags",
            "OwnerId",
        ),
        time=_volume_time,
        parents=_attached_instances,
        columns=(
            ("size_gib", lambda r: r.get("Size")),
            ("volume_type", lambda r: r.get("VolumeType")),
            ("attached_to", lambda r: ",".join(_attached_instances(r)) or None),
        ),
    ),
    SNAPSHOT: ResourceType(
        name=SNAPSHOT,
        operation="DescribeSnapshots",
        method="describe_snapshots",
        list_key="Snapshots",
        id_field="SnapshotId",
        id_filter="snapshot-id",
        request={"OwnerIds": ["self"]},
        max_page_size=1000,
        fields=("SnapshotId", "State", "OwnerId", "StartTime", "VolumeId", "VolumeSize", "Tags"),
        time=lambda r: r.get("StartTime"),
        parents=_snapshot_volume,
        columns=(
            ("volume_id", lambda r: r.get("VolumeId")),
            ("size_gib", lambda r: r.get("VolumeSize")),
        ),
    ),
    IMAGE: ResourceType(
        name=IMAGE,
        operation="DescribeImages",
        method="describe_images",
        list_key="Images",
        id_field="ImageId",
        id_filter="image-id",
        request={"Owners": ["self"]},
        max_page_size=1000,
        fields=("ImageId", "State", "OwnerId", "CreationDate", "Name", "Tags"),
        time=lambda r: r.get("CreationDate"),
    ),
    NETWORK_INTERFACE: ResourceType(
        name=NETWORK_INTERFACE,
        operation="DescribeNetworkInterfaces",
        method="describe_network_interfaces",
        list_key="NetworkInterfaces",
        id_field="NetworkInterfaceId",
        id_filter="network-interface-id",
        request={},
        max_page_size=1000,
        fields=(
            "NetworkInterfaceId",
            "Status",
            "AvailabilityZone",
            "OwnerId",
            "InterfaceType",
            "RequesterManaged",
            "Attachment",
            "TagSet",
        ),
        tags_field="TagSet",
        state=lambda r: r.get("Status"),
        time=_interface_time,
        parents=_interface_instance,
        columns=(
            ("attached_to", lambda r: next(iter(_interface_instance(r)), None)),
            ("interface_type", lambda r: r.get("InterfaceType")),
        ),
    ),
}


# EC2's instance states; anything else (a malformed listing) is counted as "unknown", so the
# out-of-scope table stays a handful of rows whatever a listing holds.
_INSTANCE_STATES: Final = frozenset(
    {"pending", "running", "shutting-down", "terminated", "stopping", "stopped"}
)


def out_of_scope_reason(
    resource_type: str, resource: Any, *, states: frozenset[str] | set[str], include_service_managed: bool
) -> str | None:
    """Why a policy leaves a listed resource out (``None``: in scope): an instance by its state
    (``scope.states``), a network interface a service manages unless the policy brings those in.
    Volumes, snapshots and images are all in scope.

    >>> out_of_scope_reason("network-interface", {"InterfaceType": "nat_gateway"}, states=set(),
    ...                     include_service_managed=False)
    'service-managed'
    >>> out_of_scope_reason("instance", {"State": {"Name": "terminated"}}, states={"running"},
    ...                     include_service_managed=False)
    'terminated'
    """
    if resource_type == INSTANCE:
        state = resource.get("State") if isinstance(resource, dict) else None
        name = state.get("Name") if isinstance(state, dict) else None
        if name in states:
            return None
        return name if name in _INSTANCE_STATES else "unknown"
    if resource_type == NETWORK_INTERFACE and not include_service_managed and is_service_managed(resource):
        return SERVICE_MANAGED
    return None


# What the List step may call, whatever a policy covers: one read-only Describe per type.
DESCRIBE_ACTIONS: Final = tuple(f"ec2:{spec.operation}" for spec in RESOURCE_TYPES.values())
