"""The "Remediate" step (:func:`workflow.steps.remediate.remediate`) against in-memory fakes of S3,
EC2 and STS: what it calls, what it records (actions, notices, record, summary) and how failures
are caught, recorded and raised after everything is written. No network, no moto."""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.unit.builders import instance
from workflow import layout
from workflow.config import RemediateConfig
from workflow.errors import RemediationIncomplete
from workflow.evaluator import evaluate_instance
from workflow.policy import compile_policy
from workflow.remediation import ASG_TAG, MARK_KEY, record_key
from workflow.steps import remediate as remediate_module
from workflow.steps.remediate import remediate
from workflow.storage import put_json, put_jsonl_gz

BUCKET = "tagwarden-reports"
OWN = "123456789012"
MEMBER = "444455556666"
DENIED = "777788889999"
REGION = "eu-west-1"
OTHER_REGION = "us-east-1"
RUN_ID = "r1"
DT = "2026-12-09"
STARTED = datetime(2026, 12, 9, 6, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 9, 6, 30, tzinfo=UTC)
STAMP = "2026-12-09T06:30:00Z"
POLICY_NAME = "staged"
STATE_KEY = layout.remediation_state_key(POLICY_NAME)
SUMMARY_KEY = layout.summary_key(DT, RUN_ID)
FINDINGS_KEY = layout.findings_key(DT, RUN_ID)
ACTIONS_KEY = layout.actions_key(DT, RUN_ID)
NOTICES_KEY = layout.remediation_notices_key(RUN_ID)
POLICY_KEY = layout.policy_key(RUN_ID)
WRITE_CALLS = frozenset({"create_tags", "delete_tags", "stop_instances"})


def client_error(code: str, operation: str, message: str = "refused", status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


# --- fakes -----------------------------------------------------------------------------------


class FakeS3:
    """Exactly what workflow.storage calls: get/put/list/upload, with S3's conditional writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.calls: list[tuple[str, str]] = []
        # key -> callbacks run (once each, in order) just before a conditional put of that key is
        # checked: another writer getting there first.
        self.interfere: dict[str, list[Callable[[], None]]] = {}

    @staticmethod
    def etag(body: bytes) -> str:
        return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self.calls.append(("get_object", Key))
        if (Bucket, Key) not in self.objects:
            raise client_error("NoSuchKey", "GetObject", status=404)
        body = self.objects[(Bucket, Key)]
        return {"Body": io.BytesIO(body), "ETag": self.etag(body), "Metadata": {}}

    def put_object(
        self,
        *,
        Bucket: str,
        Key: str,
        Body: bytes,
        IfMatch: str | None = None,
        IfNoneMatch: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        conditional = IfMatch is not None or IfNoneMatch is not None
        self.calls.append(("put_object_if" if conditional else "put_object", Key))
        if conditional:
            for callback in self.interfere.pop(Key, []):
                callback()
            current = self.objects.get((Bucket, Key))
            if IfNoneMatch == "*" and current is not None:
                raise client_error("PreconditionFailed", "PutObject", status=412)
            if IfMatch is not None and (current is None or self.etag(current) != IfMatch):
                raise client_error("PreconditionFailed", "PutObject", status=412)
        self.objects[(Bucket, Key)] = bytes(Body)
        return {"ETag": self.etag(bytes(Body))}

    def list_objects_v2(self, *, Bucket: str, Prefix: str, MaxKeys: int = 1000) -> dict[str, Any]:
        self.calls.append(("list_objects_v2", Prefix))
        keys = sorted(k for b, k in self.objects if b == Bucket and k.startswith(Prefix))[:MaxKeys]
        return {"Contents": [{"Key": k} for k in keys]} if keys else {}

    def upload_fileobj(self, Fileobj: Any, Bucket: str, Key: str, ExtraArgs: Any = None) -> None:
        self.calls.append(("upload_fileobj", Key))
        self.objects[(Bucket, Key)] = Fileobj.read()

    # for the tests
    def json(self, key: str) -> Any:
        return json.loads(self.objects[(BUCKET, key)])

    def jsonl_gz(self, key: str) -> list[dict[str, Any]]:
        body = gzip.decompress(self.objects[(BUCKET, key)])
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def has(self, key: str) -> bool:
        return (BUCKET, key) in self.objects


class FakePaginator:
    def __init__(self, ec2: FakeEc2) -> None:
        self.ec2 = ec2

    def paginate(self, *, InstanceIds: list[str]) -> Iterator[dict[str, Any]]:
        # Like botocore, the request is made when the pages are read.
        self.ec2.calls.append(("describe_instances", {"InstanceIds": list(InstanceIds)}))
        self.ec2.check("describe_instances", InstanceIds)
        missing = [i for i in InstanceIds if i not in self.ec2.instances]
        if missing:
            raise client_error(
                "InvalidInstanceID.NotFound", "DescribeInstances", f"The instance IDs {missing} do not exist"
            )
        instances = [copy.deepcopy(self.ec2.instances[i]) for i in InstanceIds]
        yield {"Reservations": [{"OwnerId": self.ec2.account, "Instances": instances}]}


class FakeEc2:
    """One account's region: its instances (describe-instances shaped), and errors on demand."""

    def __init__(self, account: str, region: str, instances: list[dict[str, Any]] | None = None) -> None:
        self.account, self.region = account, region
        self.instances: dict[str, dict[str, Any]] = {}
        for item in instances or ():
            self.add(item)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.protected: set[str] = set()
        # operation -> ids: any request naming one of them is refused (UnauthorizedOperation).
        self.refuse: dict[str, set[str]] = {}
        # operation -> error raised by every request.
        self.broken: dict[str, Exception] = {}

    def add(self, item: dict[str, Any]) -> None:
        self.instances[item["InstanceId"]] = copy.deepcopy(item)

    def check(self, operation: str, ids: list[str]) -> None:
        if operation in self.broken:
            raise self.broken[operation]
        refused = self.refuse.get(operation, set()) & set(ids)
        if refused:
            raise client_error("UnauthorizedOperation", operation, f"not allowed on {sorted(refused)}")

    def _known(self, operation: str, ids: list[str]) -> None:
        missing = [i for i in ids if i not in self.instances]
        if missing:
            raise client_error("InvalidInstanceID.NotFound", operation, f"{missing} do not exist")

    def tags(self, instance_id: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self.instances[instance_id].get("Tags") or ()}

    def state(self, instance_id: str) -> str:
        return str(self.instances[instance_id]["State"]["Name"])

    def set_tags(self, instance_id: str, tags: dict[str, str]) -> None:
        self.instances[instance_id]["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]

    def create_tags(self, *, Resources: list[str], Tags: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append(("create_tags", {"Resources": list(Resources), "Tags": Tags}))
        self.check("create_tags", Resources)
        self._known("CreateTags", Resources)
        for instance_id in Resources:
            self.set_tags(instance_id, {**self.tags(instance_id), **{t["Key"]: t["Value"] for t in Tags}})
        return {}

    def delete_tags(self, *, Resources: list[str], Tags: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append(("delete_tags", {"Resources": list(Resources), "Tags": Tags}))
        self.check("delete_tags", Resources)
        self._known("DeleteTags", Resources)
        gone = {t["Key"] for t in Tags}
        for instance_id in Resources:
            self.set_tags(instance_id, {k: v for k, v in self.tags(instance_id).items() if k not in gone})
        return {}

    def get_paginator(self, name: str) -> FakePaginator:
        assert name == "describe_instances"
        return FakePaginator(self)

    def describe_instance_attribute(self, *, InstanceId: str, Attribute: str) -> dict[str, Any]:
        self.calls.append(("describe_instance_attribute", {"InstanceId": InstanceId, "Attribute": Attribute}))
        self.check("describe_instance_attribute", [InstanceId])
        self._known("DescribeInstanceAttribute", [InstanceId])
        assert Attribute == "disableApiStop"
        return {"InstanceId": InstanceId, "DisableApiStop": {"Value": InstanceId in self.protected}}

    def stop_instances(self, *, InstanceIds: list[str]) -> dict[str, Any]:
        self.calls.append(("stop_instances", {"InstanceIds": list(InstanceIds)}))
        self.check("stop_instances", InstanceIds)
        self._known("StopInstances", InstanceIds)
        for instance_id in InstanceIds:
            self.instances[instance_id]["State"] = {"Name": "stopping"}
        return {}

    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        return [call for call in self.calls if call[0] in WRITE_CALLS]

    def called(self, operation: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == operation]


class FakeSts:
    def __init__(self, denied: set[str] | None = None) -> None:
        self.denied = denied or set()
        self.calls: list[dict[str, Any]] = []

    def assume_role(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        account = request["RoleArn"].split(":")[4]
        if account in self.denied:
            raise client_error("AccessDenied", "AssumeRole", f"not authorized to assume {request['RoleArn']}")
        return {
            "Credentials": {
                "AccessKeyId": f"AK{account}",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": "2026-12-09T07:00:00Z",
            }
        }


# --- the world a test runs the step in -------------------------------------------------------

BASE_POLICY: dict[str, Any] = {
    "version": 1,
    "name": POLICY_NAME,
    "rules": [{"key": "Owner"}],
    "remediation": {"mark_after_days": 0, "stop_after_days": 7, "dry_run": False, "max_stops_per_run": 10},
}


def box(
    instance_id: str, tags: dict[str, str] | None = None, *, state: str = "running", region: str = REGION
) -> dict[str, Any]:
    return instance(
        tags or {},
        instance_id=instance_id,
        state=state,
        zone=f"{region}a",
        launched="2026-11-01T00:00:00+00:00",
    )


def ours(stop_on: str, *, since: str = "2026-11-25", mode: str = "real") -> dict[str, Any]:
    return {"noncompliant_since": since, "stop_on": stop_on, "mode": mode}


def key(instance_id: str, account: str = OWN, region: str = REGION) -> str:
    return record_key(account, region, instance_id)


class World:
    def __init__(self, *, remediation: dict[str, Any] | None = None, policy: dict[str, Any] | None = None):
        self.s3 = FakeS3()
        self.sts = FakeSts()
        self.ec2: dict[tuple[str, str], FakeEc2] = {}
        self.factory_calls: list[tuple[str, dict[str, str] | None]] = []
        self.policy = copy.deepcopy(policy if policy is not None else BASE_POLICY)
        if remediation is not None:
            self.policy["remediation"] = {**self.policy["remediation"], **remediation}
        self.config = RemediateConfig(report_bucket=BUCKET, max_stops_per_run=100)
        self.extra_summary: dict[str, Any] = {"totals": {"instances": 0}}
        self.scanned: list[str] | None = None
        # The account whose EC2 client the step gets without assumed credentials.
        self.own_account = OWN

    def target(self, account: str = OWN, region: str = REGION) -> FakeEc2:
        return self.ec2.setdefault((account, region), FakeEc2(account, region))

    def ec2_factory(self, region: str, credentials: dict[str, str] | None) -> FakeEc2:
        self.factory_calls.append((region, credentials))
        account = self.own_account if credentials is None else credentials["AccessKeyId"][2:]
        return self.target(account, region)

    def record(self, instances: dict[str, Any]) -> None:
        put_json(self.s3, BUCKET, STATE_KEY, {"run_id": "r0", "instances": instances})

    def scan(self) -> list[dict[str, Any]]:
        """Findings of every instance as they are now (the scan), written where the step reads them."""
        policy = compile_policy(self.policy)
        findings = []
        for (account, region), ec2 in sorted(self.ec2.items()):
            for item in ec2.instances.values():
                findings.append(
                    dict(evaluate_instance(item, policy, region=region, account_id=account, now=STARTED))
                )
        put_jsonl_gz(self.s3, BUCKET, FINDINGS_KEY, findings)
        scanned = self.scanned if self.scanned is not None else [f"{a}/{r}" for a, r in sorted(self.ec2)]
        put_json(
            self.s3,
            BUCKET,
            SUMMARY_KEY,
            {**self.extra_summary, "scanned_targets": {t: {"instances": 1} for t in scanned}},
        )
        put_json(self.s3, BUCKET, POLICY_KEY, self.policy)
        return findings

    def event(self, *, execution_id: str | None = None) -> dict[str, Any]:
        return {
            "run": {
                "run_id": RUN_ID,
                "bucket": BUCKET,
                "policy_key": POLICY_KEY,
                "policy_name": POLICY_NAME,
                "started_at": STARTED.isoformat(),
                "dt": DT,
                "execution_id": execution_id
                if execution_id is not None
                else f"arn:aws:states:{REGION}:{OWN}:execution:tagwarden:{RUN_ID}",
            },
            "report": {"summary_key": SUMMARY_KEY, "findings_key": FINDINGS_KEY},
        }

    def run(self, *, scan: bool = True, now: datetime = NOW, **event: Any) -> dict[str, Any]:
        if scan:
            self.scan()
        return remediate(
            self.event(**event),
            self.config,
            s3=self.s3,
            ec2_factory=self.ec2_factory,
            sts=self.sts,
            now=now,
        )

    # what the step wrote
    def actions(self) -> list[dict[str, Any]]:
        return self.s3.jsonl_gz(ACTIONS_KEY)

    def rows(self) -> set[tuple[str, str, str]]:
        return {(r["resource_id"], r["action"], r["outcome"]) for r in self.actions()}

    def by_id(self, action: str) -> dict[str, dict[str, Any]]:
        return {r["resource_id"]: r for r in self.actions() if r["action"] == action}

    def saved_record(self) -> dict[str, Any]:
        document: dict[str, Any] = self.s3.json(STATE_KEY)
        return document

    def section(self) -> dict[str, Any]:
        section: dict[str, Any] = self.s3.json(SUMMARY_KEY)["remediation"]
        return section

    def notices(self) -> dict[str, Any]:
        notices: dict[str, Any] = self.s3.json(NOTICES_KEY)
        return notices

    def all_writes(self) -> list[tuple[str, dict[str, Any]]]:
        return [call for ec2 in self.ec2.values() for call in ec2.writes()]


# --- disabled --------------------------------------------------------------------------------


def test_a_policy_without_remediation_returns_disabled_and_touches_nothing() -> None:
    world = World(policy={"version": 1, "name": POLICY_NAME, "rules": [{"key": "Owner"}]})
    world.target().add(box("i-1"))
    world.scan()
    before = dict(world.s3.objects)
    world.s3.calls.clear()
    assert world.run(scan=False) == {"enabled": False}
    assert world.s3.objects == before
    assert [name for name, _ in world.s3.calls] == ["get_object"]  # the policy only
    assert world.factory_calls == []
    assert world.sts.calls == []


# --- dry run ---------------------------------------------------------------------------------


def test_a_dry_run_makes_no_ec2_write_calls_and_records_dry_run_outcomes() -> None:
    world = World(remediation={"dry_run": True})
    ec2 = world.target()
    ec2.add(box("i-new"))  # noncompliant: would be marked
    ec2.add(box("i-fixed", {"Owner": "ana", MARK_KEY: "2026-12-08"}))  # compliant, marked: would unmark
    ec2.add(box("i-due"))  # dry-run record past its date: would be stopped
    world.record(
        {
            key("i-due"): ours("2026-12-02", mode="dry_run"),
            key("i-fixed"): ours("2026-12-08", mode="dry_run"),
        }
    )
    result = world.run()
    assert world.all_writes() == []
    assert {ec2.state(i) for i in ec2.instances} == {"running"}
    assert MARK_KEY not in ec2.tags("i-new")
    assert world.rows() == {
        ("i-new", "mark", "dry_run"),
        ("i-fixed", "unmark", "dry_run"),
        ("i-due", "stop", "dry_run"),
    }
    assert all(row["dry_run"] is True and row["error"] is None for row in world.actions())
    assert result == {
        "enabled": True,
        "dry_run": True,
        "marked": 1,
        "stopped": 1,
        "unmarked": 1,
        "skipped": 0,
        "failed": 0,
        "actions_key": ACTIONS_KEY,
    }
    section = world.section()
    assert (section["dry_run"], section["stopped_ids"]) == (True, ["i-due"])
    # Stopped (in a dry run: would be): no longer "marked for a later stop".
    assert world.notices() == {"dry_run": True, "stop_on": {"i-new": "2026-12-16"}}
    instances = world.saved_record()["instances"]
    assert instances == {
        key("i-new"): ours("2026-12-16", since="2026-12-09", mode="dry_run"),
        key("i-due"): ours("2026-12-02", mode="dry_run"),
    }


def test_a_dry_run_stop_candidate_still_obeys_the_limit_and_stop_protection() -> None:
    world = World(remediation={"dry_run": True, "max_stops_per_run": 1})
    ec2 = world.target()
    for name in ("i-a", "i-b", "i-c"):
        ec2.add(box(name))
    ec2.protected.add("i-a")
    world.record({key(i): ours("2026-12-01", mode="dry_run") for i in ("i-a", "i-b", "i-c")})
    world.run()
    stops = world.by_id("stop")
    assert (stops["i-a"]["outcome"], stops["i-a"]["reason"]) == ("skipped", "stop protection is on")
    assert (stops["i-b"]["outcome"], stops["i-c"]["outcome"]) == ("dry_run", "skipped")
    assert stops["i-c"]["reason"] == "the run's stop limit was reached"
    assert world.all_writes() == []


# --- real marks, failures while tagging ------------------------------------------------------


def test_marks_are_placed_in_one_batch_per_date_with_the_run_dates_stop_day() -> None:
    world = World()
    ec2 = world.target()
    ec2.add(box("i-a"))
    ec2.add(box("i-b"))
    ec2.add(box("i-moved", {MARK_KEY: "2099-01-01"}))  # our record says 2026-12-12: restored
    world.record({key("i-moved"): ours("2026-12-12")})
    # Acting days after the run started (a redrive): the dates are still the run's.
    world.run(now=datetime(2026, 12, 11, 9, 0, tzinfo=UTC))
    assert ec2.called("create_tags") == [
        {"Resources": ["i-moved"], "Tags": [{"Key": MARK_KEY, "Value": "2026-12-12"}]},
        {"Resources": ["i-a", "i-b"], "Tags": [{"Key": MARK_KEY, "Value": "2026-12-16"}]},
    ]
    assert ec2.tags("i-moved") == {MARK_KEY: "2026-12-12"}
    assert world.by_id("mark")["i-moved"]["reason"] == "restored (was '2099-01-01')"
    assert {r["at"] for r in world.actions()} == {"2026-12-11T09:00:00Z"}


def test_more_marks_than_one_batch_are_split_into_batches_of_tag_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remediate_module, "TAG_BATCH", 2)
    world = World()
    ec2 = world.target()
    for n in range(5):
        ec2.add(box(f"i-{n}"))
    world.run()
    assert [c["Resources"] for c in ec2.called("create_tags")] == [["i-0", "i-1"], ["i-2", "i-3"], ["i-4"]]
    assert world.section()["marked"] == 5


def test_a_refused_mark_batch_is_retried_per_instance_and_only_the_bad_one_fails() -> None:
    world = World()
    ec2 = world.target()
    for name in ("i-a", "i-bad", "i-c"):
        ec2.add(box(name))
    ec2.refuse["create_tags"] = {"i-bad"}
    with pytest.raises(RemediationIncomplete, match=r"1 remediation action\(s\) failed .*mark i-bad"):
        world.run()
    assert [c["Resources"] for c in ec2.called("create_tags")] == [
        ["i-a", "i-bad", "i-c"],
        ["i-a"],
        ["i-bad"],
        ["i-c"],
    ]
    assert ec2.tags("i-a") == ec2.tags("i-c") == {MARK_KEY: "2026-12-16"}
    assert MARK_KEY not in ec2.tags("i-bad")
    # Raised after everything was written: the actions, the notices, the record, the summary.
    marks = world.by_id("mark")
    assert {i: r["outcome"] for i, r in marks.items()} == {"i-a": "done", "i-bad": "failed", "i-c": "done"}
    assert "UnauthorizedOperation" in marks["i-bad"]["error"]
    assert marks["i-a"]["error"] is None
    instances = world.saved_record()["instances"]
    assert "stop_on" not in instances[key("i-bad")]
    assert instances[key("i-bad")]["noncompliant_since"] == "2026-12-09"
    assert instances[key("i-a")]["stop_on"] == "2026-12-16"
    assert world.notices()["stop_on"] == {"i-a": "2026-12-16", "i-c": "2026-12-16"}
    section = world.section()
    assert (section["marked"], section["failed"], section["marked_now"]) == (2, 1, 2)
    assert section["failures"] == [f"mark i-bad: {marks['i-bad']['error']}"]


def test_a_failed_mark_is_placed_afresh_by_the_next_run() -> None:
    world = World()
    ec2 = world.target()
    ec2.add(box("i-bad"))
    ec2.refuse["create_tags"] = {"i-bad"}
    with pytest.raises(RemediationIncomplete):
        world.run()
    ec2.refuse.clear()
    world.run()
    assert ec2.tags("i-bad") == {MARK_KEY: "2026-12-16"}
    assert world.by_id("mark")["i-bad"]["reason"] == "noncompliant"


def test_a_refused_unmark_is_recorded_failed_and_the_others_are_unmarked() -> None:
    world = World()
    ec2 = world.target()
    ec2.add(box("i-a", {"Owner": "ana", MARK_KEY: "2026-12-10"}))
    ec2.add(box("i-bad", {"Owner": "bo", MARK_KEY: "2026-12-10"}))
    ec2.refuse["delete_tags"] = {"i-bad"}
    world.record({key("i-a"): ours("2026-12-10"), key("i-bad"): ours("2026-12-10")})
    with pytest.raises(RemediationIncomplete, match="unmark i-bad"):
        world.run()
    assert ec2.tags("i-a") == {"Owner": "ana"}
    assert world.rows() == {("i-a", "unmark", "done"), ("i-bad", "unmark", "failed")}
    assert world.saved_record()["instances"] == {}
    assert world.section()["unmarked"] == 1


# --- stop candidates, checked again ----------------------------------------------------------


def stop_world(*names: str, **remediation: Any) -> tuple[World, FakeEc2]:
    """Instances marked by us, due on the run's day, still noncompliant at the scan."""
    world = World(remediation=remediation or None)
    ec2 = world.target()
    for name in names:
        ec2.add(box(name, {MARK_KEY: "2026-12-09"}))
    world.record({key(name): ours("2026-12-09") for name in names})
    world.scan()
    return world, ec2


def test_a_due_running_noncompliant_instance_is_stopped() -> None:
    world, ec2 = stop_world("i-a")
    result = world.run(scan=False)
    assert ec2.called("stop_instances") == [{"InstanceIds": ["i-a"]}]
    assert ec2.state("i-a") == "stopping"
    assert world.by_id("stop")["i-a"]["outcome"] == "done"
    assert (result["stopped"], world.section()["stopped_ids"]) == (1, ["i-a"])
    assert world.saved_record()["instances"] == {key("i-a"): ours("2026-12-09")}


def test_a_stop_candidate_that_no_longer_exists_is_skipped_and_forgotten() -> None:
    world, ec2 = stop_world("i-a", "i-gone")
    del ec2.instances["i-gone"]
    world.run(scan=False)
    stops = world.by_id("stop")
    assert (stops["i-gone"]["outcome"], stops["i-gone"]["reason"]) == ("skipped", "no longer exists")
    # The batch describe failed on the unknown id; asked one by one, the other is still stopped.
    assert stops["i-a"]["outcome"] == "done"
    assert [c["InstanceIds"] for c in ec2.called("describe_instances")] == [
        ["i-a", "i-gone"],
        ["i-a"],
        ["i-gone"],
    ]
    assert set(world.saved_record()["instances"]) == {key("i-a")}
    assert world.section()["skipped"] == {"no longer exists": 1}


@pytest.mark.parametrize("state", ["stopped", "stopping", "pending"])
def test_a_stop_candidate_no_longer_running_is_skipped(state: str) -> None:
    world, ec2 = stop_world("i-a")
    ec2.instances["i-a"]["State"] = {"Name": state}
    world.run(scan=False)
    row = world.by_id("stop")["i-a"]
    assert (row["outcome"], row["reason"]) == ("skipped", f"not running ({state})")
    assert ec2.called("stop_instances") == []
    assert key("i-a") in world.saved_record()["instances"]


def test_a_stop_candidate_compliant_when_checked_again_is_unmarked_not_stopped() -> None:
    world, ec2 = stop_world("i-a")
    ec2.set_tags("i-a", {"Owner": "ana", MARK_KEY: "2026-12-09"})  # fixed after the scan
    result = world.run(scan=False)
    assert ec2.called("stop_instances") == []
    assert ec2.state("i-a") == "running"
    assert ec2.tags("i-a") == {"Owner": "ana"}
    assert world.rows() == {("i-a", "unmark", "done")}
    assert world.by_id("unmark")["i-a"]["reason"] == "compliant when checked before the stop"
    assert world.saved_record()["instances"] == {}
    assert (result["stopped"], result["unmarked"]) == (0, 1)


def test_an_instance_unmarked_at_the_stop_check_gets_no_marked_for_stop_notice() -> None:
    world, ec2 = stop_world("i-a")
    ec2.set_tags("i-a", {"Owner": "ana", MARK_KEY: "2026-12-09"})
    world.run(scan=False)
    assert "i-a" not in world.notices()["stop_on"]
    assert world.section()["marked_now"] == 0


def test_a_stop_protected_candidate_is_skipped() -> None:
    world, ec2 = stop_world("i-a", "i-b")
    ec2.protected.add("i-a")
    world.run(scan=False)
    stops = world.by_id("stop")
    assert (stops["i-a"]["outcome"], stops["i-a"]["reason"]) == ("skipped", "stop protection is on")
    assert stops["i-b"]["outcome"] == "done"
    assert ec2.called("stop_instances") == [{"InstanceIds": ["i-b"]}]


def test_a_candidate_whose_mark_changed_since_the_scan_is_skipped() -> None:
    world, ec2 = stop_world("i-a")
    ec2.set_tags("i-a", {MARK_KEY: "2027-01-01"})
    world.run(scan=False)
    row = world.by_id("stop")["i-a"]
    assert (row["outcome"], row["reason"]) == ("skipped", "its mark changed since the scan")
    assert ec2.called("stop_instances") == []


def test_a_candidate_put_in_an_auto_scaling_group_since_the_scan_is_skipped() -> None:
    world, ec2 = stop_world("i-a")
    ec2.set_tags("i-a", {MARK_KEY: "2026-12-09", ASG_TAG: "web"})
    world.run(scan=False)
    row = world.by_id("stop")["i-a"]
    assert (row["outcome"], row["reason"]) == ("skipped", "in an Auto Scaling group")


@pytest.mark.parametrize(
    ("policy_limit", "deployment_limit", "stopped"),
    [(5, 2, 2), (1, 10, 1), (3, 3, 3), (0, 10, 0), (10, 0, 0), (10, 10, 4)],
)
def test_stops_are_limited_to_the_smaller_of_the_policy_and_deployment_limits(
    policy_limit: int, deployment_limit: int, stopped: int
) -> None:
    world, ec2 = stop_world("i-a", "i-b", "i-c", "i-d", max_stops_per_run=policy_limit)
    world.config = RemediateConfig(report_bucket=BUCKET, max_stops_per_run=deployment_limit)
    result = world.run(scan=False)
    assert len(ec2.called("stop_instances")) == result["stopped"] == stopped
    section = world.section()
    assert section["max_stops_per_run"] == min(policy_limit, deployment_limit)
    over = 4 - stopped
    assert section["skipped"] == ({"the run's stop limit was reached": over} if over else {})
    # Those over the limit stay marked and recorded for the next run.
    assert set(world.saved_record()["instances"]) == {key(i) for i in ("i-a", "i-b", "i-c", "i-d")}
    assert all(ec2.tags(i)[MARK_KEY] == "2026-12-09" for i in ec2.instances)


def test_the_stop_limit_is_for_the_whole_run_across_targets() -> None:
    world = World(remediation={"max_stops_per_run": 3})
    records = {}
    for region in (REGION, OTHER_REGION):
        for name in ("i-a", "i-b"):
            world.target(OWN, region).add(box(f"{name}-{region}", {MARK_KEY: "2026-12-09"}, region=region))
            records[key(f"{name}-{region}", OWN, region)] = ours("2026-12-09")
    world.record(records)
    result = world.run()
    assert result["stopped"] == 3
    assert sum(len(ec2.called("stop_instances")) for ec2 in world.ec2.values()) == 3


def test_a_refused_stop_is_recorded_failed_and_raised_after_everything_is_written() -> None:
    world, ec2 = stop_world("i-a", "i-b")
    ec2.refuse["stop_instances"] = {"i-a"}
    with pytest.raises(RemediationIncomplete, match="stop i-a"):
        world.run(scan=False)
    stops = world.by_id("stop")
    assert (stops["i-a"]["outcome"], stops["i-b"]["outcome"]) == ("failed", "done")
    assert "UnauthorizedOperation" in stops["i-a"]["error"]
    assert world.section()["stopped_ids"] == ["i-b"]
    assert key("i-a") in world.saved_record()["instances"]


def test_when_describe_instances_fails_every_candidate_is_recorded_failed() -> None:
    world, ec2 = stop_world("i-a", "i-b")
    ec2.broken["describe_instances"] = EndpointConnectionError(endpoint_url="https://ec2.eu-west-1")
    with pytest.raises(RemediationIncomplete, match="2 remediation action"):
        world.run(scan=False)
    assert world.rows() == {("i-a", "stop", "failed"), ("i-b", "stop", "failed")}
    assert ec2.called("stop_instances") == []


def test_when_the_stop_protection_check_fails_the_candidate_is_failed_not_stopped() -> None:
    world, ec2 = stop_world("i-a")
    ec2.refuse["describe_instance_attribute"] = {"i-a"}
    with pytest.raises(RemediationIncomplete):
        world.run(scan=False)
    assert world.rows() == {("i-a", "stop", "failed")}
    assert ec2.called("stop_instances") == []


# --- accounts and roles ----------------------------------------------------------------------


def test_a_member_account_is_acted_on_with_its_assumed_remediation_role() -> None:
    world = World()
    world.config = RemediateConfig(
        report_bucket=BUCKET, remediation_role_name="TagwardenRemediate", member_external_id="ext-1"
    )
    member = world.target(MEMBER)
    member.add(box("i-m"))
    world.target(OWN).add(box("i-own"))
    world.run()
    assert world.sts.calls == [
        {
            "RoleArn": f"arn:aws:iam::{MEMBER}:role/TagwardenRemediate",
            "RoleSessionName": f"tagwarden-remediate-{RUN_ID}",
            "DurationSeconds": 900,
            "ExternalId": "ext-1",
        }
    ]
    assert sorted(world.factory_calls, key=lambda c: c[1] is not None) == [
        (REGION, None),
        (REGION, {"AccessKeyId": f"AK{MEMBER}", "SecretAccessKey": "secret", "SessionToken": "token"}),
    ]
    assert member.tags("i-m") == {MARK_KEY: "2026-12-16"}


def test_the_self_account_is_acted_on_without_assuming_a_role() -> None:
    world = World()
    world.own_account = layout.SELF_ACCOUNT
    world.target(layout.SELF_ACCOUNT).add(box("i-1"))
    world.run(execution_id="")
    assert world.sts.calls == []
    assert world.factory_calls == [(REGION, None)]
    assert world.rows() == {("i-1", "mark", "done")}


def test_an_unassumable_member_role_fails_only_that_accounts_actions() -> None:
    world = World()
    world.sts.denied.add(DENIED)
    world.target(OWN).add(box("i-own"))
    world.target(MEMBER).add(box("i-member"))
    denied = world.target(DENIED)
    denied.add(box("i-d1"))
    denied.add(box("i-d2", {"Owner": "ana", MARK_KEY: "2026-12-01"}))
    with pytest.raises(RemediationIncomplete, match="2 remediation action"):
        world.run()
    assert world.rows() == {
        ("i-own", "mark", "done"),
        ("i-member", "mark", "done"),
        ("i-d1", "mark", "failed"),
        ("i-d2", "unmark", "failed"),
    }
    failed = [r for r in world.actions() if r["outcome"] == "failed"]
    assert {r["account_id"] for r in failed} == {DENIED}
    assert all("AccessDenied" in r["error"] and DENIED in r["error"] for r in failed)
    assert denied.calls == []
    assert all(creds is None or creds["AccessKeyId"] != f"AK{DENIED}" for _, creds in world.factory_calls)
    section = world.section()
    assert (section["marked"], section["unmarked"], section["failed"]) == (2, 0, 2)


def test_a_mark_not_placed_because_the_role_was_refused_is_not_recorded_as_placed() -> None:
    world = World()
    world.sts.denied.add(DENIED)
    world.target(DENIED).add(box("i-d1"))
    with pytest.raises(RemediationIncomplete):
        world.run()
    assert "stop_on" not in world.saved_record()["instances"][key("i-d1", DENIED)]
    assert "i-d1" not in world.notices()["stop_on"]


# --- the record ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [[], "a string", {"run_id": "x"}, {"instances": []}, {"instances": "x"}, {"instances": None}],
)
def test_a_corrupt_record_raises_before_any_ec2_call(document: Any) -> None:
    world = World()
    world.target().add(box("i-1"))
    world.scan()
    put_json(world.s3, BUCKET, STATE_KEY, document)
    summary_before = world.s3.objects[(BUCKET, SUMMARY_KEY)]
    with pytest.raises(RemediationIncomplete, match="is not a Tagwarden record; nothing was done"):
        world.run(scan=False)
    assert world.factory_calls == []
    assert world.sts.calls == []
    assert not world.s3.has(ACTIONS_KEY)
    assert world.s3.objects[(BUCKET, SUMMARY_KEY)] == summary_before
    assert world.s3.json(STATE_KEY) == document


def test_the_first_record_is_created_only_if_still_absent() -> None:
    world = World()
    world.target().add(box("i-1"))
    world.run()
    assert world.saved_record() == {
        "run_id": RUN_ID,
        "instances": {key("i-1"): ours("2026-12-16", since="2026-12-09")},
    }


def test_a_conflicting_record_write_is_merged_and_retried() -> None:
    world = World()
    ec2 = world.target()
    ec2.add(box("i-a"))
    world.target(MEMBER)  # scanned too (no instances)
    unscanned_old = key("i-old", DENIED)
    world.record(
        {
            key("i-gone"): ours("2026-12-12"),  # scanned, no finding: dropped
            unscanned_old: ours("2026-12-20"),  # not scanned: kept
        }
    )
    theirs = {
        "run_id": "concurrent",
        "instances": {
            key("i-a"): ours("2027-01-01", since="2026-01-01"),  # scanned by us: ours wins
            key("i-theirs", MEMBER): ours("2027-01-02"),  # scanned by us, no finding: ours (none)
            key("i-new", DENIED): ours("2027-01-03"),  # not scanned by us: theirs kept
            unscanned_old: ours("2026-12-20"),
        },
    }

    def concurrent_write() -> None:
        put_json(world.s3, BUCKET, STATE_KEY, theirs)

    world.s3.interfere[STATE_KEY] = [concurrent_write]
    world.run()
    assert world.s3.calls.count(("put_object_if", STATE_KEY)) == 2
    assert world.saved_record() == {
        "run_id": RUN_ID,
        "instances": {
            key("i-a"): ours("2026-12-16", since="2026-12-09"),
            key("i-new", DENIED): ours("2027-01-03"),
            unscanned_old: ours("2026-12-20"),
        },
    }


def test_a_record_created_concurrently_on_the_first_write_is_merged() -> None:
    world = World()
    world.target().add(box("i-a"))

    def concurrent_create() -> None:
        put_json(world.s3, BUCKET, STATE_KEY, {"instances": {key("i-x", DENIED): ours("2027-01-03")}})

    world.s3.interfere[STATE_KEY] = [concurrent_create]
    world.run()
    assert set(world.saved_record()["instances"]) == {key("i-a"), key("i-x", DENIED)}


def test_a_conflict_keeps_their_newer_entries_for_targets_this_run_did_not_scan() -> None:
    world = World()
    world.target().add(box("i-a"))
    unscanned = key("i-b", DENIED)
    unscanned_dropped = key("i-c", DENIED)
    world.record({unscanned: ours("2026-12-10"), unscanned_dropped: ours("2026-12-10")})

    def concurrent_write() -> None:
        # The other run scanned DENIED's region: it restored i-b with a new date and forgot i-c.
        put_json(world.s3, BUCKET, STATE_KEY, {"instances": {unscanned: ours("2027-02-02")}})

    world.s3.interfere[STATE_KEY] = [concurrent_write]
    world.run()
    instances = world.saved_record()["instances"]
    assert instances[unscanned] == ours("2027-02-02")
    assert unscanned_dropped not in instances


def test_a_record_that_keeps_changing_raises_after_three_attempts() -> None:
    world = World()
    world.target().add(box("i-a"))
    writes = iter(range(100))

    def concurrent_write() -> None:
        put_json(world.s3, BUCKET, STATE_KEY, {"instances": {}, "n": next(writes)})
        world.s3.interfere[STATE_KEY] = [concurrent_write]

    world.s3.interfere[STATE_KEY] = [concurrent_write]
    with pytest.raises(RemediationIncomplete, match="kept changing under concurrent runs"):
        world.run()
    assert world.s3.calls.count(("put_object_if", STATE_KEY)) == 3
    assert world.s3.has(ACTIONS_KEY)  # the actions are recorded
    # The EC2 work was done.
    assert world.target().tags("i-a") == {MARK_KEY: "2026-12-16"}


# --- what is written -------------------------------------------------------------------------


def test_the_summary_gets_a_remediation_section_with_every_count() -> None:
    world = World(remediation={"max_stops_per_run": 1, "mark_after_days": 2, "notify_owner": False})
    ec2 = world.target()
    ec2.add(box("i-waits"))  # first seen today: waits two days
    ec2.add(box("i-mark"))  # noncompliant since long ago: marked
    ec2.add(box("i-stop1", {MARK_KEY: "2026-12-01"}))
    ec2.add(box("i-stop2", {MARK_KEY: "2026-12-02"}))  # over the limit
    ec2.add(box("i-fixed", {"Owner": "ana", MARK_KEY: "2026-12-20"}))
    ec2.add(box("i-asg", {ASG_TAG: "web"}))
    ec2.add(box("i-off", state="stopped"))
    world.record(
        {
            key("i-mark"): {"noncompliant_since": "2026-12-01"},
            key("i-stop1"): ours("2026-12-01"),
            key("i-stop2"): ours("2026-12-02"),
            key("i-fixed"): ours("2026-12-20"),
        }
    )
    world.extra_summary = {"totals": {"instances": 7}, "noncompliant": 6}
    result = world.run()
    summary = world.s3.json(SUMMARY_KEY)
    assert summary["totals"] == {"instances": 7}
    assert summary["noncompliant"] == 6
    assert summary["remediation"] == {
        "dry_run": False,
        "marked": 1,
        "stopped": 1,
        "unmarked": 1,
        "stopped_ids": ["i-stop1"],
        "skipped": {"the run's stop limit was reached": 1},
        "failed": 0,
        "failures": [],
        "waiting": 1,
        "ineligible": {"auto_scaling_group": 1, "not_running": 1},
        "marked_now": 2,  # the one stopped in this run is no longer "marked for a later stop"
        "max_stops_per_run": 1,
        "notify_owner": False,
        "actions_key": ACTIONS_KEY,
        "notices_key": NOTICES_KEY,
    }
    assert result == {
        "enabled": True,
        "dry_run": False,
        "marked": 1,
        "stopped": 1,
        "unmarked": 1,
        "skipped": 1,
        "failed": 0,
        "actions_key": ACTIONS_KEY,
    }
    assert world.notices() == {
        "dry_run": False,
        "stop_on": {"i-mark": "2026-12-16", "i-stop2": "2026-12-02"},  # i-stop1 was stopped
    }


def test_each_action_row_has_the_actions_table_columns() -> None:
    world = World()
    world.target().add(box("i-a", {"Owner": "ana", MARK_KEY: "2026-12-20"}))
    world.target().add(box("i-b"))
    world.record({key("i-a"): ours("2026-12-20")})
    world.run()
    rows = sorted(world.actions(), key=lambda r: r["resource_id"])
    assert rows == [
        {
            "run_id": RUN_ID,
            "policy_name": POLICY_NAME,
            "at": STAMP,
            "account_id": OWN,
            "region": REGION,
            "resource_id": "i-a",
            "owner": "ana",
            "action": "unmark",
            "outcome": "done",
            "dry_run": False,
            "stop_on": "2026-12-20",
            "reason": "compliant",
            "error": None,
        },
        {
            "run_id": RUN_ID,
            "policy_name": POLICY_NAME,
            "at": STAMP,
            "account_id": OWN,
            "region": REGION,
            "resource_id": "i-b",
            "owner": None,
            "action": "mark",
            "outcome": "done",
            "dry_run": False,
            "stop_on": "2026-12-16",
            "reason": "noncompliant",
            "error": None,
        },
    ]


def test_a_run_with_nothing_to_do_writes_an_empty_actions_object() -> None:
    world = World()
    world.target().add(box("i-a", {"Owner": "ana"}))
    result = world.run()
    assert world.actions() == []
    assert world.factory_calls == []  # no action: no client
    assert (result["marked"], result["stopped"], result["unmarked"]) == (0, 0, 0)
    assert world.saved_record()["instances"] == {}


def test_volumes_in_the_findings_are_left_alone() -> None:
    world = World()
    world.target().add(box("i-a", {"Owner": "ana"}))
    findings = world.scan()
    volume = {**findings[0], "resource_type": "volume", "resource_id": "vol-1", "compliant": False}
    put_jsonl_gz(world.s3, BUCKET, FINDINGS_KEY, [*findings, volume])
    world.run(scan=False)
    assert world.actions() == []


@pytest.mark.parametrize("code", ["RequestLimitExceeded", "UnauthorizedOperation"])
def test_a_refused_describe_before_a_stop_is_a_failure_not_a_vanished_instance(code: str) -> None:
    world, ec2 = stop_world("i-a", "i-b")
    ec2.broken["describe_instances"] = client_error(code, "DescribeInstances")
    with pytest.raises(RemediationIncomplete):
        world.run(scan=False)
    assert world.rows() == {("i-a", "stop", "failed"), ("i-b", "stop", "failed")}
    assert set(world.saved_record()["instances"]) == {key("i-a"), key("i-b")}
