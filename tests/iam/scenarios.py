"""Representative runs of the real workflow on the embedded engine, with every AWS call recorded.

Each scenario names the deployment modes (templates) whose permissions it exercises: a
single-account run is something every deployment does; an organisation-wide run needs the
organisation template, a targets run the targets template.

Staged remediation runs across days (the process clock moved with time-machine, as in
tests/functional/test_remediation_lifecycle.py): marked on the first day, stopped (or found
stop-protected, or fixed and unmarked) after the stop date, in the central account with the
remediate role's own grants and in member accounts through their remediation roles.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from tests.iam.recorder import Recorder
from workflow import config, layout
from workflow.engine.event_routing import Delivery
from workflow.engine.local import BUCKET, CENTRAL_ACCOUNT, LocalDeployment
from workflow.errors import PermanentError
from workflow.exemption_files import new_exemption_file
from workflow.fleet import FleetInstance, FleetResource, demo_fleet, demo_resources, iter_fleet_document
from workflow.remediation import MARK_KEY
from workflow.resources import RESOURCE_TYPES

ACCOUNTS = ("111111111111", "222222222222")
NO_ROLE_ACCOUNT = "444444444444"
REGIONS = ("us-east-1", "eu-west-1")
DISTRIBUTED_THRESHOLD = 3
SINGLE, ORGANIZATION, TARGETS = "single-account", "organization", "targets"
EVERY_MODE = (SINGLE, ORGANIZATION, TARGETS)


@dataclass
class Execution:
    arn: str
    status: str
    scenario: str
    history: list[dict[str, Any]]
    input: dict[str, Any]
    started_by: str = "harness"  # or "scheduler"


@dataclass
class Observations:
    """What the scenarios did: the recorded calls, the Lambda invocations, the executions."""

    recorder: Recorder
    executions: list[Execution] = field(default_factory=list)
    map_runs: list[tuple[str, str, int]] = field(default_factory=list)  # (scenario, map run ARN, items)
    modes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # scenario -> template modes
    state_machine_name: str = ""
    # EventBridge's hops on the event path (a member's forward, a rule into the events queue).
    deliveries: list[tuple[str, Delivery]] = field(default_factory=list)

    @property
    def invocations(self) -> list[tuple[str, str]]:
        """(scenario, handler) of every Lambda invocation."""
        return list(self.recorder.invocations)


def fleet(accounts: tuple[str, ...] = ACCOUNTS, per_region: int = 4) -> list[FleetInstance]:
    items = [
        i
        for i in iter_fleet_document(demo_fleet(instances_per_region=per_region, seed=5))
        if i.region in REGIONS
    ]
    return [dataclasses.replace(item, account_id=accounts[i % len(accounts)]) for i, item in enumerate(items)]


def family_resources(instances: list[FleetInstance]) -> list[FleetResource]:
    """Volumes, snapshots, images and interfaces of ``fleet()``'s instances, in their accounts."""
    account_of = {i.instance["InstanceId"]: i.account_id for i in instances}
    resources = []
    for n, resource in enumerate(demo_resources(demo_fleet(instances_per_region=4, seed=5))):
        if resource.region not in REGIONS:
            continue
        parents = RESOURCE_TYPES[resource.resource_type].parents(resource.resource)
        account = next((account_of[p] for p in parents if p in account_of), ACCOUNTS[n % len(ACCOUNTS)])
        resources.append(dataclasses.replace(resource, account_id=account))
    return resources


# Every account's regions were listed for every type (some found none of a type).
FAMILY_LISTED = [
    (resource_type, region, account)
    for resource_type in RESOURCE_TYPES
    for region in REGIONS
    for account in ACCOUNTS
    if resource_type != "instance"
]
# Past the grace period of every policy here (FinOps waits longer than the default's 15 minutes).
AFTER_ANY_GRACE_PERIOD = "2026-12-03T10:00:00+00:00"
FINOPS_POLICY = json.loads(
    (Path(__file__).resolve().parents[2] / "policies" / "finops.json").read_text("utf-8")
)


# Staged remediation: marked on the first run, stopped on or after the date the mark names.
STAGED_POLICY: dict[str, Any] = {
    "version": 1,
    "name": "iam-staged",
    "rules": [{"key": "Owner"}],
    "remediation": {"mark_after_days": 0, "stop_after_days": 7, "dry_run": False, "max_stops_per_run": 1},
}
DRY_STAGED_POLICY: dict[str, Any] = {
    **STAGED_POLICY,
    "name": "iam-staged-dry",
    "remediation": {**STAGED_POLICY["remediation"], "dry_run": True},
}
MARK_DAY, STOP_DAY, NEXT_DAY = "2026-12-01", "2026-12-08", "2026-12-09"


def on_day(day: str) -> Any:
    """The process clock (the engine's and the Lambdas') on that day, ticking."""
    import time_machine

    return time_machine.travel(datetime.fromisoformat(f"{day}T06:00:00+00:00"), tick=True)


def staged_instance(
    account: str, region: str, instance_id: str, tags: dict[str, str] | None = None
) -> FleetInstance:
    """A running instance launched long before any grace period ends (no Owner: noncompliant)."""
    from tests.unit.builders import instance

    return FleetInstance(
        account,
        region,
        instance(
            tags or {}, instance_id=instance_id, zone=f"{region}a", launched="2026-11-01T00:00:00+00:00"
        ),
    )


def as_served_now(
    local: LocalDeployment, instances: list[FleetInstance], fixed: Collection[str] = ()
) -> list[FleetInstance]:
    """The instances as EC2 serves them now (marks and states), those in ``fixed`` given an Owner."""
    now = local.fleet.instances_now()
    served = []
    for item in instances:
        current = now[item.instance["InstanceId"]]
        tags = list(current.get("Tags") or ())
        if item.instance["InstanceId"] in fixed:
            tags = [t for t in tags if t["Key"] != "Owner"] + [{"Key": "Owner", "Value": "iam@example.com"}]
        served.append(dataclasses.replace(item, instance={**current, "Tags": tags}))
    return served


def fleet_state(local: LocalDeployment) -> dict[str, tuple[str, str | None]]:
    """Instance id -> (state, its mark's date or None), as EC2 serves them now."""
    return {
        instance_id: (
            str(item["State"]["Name"]),
            next((str(t["Value"]) for t in item.get("Tags") or () if t["Key"] == MARK_KEY), None),
        )
        for instance_id, item in local.fleet.instances_now().items()
    }


def _expect(
    scenario: str, found: dict[str, tuple[str, str | None]], wanted: dict[str, tuple[str, str | None]]
) -> None:
    got = {i: found.get(i) for i in wanted}
    if got != wanted:
        raise AssertionError(f"scenario {scenario}: the fleet is {got}, wanted {wanted}")


def single_account_fleet() -> list[FleetInstance]:
    return [i for i in iter_fleet_document(demo_fleet(instances_per_region=4, seed=5)) if i.region in REGIONS]


@contextmanager
def _multipart_completion_fails_once() -> Iterator[None]:
    """Every upload_fileobj goes multipart (threshold 1 byte) and each key's first completion
    answers 500: boto3 aborts that upload, the step's Retry writes it again."""
    import functools

    import boto3.s3.inject
    from boto3.s3.transfer import TransferConfig
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    original = BaseClient._make_api_call
    failed: set[str] = set()

    def make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if operation_name == "CompleteMultipartUpload" and api_params.get("Key") not in failed:
            failed.add(str(api_params.get("Key")))
            error = {
                "Error": {"Code": "InternalError", "Message": "injected"},
                "ResponseMetadata": {"HTTPStatusCode": 500},
            }
            raise ClientError(error, operation_name)
        return original(client, operation_name, api_params)

    with (
        mock.patch.object(
            boto3.s3.inject, "TransferConfig", functools.partial(TransferConfig, multipart_threshold=1)
        ),
        mock.patch.object(BaseClient, "_make_api_call", make_api_call),
    ):
        yield


@contextmanager
def _failing(module_name: str, function: str) -> Iterator[None]:
    """The step does its work, then fails permanently (a bug, a malformed object)."""
    import importlib

    module = importlib.import_module(module_name)
    original = getattr(module, function)

    def fail(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)
        raise PermanentError("injected by the IAM check's fault scenario")

    with mock.patch.object(module, function, fail):
        yield


class Runner:
    def __init__(self, local: LocalDeployment, observations: Observations) -> None:
        self.local = local
        self.observations = observations
        observations.state_machine_name = local.state_machine_arn.rsplit(":", 1)[-1]

    def run(
        self,
        scenario: str,
        modes: tuple[str, ...],
        execution_input: dict[str, Any],
        *,
        expect: str = "SUCCEEDED",
        start: Callable[[], str] | None = None,
    ) -> Execution:
        recorder = self.observations.recorder
        self.observations.modes[scenario] = modes
        hops = len(self.local.routing.deliveries)
        with recorder.recording(scenario):
            arn = start() if start else self.local.start(execution_input, name=scenario)
        self.observations.deliveries += [(scenario, d) for d in self.local.routing.deliveries[hops:]]
        with recorder.recording(scenario):
            description = self.local.engine.wait(arn, timeout=300)
            history = self.local.engine.history(arn)
            self.local.drain_notifications()
            self.local.drain_dead_letters()
        if description["status"] != expect:
            raise AssertionError(
                f"scenario {scenario}: {description['status']} (wanted {expect}): {description.get('cause')}"
            )
        sfn = self.local.engine.client("stepfunctions")
        for run in sfn.list_map_runs(executionArn=arn).get("mapRuns", []):
            counts = sfn.describe_map_run(mapRunArn=run["mapRunArn"])["itemCounts"]
            self.observations.map_runs.append((scenario, run["mapRunArn"], int(counts["total"])))
        started_by = next((by for s, a, by in recorder.executions if a == arn), "harness")
        execution = Execution(arn, description["status"], scenario, history, execution_input, started_by)
        self.observations.executions.append(execution)
        return execution


def event_start(
    local: LocalDeployment, events: list[dict[str, Any]], now: str, name: str
) -> Callable[[], str]:
    """CloudTrail's events through EventBridge (the rules, a member's forwarding, the central bus)
    into the events queue, handed on as one batch by the Pipe (:meth:`LocalDeployment.deliver_events`)."""

    def start() -> str:
        put, started = local.deliver_events(events, now=now, name=name)
        assert put.queued == len(events) and len(started) == 1, (put, started)
        return started[0]

    return start


@contextmanager
def deployed_policy(local: LocalDeployment, policy: dict[str, Any]) -> Iterator[None]:
    """Another deployed (default) policy for a while: event runs evaluate with it."""
    s3 = local.engine.client("s3")
    before = s3.get_object(Bucket=BUCKET, Key=layout.DEFAULT_POLICY_KEY)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=layout.DEFAULT_POLICY_KEY, Body=json.dumps(policy).encode())
    try:
        yield
    finally:
        s3.put_object(Bucket=BUCKET, Key=layout.DEFAULT_POLICY_KEY, Body=before)


def creations(resources: list[FleetResource], account: str) -> list[dict[str, Any]]:
    """One creating call's event (an Identity Center user) per resource, in ``account``."""
    from tests.unit.test_events import SSO, created

    return [
        created(
            SSO,
            r.resource_type,
            RESOURCE_TYPES[r.resource_type].resource_id(r.resource),
            account=account,
            region=r.region,
        )
        for r in resources
    ]


def one_of_each_type(resources: list[FleetResource], account: str, region: str) -> list[FleetResource]:
    chosen: dict[str, FleetResource] = {}
    for resource in resources:
        if (resource.account_id or CENTRAL_ACCOUNT) == account and resource.region == region:
            chosen.setdefault(resource.resource_type, resource)
    return list(chosen.values())


def approved_exemption(local: LocalDeployment) -> None:
    """An exemption file in the bucket (tagwarden exempt): every run reads it."""
    document, key = new_exemption_file(
        "i-0aaaaaaaaaaaaaaa1",
        days=30,
        reason="IAM check",
        approved_by="iam@example.com",
        today=date(2026, 12, 1),
    )
    local.engine.client("s3").put_object(Bucket=BUCKET, Key=key, Body=json.dumps(document).encode())


def launches(instances: list[FleetInstance], account: str) -> list[dict[str, Any]]:
    """RunInstances events (an Identity Center user) for these instances, in ``account``."""
    from tests.unit.test_events import SSO, launch

    return [
        launch(SSO, item.instance["InstanceId"], account=account, region=item.region) for item in instances
    ]


def run_single_account(observations: Observations, schedule_input: dict[str, Any]) -> None:
    """Happy path, drift (second run), notify modes, dry run, faults, Distributed Map, a scheduled run."""
    with LocalDeployment(
        single_account_fleet(),
        regions=list(REGIONS),
        retry_wait_scale=0,
        extra_environment={
            config.DISTRIBUTED_MAP_THRESHOLD: str(DISTRIBUTED_THRESHOLD),
            config.SECURITY_HUB: "true",  # every template imports (security_hub=true)
        },
    ) as local:
        runner = Runner(local, observations)
        observations.recorder.instances_now = local.fleet.instances_now
        approved_exemption(local)
        runner.run("first run, notify always", EVERY_MODE, {"notify": "always"})
        family = [
            r for r in demo_resources(demo_fleet(instances_per_region=4, seed=5)) if r.region in REGIONS
        ]
        local.fleet.replace(single_account_fleet(), resources=family)
        runner.run(
            "the EC2 family (volumes, snapshots, images, interfaces)",
            EVERY_MODE,
            {"policy": FINOPS_POLICY, "notify": "never"},
        )
        local.fleet.replace(single_account_fleet())
        # In the deployment's own region: the central rule on its default bus (no forwarding).
        mine = [i for i in single_account_fleet() if i.region == local.region][:3]
        runner.run(
            "event run: launches named by CloudTrail events",
            EVERY_MODE,
            {},
            start=event_start(
                local, launches(mine, CENTRAL_ACCOUNT), "2026-12-01T10:15:00+00:00", "event-launches"
            ),
        )
        untagged = [i for i in single_account_fleet() if i.region == local.region][3:6]
        local.fleet.replace(single_account_fleet(), resources=family)
        created_here = one_of_each_type(family, CENTRAL_ACCOUNT, local.region)
        with (
            local.function_environment("list-instances", {config.TAG_CREATED_BY: "true"}),
            deployed_policy(local, FINOPS_POLICY),
        ):
            runner.run(
                "event run: CreatedBy tags on untagged launches and creations",
                (SINGLE, ORGANIZATION),  # a targets deployment does not scan its own account
                {},
                start=event_start(
                    local,
                    launches(untagged, CENTRAL_ACCOUNT) + creations(created_here, CENTRAL_ACCOUNT),
                    AFTER_ANY_GRACE_PERIOD,
                    "event-tags",
                ),
            )
        local.fleet.replace(single_account_fleet())
        with _failing("lambdas.plan_event_run", "plan_event_run_step"):
            failed_event_run = runner.run(
                "event run: planning fails permanently (dead letter)",
                EVERY_MODE,
                {},
                start=event_start(
                    local,
                    launches(mine, CENTRAL_ACCOUNT),
                    "2026-12-01T10:15:00+00:00",
                    "event-planning-fails",
                ),
                expect="FAILED",
            )
        deliver_failed_execution_event(
            local, observations.recorder, failed_event_run, local.events_state_machine_arn
        )
        runner.run(
            "four regions (Distributed Map)", EVERY_MODE, {"regions": [*REGIONS, "us-west-2", "eu-central-1"]}
        )
        runner.run("second run, notify new_violations (drift)", EVERY_MODE, {"notify": "new_violations"})
        runner.run("notify never", EVERY_MODE, {"notify": "never"})
        runner.run("dry run", EVERY_MODE, {"dry_run": True, "regions": [REGIONS[0]]})
        runner.run(
            "policy_uri that does not exist (invalid input)",
            EVERY_MODE,
            {"policy_uri": f"s3://{BUCKET}/policies/does-not-exist.json"},
            expect="FAILED",
        )
        with _multipart_completion_fails_once():
            runner.run(
                "multipart uploads whose first completion fails", EVERY_MODE, {"regions": [REGIONS[0]]}
            )
            runner.run(
                "dry run, multipart uploads whose first completion fails",
                EVERY_MODE,
                {"regions": [REGIONS[1]], "dry_run": True},
            )
        with _failing("lambdas.persist_report", "persist_report"):
            failed = runner.run(
                "persist fails permanently (dead letter)", EVERY_MODE, {"notify": "always"}, expect="FAILED"
            )
        deliver_failed_execution_event(local, observations.recorder, failed)
        with _failing("lambdas.notify", "notify"):
            runner.run("notify fails (dead letter)", EVERY_MODE, {"notify": "always"}, expect="FAILED")
        run_remediation_single_account(local, runner)

        def scheduled() -> str:
            with observations.recorder.acting_as("scheduler"):
                sfn = local.engine.client("stepfunctions")
                return str(
                    sfn.start_execution(
                        stateMachineArn=local.state_machine_arn,
                        name="scheduled-run",
                        input=json.dumps(schedule_input),
                    )["executionArn"]
                )

        runner.run("scheduled run (EventBridge Scheduler)", (SINGLE,), schedule_input, start=scheduled)


def run_remediation_single_account(local: LocalDeployment, runner: Runner) -> None:
    """Staged remediation in the deployment's own account (the remediate role's own grants): a
    real lifecycle, a dry run whose actions upload fails once, an event run's dry run."""
    region = REGIONS[0]
    stopped, protected, fixed, stray = (f"i-0000000000000a00{n}" for n in range(1, 5))
    instances = [
        staged_instance(CENTRAL_ACCOUNT, region, stopped),
        staged_instance(CENTRAL_ACCOUNT, region, protected),
        staged_instance(CENTRAL_ACCOUNT, region, fixed),
        # Compliant, with a mark Tagwarden did not place: unmarked on the first run.
        staged_instance(CENTRAL_ACCOUNT, region, stray, {"Owner": "iam@example.com", MARK_KEY: "2026-01-01"}),
    ]
    local.fleet.replace(instances)
    run_input = {"policy": STAGED_POLICY, "regions": [region], "notify": "always"}
    # The own-account grants are the single-account and organisation templates' (a targets
    # deployment remediates member accounts only, through their remediation roles).
    modes = (SINGLE, ORGANIZATION)
    with local.function_environment("validate-input", {config.REMEDIATION: "true"}):
        first = "remediation: noncompliant instances marked, a mark Tagwarden did not place removed"
        with on_day(MARK_DAY):
            runner.run(first, modes, run_input)
        marked = ("running", STOP_DAY)
        _expect(
            first,
            fleet_state(local),
            {stopped: marked, protected: marked, fixed: marked, stray: ("running", None)},
        )
        local.fleet.replace(as_served_now(local, instances, fixed={fixed}))
        local.fleet.stop_protected.add(protected)
        second = (
            "remediation after the stop date: a stop, a stop-protected instance, a fixed instance unmarked"
        )
        with on_day(STOP_DAY):
            runner.run(second, modes, run_input)
        local.fleet.stop_protected.discard(protected)
        _expect(
            second,
            fleet_state(local),
            {
                stopped: ("stopped", STOP_DAY),
                protected: marked,
                fixed: ("running", None),
                stray: ("running", None),
            },
        )
        # A dry run changes nothing on EC2: every template's remediate role may do it. Its actions
        # upload fails once (boto3 aborts it); the step fails and the run records that.
        with _multipart_completion_fails_once():
            runner.run(
                "remediation dry run, the actions upload's first completion fails",
                EVERY_MODE,
                {"policy": DRY_STAGED_POLICY, "regions": [region]},
            )
    local.fleet.replace(single_account_fleet())
    mine = [i for i in single_account_fleet() if i.region == local.region][:3]
    with (
        local.function_environment("plan-event-run", {config.REMEDIATION: "true"}),
        deployed_policy(local, DRY_STAGED_POLICY),
    ):
        runner.run(
            "event run: remediation (dry run) after the event run's report",
            EVERY_MODE,
            {},
            start=event_start(
                local, launches(mine, CENTRAL_ACCOUNT), "2026-12-01T10:15:00+00:00", "event-remediation"
            ),
        )


def run_remediation_member_accounts(local: LocalDeployment, runner: Runner) -> None:
    """Staged remediation of member accounts' instances through their remediation roles: marked
    (a targets run), stopped and unmarked after the stop date (a targets run, one stop a run), the
    other stop the next day (an organisation-wide run)."""
    region = REGIONS[0]
    for account in ACCOUNTS:
        local.members.add_remediation_role(account)
    stop = {a: f"i-0000000000000{n}01" for n, a in enumerate(ACCOUNTS, start=1)}
    fix = {a: f"i-0000000000000{n}02" for n, a in enumerate(ACCOUNTS, start=1)}
    instances = [staged_instance(a, region, i) for a in ACCOUNTS for i in (stop[a], fix[a])]
    local.fleet.replace(instances)
    targets_input = {
        "targets": [{"account_id": a, "regions": [region]} for a in ACCOUNTS],
        "policy": STAGED_POLICY,
        "notify": "always",
    }
    first, second = ACCOUNTS
    marked = ("running", STOP_DAY)
    with local.function_environment("validate-input", {config.REMEDIATION: "true"}):
        name = "targets remediation: member accounts' instances marked through their remediation roles"
        with on_day(MARK_DAY):
            runner.run(name, (TARGETS, ORGANIZATION), targets_input)
        _expect(name, fleet_state(local), dict.fromkeys([*stop.values(), *fix.values()], marked))
        local.fleet.replace(as_served_now(local, instances, fixed=set(fix.values())))
        name = "targets remediation after the stop date: stopped (one a run) and unmarked through the roles"
        with on_day(STOP_DAY):
            runner.run(name, (TARGETS, ORGANIZATION), targets_input)
        _expect(
            name,
            fleet_state(local),
            {
                stop[first]: ("stopped", STOP_DAY),
                stop[second]: marked,
                **dict.fromkeys(fix.values(), ("running", None)),
            },
        )
        name = "organisation remediation: the other member account's instance stopped the next day"
        with on_day(NEXT_DAY):
            runner.run(
                name,
                (ORGANIZATION,),
                {
                    "organization": True,
                    "exclude_accounts": [NO_ROLE_ACCOUNT],
                    "regions": [region],
                    "policy": STAGED_POLICY,
                    "notify": "always",
                },
            )
        _expect(name, fleet_state(local), {stop[second]: ("stopped", STOP_DAY)})
    local.fleet.replace(fleet())


def run_multi_account(
    observations: Observations, targets_schedule_input: dict[str, Any], org_schedule_input: dict[str, Any]
) -> None:
    """Targets (one account without the role: a partial scan), organisation mode, Distributed Map."""
    with LocalDeployment(
        fleet(),
        regions=list(REGIONS),
        retry_wait_scale=0,
        extra_environment={
            config.DISTRIBUTED_MAP_THRESHOLD: str(DISTRIBUTED_THRESHOLD),
            config.SECURITY_HUB: "true",  # every template imports (security_hub=true)
        },
    ) as local:
        local.members.add_account(NO_ROLE_ACCOUNT, role=False)
        runner = Runner(local, observations)
        observations.recorder.instances_now = local.fleet.instances_now
        approved_exemption(local)
        runner.run(
            "targets, one account without the member role (partial scan)",
            (TARGETS,),
            {
                "targets": [
                    {"account_id": ACCOUNTS[0], "regions": [REGIONS[0]]},
                    {"account_id": NO_ROLE_ACCOUNT, "regions": [REGIONS[0]]},
                ],
                "notify": "always",
            },
        )

        def scheduled_targets() -> str:
            with observations.recorder.acting_as("scheduler"):
                sfn = local.engine.client("stepfunctions")
                return str(
                    sfn.start_execution(
                        stateMachineArn=local.state_machine_arn,
                        name="scheduled-targets-run",
                        input=json.dumps(targets_schedule_input),
                    )["executionArn"]
                )

        runner.run(
            "targets, scheduled (Distributed Map)",
            (TARGETS,),
            targets_schedule_input,
            start=scheduled_targets,
        )
        local.fleet.replace(fleet(), resources=family_resources(fleet()), covered=FAMILY_LISTED)
        runner.run(
            "targets, the EC2 family (volumes, snapshots, images, interfaces)",
            (TARGETS, ORGANIZATION),
            {"targets": [{"account_id": a} for a in ACCOUNTS], "policy": FINOPS_POLICY, "notify": "always"},
        )
        local.fleet.replace(fleet())
        member_instances = [i for i in fleet() if i.account_id == ACCOUNTS[0]][:2]
        family = family_resources(fleet())
        local.fleet.replace(fleet(), resources=family, covered=FAMILY_LISTED)
        member_creations = [r for region in REGIONS for r in one_of_each_type(family, ACCOUNTS[0], region)]
        with (
            local.function_environment("list-instances", {config.TAG_CREATED_BY: "true"}),
            deployed_policy(local, FINOPS_POLICY),
        ):
            runner.run(
                "event run: a member account's launches and creations, through its role (CreatedBy tags)",
                (TARGETS, ORGANIZATION),
                {},
                start=event_start(
                    local,
                    launches(member_instances, ACCOUNTS[0]) + creations(member_creations, ACCOUNTS[0]),
                    AFTER_ANY_GRACE_PERIOD,
                    "event-member-launches",
                ),
            )
        local.fleet.replace(fleet())
        local.members.remove_role(NO_ROLE_ACCOUNT)
        # Organisation mode: every account, both regions, above the threshold: the Distributed Map.

        def scheduled() -> str:
            with observations.recorder.acting_as("scheduler"):
                sfn = local.engine.client("stepfunctions")
                return str(
                    sfn.start_execution(
                        stateMachineArn=local.state_machine_arn,
                        name="scheduled-organization-run",
                        input=json.dumps(org_schedule_input),
                    )["executionArn"]
                )

        runner.run(
            "organisation, scheduled (Distributed Map)", (ORGANIZATION,), org_schedule_input, start=scheduled
        )
        runner.run(
            "organisation, exclude accounts, notify always",
            (ORGANIZATION,),
            {
                "organization": True,
                "exclude_accounts": [NO_ROLE_ACCOUNT],
                "notify": "always",
                "regions": [REGIONS[0]],
            },
        )
        run_remediation_member_accounts(local, runner)


def deliver_failed_execution_event(
    local: LocalDeployment, recorder: Recorder, execution: Execution, state_machine_arn: str | None = None
) -> None:
    """What the failed-executions rule's target does: the status-change event into the queue.

    The event is the one Step Functions sends to EventBridge; ``check`` matches it against the
    rule's pattern from the template before counting the delivery as the rule's.
    """
    event = failed_execution_event(state_machine_arn or local.state_machine_arn, execution)
    with recorder.recording(execution.scenario), recorder.acting_as("events-rule"):
        local.engine.client("sqs").send_message(QueueUrl=local.queue_url, MessageBody=json.dumps(event))
    local.drain_dead_letters()


def failed_execution_event(state_machine_arn: str, execution: Execution) -> dict[str, Any]:
    return {
        "version": "0",
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {
            "executionArn": execution.arn,
            "stateMachineArn": state_machine_arn,
            "status": execution.status,
        },
    }


def run_all(schedule_inputs: dict[str, dict[str, Any]]) -> Observations:
    """Every scenario; ``schedule_inputs`` is each template's scheduled execution input."""
    observations = Observations(Recorder())
    try:
        run_single_account(observations, schedule_inputs[SINGLE])
        run_multi_account(observations, schedule_inputs[TARGETS], schedule_inputs[ORGANIZATION])
    finally:
        observations.recorder.instances_now = None  # the deployments' fleets are gone
    return observations
