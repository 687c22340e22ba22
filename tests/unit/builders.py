from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from workflow.fleet import FleetInstance

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def instance(
    tags: dict[str, str] | None = None,
    *,
    instance_id: str = "i-0123456789abcdef0",
    state: str = "running",
    zone: str = "us-east-1a",
    launched: str = "2026-01-01T00:00:00+00:00",
) -> dict[str, Any]:
    """A describe-instances shaped instance; ``tags=None`` means no ``Tags`` field at all."""
    doc: dict[str, Any] = {
        "InstanceId": instance_id,
        "InstanceType": "t3.micro",
        "LaunchTime": launched,
        "Placement": {"AvailabilityZone": zone},
        "State": {"Name": state},
    }
    if tags is not None:
        doc["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return doc


def large_definition() -> dict[str, Any]:
    """Forty states with long names, a Choice of twelve rules with long conditions, Catches, a
    Parallel of three branches and a Map: the kind of definition labels used to pile up on."""
    states: dict[str, Any] = {}
    names = [f"Step {i:02d} with a rather long descriptive state name" for i in range(16)]
    rules = [
        {
            "Variable": f"$.result.some.deeply.nested.field_{i}",
            "StringEquals": f"value-{i}",
            "Next": names[i + 2],
        }
        for i in range(12)
    ]
    states["Route"] = {"Type": "Choice", "Choices": rules, "Default": names[0]}
    for i, name in enumerate(names):
        nxt = names[i + 1] if i + 1 < len(names) else "Fan out"
        states[name] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Next": nxt,
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handle failure"}],
        }
    branch = {"StartAt": "B", "States": {"B": {"Type": "Pass", "Next": "C"}, "C": {"Type": "Succeed"}}}
    states["Fan out"] = {"Type": "Parallel", "Branches": [branch, branch, branch], "Next": "Each"}
    states["Each"] = {"Type": "Map", "ItemProcessor": branch, "End": True}
    states["Handle failure"] = {"Type": "Fail"}
    return {"StartAt": "Route", "States": states}


def fleet_instance(
    instance_id: str,
    tags: dict[str, str] | None = None,
    *,
    account: str = "123456789012",
    region: str = "eu-west-1",
    launched: str = "2026-12-01T10:00:00+00:00",
) -> FleetInstance:
    """A running instance of the local engine's fleet, in ``account`` and ``region``."""
    return FleetInstance(
        account, region, instance(tags or {}, instance_id=instance_id, zone=f"{region}a", launched=launched)
    )
