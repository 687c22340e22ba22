"""Asking whether an object exists with an explicit listing of its exact key, never from a 404."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from workflow.storage import get_json_and_etag, get_json_if_exists, object_exists, put_json


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="reports-bucket")
        yield client


def test_a_longer_key_with_the_same_prefix_does_not_make_a_missing_key_exist(s3: Any) -> None:
    put_json(s3, "reports-bucket", "state/latest-run.json.bak", {"x": 1})
    assert object_exists(s3, "reports-bucket", "state/latest-run.json") is False
    assert get_json_if_exists(s3, "reports-bucket", "state/latest-run.json") is None
    assert get_json_and_etag(s3, "reports-bucket", "state/latest-run.json") == (None, None)
    put_json(s3, "reports-bucket", "state/latest-run.json", {"run_id": "r1"})
    assert object_exists(s3, "reports-bucket", "state/latest-run.json") is True
    document, etag = get_json_and_etag(s3, "reports-bucket", "state/latest-run.json")
    assert document == {"run_id": "r1"} and etag


def test_a_missing_object_is_never_fetched(s3: Any) -> None:
    """The GetObject of a missing key is what answers 403 to a role without an unscoped ListBucket."""
    operations: list[str] = []
    s3.meta.events.register("before-call.s3", lambda model, **_: operations.append(model.name))
    assert get_json_if_exists(s3, "reports-bucket", "state/policy-runs/abc.json") is None
    assert operations == ["ListObjectsV2"]
