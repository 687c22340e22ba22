"""Evaluate tag compliance reads a target's staged pages one ahead: every instance comes out once,
in page order, the next page is requested before this one is evaluated, and a page that cannot be
read fails the step with the same error as reading it directly."""

from __future__ import annotations

import gzip
import io
import json
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from workflow import layout
from workflow.errors import AccessDenied
from workflow.steps.evaluate_tags import _inventory
from workflow.storage import get_json_gz

RUN, ACCOUNT, REGION = "r1", "self", "eu-west-1"


class PagesInS3:
    """get_object over staged pages; remembers the keys asked for, in order."""

    def __init__(self, pages: list[list[str]], failing: int | None = None) -> None:
        self.objects = {
            layout.inventory_page_key(RUN, ACCOUNT, REGION, number): gzip.compress(
                json.dumps(
                    {"Reservations": [{"OwnerId": "1", "Instances": [{"InstanceId": i} for i in ids]}]}
                ).encode()
            )
            for number, ids in enumerate(pages)
        }
        self.failing = None if failing is None else layout.inventory_page_key(RUN, ACCOUNT, REGION, failing)
        self.asked: list[str] = []
        self.lock = threading.Lock()
        self.second_page_asked = threading.Event()

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        with self.lock:
            self.asked.append(Key)
        if Key == layout.inventory_page_key(RUN, ACCOUNT, REGION, 1):
            self.second_page_asked.set()
        if Key == self.failing:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}


def test_every_instance_comes_out_once_in_page_order() -> None:
    pages = [["i-1", "i-2"], [], ["i-3"], ["i-4", "i-5", "i-6"]]
    s3 = PagesInS3(pages)

    listed = [instance["InstanceId"] for _, instance in _inventory(s3, "b", RUN, ACCOUNT, REGION, len(pages))]

    assert listed == ["i-1", "i-2", "i-3", "i-4", "i-5", "i-6"]
    assert s3.asked == [layout.inventory_page_key(RUN, ACCOUNT, REGION, n) for n in range(len(pages))]


def test_the_next_page_is_requested_before_this_one_is_evaluated() -> None:
    s3 = PagesInS3([["i-1"], ["i-2"], ["i-3"]])
    instances = _inventory(s3, "b", RUN, ACCOUNT, REGION, 3)

    next(instances)  # the first instance of page 0, not yet evaluated

    assert s3.second_page_asked.wait(timeout=10)
    assert s3.asked[:2] == [layout.inventory_page_key(RUN, ACCOUNT, REGION, n) for n in (0, 1)]
    assert layout.inventory_page_key(RUN, ACCOUNT, REGION, 2) not in s3.asked  # one ahead at most
    instances.close()


def test_a_page_that_cannot_be_read_fails_as_reading_it_directly_does() -> None:
    s3 = PagesInS3([["i-1"], ["i-2"], ["i-3"]], failing=1)
    with pytest.raises(AccessDenied):
        get_json_gz(s3, "b", layout.inventory_page_key(RUN, ACCOUNT, REGION, 1))

    instances = _inventory(s3, "b", RUN, ACCOUNT, REGION, 3)
    assert next(instances)[1]["InstanceId"] == "i-1"
    with pytest.raises(AccessDenied):
        next(instances)


def test_no_pages_read_nothing() -> None:
    s3 = PagesInS3([])
    assert list(_inventory(s3, "b", RUN, ACCOUNT, REGION, 0)) == []
    assert s3.asked == []
