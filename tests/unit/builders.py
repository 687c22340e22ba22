from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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
