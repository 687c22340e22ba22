"""The fast dump reader (ijson's C parser) takes plain dumps only and gives exactly what the exact
reader gives; every shape where the two could differ, or where ijson's cost could explode, is
left to the exact reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workflow import fleet
from workflow.errors import FleetError
from workflow.fleet import _read_fleet_fast, load_fleet_file


def instance(instance_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "InstanceId": instance_id,
        "State": {"Code": 16, "Name": "running"},
        "Placement": {"AvailabilityZone": "eu-west-1a", "Tenancy": "default"},
        "Tags": [{"Key": "Owner", "Value": "ana"}],
        "LaunchTime": "2026-01-01T00:00:00+00:00",
        **extra,
    }


def dump(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "dump.json"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def exact(path: Path) -> Any:
    """What the exact reader alone gives: instances, or the lines of its error."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fleet, "_read_fleet_fast", lambda *_: None)
        return loaded(path)


def loaded(path: Path) -> Any:
    try:
        return [(i.account_id, i.region, i.instance) for i in load_fleet_file(path)]
    except FleetError as err:
        return err.lines()


def reservations(*instances: dict[str, Any], indent: int | None = 4) -> str:
    return json.dumps(
        {"Reservations": [{"OwnerId": "111122223333", "Instances": list(instances)}]}, indent=indent
    )


@pytest.mark.parametrize("indent", [None, 4], ids=["compact", "as-the-cli-prints"])
def test_a_plain_dump_is_read_by_the_fast_reader_with_the_exact_readers_result(
    tmp_path: Path, indent: int | None
) -> None:
    path = dump(tmp_path, reservations(*(instance(f"i-{n}") for n in range(300)), indent=indent))
    fast = _read_fleet_fast(path, str(path))
    assert fast is not None
    assert [(i.account_id, i.region, i.instance) for i in fast] == exact(path)
    assert set(fast[0].instance) == {"InstanceId", "State", "Placement", "Tags", "LaunchTime"}


LEFT_TO_THE_EXACT_READER = {
    "a second Reservations key (json.loads keeps the last)": '{"Reservations": [{"OwnerId": "111122223333",'
    ' "Instances": [' + json.dumps(instance("i-first")) + ']}], "Reservations": []}',
    "an 'item' key (ijson's prefixes cannot tell it from an array element)": reservations(
        instance("i-1", Extra={"item": 1})
    ),
    "a surrogate escape (yajl replaces it)": reservations(instance("i-1", Extra="\ud83c\udf89")).replace(
        "\\ud83c\\udf89", "\\ud83c"
    ),
    "nesting deeper than describe-instances has": reservations(
        instance("i-1", Extra=[[[[[]]]]]), indent=None
    ).replace("[[[[[]]]]]", "[" * 5000 + "]" * 5000),
    "a string longer than two reads (ijson's prefixes grow with keys)": reservations(
        instance("i-1", Extra={"k" * 20_000: 1})
    ),
    "invalid JSON": reservations(instance("i-1"))[:-3],
    "a UTF-8 byte order mark": "\ufeff" + reservations(instance("i-1")),
    "an integer beyond 64 bits": reservations(instance("i-1", Extra=2**80)),
    "no Reservations": json.dumps({"Instances": [instance("i-1")]}),
    "Reservations empty": '{"Reservations": []}',
}


@pytest.mark.parametrize("text", LEFT_TO_THE_EXACT_READER.values(), ids=LEFT_TO_THE_EXACT_READER.keys())
def test_shapes_where_the_readers_could_differ_go_to_the_exact_reader(tmp_path: Path, text: str) -> None:
    path = dump(tmp_path, text)
    assert _read_fleet_fast(path, str(path)) is None
    assert loaded(path) == exact(path)


def test_the_fast_reader_reports_bad_instances_like_the_exact_reader(tmp_path: Path) -> None:
    broken = instance("i-2")
    del broken["State"]
    path = dump(tmp_path, reservations(instance("i-1"), broken))
    with pytest.raises(FleetError) as caught:
        _read_fleet_fast(path, str(path))
    assert caught.value.lines() == exact(path)
    assert caught.value.lines() == [
        f"{path}: $.Reservations[0].Instances[1].State.Name: missing or not a string"
    ]


def test_a_second_reservations_key_keeps_the_last_value_as_json_loads_does(tmp_path: Path) -> None:
    path = dump(tmp_path, LEFT_TO_THE_EXACT_READER["a second Reservations key (json.loads keeps the last)"])
    assert load_fleet_file(path) == []  # the last "Reservations" is empty: not i-first
