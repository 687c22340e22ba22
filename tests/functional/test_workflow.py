"""End-to-end executions of the real ASL with the real handlers on the embedded engine."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.functional.history import payload_sizes, states_entered, task_errors
from workflow import layout
from workflow.engine.local import BUCKET, LocalDeployment
from workflow.errors import AccessDenied
from workflow.fleet import FleetInstance, demo_fleet, iter_fleet_document

HAPPY_PATH = [
    "Validate input",
    "Input valid?",
    "Many targets?",
    "Scan regions",
    "List EC2 instances",
    "Listing complete?",
    "Evaluate tag compliance",
    "Persist report",
    "Dry run?",
    "Remediation?",
    "Remediation not used",
    "Register partitions",
    "Security Hub?",
    "Security Hub not used",
    "Notify?",
    "Notify",
    "Scan complete",
]


def fleet(per_region: int, seed: int = 7, regions: tuple[str, ...] | None = None) -> list[FleetInstance]:
    items = list(iter_fleet_document(demo_fleet(instances_per_region=per_region, seed=seed)))
    return [i for i in items if regions is None or i.region in regions]


def keys(local: LocalDeployment, prefix: str = "") -> dict[str, str]:
    s3 = local.engine.client("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj["ETag"]
    return out


def test_happy_path_persists_report_registers_partitions_and_notifies(local: LocalDeployment) -> None:
    local.fleet.replace(fleet(10, regions=("us-east-1",)))
    result = local.run({"regions": ["us-east-1"], "notify": "always"}, name="happy-path")
    assert result.status == "SUCCEEDED", result.cause
    assert states_entered(result.history) == HAPPY_PATH
    assert task_errors(result.history) == []
    assert result.summary is not None
    in_scope = [i for i in fleet(10, regions=("us-east-1",)) if i.instance["State"]["Name"] != "terminated"]
    assert result.summary["totals"]["total"] == len(in_scope) == len(result.findings)
    assert {f["run_id"] for f in result.findings} == {"happy-path"}
    assert {f["instance_id"] for f in result.findings} == {i.instance["InstanceId"] for i in in_scope}
    dt = result.summary["evaluated_at"][:10]
    stored = keys(local)
    assert layout.findings_key(dt, "happy-path") in stored
    assert layout.summary_key(dt, "happy-path") in stored
    pointer = json.loads(
        local.engine.client("s3").get_object(Bucket=BUCKET, Key=layout.LATEST_RUN_KEY)["Body"].read()
    )
    assert pointer["run_id"] == "happy-path"
    assert [dt, "happy-path"] in local.partitions("findings")
    assert [dt, "happy-path"] in local.partitions("runs")
    assert result.output is not None
    assert result.output["catalog"] == {"registered": ["findings", "runs"], "existing": []}
    [message] = result.notifications
    noncompliant = result.summary["totals"]["noncompliant"]
    assert (
        message["subject"]
        == f"[tagwarden local] {noncompliant} of {len(in_scope)} EC2 instances noncompliant"
    )
    assert message["attributes"] == {
        "kind": "summary",  # owner digests are kind "owner-digest" (their own subscription filter)
        "environment": "local",
        "severity": "high" if result.summary["totals"]["compliance_percentage"] < 80 else "medium",
        "noncompliant_count": str(noncompliant),
        "partial": "false",
        "incomplete": "false",
    }
    assert "Report: s3://tagwarden-reports-local/reports/findings/dt=" in message["body"]
    assert "console.aws.amazon.com/states/home" in message["body"]
    assert result.dead_letters == []


def test_summary_json_is_one_line_for_athena(local: LocalDeployment) -> None:
    local.fleet.replace(fleet(5, regions=("us-east-1",)))
    result = local.run({"regions": ["us-east-1"], "notify": "never"}, name="one-line-summary")
    assert result.summary is not None
    body = (
        local.engine.client("s3")
        .get_object(
            Bucket=BUCKET, Key=layout.summary_key(result.summary["evaluated_at"][:10], "one-line-summary")
        )["Body"]
        .read()
    )
    assert body.count(b"\n") == 1 and body.endswith(b"\n")


def test_every_region_is_scanned_in_its_own_map_iteration(local: LocalDeployment) -> None:
    local.fleet.replace(fleet(8))
    result = local.run({"notify": "never"}, name="multi-region")
    assert result.status == "SUCCEEDED", result.cause
    assert result.summary is not None
    assert set(result.summary["by_region"]) == {"us-east-1", "eu-west-1", "ap-southeast-2"}
    assert sum(1 for e in result.history if e["type"] == "MapIterationSucceeded") == 3
    assert {f["region"] for f in result.findings} == {"us-east-1", "eu-west-1", "ap-southeast-2"}
    assert result.notifications == []


def test_an_empty_region_is_scanned_but_nothing_evaluated_is_never_called_compliant(
    local: LocalDeployment,
) -> None:
    local.fleet.replace([])
    local.fleet.empty_regions = {"us-east-1"}
    try:
        result = local.run({"regions": ["us-east-1"], "notify": "violations"}, name="empty-fleet")
    finally:
        local.fleet.empty_regions = set()
    assert result.status == "SUCCEEDED", result.cause
    assert result.summary is not None
    assert result.summary["totals"] == {
        "total": 0,
        "compliant": 0,
        "noncompliant": 0,
        "exempt": 0,
        "in_grace_period": 0,
        "compliance_percentage": None,
    }
    coverage = result.summary["coverage"]
    assert coverage["targets"] == {"asked": 1, "scanned": 1, "not_scanned": 0, "scanned_empty": 1}
    assert coverage["nothing_evaluated"] is True and coverage["complete"] is True
    assert result.summary["by_region"] == {"us-east-1": {"compliant": 0, "noncompliant": 0}}
    assert result.summary["incomplete"] is True
    # Nothing evaluated is told whatever the notify mode: silence would read as all clear.
    assert "Notify" in states_entered(result.history)
    [message] = result.notifications
    assert message["subject"] == "[tagwarden local] NOTHING EVALUATED: no EC2 instance was scanned"
    assert "nothing evaluated" in message["body"] and "100" not in message["body"].split("Coverage")[0]
    assert message["attributes"]["incomplete"] == "true"


def test_throttled_listing_is_retried_then_succeeds(local: LocalDeployment) -> None:
    local.fleet.replace(fleet(5, regions=("eu-west-1",)))
    local.fleet.throttle("eu-west-1", 2)
    result = local.run({"regions": ["eu-west-1"], "notify": "never"}, name="throttled-then-ok")
    assert result.status == "SUCCEEDED", result.cause
    assert task_errors(result.history) == [("List EC2 instances", "Throttled")] * 2
    assert states_entered(result.history).count("List EC2 instances") == 1
    assert result.dead_letters == []


def test_throttling_beyond_the_retry_budget_fails_into_the_dead_letter_queue(local: LocalDeployment) -> None:
    local.fleet.replace(fleet(5, regions=("eu-west-1",)))
    local.fleet.throttle("eu-west-1", 100)
    try:
        result = local.run({"regions": ["eu-west-1"], "notify": "never"}, name="throttled-forever")
    finally:
        local.fleet.throttle("eu-west-1", 0)
    assert result.status == "FAILED"
    assert result.error == "Throttled"
    assert task_errors(result.history) == [("List EC2 instances", "Throttled")] * 6  # 1 try + 5 retries
    [letter] = result.dead_letters
    assert letter["failed_state"] == "Scan regions"
    assert json.loads(letter["cause"])["state"] == "List EC2 instances"
    assert json.loads(letter["cause"])["target"] == {"account_id": "self", "region": "eu-west-1"}
    assert letter["input"] == {"regions": ["eu-west-1"], "notify": "never"}
    assert letter["execution_name"] == "throttled-forever"


STEP_FAILURES = [
    ("validate_input", "validate_input", "Validate input", "Validate input"),
    ("list_instances", "list_instances", "List EC2 instances", "Scan regions"),
    ("evaluate_tags", "evaluate_tags", "Evaluate tag compliance", "Scan regions"),
    ("persist_report", "persist_report", "Persist report", "Persist report"),
    ("notify", "notify", "Notify", "Notify"),
]


@pytest.mark.parametrize(
    ("module", "function", "state", "failed_state"), STEP_FAILURES, ids=[s[0] for s in STEP_FAILURES]
)
def test_permanent_error_in_a_step_is_not_retried_and_lands_in_the_dead_letter_queue(
    local: LocalDeployment,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    function: str,
    state: str,
    failed_state: str,
) -> None:
    import importlib

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise AccessDenied(f"{state}: not authorized (test)")

    monkeypatch.setattr(importlib.import_module(f"lambdas.{module}"), function, denied)
    local.fleet.replace(fleet(3, regions=("us-east-1",)))
    execution_input = {"regions": ["us-east-1"], "notify": "always"}
    result = local.run(execution_input, name=f"permanent-{module.replace('_', '-')}")
    assert result.status == "FAILED"
    assert result.error == "AccessDenied"
    assert task_errors(result.history) == [(state, "AccessDenied")]
    [letter] = result.dead_letters
    assert letter["failed_state"] == failed_state
    assert letter["error"] == "AccessDenied"
    assert "not authorized (test)" in letter["cause"]
    assert letter["input"] == execution_input
    assert letter["execution_id"] == result.execution_arn
    if module != "notify":
        assert result.notifications == []


def test_a_partition_registration_failure_never_fails_a_persisted_run(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lambdas.register_partitions

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise AccessDenied("glue:BatchCreatePartition denied (test)")

    monkeypatch.setattr(lambdas.register_partitions, "register_partitions", denied)
    local.fleet.replace(fleet(3, regions=("us-east-1",)))
    result = local.run({"regions": ["us-east-1"], "notify": "always"}, name="partitions-denied")
    assert result.status == "SUCCEEDED", result.cause
    assert result.output is not None
    assert result.output["catalog"]["registered"] == []
    assert result.output["catalog"]["error"] == "AccessDenied"
    assert result.dead_letters == []
    body = result.notifications[0]["body"]
    assert "Athena cannot see this run yet: registering its partitions failed (AccessDenied" in body
    assert "partitions-denied" not in {run for _, run in local.partitions("findings")}


def test_a_repeated_run_finds_its_partitions_registered_and_is_not_an_error(local: LocalDeployment) -> None:
    local.fleet.replace(fleet(3, regions=("us-east-1",)))
    first = local.run({"regions": ["us-east-1"], "notify": "never"}, name="partitions-twice")
    assert first.status == "SUCCEEDED", first.cause
    # A second execution cannot reuse the name; replay the step's task as a redrive would.
    assert first.output is not None
    response = local.engine.client("lambda").invoke(
        FunctionName=local.function_arns["register-partitions"],
        Payload=json.dumps({"run": first.output["run"]}).encode(),
    )
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"registered": [], "existing": ["findings", "runs"]}
    assert task_errors(first.history) == []
    dt = first.output["run"]["dt"]
    assert local.partitions("findings").count([dt, "partitions-twice"]) == 1


@pytest.mark.parametrize(
    ("execution_input", "expected"),
    [
        (
            {"policy": {"version": 1, "name": "p", "rules": [{"key": "Owner", "pattern": "[a-"}]}},
            "$.policy.rules[0].pattern: not a valid regular expression",
        ),
        ({"regions": "us-east-1"}, "$.regions: 'us-east-1' is not of type 'array'"),
        ({"notify": "sometimes"}, "$.notify: 'sometimes' is not one of"),
        ({"dry_run": "yes"}, "$.dry_run: 'yes' is not of type 'boolean'"),
        ({"policy": {}, "policy_uri": "s3://b/k"}, "$: give either 'policy' or 'policy_uri', not both"),
        (
            {"policy_uri": "s3://tagwarden-reports-local/policies/missing.json"},
            "$.policy_uri: s3://tagwarden-reports-local/policies/missing.json does not exist",
        ),
        ({"regoins": ["us-east-1"]}, "$.regoins: unknown field"),
    ],
    ids=[
        "bad-regex",
        "regions-not-list",
        "notify-mode",
        "dry-run-type",
        "both-policies",
        "missing-uri",
        "typo",
    ],
)
def test_invalid_input_fails_with_every_problem_and_writes_nothing(
    local: LocalDeployment, execution_input: dict[str, Any], expected: str
) -> None:
    name = f"invalid-{abs(hash(json.dumps(execution_input, sort_keys=True))) % 10**8}"
    result = local.run(execution_input, name=name)
    assert result.status == "FAILED"
    assert result.error == "InvalidInput"
    assert result.cause is not None and expected in result.cause
    assert states_entered(result.history) == ["Validate input", "Input valid?", "Reject invalid input"]
    assert task_errors(result.history) == []
    assert keys(local, f"staging/{name}/") == {}
    assert result.notifications == [] and result.dead_letters == []


def test_dry_run_keeps_the_report_out_of_athena_and_notifies_nobody(local: LocalDeployment) -> None:
    local.fleet.replace(fleet(3, regions=("us-east-1",)))
    before = keys(local, "reports/")
    result = local.run({"regions": ["us-east-1"], "notify": "always", "dry_run": True}, name="dry-run")
    assert result.status == "SUCCEEDED", result.cause
    assert keys(local, "reports/") == before
    assert "Register partitions" not in states_entered(result.history)
    assert result.notifications == []
    assert result.summary is not None and result.summary["dry_run"] is True


def test_drift_lists_instances_that_changed_since_the_previous_run(local: LocalDeployment) -> None:
    first = fleet(6, regions=("us-east-1",))
    local.fleet.replace(first)
    one = local.run({"regions": ["us-east-1"], "notify": "never"}, name="drift-1")
    assert one.summary is not None
    noncompliant = sorted(one.summary["noncompliant_instance_ids"])
    fixed_id = noncompliant[0]
    fixed = [
        FleetInstance(
            i.account_id,
            i.region,
            {
                **i.instance,
                "Tags": [
                    {"Key": "Owner", "Value": "ana@example.com"},
                    {"Key": "CostCenter", "Value": "CC-0001"},
                    {"Key": "Environment", "Value": "prod"},
                ],
            },
        )
        if i.instance["InstanceId"] == fixed_id
        else i
        for i in first
    ]
    local.fleet.replace(fixed)
    two = local.run({"regions": ["us-east-1"], "notify": "new_violations"}, name="drift-2")
    assert two.summary is not None
    drift = two.summary["drift"]
    assert (drift["previous_run_id"], drift["newly_noncompliant"], drift["newly_compliant"]) == (
        "drift-1",
        [],
        [fixed_id],
    )
    assert drift["targets_compared"] == ["123456789012/us-east-1"]
    assert two.notifications == []  # nothing new became noncompliant


def test_replaying_every_task_of_a_run_changes_no_object(local: LocalDeployment) -> None:
    """A retry or a redrive repeats a step with the same payload: same keys, same bytes."""
    local.fleet.replace(fleet(6, regions=("us-east-1", "eu-west-1")))
    result = local.run({"regions": ["us-east-1", "eu-west-1"], "notify": "never"}, name="replayed")
    assert result.status == "SUCCEEDED", result.cause
    before = keys(local)
    scheduled = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in result.history
        if e["type"] == "TaskScheduled"
    ]
    lambda_client = local.engine.client("lambda")
    replayed = []
    for params in scheduled:
        function = params.get("FunctionName", "")
        if function.rsplit(":", 1)[-1] in {"tagwarden-register-partitions-local", "tagwarden-notify-local"}:
            continue
        if "Payload" in params:
            response = lambda_client.invoke(
                FunctionName=function, Payload=json.dumps(params["Payload"]).encode()
            )
            assert "FunctionError" not in response, response["Payload"].read()
            replayed.append(function.rsplit(":", 1)[-1])
    assert sorted(replayed) == sorted(
        ["tagwarden-validate-input-local"]
        + ["tagwarden-list-instances-local"] * 2
        + ["tagwarden-evaluate-tags-local"] * 2
        + ["tagwarden-persist-report-local"]
    )
    assert keys(local) == before


def test_every_state_payload_stays_under_8_kb_on_5000_instances(local: LocalDeployment) -> None:
    small = fleet(20)
    local.fleet.replace(small)
    few = local.run({"notify": "never"}, name="payload-small")
    large = fleet(1700)
    local.fleet.replace(large)
    many = local.run({"notify": "never"}, name="payload-5000", timeout=600)
    assert many.status == "SUCCEEDED", many.cause
    assert many.summary is not None and many.summary["totals"]["total"] >= 4500
    oversized = [s for s in payload_sizes(many.history) if s[2] >= 8 * 1024]
    assert oversized == []
    # Transitions grow with regions, never with instances.
    assert len(few.history) == len(many.history)


def test_an_instance_listed_twice_is_evaluated_once_and_counted_as_a_dropped_duplicate(
    local: LocalDeployment,
) -> None:
    """DescribeInstances pages can shift while a region changes; one instance, one finding."""
    items = fleet(4, regions=("eu-west-1",))
    local.fleet.replace([*items, items[0]])
    result = local.run({"regions": ["eu-west-1"], "notify": "never"}, name="listed-twice")
    assert result.status == "SUCCEEDED", result.cause
    assert result.summary is not None
    ids = [f["instance_id"] for f in result.findings]
    assert len(ids) == len(set(ids)) == result.summary["totals"]["total"]
    instances = result.summary["coverage"]["instances"]
    assert instances["duplicates_dropped"] == 1
    assert instances["listed"] == len(items) + 1
