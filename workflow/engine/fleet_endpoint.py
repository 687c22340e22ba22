"""EC2 ``DescribeInstances`` answered from describe-instances documents, for the local engine.

Why not moto's EC2: seeding it takes about 24 ms per instance and describing about 15 ms per
instance (measured with moto 5.2.5), and it assigns its own instance ids, launch times and states,
so a dump of a real account could not be audited with the ids it has. This endpoint hooks into
botocore's request pipeline (``before-call``), so the step's real boto3 client, paginator and
parameter validation run unchanged; only the HTTP exchange is replaced. It follows the API:
``MaxResults`` 5 to 1000, opaque ``NextToken``, the ``instance-state-name`` and id filters, and
``RequestLimitExceeded`` when a test asks for throttling.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import boto3

from workflow.engine.hook_responses import Answer, answer, error, params_recorder
from workflow.fleet import FleetInstance, FleetResource
from workflow.resources import INSTANCE, RESOURCE_TYPES, ResourceType

_PARAMS = "tagwarden_fleet_params"
# Immutable: a copy may share them.
_DEFAULT_ACCOUNT = "123456789012"


_URL = "https://ec2.local.tagwarden"


def _parse_time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


class FleetEndpoint:
    """Serve DescribeInstances/DescribeRegions for ``(account, region)`` from fleet instances.

    A dump says nothing about a region it has no instance of: it may be empty, or it may never
    have been listed. So an (account, region) with no instance in the fleet is answered as a region
    the account cannot list (``OptInRequired``, "no data in the given dumps"): the run reports the
    target not scanned instead of calling it clean. ``empty_regions`` are regions known to have
    been listed and found empty, answered with no reservations.

    >>> endpoint = FleetEndpoint([], empty_regions=["eu-west-1"])
    >>> session = endpoint.attach(boto3.Session(aws_access_key_id="x", aws_secret_access_key="y"))
    >>> session.client("ec2", region_name="eu-west-1").describe_instances()["Reservations"]
    []
    >>> try:
    ...     session.client("ec2", region_name="eu-north-1").describe_instances()
    ... except Exception as err:
    ...     print(err.response["Error"]["Message"])
    not scanned (no data in the given dumps for this account in eu-north-1)
    """

    def __init__(
        self,
        instances: Iterable[FleetInstance],
        *,
        account_id: str = _DEFAULT_ACCOUNT,
        empty_regions: Iterable[str] = (),
        resources: Iterable[FleetResource] = (),
        covered: Iterable[tuple[str, str, str | None]] = (),
    ) -> None:
        self.account_id = account_id
        self.empty_regions = set(empty_regions)
        self._lock = threading.Lock()
        self._resources: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        self._covered: set[tuple[str, str, str | None]] = set()
        self._throttle: dict[str, int] = {}
        self._by_region: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        # The matching instances of a listing, kept while its pages are read: filtering the whole
        # region again for every page made listing a 100,000-instance fleet quadratic.
        self._matching: dict[tuple[Any, ...], list[tuple[str, dict[str, Any]]]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        # (account, region, resource id, tags) of every CreateTags this endpoint answered.
        self.tagged: list[tuple[str, str, str, dict[str, str]]] = []
        # Instances with stop protection (DescribeInstanceAttribute disableApiStop): a dump does
        # not carry the attribute, so tests name them.
        self.stop_protected: set[str] = set()
        self.replace(instances, resources=resources, covered=covered)

    def replace(
        self,
        instances: Iterable[FleetInstance],
        *,
        resources: Iterable[FleetResource] = (),
        covered: Iterable[tuple[str, str, str | None]] = (),
    ) -> None:
        """Serve another fleet from now on (tests reuse one deployment for several fleets).

        ``resources`` are volumes, snapshots, images and interfaces; ``covered`` the (type, region,
        account or None for any) that a dump listed even where it found none (a prefixed empty
        dump). A type with no data for a region is answered as not scanned, never as empty.
        """
        by_type: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        covering = set(covered)
        for resource in resources:
            account = resource.account_id or self.account_id
            by_type.setdefault((resource.resource_type, resource.region), []).append(
                (account, _with_times(resource.resource_type, resource.resource))
            )
            covering.add((resource.resource_type, resource.region, account))
        by_region: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for item in instances:
            # A copy of the top level only, for the parsed LaunchTime: the nested values stay
            # shared with the caller's (frozen) FleetInstance; answers share them, read-only (a
            # test checks that a whole run leaves them as they were). A deep copy here doubled
            # the memory of a 100,000-instance fleet.
            instance = dict(item.instance)
            instance["LaunchTime"] = _parse_time(instance.get("LaunchTime"))
            by_region.setdefault(item.region, []).append((item.account_id or self.account_id, instance))
        with self._lock:
            self._by_region = by_region
            self._present = {(region, account) for region, pairs in by_region.items() for account, _ in pairs}
            self._matching = {}
            self._resources = by_type
            self._covered = covering

    def instances_now(self) -> dict[str, dict[str, Any]]:
        """Every instance as the endpoint answers for it now (after CreateTags, StopInstances...)."""
        with self._lock:
            return {i["InstanceId"]: i for pairs in self._by_region.values() for _, i in pairs}

    def account_of_key(self, access_key: str | None) -> str | None:
        """The member account an access key belongs to; replaced by the local deployment."""
        return None

    @property
    def accounts(self) -> list[str]:
        """The accounts the fleet has instances in."""
        with self._lock:
            return sorted(
                {account for pairs in self._by_region.values() for account, _ in pairs}
                | {account for _, _, account in self._covered if account is not None}
            )

    @property
    def regions(self) -> list[str]:
        return sorted(set(self._by_region) | {region for _, region, _ in self._covered})

    def throttle(self, region: str, times: int) -> None:
        """Answer the next ``times`` DescribeInstances calls in ``region`` with RequestLimitExceeded."""
        with self._lock:
            self._throttle[region] = times

    def attach(self, session: boto3.Session) -> boto3.Session:
        """Register the hooks on a session; its EC2 clients are then served by this endpoint."""
        session.events.register("before-parameter-build.ec2.*", params_recorder(_PARAMS))
        session.events.register("before-call.ec2.DescribeInstances", self._describe_instances)
        session.events.register("before-call.ec2.DescribeRegions", self._describe_regions)
        session.events.register("before-call.ec2.CreateTags", self._create_tags)
        session.events.register("before-call.ec2.DeleteTags", self._delete_tags)
        session.events.register("before-call.ec2.StopInstances", self._stop_instances)
        session.events.register(
            "before-call.ec2.DescribeInstanceAttribute", self._describe_instance_attribute
        )
        for name, spec in RESOURCE_TYPES.items():
            if name != INSTANCE:
                session.events.register(f"before-call.ec2.{spec.operation}", self._resource_handler(spec))
        return session

    @staticmethod
    def _error(code: str, message: str, status: int = 400) -> Answer:
        return error(_URL, code, message, status)

    def _region_of(self, request_signer: Any) -> str:
        return str(request_signer._region_name)

    def _describe_regions(self, context: dict[str, Any], **_: Any) -> Answer:
        regions = [
            {"RegionName": r, "Endpoint": f"ec2.{r}.amazonaws.com", "OptInStatus": "opt-in-not-required"}
            for r in self.regions
        ]
        return answer(_URL, {"Regions": regions})

    def _resource_handler(self, spec: ResourceType) -> Any:
        def describe(context: dict[str, Any], request_signer: Any, **_: Any) -> Answer:
            return self._describe_resources(spec, context.get(_PARAMS, {}), request_signer)

        return describe

    def _describe_resources(self, spec: ResourceType, params: dict[str, Any], request_signer: Any) -> Answer:
        region = self._region_of(request_signer)
        with self._lock:
            self.calls.append((region, {"operation": spec.operation, **params}))
            if self._throttle.get(region, 0) > 0:
                self._throttle[region] -= 1
                return self._error("RequestLimitExceeded", "Request limit exceeded.", 503)
        max_results = params.get("MaxResults")
        if max_results is not None and not 5 <= int(max_results) <= spec.max_page_size:
            return self._error(
                "InvalidParameterValue",
                f"Value ( {max_results} ) for parameter maxResults is invalid. "
                f"Expecting a value between 5 and {spec.max_page_size}.",
            )
        wanted: frozenset[str] | None = None
        for flt in params.get("Filters", []):
            if flt["Name"] != spec.id_filter:
                return self._error(
                    "InvalidParameterValue", f"filter {flt['Name']!r} is not supported by the local endpoint"
                )
            wanted = frozenset(flt["Values"])
        for owners in ("OwnerIds", "Owners"):
            if owners in params and params[owners] != ["self"]:
                # A dump holds the account's own snapshots and images, never another owner's.
                return self._error(
                    "InvalidParameterValue", f"{owners} other than ['self'] are not in the dumps"
                )
        credentials = getattr(request_signer, "_credentials", None)
        only_account = self.account_of_key(getattr(credentials, "access_key", None))
        covered = (spec.name, region, None) in self._covered or any(
            kind == spec.name and where == region and (only_account is None or account == only_account)
            for kind, where, account in self._covered
        )
        if not covered:
            return self._error(
                "OptInRequired",
                f"not scanned (no {spec.name} data in the given dumps for this account in {region})",
                401,
            )
        key = (spec.name, region, only_account, wanted)
        with self._lock:
            matching = self._matching.get(key)
            if matching is None:
                matching = [
                    (account, resource)
                    for account, resource in self._resources.get((spec.name, region), [])
                    if (only_account is None or account == only_account)
                    and (wanted is None or resource.get(spec.id_field) in wanted)
                ]
                self._matching[key] = matching
        start = _offset(params.get("NextToken"))
        if start is None:
            return self._error("InvalidParameterValue", "Invalid value for parameter NextToken")
        size = int(max_results) if max_results is not None else spec.max_page_size
        page = matching[start : start + size]
        if spec.name == "volume" and only_account is None:
            # One listing of several accounts' dumps (a local scan without member roles): AWS
            # would list one account's volumes, whose account is the caller's. Name the others'.
            items = [r if a == self.account_id else {**r, "OwnerId": a} for a, r in page]
        else:
            items = [resource for _, resource in page]
        parsed: dict[str, Any] = {spec.list_key: items}
        if start + size < len(matching):
            parsed["NextToken"] = _token(start + size)
        return answer(_URL, parsed)

    def _caller_account(self, request_signer: Any) -> str | None:
        """The member account of assumed-role credentials; None for the caller's own (any)."""
        credentials = getattr(request_signer, "_credentials", None)
        return self.account_of_key(getattr(credentials, "access_key", None))

    def _rewrite(
        self,
        region: str,
        only_account: str | None,
        wanted: set[str],
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        instances_only: bool = False,
    ) -> set[str]:
        """Replace each wanted resource of the caller's account by ``change(resource)``; the ids
        found. Copy on write: answers share the fleet's dicts read-only, so a changed resource is
        a new dict, never changed in place. Call with the lock held."""
        found: set[str] = set()

        def changed(account: str, resource: dict[str, Any], id_field: str) -> dict[str, Any]:
            if resource.get(id_field) not in wanted or (only_account is not None and account != only_account):
                return resource
            found.add(resource[id_field])
            return change(resource)

        self._by_region[region] = [
            (a, changed(a, i, "InstanceId")) for a, i in self._by_region.get(region, [])
        ]
        for name, spec in RESOURCE_TYPES.items():
            if not instances_only and name != INSTANCE and (name, region) in self._resources:
                self._resources[(name, region)] = [
                    (a, changed(a, r, spec.id_field)) for a, r in self._resources[(name, region)]
                ]
        self._matching = {}
        return found

    def _create_tags(self, context: dict[str, Any], request_signer: Any, **_: Any) -> Answer:
        """Tag resources of the caller's account in the region: later answers carry the tags."""
        params = context.get(_PARAMS, {})
        region = self._region_of(request_signer)
        only_account = self._caller_account(request_signer)
        wanted = set(params.get("Resources") or [])
        tags = {t["Key"]: t.get("Value", "") for t in params.get("Tags") or []}

        def tagged(resource: dict[str, Any]) -> dict[str, Any]:
            kept = [t for t in resource.get("Tags") or [] if t.get("Key") not in tags]
            return {**resource, "Tags": kept + [{"Key": k, "Value": v} for k, v in tags.items()]}

        with self._lock:
            self.calls.append((region, {"operation": "CreateTags", **params}))
            found = self._rewrite(region, only_account, wanted, tagged)
            self.tagged += [(only_account or self.account_id, region, i, dict(tags)) for i in sorted(found)]
        missing = sorted(wanted - found)
        if missing:
            return self._error("InvalidID", f"The ID '{missing[0]}' is not valid")
        return answer(_URL, {})

    def _delete_tags(self, context: dict[str, Any], request_signer: Any, **_: Any) -> Answer:
        """Remove tags as EC2 does: a key alone removes it whatever its value; key and value only
        when the value matches."""
        params = context.get(_PARAMS, {})
        region = self._region_of(request_signer)
        wanted = set(params.get("Resources") or [])
        named = params.get("Tags") or []

        def removed(tag: dict[str, Any]) -> bool:
            return any(
                t["Key"] == tag.get("Key") and ("Value" not in t or t["Value"] == tag.get("Value", ""))
                for t in named
            )

        def untagged(resource: dict[str, Any]) -> dict[str, Any]:
            return {**resource, "Tags": [t for t in resource.get("Tags") or [] if not removed(t)]}

        with self._lock:
            self.calls.append((region, {"operation": "DeleteTags", **params}))
            found = self._rewrite(region, self._caller_account(request_signer), wanted, untagged)
        missing = sorted(wanted - found)
        if missing:
            return self._error("InvalidID", f"The ID '{missing[0]}' is not valid")
        return answer(_URL, {})

    def _stop_instances(self, context: dict[str, Any], request_signer: Any, **_: Any) -> Answer:
        """Stop the caller's running instances (at once: the endpoint has no ``stopping`` phase)."""
        params = context.get(_PARAMS, {})
        region = self._region_of(request_signer)
        wanted = set(params.get("InstanceIds") or [])
        before: dict[str, dict[str, Any]] = {}

        def stopped(instance: dict[str, Any]) -> dict[str, Any]:
            before[instance["InstanceId"]] = instance.get("State") or {}
            return {**instance, "State": {"Code": 80, "Name": "stopped"}}

        with self._lock:
            self.calls.append((region, {"operation": "StopInstances", **params}))
            found = self._rewrite(
                region, self._caller_account(request_signer), wanted, stopped, instances_only=True
            )
        missing = sorted(wanted - found)
        if missing:
            return self._error("InvalidInstanceID.NotFound", f"The instance ID '{missing[0]}' does not exist")
        return answer(
            _URL,
            {
                "StoppingInstances": [
                    {
                        "InstanceId": i,
                        "PreviousState": before[i],
                        "CurrentState": {"Code": 80, "Name": "stopped"},
                    }
                    for i in sorted(found)
                ]
            },
        )

    def _describe_instance_attribute(self, context: dict[str, Any], request_signer: Any, **_: Any) -> Answer:
        """``disableApiStop`` (stop protection), from :attr:`stop_protected`; other attributes are
        not in a dump."""
        params = context.get(_PARAMS, {})
        region = self._region_of(request_signer)
        instance_id = params.get("InstanceId")
        only_account = self._caller_account(request_signer)
        with self._lock:
            self.calls.append((region, {"operation": "DescribeInstanceAttribute", **params}))
            exists = any(
                i.get("InstanceId") == instance_id and (only_account is None or a == only_account)
                for a, i in self._by_region.get(region, [])
            )
        if not exists:
            return self._error(
                "InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist"
            )
        if params.get("Attribute") != "disableApiStop":
            return self._error(
                "InvalidParameterValue", f"attribute {params.get('Attribute')!r} is not in a dump"
            )
        return answer(
            _URL, {"InstanceId": instance_id, "DisableApiStop": {"Value": instance_id in self.stop_protected}}
        )

    def _describe_instances(self, context: dict[str, Any], request_signer: Any, **_: Any) -> Answer:
        params = context.get(_PARAMS, {})
        region = self._region_of(request_signer)
        with self._lock:
            self.calls.append((region, params))
            if self._throttle.get(region, 0) > 0:
                self._throttle[region] -= 1
                return self._error("RequestLimitExceeded", "Request limit exceeded.", 503)
        max_results = params.get("MaxResults")
        if max_results is not None and not 5 <= int(max_results) <= 1000:
            return self._error(
                "InvalidParameterValue",
                f"Value ( {max_results} ) for parameter maxResults is invalid. "
                "Expecting a value between 5 and 1000.",
            )
        if max_results is not None and params.get("InstanceIds"):
            return self._error(
                "InvalidParameterCombination", "The parameter instancesSet cannot be used with maxResults"
            )
        states: set[str] | None = None
        # None: every instance; a set (perhaps empty): only these ids.
        wanted_ids: set[str] | None = set(params["InstanceIds"]) if params.get("InstanceIds") else None
        for flt in params.get("Filters", []):
            if flt["Name"] == "instance-state-name":
                states = set(flt["Values"])
            elif flt["Name"] == "instance-id":
                named = set(flt["Values"])
                wanted_ids = named if wanted_ids is None else wanted_ids & named
            else:
                return self._error(
                    "InvalidParameterValue", f"filter {flt['Name']!r} is not supported by the local endpoint"
                )
        # Credentials from an AssumeRole belong to one member account: it sees its instances only.
        # The caller's own credentials see the whole fleet (a single-account dump).
        credentials = getattr(request_signer, "_credentials", None)
        only_account = self.account_of_key(getattr(credentials, "access_key", None))
        has_data = (
            region in self._by_region if only_account is None else (region, only_account) in self._present
        )
        if not has_data and region not in self.empty_regions:
            return self._error(
                "OptInRequired",
                f"not scanned (no data in the given dumps for this account in {region})",
                401,
            )
        key = (
            region,
            only_account,
            frozenset(states) if states is not None else None,
            frozenset(wanted_ids) if wanted_ids is not None else None,
        )
        with self._lock:
            matching = self._matching.get(key)
            if matching is None:
                matching = [
                    (account, instance)
                    for account, instance in self._by_region.get(region, [])
                    if (only_account is None or account == only_account)
                    and (states is None or instance.get("State", {}).get("Name") in states)
                    and (wanted_ids is None or instance.get("InstanceId") in wanted_ids)
                ]
                self._matching[key] = matching
        start = _offset(params.get("NextToken"))
        if start is None:
            return self._error("InvalidParameterValue", "Invalid value for parameter NextToken")
        size = int(max_results) if max_results is not None else 1000
        page = matching[start : start + size]
        reservations: list[dict[str, Any]] = []
        for account, instance in page:
            reservations.append(
                {
                    "OwnerId": account,
                    "ReservationId": f"r-{instance['InstanceId'][2:]}",
                    "Groups": [],
                    # Shared, not copied: the answer is read-only by contract (the List step
                    # projects what it stages into new dicts), and copying every instance for
                    # every page was the largest cost of listing a big dump.
                    "Instances": [instance],
                }
            )
        parsed: dict[str, Any] = {"Reservations": reservations}
        if start + size < len(matching):
            parsed["NextToken"] = _token(start + size)
        return answer(_URL, parsed)


def _token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(token: Any) -> int | None:
    """Where a NextToken of this endpoint continues (0 without one); None for a token it never gave."""
    if not token:
        return 0
    try:
        return int(json.loads(base64.b64decode(token))["offset"])
    except (ValueError, KeyError, TypeError):
        return None


def _with_times(resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as boto3 parses it: timestamps as datetimes (a copy where they change)."""
    if resource_type == "volume":
        return {
            **resource,
            **({"CreateTime": _parse_time(resource["CreateTime"])} if "CreateTime" in resource else {}),
            "Attachments": [
                {**a, "AttachTime": _parse_time(a.get("AttachTime"))} if "AttachTime" in a else a
                for a in resource.get("Attachments") or ()
            ],
        }
    if resource_type == "snapshot" and "StartTime" in resource:
        return {**resource, "StartTime": _parse_time(resource["StartTime"])}
    attachment = resource.get("Attachment")
    if resource_type == "network-interface" and isinstance(attachment, dict) and "AttachTime" in attachment:
        return {**resource, "Attachment": {**attachment, "AttachTime": _parse_time(attachment["AttachTime"])}}
    return resource
