"""Organisation-wide scanning, central side: what ``targets`` and ``organization`` change in the stack.

Three syntheses of the same test context (conftest): ``synthesized`` (single account), ``targets``
(two accounts, member role ``SecOpsTagScanner``) and ``organization``. A mode may change only the
list step's role and environment, the validate step's role (organization) or environment (another
role name), and the schedule's input; everything else, the Distributed Map grants included, is the
same template in all three.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from tagwarden_cdk.events import EVENT_BUS_OUTPUT
from tagwarden_cdk.orchestration import scheduled_input
from tagwarden_cdk.settings import MAX_TARGETS, Settings, SettingsError

from tests.infra.cfn import (
    all_policy_statements,
    expected,
    function_id,
    getatt,
    grants,
    objects,
    only,
    ref,
    role_of,
)
from tests.infra.conftest import MEMBER_EXTERNAL_ID, TARGET_ACCOUNTS, Synthesized
from tests.infra.test_functions import EC2_DESCRIBE, STAR_RESOURCE_ACTIONS
from workflow import config
from workflow.steps.validate_input import input_problems

PARTITION = {"Ref": "AWS::Partition"}
LIST = "tagwarden-test-list-instances"
VALIDATE = "tagwarden-test-validate-input"


def _role(synthesized: Synthesized, function_name: str) -> str:
    return role_of(synthesized.resources, function_id(synthesized.resources, function_name))


def _policy_of(synthesized: Synthesized, role_id: str) -> str:
    return only(synthesized.resources, "AWS::IAM::Policy", lambda p: ref(role_id) in p.get("Roles", []))


def _variables(synthesized: Synthesized, function_name: str) -> dict[str, Any]:
    function = synthesized.resources[function_id(synthesized.resources, function_name)]
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


def _schedule(synthesized: Synthesized) -> dict[str, Any]:
    schedule_id = only(synthesized.resources, "AWS::Scheduler::Schedule", lambda p: True)
    properties: dict[str, Any] = synthesized.resources[schedule_id]["Properties"]
    return properties


def _member_role(account: str, name: str) -> dict[str, Any]:
    return {"Fn::Join": ["", ["arn:", PARTITION, f":iam::{account}:role/{name}"]]}


def _bucket(synthesized: Synthesized) -> str:
    return only(
        synthesized.resources,
        "AWS::S3::Bucket",
        lambda p: "tagwarden-test-reports-" in str(p.get("BucketName")),
    )


def _single_account_list_grants(synthesized: Synthesized) -> set[Any]:
    log_group = synthesized.resources[function_id(synthesized.resources, LIST)]["Properties"]["LoggingConfig"]
    return expected(
        (["logs:CreateLogStream", "logs:PutLogEvents"], [getatt(log_group["LogGroup"]["Ref"])]),
        (["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"]),
        (EC2_DESCRIBE, ["*"]),
        (["s3:PutObject"], [objects(_bucket(synthesized), "staging/")]),
        (["s3:GetObject"], [{"Fn::Join": ["", [getatt(_bucket(synthesized)), "/staging/*/targets.json"]]}]),
    )


def _single_account_validate_grants(synthesized: Synthesized) -> set[Any]:
    log_group = synthesized.resources[function_id(synthesized.resources, VALIDATE)]["Properties"][
        "LoggingConfig"
    ]
    bucket = _bucket(synthesized)
    return expected(
        (["logs:CreateLogStream", "logs:PutLogEvents"], [getatt(log_group["LogGroup"]["Ref"])]),
        (["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"]),
        (["s3:GetObject"], [objects(bucket, "policies/"), objects(bucket, "exemptions/")]),
        (["s3:PutObject"], [objects(bucket, "staging/")]),
        (["s3:ListBucket"], [getatt(bucket)]),
    )


# --- IAM -----------------------------------------------------------------------------------------


def test_targets_mode_lets_the_list_role_assume_exactly_each_target_accounts_member_role(
    targets: Synthesized,
) -> None:
    assert grants(targets.resources, _role(targets, LIST)) == _single_account_list_grants(targets) | expected(
        (["sts:AssumeRole"], [_member_role(account, "SecOpsTagScanner") for account in TARGET_ACCOUNTS])
    )


def test_organization_mode_lets_the_list_role_assume_the_member_role_in_any_account(
    organization: Synthesized,
) -> None:
    assert grants(organization.resources, _role(organization, LIST)) == _single_account_list_grants(
        organization
    ) | expected(
        (
            ["sts:AssumeRole"],
            [_member_role("*", "TagwardenReadOnly")],
            # Only roles inside the list role's own organisation (test_trust_boundaries.py).
            {"StringEquals": {"aws:ResourceOrgID": "${aws:PrincipalOrgID}"}},
        )
    )


def test_single_account_list_role_assumes_nothing(synthesized: Synthesized) -> None:
    assert grants(synthesized.resources, _role(synthesized, LIST)) == _single_account_list_grants(synthesized)
    actions = {action for action, _, _ in grants(synthesized.resources, _role(synthesized, LIST))}
    assert not any(a.startswith("sts:") for a in actions)


def test_only_organization_mode_lets_the_validate_role_list_the_organisations_accounts(
    synthesized: Synthesized, targets: Synthesized, organization: Synthesized
) -> None:
    assert grants(organization.resources, _role(organization, VALIDATE)) == _single_account_validate_grants(
        organization
    ) | expected((["organizations:ListAccounts"], ["*"]))
    for other in (synthesized, targets):
        assert grants(other.resources, _role(other, VALIDATE)) == _single_account_validate_grants(other)


@pytest.mark.parametrize("mode", ["synthesized", "targets", "organization"])
def test_the_list_role_keeps_the_stable_name_member_trust_policies_name(
    mode: str, request: pytest.FixtureRequest
) -> None:
    synthesized: Synthesized = request.getfixturevalue(mode)
    assert synthesized.resources[_role(synthesized, LIST)]["Properties"]["RoleName"] == LIST


def test_star_resources_in_organization_mode_only_where_the_api_requires_it(
    organization: Synthesized,
) -> None:
    allowed = STAR_RESOURCE_ACTIONS | {"organizations:ListAccounts"}
    for logical_id, statement in all_policy_statements(organization.resources):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if "*" in resources:
            assert set(actions) <= allowed, (logical_id, statement)


# --- environment ---------------------------------------------------------------------------------


def test_the_list_step_gets_the_external_id_only_when_it_assumes_member_roles(
    synthesized: Synthesized, targets: Synthesized, organization: Synthesized
) -> None:
    assert _variables(targets, LIST)[config.MEMBER_EXTERNAL_ID] == MEMBER_EXTERNAL_ID
    assert _variables(organization, LIST)[config.MEMBER_EXTERNAL_ID] == MEMBER_EXTERNAL_ID
    assert config.MEMBER_EXTERNAL_ID not in _variables(synthesized, LIST)


def test_the_validate_step_gets_the_member_role_name_and_the_distributed_map_settings(
    synthesized: Synthesized, targets: Synthesized, organization: Synthesized
) -> None:
    for synthesized_mode, role_name in (
        (synthesized, "TagwardenReadOnly"),
        (organization, "TagwardenReadOnly"),
        (targets, "SecOpsTagScanner"),
    ):
        variables = _variables(synthesized_mode, VALIDATE)
        assert variables[config.MEMBER_ROLE_NAME] == role_name
        assert variables[config.DISTRIBUTED_MAP_THRESHOLD] == "25"
        assert variables[config.DISTRIBUTED_MAX_CONCURRENCY] == "120"
        assert variables[config.TOLERATED_FAILURE_PERCENTAGE] == "5"
        # What the validate step itself makes of them.
        step = config.ValidateConfig.from_env(
            {k: v for k, v in variables.items() if isinstance(v, str)}
            | {
                config.REPORT_BUCKET: "b",
                config.DEFAULT_POLICY_URI: "s3://b/policies/default.json",
            }
        )
        assert (
            step.member_role_name,
            step.distributed_map_threshold,
            step.distributed_max_concurrency,
            step.tolerated_failure_percentage,
        ) == (role_name, 25, 120, 5)


# --- schedule ------------------------------------------------------------------------------------


def test_the_schedule_scans_the_targets_the_organisation_or_by_default_this_account(
    synthesized: Synthesized, targets: Synthesized, organization: Synthesized
) -> None:
    assert json.loads(_schedule(synthesized)["Target"]["Input"]) == {}
    assert json.loads(_schedule(targets)["Target"]["Input"]) == {
        "targets": [
            {"account_id": TARGET_ACCOUNTS[0], "regions": ["eu-west-1", "eu-central-1"]},
            {"account_id": TARGET_ACCOUNTS[1]},
        ]
    }
    assert json.loads(_schedule(organization)["Target"]["Input"]) == {"organization": True}


@pytest.mark.parametrize(
    "settings",
    [
        Settings(),
        Settings(organization=True, member_external_id=MEMBER_EXTERNAL_ID),
        Settings.from_context(
            {
                "targets": [
                    {"account_id": "444455556666", "regions": ["eu-west-1"]},
                    {"account_id": "777788889999"},
                ],
                "member_external_id": MEMBER_EXTERNAL_ID,
            }
        ),
    ],
    ids=["single", "organization", "targets"],
)
def test_every_scheduled_input_is_a_valid_execution_input(settings: Settings) -> None:
    assert input_problems(scheduled_input(settings)) == []


# --- nothing else changes ------------------------------------------------------------------------


# Asset locations and their metadata (content hashes of the Lambda code, the layer, the ASL file):
# the same files in every mode, so leave them out; they would differ only if the sources were
# edited between two syntheses of one test session.
_ASSET_PROPERTIES = {"Code", "Content", "DefinitionS3Location"}


def _without_assets(resource: Mapping[str, Any]) -> dict[str, Any]:
    properties = {k: v for k, v in resource.get("Properties", {}).items() if k not in _ASSET_PROPERTIES}
    metadata = {k: v for k, v in resource.get("Metadata", {}).items() if not k.startswith("aws:asset:")}
    return {**resource, "Properties": properties, "Metadata": metadata}


def _changed(one: Mapping[str, Any], other: Mapping[str, Any]) -> set[str]:
    # A multi-account deployment adds the member accounts' event bus, and nothing else.
    assert set(other) - set(one) == set(_member_bus_resources(other)), set(one) ^ set(other)
    assert set(one) <= set(other)
    return {
        logical_id
        for logical_id in one
        if _without_assets(one[logical_id]) != _without_assets(other[logical_id])
    }


def _member_bus_resources(resources: Mapping[str, Any]) -> list[str]:
    """The bus, its policy, its rule into the events queue and that rule's alarm."""
    bus = only(resources, "AWS::Events::EventBus", lambda p: True)
    return [
        bus,
        only(resources, "AWS::Events::EventBusPolicy", lambda p: p["EventBusName"] == {"Ref": bus}),
        only(resources, "AWS::Events::Rule", lambda p: p.get("EventBusName") == {"Ref": bus}),
        only(
            resources,
            "AWS::CloudWatch::Alarm",
            lambda p: p["AlarmName"] == "tagwarden-test-member-ec2-api-call-events-undelivered",
        ),
    ]


def _events_queue_policy(synthesized: Synthesized) -> str:
    """The events queue's policy: it gains the member bus rule's SendMessage."""
    return only(
        synthesized.resources, "AWS::SQS::QueuePolicy", lambda p: "EventsQueue" in json.dumps(p["Queues"])
    )


def _outputs_but_the_bus(synthesized: Synthesized) -> dict[str, Any]:
    return {k: v for k, v in synthesized.json["Outputs"].items() if k != EVENT_BUS_OUTPUT}


def test_targets_mode_changes_only_the_list_step_the_validate_environment_and_the_schedule(
    synthesized: Synthesized, targets: Synthesized
) -> None:
    schedule = only(targets.resources, "AWS::Scheduler::Schedule", lambda p: True)
    assert _changed(synthesized.resources, targets.resources) == {
        _policy_of(targets, _role(targets, LIST)),
        function_id(targets.resources, LIST),  # the external id
        function_id(targets.resources, VALIDATE),  # another member role name
        function_id(targets.resources, "tagwarden-test-remediate"),  # the external id
        function_id(targets.resources, "tagwarden-test-plan-event-run"),  # the scope of event runs
        _events_queue_policy(targets),
        schedule,
    }
    assert synthesized.json["Outputs"] == _outputs_but_the_bus(targets)


def test_organization_mode_changes_only_the_list_step_the_validate_step_and_the_schedule(
    synthesized: Synthesized, organization: Synthesized
) -> None:
    schedule = only(organization.resources, "AWS::Scheduler::Schedule", lambda p: True)
    assert _changed(synthesized.resources, organization.resources) == {
        _policy_of(organization, _role(organization, LIST)),
        function_id(organization.resources, LIST),  # the external id
        _policy_of(organization, _role(organization, VALIDATE)),
        function_id(organization.resources, VALIDATE),  # targets are checked against the organisation
        function_id(organization.resources, "tagwarden-test-remediate"),  # the external id
        function_id(organization.resources, "tagwarden-test-plan-event-run"),  # the scope of event runs
        _events_queue_policy(organization),
        schedule,
    }
    assert _variables(organization, VALIDATE)[config.ORGANIZATION_DEPLOYMENT] == "true"
    assert config.ORGANIZATION_DEPLOYMENT not in _variables(synthesized, VALIDATE)
    assert synthesized.json["Outputs"] == _outputs_but_the_bus(organization)


# --- settings ------------------------------------------------------------------------------------


def test_more_targets_than_one_policy_can_name_stop_synthesis_and_point_to_organization_mode() -> None:
    many = [{"account_id": f"{100000000000 + i}"} for i in range(MAX_TARGETS + 1)]
    with pytest.raises(
        SettingsError,
        match=rf"context targets: {MAX_TARGETS + 1} accounts, at most {MAX_TARGETS}.*organization=true",
    ):
        Settings.from_context({"targets": many, "member_external_id": MEMBER_EXTERNAL_ID})
    Settings.from_context({"targets": many[:MAX_TARGETS], "member_external_id": MEMBER_EXTERNAL_ID})
