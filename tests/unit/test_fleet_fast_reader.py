"""The fast dump reader (orjson, a piece of the Reservations array at a time) takes plain dumps
only and gives exactly what the exact reader gives; every shape where the two could differ is left
to the exact reader, and a cut between pieces is never trusted unless the piece parses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    "another key beside Reservations": json.dumps(
        {"Reservations": json.loads(reservations(instance("i-1")))["Reservations"], "NextToken": "x"}
    ),
    "a lone surrogate escape (orjson refuses it)": reservations(
        instance("i-1", Extra="\ud83c\udf89")
    ).replace("\\ud83c\\udf89", "\\ud83c"),
    "nesting deeper than orjson takes": reservations(instance("i-1", Extra=[[[[[]]]]]), indent=None).replace(
        "[[[[[]]]]]", "[" * 5000 + "]" * 5000
    ),
    "a number beyond a double (json.loads says inf)": reservations(instance("i-1")).replace(
        '"Code": 16', '"Code": 1e400'
    ),
    "an account id beyond 64 bits (orjson would read a float)": reservations(instance("i-1")).replace(
        '"111122223333"', str(2**80)
    ),
    "a launch time beyond 64 bits": reservations(instance("i-1", LaunchTime=2**70)),
    "invalid JSON": reservations(instance("i-1"))[:-3],
    "a UTF-8 byte order mark": "\ufeff" + reservations(instance("i-1")),
    "UTF-16": reservations(instance("i-1")).encode("utf-16"),
    "no Reservations": json.dumps({"Instances": [instance("i-1")]}),
    "Reservations empty": '{"Reservations": []}',
}

READ_FAST_WITH_THE_EXACT_RESULT = {
    "an 'item' key": reservations(instance("i-1", Extra={"item": 1})),
    "a long key": reservations(instance("i-1", Extra={"k" * 20_000: 1})),
    "an integer beyond 64 bits where no finding shows it": reservations(instance("i-1", Extra=2**80)),
    "brackets and separators inside strings": reservations(
        instance("i-1", Tags=[{"Key": "Note", "Value": "}, {"}, {"Key": "x}],[{", "Value": '"},{"'}]),
        instance("i-2"),
        indent=None,
    ),
}


@pytest.mark.parametrize("text", LEFT_TO_THE_EXACT_READER.values(), ids=LEFT_TO_THE_EXACT_READER.keys())
def test_shapes_where_the_readers_could_differ_go_to_the_exact_reader(
    tmp_path: Path, text: str | bytes
) -> None:
    path = dump(tmp_path, text)
    assert _read_fleet_fast(path, str(path)) is None
    assert loaded(path) == exact(path)


@pytest.mark.parametrize(
    "text", READ_FAST_WITH_THE_EXACT_RESULT.values(), ids=READ_FAST_WITH_THE_EXACT_RESULT.keys()
)
def test_shapes_the_fast_reader_takes_give_the_exact_readers_result(tmp_path: Path, text: str) -> None:
    path = dump(tmp_path, text)
    fast = _read_fleet_fast(path, str(path))
    assert fast is not None
    assert [(i.account_id, i.region, i.instance) for i in fast] == exact(path)


def many_reservations(count: int, indent: int | None) -> str:
    return json.dumps(
        {
            "Reservations": [
                {
                    "OwnerId": "111122223333",
                    "Instances": [
                        instance(f"i-{n}", Tags=[{"Key": "Note", "Value": "}, {" * (n % 5)}]),
                        instance(f"i-{n}b", BlockDeviceMappings=[{"DeviceName": "/dev/xvda"}, {"Ebs": {}}]),
                    ],
                }
                for n in range(count)
            ]
        },
        indent=indent,
    )


@pytest.mark.parametrize("indent", [None, 4], ids=["compact", "as-the-cli-prints"])
def test_a_dump_cut_into_many_pieces_reads_every_reservation_once(
    tmp_path: Path, indent: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pieces of 1 KiB: hundreds of cuts, most of them next to "}, {" at other depths and in strings.
    monkeypatch.setattr(fleet, "_PIECE_BYTES", 1024)
    monkeypatch.setattr(fleet, "_CUT_WINDOW_BYTES", 256)
    path = dump(tmp_path, many_reservations(300, indent))
    fast = _read_fleet_fast(path, str(path))
    assert fast is not None
    assert [(i.account_id, i.region, i.instance) for i in fast] == exact(path)
    assert len(fast) == 600


def test_a_piece_that_never_parses_goes_to_the_exact_reader_at_the_size_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet, "_PIECE_BYTES", 1024)
    monkeypatch.setattr(fleet, "_MAX_PIECE_BYTES", 8 * 1024)
    # A lone surrogate early on: every piece holding it fails, and the file is far past the limit.
    text = many_reservations(300, 4).replace('"i-3"', '"i-3\\ud800"', 1)
    path = dump(tmp_path, text)
    assert _read_fleet_fast(path, str(path)) is None
    assert loaded(path) == exact(path)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.text(alphabet='{}[],: "\\ab', max_size=12), min_size=1, max_size=30),
    indent=st.sampled_from([None, 0, 2, 4]),
    piece=st.integers(min_value=64, max_value=2048),
)
def test_any_tag_text_reads_the_same_through_both_readers(
    tmp_path_factory: pytest.TempPathFactory, values: list[str], indent: int | None, piece: int
) -> None:
    path = tmp_path_factory.mktemp("dump") / "dump.json"
    document = {
        "Reservations": [
            {
                "OwnerId": "111122223333",
                "Instances": [instance(f"i-{n}", Tags=[{"Key": value, "Value": value}])],
            }
            for n, value in enumerate(values)
        ]
    }
    path.write_text(json.dumps(document, indent=indent))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fleet, "_PIECE_BYTES", piece)
        patch.setattr(fleet, "_CUT_WINDOW_BYTES", 64)
        fast = _read_fleet_fast(path, str(path))
    assert fast is not None, "a plain dump must not need the exact reader"
    assert [(i.account_id, i.region, i.instance) for i in fast] == exact(path)


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
