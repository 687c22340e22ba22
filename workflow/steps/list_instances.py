"""Step "List EC2 instances": page through DescribeInstances and store each page in S3.

Only the prefix and counts go back into the state (claim check). If the Lambda's time budget runs
low, the step stops between pages and returns the NextToken; the state machine loops back and a new
invocation continues from it, so a huge region is never lost to a silent timeout.

For another account the step assumes that account's read-only member role first. A role that is
missing, a trust policy that refuses us, or a region the account has not enabled fails only this
target: the reason goes to S3 and the result says ``target_error``; the run goes on and reports
itself as partial. A region the account has not enabled is such a target even in the deployment's
own account. Throttling still reaches the state machine's Retry.

Every instance is listed, whatever its state, and only those in the run's states are staged: the
others are counted by state (``out_of_scope``), so the run's coverage says what it left out and why
instead of never having seen it.

A policy that covers more of the EC2 family (``resource_types``) has its volumes, snapshots and
images (owned by the account) and network interfaces listed after the instances, type by type,
with the same paging, staging and continuation: the listing carries the type it stopped in
(``phase``) with the NextToken. Only the types the policy covers are listed. Service-managed
interfaces are counted out of scope unless the policy brings them in.

An event run's target names its resources (the run's manifest, ``event_index``) and who created
them. With ``TAGWARDEN_TAG_CREATED_BY`` on (off by default), the step tags each described resource
that carries no ``CreatedBy`` tag with its creator's name, through the same credentials; the IAM
policy allows that one tag key on untagged resources only, so an existing ``CreatedBy`` is never
overwritten. A tagging failure is counted in the result, never fails the listing.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from workflow import layout
from workflow.aws import Credentials, assume_role, aws_call
from workflow.config import ListConfig
from workflow.errors import AccessDenied, PermanentError, RegionNotEnabled
from workflow.evaluator import project_instance
from workflow.events import CREATED_BY_TAG, MAX_TAG_VALUE
from workflow.resources import INSTANCE, ORDER, RESOURCE_TYPES, ResourceType, out_of_scope_reason
from workflow.storage import get_json, put_json, put_json_gz
from workflow.targets import execution_account, member_role_arn

Ec2Factory = Callable[[str, Credentials | None], Any]


def _record_target_error(
    s3: Any, run: dict[str, Any], account: str, region: str, role_arn: str | None, reason: str
) -> dict[str, Any]:
    put_json(
        s3,
        run["bucket"],
        layout.target_error_key(run["run_id"], account, region),
        {"account_id": account, "region": region, "role_arn": role_arn, "reason": reason},
    )
    return {
        "region": region,
        "account_id": account,
        "prefix": None,
        "pages": 0,
        "instances": 0,
        "listed": 0,
        "out_of_scope": {},
        "resources": {},
        "phase": None,
        "complete": True,
        "next_token": None,
        "target_error": reason,
    }


def listed_types(run: dict[str, Any]) -> tuple[str, ...]:
    """The resource types a run lists, parents first (runs validated before types existed: instances).

    >>> listed_types({"resource_types": ["snapshot", "volume"]})
    ('volume', 'snapshot')
    """
    wanted = run.get("resource_types") or [INSTANCE]
    return tuple(t for t in ORDER if t in wanted)


# Resource ids per Describe call of an event run: at most 200 values per filter.
ID_CHUNK = 200
_CHUNK = "chunk:"


def _fresh_counts() -> dict[str, Any]:
    return {"pages": 0, "listed": 0, "in_scope": 0, "out_of_scope": {}}


class _Lister:
    """Pages one resource type of one target into S3, asking for the next page while it stages
    the current one, until the listing ends or the time budget is spent."""

    def __init__(
        self,
        ec2: Any,
        s3: Any,
        run: dict[str, Any],
        account: str,
        region: str,
        shown: str,
        config: ListConfig,
        remaining_ms: Callable[[], int],
    ) -> None:
        self.ec2, self.s3, self.run = ec2, s3, run
        self.account, self.region, self.shown = account, region, shown
        self.config, self.remaining_ms = config, remaining_ms
        self.margin_ms = config.time_budget_margin_seconds * 1000
        self.states = frozenset(run["states"])
        self.include_service_managed = bool(run.get("include_service_managed_interfaces"))
        # An event run's target names its resources: {type: [ids]}; None lists everything.
        self.resource_ids: dict[str, list[str]] | None = None
        # Resource id -> creator, to tag CreatedBy (empty: no tagging).
        self.creators: dict[str, str] = {}
        self.to_tag: dict[str, list[str]] = {}  # creator -> described resources without CreatedBy

    def _describe(self, spec: ResourceType, next_token: str | None) -> dict[str, Any]:
        request: dict[str, Any] = {
            **spec.request,
            "MaxResults": min(self.config.page_size, spec.max_page_size),
        }
        ids = self.resource_ids.get(spec.name) if self.resource_ids is not None else None
        chunk = 0
        if ids == []:
            return {}  # the events named none of this type: nothing to ask for
        if ids is not None:
            # Just these resources, ID_CHUNK at a time: the "token" is the next chunk's number.
            chunk = int(next_token.removeprefix(_CHUNK)) if next_token else 0
            request["Filters"] = [
                {"Name": spec.id_filter, "Values": ids[chunk * ID_CHUNK : (chunk + 1) * ID_CHUNK]}
            ]
        elif next_token:
            request["NextToken"] = next_token
        with aws_call(f"{spec.operation} in {self.shown} {self.region}"):
            response: dict[str, Any] = getattr(self.ec2, spec.method)(**request)
        if ids is not None:
            # A chunk never fills a page (ID_CHUNK is below every MaxResults), so no NextToken.
            more = (chunk + 1) * ID_CHUNK < len(ids)
            response = {**response, "NextToken": f"{_CHUNK}{chunk + 1}" if more else None}
        return response

    def _kept(self, spec: ResourceType, response: dict[str, Any], counts: dict[str, Any]) -> tuple[Any, int]:
        """What of a page is staged (projected, in scope), and how many resources that is."""
        out_of_scope: dict[str, int] = counts["out_of_scope"]

        def keep(resource: Any) -> bool:
            counts["listed"] += 1
            if self.creators:
                self._note_untagged(spec, resource)
            reason = out_of_scope_reason(
                spec.name, resource, states=self.states, include_service_managed=self.include_service_managed
            )
            if reason is not None:
                out_of_scope[reason] = out_of_scope.get(reason, 0) + 1
            return reason is None

        if spec.name == INSTANCE:
            reservations = []
            for reservation in response.get("Reservations", []):
                # Only what evaluation reads: a third of the bytes to stage and read back.
                kept = [project_instance(i) for i in reservation.get("Instances", []) if keep(i)]
                if kept:
                    reservations.append({"OwnerId": reservation.get("OwnerId"), "Instances": kept})
            return {"Reservations": reservations}, sum(len(r["Instances"]) for r in reservations)
        resources = [spec.project(r) for r in response.get(spec.list_key, []) if keep(r)]
        return {spec.list_key: resources}, len(resources)

    def _note_untagged(self, spec: ResourceType, resource: Any) -> None:
        resource_id = spec.resource_id(resource)
        creator = self.creators.get(resource_id)
        tags = resource.get("Tags") or () if isinstance(resource, dict) else ()
        if creator and not any(str(t.get("Key", "")).casefold() == CREATED_BY_TAG.casefold() for t in tags):
            self.to_tag.setdefault(creator[:MAX_TAG_VALUE], []).append(resource_id)

    def tag_creators(self) -> dict[str, Any]:
        """``CreatedBy`` on the described resources that have none: one CreateTags per creator."""
        tagged, error = 0, None
        for creator, ids in sorted(self.to_tag.items()):
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ids[start : start + ID_CHUNK]
                try:
                    with aws_call(f"CreateTags in {self.shown} {self.region}"):
                        self.ec2.create_tags(
                            Resources=chunk, Tags=[{"Key": CREATED_BY_TAG, "Value": creator}]
                        )
                    tagged += len(chunk)
                except PermanentError as err:
                    # Attribution is a convenience: the verdicts stand without it (throttling
                    # still reaches the Retry, and a retry skips what is tagged by then).
                    error = str(err)
        return {"tagged": tagged, "error": error}

    def list_type(self, spec: ResourceType, token: str | None, counts: dict[str, Any]) -> str | None:
        """List from ``token``; the token to continue from, None when the type is fully listed.

        The next page is requested while this one is staged: EC2 takes about a second for a page
        of 1,000, and projecting, compressing and storing one is CPU and an S3 round trip that can
        overlap it. One request ahead at most; none is started once the time budget is spent.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=spec.method) as ahead:
            pending: Future[dict[str, Any]] | None = ahead.submit(self._describe, spec, token)
            while pending is not None:
                response = pending.result()
                token = response.get("NextToken") or None
                pending = (
                    ahead.submit(self._describe, spec, token)
                    if token and self.remaining_ms() > self.margin_ms
                    else None
                )
                document, count = self._kept(spec, response, counts)
                # Instances always stage page 0, so an empty region is an empty page, as before.
                if count or (spec.name == INSTANCE and counts["pages"] == 0):
                    key = layout.inventory_page_key(
                        self.run["run_id"], self.account, self.region, counts["pages"], spec.name
                    )
                    put_json_gz(self.s3, self.run["bucket"], key, document)
                    counts["pages"] += 1
                    counts["in_scope"] += count
        return token


def list_instances(
    event: dict[str, Any],
    config: ListConfig,
    *,
    ec2_factory: Ec2Factory,
    s3: Any,
    remaining_ms: Callable[[], int],
    sts: Any = None,
) -> dict[str, Any]:
    """List one target's resources into ``staging/<run>/inventory/<account>/<region>/``.

    ``event`` is ``{"run": {...}, "target": {"account_id", "region", ["role_arn"]}, "listing":
    <previous result, when continuing>}``; account ``self`` is the account the step runs in.
    ``ec2_factory(region, credentials)`` builds the EC2 client (credentials None: the step's own).
    The result's ``resources`` has per type pages, listed, in scope and out of scope by reason;
    the top-level ``pages``, ``instances``, ``listed`` and ``out_of_scope`` are the instances'.
    """
    run = event["run"]
    target = event.get("target") or {"region": event["region"]}
    region = target["region"]
    account = target.get("account_id") or layout.SELF_ACCOUNT
    previous = event.get("listing") or {}
    named: dict[str, list[str]] | None = target.get("resource_ids")
    creators: dict[str, str] = {}
    if named is None and "event_index" in target:
        # An event run's item: its resource ids are in the run's manifest, not in the state.
        item = get_json(s3, run["bucket"], run["targets_key"])[int(target["event_index"])]
        named = item["resource_ids"]
        creators = dict(item.get("creators") or {}) if config.tag_created_by else {}
    types = listed_types(run)
    if named is not None:
        # An event run: only the covered types the events named (instances always, so the
        # target's listing has its first page as a scheduled one has).
        types = tuple(t for t in types if t == INSTANCE or named.get(t))
    resources: dict[str, dict[str, Any]] = {
        t: {**_fresh_counts(), **(previous.get("resources") or {}).get(t, {})} for t in types
    }
    if INSTANCE in resources and "resources" not in previous and previous:
        # A listing continued from before resource types existed carries the instances' counts.
        resources[INSTANCE].update(
            pages=int(previous.get("pages", 0)),
            listed=int(previous.get("listed", 0)),
            in_scope=int(previous.get("instances", 0)),
            out_of_scope=dict(previous.get("out_of_scope") or {}),
        )
    phase: str = previous.get("phase") or types[0]
    token: str | None = previous.get("next_token")
    role_arn: str | None = None
    credentials: Credentials | None = None
    if account != layout.SELF_ACCOUNT:
        role_arn = target.get("role_arn") or member_role_arn(account, run["member_role_name"], region)
        try:
            credentials = assume_role(
                sts,
                role_arn,
                session_name=f"tagwarden-{run['run_id']}",
                external_id=config.member_external_id,
            )
        except AccessDenied as err:
            return _record_target_error(s3, run, account, region, role_arn, str(err))
    shown = execution_account(run) if account == layout.SELF_ACCOUNT else account
    lister = _Lister(ec2_factory(region, credentials), s3, run, account, region, shown, config, remaining_ms)
    if named is not None:
        lister.resource_ids = {t: list(named.get(t) or []) for t in types}
        lister.creators = creators
    margin_ms = config.time_budget_margin_seconds * 1000
    remaining_types = list(types[types.index(phase) :])
    while remaining_types:
        phase = remaining_types[0]
        try:
            token = lister.list_type(RESOURCE_TYPES[phase], token, resources[phase])
        except AccessDenied as err:
            if credentials is None and not isinstance(err, RegionNotEnabled):
                raise  # our own account: a deployment fault, not a target to skip
            return _record_target_error(s3, run, account, region, role_arn, str(err))
        if token is not None:
            break  # the time budget ran out within this type: continue from the token
        remaining_types.pop(0)
        if remaining_types and remaining_ms() <= margin_ms:
            phase = remaining_types[0]
            break
    instances = resources.get(INSTANCE) or _fresh_counts()
    created_by_tags = lister.tag_creators() if lister.to_tag else None
    return {
        "region": region,
        "account_id": account,
        "prefix": layout.inventory_page_key(run["run_id"], account, region, 0).rsplit("/", 1)[0] + "/",
        "pages": instances["pages"],
        "instances": instances["in_scope"],
        "listed": instances["listed"],
        "out_of_scope": instances["out_of_scope"],
        "resources": resources,
        "phase": phase if remaining_types else None,
        "complete": not remaining_types,
        "next_token": token,
        "target_error": None,
        **({"created_by_tags": created_by_tags} if created_by_tags else {}),
    }
