"""CloudTrail events as EventBridge delivers them: the resources they name, and their creator for
every ``userIdentity`` type (shapes from AWS's "CloudTrail userIdentity element" documentation)."""

from __future__ import annotations

from typing import Any

import pytest

from workflow.events import batch_of, creator, resources_named

ACCOUNT = "111122223333"


def ec2_event(
    name: str,
    detail: dict[str, Any],
    *,
    time: str = "2026-12-01T10:00:00Z",
    account: str = ACCOUNT,
    region: str = "eu-west-1",
) -> dict[str, Any]:
    """An EventBridge event for an EC2 API call, as EventBridge delivers it."""
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": account,
        "time": time,
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "eventTime": time,
            "eventSource": "ec2.amazonaws.com",
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": "192.0.2.10",
            "recipientAccountId": account,
            "eventType": "AwsApiCall",
            **detail,
        },
    }


def launch(
    identity: dict[str, Any],
    *instance_ids: str,
    time: str = "2026-12-01T10:00:00Z",
    account: str = ACCOUNT,
    region: str = "eu-west-1",
) -> dict[str, Any]:
    return ec2_event(
        "RunInstances",
        {
            "userIdentity": identity,
            "requestParameters": {"instancesSet": {"items": [{"imageId": "ami-0abc", "minCount": 1}]}},
            "responseElements": {"instancesSet": {"items": [{"instanceId": i} for i in instance_ids]}},
        },
        time=time,
        account=account,
        region=region,
    )


def created(
    identity: dict[str, Any],
    resource_type: str,
    resource_id: str,
    *,
    time: str = "2026-12-01T10:00:00Z",
    account: str = ACCOUNT,
    region: str = "eu-west-1",
) -> dict[str, Any]:
    """The CloudTrail event of the call that created a resource of ``resource_type``."""
    if resource_type == "instance":
        return launch(identity, resource_id, time=time, account=account, region=region)
    name, response = {
        "volume": ("CreateVolume", {"volumeId": resource_id, "size": 100}),
        "snapshot": ("CreateSnapshot", {"snapshotId": resource_id}),
        "image": ("CreateImage", {"imageId": resource_id}),
        "network-interface": (
            "CreateNetworkInterface",
            {"networkInterface": {"networkInterfaceId": resource_id}},
        ),
    }[resource_type]
    return ec2_event(
        name,
        {"userIdentity": identity, "responseElements": response},
        time=time,
        account=account,
        region=region,
    )


IAM_USER = {
    "type": "IAMUser",
    "principalId": "AIDAJ45Q7YFFAREXAMPLE",
    "arn": f"arn:aws:iam::{ACCOUNT}:user/Alice",
    "accountId": ACCOUNT,
    "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
    "userName": "Alice",
}
ASSUMED_ROLE = {
    "type": "AssumedRole",
    "principalId": "AROAIDPPEZS35WEXAMPLE:deploy-pipeline",
    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/CiDeployRole/deploy-pipeline",
    "accountId": ACCOUNT,
    "accessKeyId": "ASIAIOSFODNN7EXAMPLE",
    "sessionContext": {
        "sessionIssuer": {
            "type": "Role",
            "principalId": "AROAIDPPEZS35WEXAMPLE",
            "arn": f"arn:aws:iam::{ACCOUNT}:role/CiDeployRole",
            "accountId": ACCOUNT,
            "userName": "CiDeployRole",
        },
        "attributes": {"creationDate": "2026-12-01T09:58:00Z", "mfaAuthenticated": "false"},
    },
}
SSO = {
    "type": "AssumedRole",
    "principalId": "AROAEXAMPLEID:dana@example.com",
    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_PowerUserAccess_3f4a5b6c7d8e9f00/dana@example.com",
    "accountId": ACCOUNT,
    "sessionContext": {
        "sessionIssuer": {
            "type": "Role",
            "principalId": "AROAEXAMPLEID",
            "arn": f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/"
            "AWSReservedSSO_PowerUserAccess_3f4a5b6c7d8e9f00",
            "accountId": ACCOUNT,
            "userName": "AWSReservedSSO_PowerUserAccess_3f4a5b6c7d8e9f00",
        },
        "attributes": {"creationDate": "2026-12-01T09:00:00Z", "mfaAuthenticated": "false"},
    },
}
ROOT = {
    "type": "Root",
    "principalId": ACCOUNT,
    "arn": f"arn:aws:iam::{ACCOUNT}:root",
    "accountId": ACCOUNT,
    "accessKeyId": "ASIAIOSFODNN7EXAMPLE",
}
AUTO_SCALING = {
    "type": "AssumedRole",
    "principalId": "AROAEXAMPLEASG:AutoScaling",
    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling",
    "accountId": ACCOUNT,
    "sessionContext": {
        "sessionIssuer": {
            "type": "Role",
            "arn": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/"
            "AWSServiceRoleForAutoScaling",
            "accountId": ACCOUNT,
            "userName": "AWSServiceRoleForAutoScaling",
        },
    },
    "invokedBy": "autoscaling.amazonaws.com",
}
SPOT_FLEET_NO_INVOKED_BY = {
    "type": "AssumedRole",
    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSServiceRoleForEC2SpotFleet/SpotFleet",
    "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "AWSServiceRoleForEC2SpotFleet"}},
}
AWS_SERVICE = {"type": "AWSService", "invokedBy": "eks-nodegroup.amazonaws.com"}
FEDERATED_USER = {
    "type": "FederatedUser",
    "principalId": f"{ACCOUNT}:Bob",
    "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/Bob",
    "accountId": ACCOUNT,
    "accessKeyId": "ASIAIOSFODNN7EXAMPLE",
    "sessionContext": {
        "sessionIssuer": {
            "type": "IAMUser",
            "principalId": "AIDAJ45Q7YFFAREXAMPLE",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/Alice",
            "accountId": ACCOUNT,
            "userName": "Alice",
        },
        "attributes": {"creationDate": "2026-12-01T09:00:00Z", "mfaAuthenticated": "false"},
    },
}
WEB_IDENTITY_USER = {
    "type": "WebIdentityUser",
    "principalId": "accounts.google.com:application-id.apps.googleusercontent.com:user-id",
    "userName": "user-id",
    "identityProvider": "accounts.google.com",
}
WEB_IDENTITY_ROLE = {
    **ASSUMED_ROLE,
    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/GitHubActionsDeploy/GitHubActions",
    "sessionContext": {
        "sessionIssuer": {"type": "Role", "userName": "GitHubActionsDeploy"},
        "webIdFederationData": {
            "federatedProvider": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",
            "attributes": {},
        },
    },
}
IDENTITY_CENTER_USER = {
    "type": "IdentityCenterUser",
    "accountId": ACCOUNT,
    "onBehalfOf": {
        "userId": "544894e8-80c1-707f-60e3-3ba6510dfac1",
        "identityStoreArn": "arn:aws:identitystore::111122223333:identitystore/d-1234567890",
    },
    "credentialId": "EXAMPLEVHULjJdTUdPJfofVa1sufHDoj7aYcOYcxFVllWR_Whr1fEXAMPLE",
}


@pytest.mark.parametrize(
    ("identity", "tags", "expected"),
    [
        (IAM_USER, {}, ("IAMUser", f"arn:aws:iam::{ACCOUNT}:user/Alice", "Alice")),
        (
            ASSUMED_ROLE,
            {},
            (
                "AssumedRole",
                f"arn:aws:sts::{ACCOUNT}:assumed-role/CiDeployRole/deploy-pipeline",
                "CiDeployRole/deploy-pipeline",
            ),
        ),
        (SSO, {}, ("IdentityCenter", SSO["arn"], "dana@example.com")),
        (ROOT, {}, ("Root", f"arn:aws:iam::{ACCOUNT}:root", f"root user of {ACCOUNT}")),
        (
            AUTO_SCALING,
            {"aws:autoscaling:groupName": "web-asg"},
            ("AWSService", "autoscaling.amazonaws.com", "Auto Scaling (group web-asg)"),
        ),
        (AUTO_SCALING, {}, ("AWSService", "autoscaling.amazonaws.com", "Auto Scaling")),
        (SPOT_FLEET_NO_INVOKED_BY, {}, ("AWSService", "spotfleet.amazonaws.com", "Spot Fleet")),
        (AWS_SERVICE, {}, ("AWSService", "eks-nodegroup.amazonaws.com", "Amazon EKS managed node group")),
        (
            FEDERATED_USER,
            {},
            ("FederatedUser", f"arn:aws:sts::{ACCOUNT}:federated-user/Bob", "Bob (federated by Alice)"),
        ),
        (
            WEB_IDENTITY_USER,
            {},
            ("WebIdentityUser", WEB_IDENTITY_USER["principalId"], "user-id via accounts.google.com"),
        ),
        (
            WEB_IDENTITY_ROLE,
            {},
            (
                "AssumedRole",
                WEB_IDENTITY_ROLE["arn"],
                "GitHubActionsDeploy/GitHubActions (web identity: token.actions.githubusercontent.com)",
            ),
        ),
        (
            IDENTITY_CENTER_USER,
            {},
            (
                "IdentityCenterUser",
                "544894e8-80c1-707f-60e3-3ba6510dfac1",
                "544894e8-80c1-707f-60e3-3ba6510dfac1",
            ),
        ),
        ({}, {}, ("Unknown", "", "Unknown")),
    ],
    ids=lambda value: value.get("type", "") if isinstance(value, dict) and "type" in value else None,
)
def test_every_identity_type_names_its_creator(
    identity: dict[str, Any], tags: dict[str, str], expected: tuple[str, str, str]
) -> None:
    found = creator(identity, tags=tags)
    assert (found["type"], found["principal"], found["display"]) == expected


def test_a_launch_names_each_instance_with_its_creator_and_time() -> None:
    (first, second) = resources_named(launch(SSO, "i-0aaa", "i-0bbb"))
    assert (first.resource_type, first.resource_id, second.resource_id) == ("instance", "i-0aaa", "i-0bbb")
    assert (first.account_id, first.region, first.event_name) == (ACCOUNT, "eu-west-1", "RunInstances")
    assert first.created_by == {
        "type": "IdentityCenter",
        "principal": SSO["arn"],
        "display": "dana@example.com",
    }
    assert first.event_time.isoformat() == "2026-12-01T10:00:00+00:00"


@pytest.mark.parametrize(
    ("name", "response", "expected"),
    [
        ("CreateVolume", {"volumeId": "vol-0abc", "size": 100}, ("volume", "vol-0abc")),
        ("CreateSnapshot", {"snapshotId": "snap-0abc", "volumeId": "vol-0abc"}, ("snapshot", "snap-0abc")),
        ("CreateImage", {"imageId": "ami-0abc"}, ("image", "ami-0abc")),
        (
            "CreateNetworkInterface",
            {"networkInterface": {"networkInterfaceId": "eni-0abc", "interfaceType": "interface"}},
            ("network-interface", "eni-0abc"),
        ),
    ],
)
def test_each_creating_call_names_what_it_created(
    name: str, response: dict[str, Any], expected: tuple[str, str]
) -> None:
    (named,) = resources_named(ec2_event(name, {"userIdentity": IAM_USER, "responseElements": response}))
    assert (named.resource_type, named.resource_id) == expected
    assert named.created_by is not None and named.created_by["display"] == "Alice"


def test_tag_changes_name_their_resources_and_deletions_the_keys_removed() -> None:
    request = {
        "resourcesSet": {
            "items": [{"resourceId": "i-0aaa"}, {"resourceId": "vol-0bbb"}, {"resourceId": "sg-0ccc"}]
        },
        "tagSet": {"items": [{"key": "CostCenter"}, {"key": "Owner", "value": "ana"}]},
    }
    deleted = resources_named(
        ec2_event("DeleteTags", {"userIdentity": IAM_USER, "requestParameters": request})
    )
    assert [(r.resource_type, r.resource_id, r.removed_keys) for r in deleted] == [
        ("instance", "i-0aaa", ("CostCenter", "Owner")),
        ("volume", "vol-0bbb", ("CostCenter", "Owner")),
    ]
    assert all(r.created_by is None for r in deleted)
    created = resources_named(
        ec2_event("CreateTags", {"userIdentity": IAM_USER, "requestParameters": request})
    )
    assert [r.removed_keys for r in created] == [(), ()]


@pytest.mark.parametrize(
    "event",
    [
        {**launch(IAM_USER, "i-0aaa"), "source": "aws.s3"},
        {**launch(IAM_USER, "i-0aaa"), "detail-type": "EC2 Instance State-change Notification"},
        ec2_event("RunInstances", {"userIdentity": IAM_USER, "errorCode": "Client.UnauthorizedOperation"}),
        ec2_event("TerminateInstances", {"userIdentity": IAM_USER}),
        {"not": "an event"},
    ],
    ids=["other source", "other detail type", "failed call", "call not matched", "not an event"],
)
def test_what_is_not_a_successful_matched_call_names_nothing(event: dict[str, Any]) -> None:
    assert resources_named(event) == []


def test_a_batch_counts_each_resource_once_and_is_due_after_the_last_launchs_grace() -> None:
    launches = [launch(IAM_USER, f"i-{n:04x}", time=f"2026-12-01T10:00:{n % 60:02d}Z") for n in range(500)]
    tagging = ec2_event(
        "CreateTags",
        {
            "userIdentity": IAM_USER,
            "requestParameters": {"resourcesSet": {"items": [{"resourceId": "i-0000"}]}},
        },
        time="2026-12-01T10:00:30Z",
    )
    batch = batch_of([*launches, tagging, {"junk": True}], grace_seconds=900)
    (target,) = batch.target_items()
    assert (target["account_id"], target["region"], len(target["resource_ids"]["instance"])) == (
        ACCOUNT,
        "eu-west-1",
        500,
    )
    assert batch.due is not None and batch.due.isoformat() == "2026-12-01T10:15:59+00:00"
    assert (batch.events, batch.ignored, len(batch.created_by)) == (502, 1, 500)


def test_a_tag_deletion_alone_is_due_at_once() -> None:
    request = {"resourcesSet": {"items": [{"resourceId": "i-0aaa"}]}, "tagSet": {"items": [{"key": "Owner"}]}}
    batch = batch_of(
        [ec2_event("DeleteTags", {"userIdentity": IAM_USER, "requestParameters": request})], grace_seconds=900
    )
    assert batch.due is not None and batch.due.isoformat() == "2026-12-01T10:00:00+00:00"
    assert batch.created_by == {}


@pytest.mark.parametrize("call", ["CreateTags", "DeleteTags"])
def test_staged_remediations_own_mark_or_unmark_names_nothing_but_a_change_beside_it_does(call: str) -> None:
    def tagging(*keys: str) -> dict[str, Any]:
        request = {
            "resourcesSet": {"items": [{"resourceId": "i-0aaa"}]},
            "tagSet": {"items": [{"key": k, "value": "2026-12-08"} for k in keys]},
        }
        return ec2_event(call, {"userIdentity": IAM_USER, "requestParameters": request})

    assert resources_named(tagging("tagwarden:marked-for-stop")) == []
    assert [r.resource_id for r in resources_named(tagging("tagwarden:marked-for-stop", "Owner"))] == [
        "i-0aaa"
    ]
