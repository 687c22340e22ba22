"""Reading the synthesized CloudFormation template: find resources, flatten IAM policies."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Resources = Mapping[str, Mapping[str, Any]]
Grant = tuple[str, str, str]  # (action, resource as canonical JSON, condition as canonical JSON)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def ref(logical_id: str) -> dict[str, Any]:
    return {"Ref": logical_id}


def getatt(logical_id: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def objects(bucket_id: str, prefix: str) -> dict[str, Any]:
    """How CDK renders ``bucket.arn_for_objects(prefix + '*')``."""
    return {"Fn::Join": ["", [getatt(bucket_id), f"/{prefix}*"]]}


def only(resources: Resources, resource_type: str, where: Callable[[Mapping[str, Any]], bool]) -> str:
    """The logical id of the one resource of ``resource_type`` whose properties satisfy ``where``."""
    matches = [
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == resource_type and where(resource.get("Properties", {}))
    ]
    assert len(matches) == 1, f"expected one {resource_type}, found {matches}"
    return matches[0]


def function_id(resources: Resources, function_name: str) -> str:
    return only(resources, "AWS::Lambda::Function", lambda p: p.get("FunctionName") == function_name)


def role_of(resources: Resources, logical_id: str, attribute: str = "Role") -> str:
    role = resources[logical_id]["Properties"][attribute]
    assert set(role) == {"Fn::GetAtt"}, role
    role_id: str = role["Fn::GetAtt"][0]
    return role_id


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements_of_role(resources: Resources, role_id: str) -> Iterable[Mapping[str, Any]]:
    role = resources[role_id]["Properties"]
    assert not role.get("ManagedPolicyArns"), f"{role_id} has managed policies: {role['ManagedPolicyArns']}"
    for policy in role.get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]
    for resource in resources.values():
        if resource["Type"] not in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            continue
        properties = resource["Properties"]
        if ref(role_id) in properties.get("Roles", []):
            yield from properties["PolicyDocument"]["Statement"]


def grants(resources: Resources, role_id: str) -> set[Grant]:
    """Every (action, resource, condition) a role is allowed; a Deny or NotAction fails the caller."""
    flattened: set[Grant] = set()
    for statement in _statements_of_role(resources, role_id):
        assert statement["Effect"] == "Allow", statement
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        for action in _as_list(statement["Action"]):
            for resource in _as_list(statement["Resource"]):
                flattened.add((action, canonical(resource), canonical(statement.get("Condition"))))
    return flattened


def expected(
    *items: tuple[Iterable[str], Iterable[Any]] | tuple[Iterable[str], Iterable[Any], Any],
) -> set[Grant]:
    """Allow-list helper: ``(actions, resources[, condition])`` tuples, expanded like :func:`grants`."""
    result: set[Grant] = set()
    for item in items:
        actions, targets = item[0], item[1]
        condition = item[2] if len(item) == 3 else None
        for action in actions:
            for target in targets:
                result.add((action, canonical(target), canonical(condition)))
    return result


def all_policy_statements(resources: Resources) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Identity-policy statements of every role and policy of the template (not resource policies)."""
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield logical_id, statement
        elif resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            for statement in properties["PolicyDocument"]["Statement"]:
                yield logical_id, statement


def render(value: Any) -> str:
    """A readable stand-in for an intrinsic, as CloudFormation would substitute a resolved value."""
    if isinstance(value, str):
        return value
    if set(value) == {"Ref"}:
        return f"<Ref {value['Ref']}>"
    if set(value) == {"Fn::GetAtt"}:
        return f"<GetAtt {'.'.join(value['Fn::GetAtt'])}>"
    if set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(render(part) for part in parts)
    raise AssertionError(f"cannot render {value!r}")


def remediation_grants() -> set[Grant]:
    """What a staged-remediation role may do to its account's instances (the central Remediate
    role and the member remediation role hold the same four statements)."""
    instances = {
        "Fn::Join": [
            "",
            ["arn:", {"Ref": "AWS::Partition"}, ":ec2:*:", {"Ref": "AWS::AccountId"}, ":instance/*"],
        ]
    }
    return expected(
        (
            ["ec2:CreateTags", "ec2:DeleteTags"],
            [instances],
            {
                "ForAllValues:StringEquals": {"aws:TagKeys": ["tagwarden:marked-for-stop"]},
                "Null": {"aws:TagKeys": "false"},
            },
        ),
        (
            ["ec2:StopInstances"],
            [instances],
            {"Null": {"ec2:ResourceTag/tagwarden:marked-for-stop": "false"}},
        ),
        (["ec2:DescribeInstanceAttribute"], [instances]),
        (["ec2:DescribeInstances"], ["*"]),
    )
