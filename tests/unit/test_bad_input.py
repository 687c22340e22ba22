"""Bad input that used to escape as ``internal error`` (exit 3) or fail a whole run: one line, exit 2.

Integer literals longer than Python parses, lone surrogates, account ids that are not 12 digits,
instances beyond AWS's tag limits, a corrupt ``summary.json`` left under ``--out``, and exceptions
whose stack trace reached the execution's cause and the dead letter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workflow.cli import main
from workflow.errors import FleetError
from workflow.fleet import (
    MAX_TAG_KEY_CHARS,
    MAX_TAG_VALUE_CHARS,
    MAX_USER_TAGS,
    iter_fleet_document,
    load_fleet_file,
)

ACCOUNT = "111122223333"


def instance(tags: list[dict[str, str]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "InstanceId": "i-0123456789abcdef0",
        "State": {"Name": "running"},
        "Placement": {"AvailabilityZone": "us-east-1a"},
        "Tags": tags if tags is not None else [{"Key": "Owner", "Value": "ana@example.com"}],
        **extra,
    }


def dump(*instances: dict[str, Any], owner: Any = ACCOUNT) -> dict[str, Any]:
    return {"Reservations": [{"OwnerId": owner, "Instances": list(instances)}]}


def refused(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "dump.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with pytest.raises(FleetError) as err:
        load_fleet_file(path)
    return [str(p) for p in err.value.problems]


# -- integers Python will not parse -----------------------------------------------------------------


def test_a_5000_digit_integer_in_a_dump_is_one_line(tmp_path: Path) -> None:
    text = json.dumps(dump(instance(CoreCount=1))).replace('"CoreCount": 1', '"CoreCount": ' + "9" * 5000)
    assert refused(tmp_path, text) == [
        "$: an integer literal of 5000 digits (Python reads at most 4300); describe-instances never prints one"
    ]


def test_a_5000_digit_integer_in_a_policy_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        '{"version": 1, "name": "p", "max_tags": ' + "9" * 5000 + ', "rules": [{"key": "Owner"}]}'
    )
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"{path}: $: an integer literal of 5000 digits (at most 4300 can be read); a tag policy never needs one\n"
    )


# -- lone surrogates --------------------------------------------------------------------------------


def test_a_lone_surrogate_in_a_policy_description_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"version": 1, "name": "p", "description": "x\\ud800", "rules": [{"key": "Owner"}]}')
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"{path}: $.description: holds a lone surrogate (\\ud800), which is not Unicode text; remove it\n"
    )


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("escaped", '"bad\\udc00value"'),
        ("raw bytes", '"bad\udc00value"'),  # written with surrogatepass: UTF-8 bytes ED B0 80
    ],
)
def test_a_lone_surrogate_tag_value_in_a_dump_is_one_line(tmp_path: Path, where: str, text: str) -> None:
    body = json.dumps(dump(instance([{"Key": "Note", "Value": "PLACEHOLDER"}])))
    assert refused(tmp_path, body.replace('"PLACEHOLDER"', text)) == [
        "$.Reservations[0].Instances[0].Tags[0].Value: holds a lone surrogate (\\udc00), which is not Unicode text"
    ]


def test_a_surrogate_pair_escape_is_an_ordinary_character(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(dump(instance([{"Key": "Mood", "Value": "\U0001f389"}]))))  # "\ud83c\udf89"
    assert "\\ud83c\\udf89" in path.read_text()
    [loaded] = load_fleet_file(path)
    assert loaded.instance["Tags"][0]["Value"] == "\U0001f389"


def test_a_lone_surrogate_dump_is_refused_before_any_execution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(dump(instance([{"Key": "Note", "Value": "bad\ud800"}]))))
    assert main(["run", "--fleet", str(path), "--out", str(tmp_path / "out"), "--json"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith("Tags[0].Value: holds a lone surrogate (\\ud800), which is not Unicode text")
    assert not (tmp_path / "out").exists()


# -- account ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "owner", ["1111:2222:3333", "11112222333", "1111222233334", "abcdefghijkl", 111122223333]
)
def test_an_owner_id_that_is_not_12_digits_is_one_line(owner: Any) -> None:
    with pytest.raises(FleetError) as err:
        list(iter_fleet_document(dump(instance(), owner=owner)))
    [problem] = err.value.problems
    assert problem.path == "$.Reservations[0].OwnerId"
    assert problem.message == f"must be a 12-digit AWS account id, got {json.dumps(owner)}"


def test_an_organization_run_with_a_colon_in_an_owner_id_is_refused_not_silently_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(dump(instance(), owner="1111:2222:3333")))
    status = main(["run", "--fleet", str(path), "--organization", "--out", str(tmp_path / "out"), "--json"])
    assert status == 2
    assert capsys.readouterr().err.splitlines() == [
        f'{path}: $.Reservations[0].OwnerId: must be a 12-digit AWS account id, got "1111:2222:3333"'
    ]


# -- AWS tag limits ---------------------------------------------------------------------------------


def test_an_instance_beyond_aws_tag_limits_is_refused_with_the_limit_named() -> None:
    user_tags = [{"Key": f"k{i}", "Value": "v"} for i in range(MAX_USER_TAGS + 1)]
    long_key = [{"Key": "k" * (MAX_TAG_KEY_CHARS + 1), "Value": "v"}]
    long_value = [{"Key": "Owner", "Value": "v" * (MAX_TAG_VALUE_CHARS + 1)}]
    with pytest.raises(FleetError) as err:
        list(
            iter_fleet_document(
                {
                    "Reservations": [
                        {"OwnerId": ACCOUNT, "Instances": [instance(user_tags)]},
                        {"OwnerId": ACCOUNT, "Instances": [instance(long_key)]},
                        {"OwnerId": ACCOUNT, "Instances": [instance(long_value)]},
                    ]
                }
            )
        )
    assert [str(p) for p in err.value.problems] == [
        "$.Reservations[0].Instances[0].Tags: 51 user tags, more than AWS allows on a resource (50); "
        "the instance is refused",
        "$.Reservations[1].Instances[0].Tags[0].Key: 129 characters, more than AWS allows in a tag key (128); "
        "the instance is refused",
        "$.Reservations[2].Instances[0].Tags[0].Value: 257 characters, more than AWS allows in a tag value "
        "(256); the instance is refused",
    ]


def test_instances_at_the_limits_are_accepted_and_aws_tags_do_not_count() -> None:
    tags = [
        {"Key": f"k{i:03d}" + "k" * (MAX_TAG_KEY_CHARS - 4), "Value": "v" * MAX_TAG_VALUE_CHARS}
        for i in range(50)
    ]
    tags += [{"Key": f"aws:cloudformation:x{i}", "Value": "v"} for i in range(10)]
    [loaded] = iter_fleet_document(dump(instance(tags)))
    assert len(loaded.instance["Tags"]) == 60


def test_a_huge_tag_value_is_refused_without_a_huge_run(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(dump(instance([{"Key": "Blob", "Value": "x" * 5_000_000}]))))
    with pytest.raises(FleetError) as err:
        load_fleet_file(path)
    assert "5000000 characters, more than AWS allows in a tag value (256)" in str(err.value)
