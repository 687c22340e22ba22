"""The local engine's sessions parse each botocore service model once per process."""

from __future__ import annotations

from unittest import mock

import boto3
import botocore.loaders

from workflow.engine import botocore_models


def _ec2_model_parses(calls: list[mock._Call]) -> int:
    return sum(1 for call in calls if str(call.args[-1]).endswith("/ec2/2016-11-15/service-2"))


def test_handler_sessions_share_one_loader_and_keep_their_own_region() -> None:
    first = botocore_models.handler_session("eu-west-1")
    second = botocore_models.handler_session("us-east-1")

    assert first._loader is second._loader
    assert (first.region_name, second.region_name) == ("eu-west-1", "us-east-1")
    assert first._session is not second._session  # hooks and credentials stay per session


def test_many_handler_sessions_leave_each_search_path_once() -> None:
    for _ in range(5):
        session = botocore_models.handler_session("eu-west-1")

    paths = session._loader.search_paths
    assert len(paths) == len(set(paths))
    assert any(path.endswith("boto3/data") for path in paths)  # boto3's resource models still found


def test_sessions_made_while_sharing_parse_the_ec2_model_at_most_once() -> None:
    original = botocore.loaders.JSONFileLoader.load_file
    with (
        mock.patch.object(
            botocore.loaders.JSONFileLoader, "load_file", autospec=True, side_effect=original
        ) as spy,
        botocore_models.shared_by_new_sessions(),
    ):
        regions = [boto3.Session().get_available_regions("ec2") for _ in range(3)]

    assert regions[0] and regions[0] == regions[1] == regions[2]
    assert _ec2_model_parses(spy.call_args_list) <= 1


def test_sessions_made_without_sharing_parse_it_each_time() -> None:  # what the sharing saves
    original = botocore.loaders.JSONFileLoader.load_file
    with mock.patch.object(
        botocore.loaders.JSONFileLoader, "load_file", autospec=True, side_effect=original
    ) as spy:
        for _ in range(3):
            boto3.Session().get_available_regions("ec2")

    assert _ec2_model_parses(spy.call_args_list) == 3


def test_sessions_made_after_sharing_get_loaders_of_their_own() -> None:
    with botocore_models.shared_by_new_sessions():
        inside = boto3.Session()
    after = boto3.Session()

    assert inside._loader is botocore_models.handler_session("eu-west-1")._loader
    assert after._loader is not inside._loader
    assert len(inside._loader.search_paths) == len(set(inside._loader.search_paths))
