"""List EC2 instances asks for the next page while it stages the current one, and never asks
once its time budget is spent: no page is lost and none is listed twice."""

from __future__ import annotations

import threading
from typing import Any

from workflow.config import ListConfig
from workflow.steps.list_instances import list_instances

RUN = {"run_id": "r1", "bucket": "reports", "states": ["running"], "member_role_name": "TagwardenReadOnly"}
CONFIG = ListConfig(report_bucket="reports", page_size=5, time_budget_margin_seconds=60)


def page(number: int, last: bool) -> dict[str, Any]:
    instance = {
        "InstanceId": f"i-{number}",
        "State": {"Name": "running"},
        "Placement": {"AvailabilityZone": "eu-west-1a"},
        "Tags": [],
    }
    answer: dict[str, Any] = {"Reservations": [{"OwnerId": "111122223333", "Instances": [instance]}]}
    if not last:
        answer["NextToken"] = f"t{number + 1}"
    return answer


class PagedEc2:
    """Three pages; records the tokens asked for, and signals when a page is asked for."""

    def __init__(self) -> None:
        self.tokens: list[str | None] = []
        self.asked = {n: threading.Event() for n in range(3)}

    def describe_instances(self, **request: Any) -> dict[str, Any]:
        token = request.get("NextToken")
        number = int(token[1:]) if token else 0
        self.tokens.append(token)
        self.asked[number].set()
        return page(number, last=number == 2)


class WaitingS3:
    """Stores pages; storing page N waits (bounded) until page N + 1 has been asked for, and
    records whether it was asked for while page N was being stored."""

    def __init__(self, ec2: PagedEc2) -> None:
        self.ec2 = ec2
        self.keys: list[str] = []
        self.overlapped: list[bool] = []

    def put_object(self, **request: Any) -> dict[str, Any]:
        number = len(self.keys)
        self.keys.append(request["Key"])
        if number + 1 in self.ec2.asked:
            self.overlapped.append(self.ec2.asked[number + 1].wait(timeout=10))
        return {}


def test_the_next_page_is_asked_for_while_the_current_one_is_staged() -> None:
    ec2 = PagedEc2()
    s3 = WaitingS3(ec2)

    result = list_instances(
        {"run": RUN, "target": {"region": "eu-west-1"}},
        CONFIG,
        ec2_factory=lambda region, credentials: ec2,
        s3=s3,
        remaining_ms=lambda: 900_000,
    )

    assert s3.overlapped == [True, True]
    assert ec2.tokens == [None, "t1", "t2"]
    assert len(s3.keys) == 3 and result["complete"] and result["instances"] == 3


def test_no_page_is_asked_for_once_the_budget_is_spent() -> None:
    ec2 = PagedEc2()
    s3 = WaitingS3(ec2)
    s3.overlapped = []
    # Page 1 is never asked for: storing page 0 must not wait for it.
    ec2.asked.pop(1)

    result = list_instances(
        {"run": RUN, "target": {"region": "eu-west-1"}},
        CONFIG,
        ec2_factory=lambda region, credentials: ec2,
        s3=s3,
        remaining_ms=lambda: 60_000,  # exactly the margin: spent
    )

    assert ec2.tokens == [None]
    assert len(s3.keys) == 1
    assert result["complete"] is False and result["next_token"] == "t1" and result["pages"] == 1
