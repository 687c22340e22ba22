"""The streaming loader of describe-instances files gives what ``json.loads`` of the whole file gave.

The reference is the loader as it was before streaming: ``json.loads`` of the whole file, then
:func:`iter_fleet_document`, with the same one-line messages. Every case is also read through a
window of a few bytes, so values, keys, numbers and error positions fall across reads.
"""

from __future__ import annotations

import codecs
import json
import os
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from tests.benchmark_scripts import fleetgen
from workflow import fleet
from workflow.errors import FleetError
from workflow.fleet import FleetInstance, iter_fleet_document, load_fleet_file

ROOT = Path(__file__).resolve().parents[2]
TWO_REGIONS = ROOT / "tests" / "fixtures" / "describe-instances.two-regions.json"
# The format sample kept beside the repository (absent from a bare clone: those cases skip).
SAMPLE = ROOT.parent / "shared" / "fixtures" / "describe-instances.sample.json"


def loaded_whole(path: Path) -> list[tuple[str | None, str, dict[str, Any]]] | list[str]:
    """The loader before streaming: instances, or the lines of its error."""
    source = str(path)
    try:
        document = json.loads(path.read_bytes())
    except json.JSONDecodeError as err:
        return [f"{source}: $: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"]
    except (UnicodeDecodeError, RecursionError) as err:
        return [f"{source}: $: not a JSON text: {err}"]
    try:
        return [(i.account_id, i.region, i.instance) for i in iter_fleet_document(document, source=source)]
    except FleetError as err:
        return err.lines()


def streamed(path: Path) -> list[tuple[str | None, str, dict[str, Any]]] | list[str]:
    try:
        return [(i.account_id, i.region, i.instance) for i in load_fleet_file(path)]
    except FleetError as err:
        return err.lines()


@pytest.fixture(params=[None, 1, 5, 64], ids=["1MiB-reads", "1-byte-reads", "5-byte-reads", "64-byte-reads"])
def window(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read size of the loader: the default, and tiny ones that cut every value somewhere."""
    if request.param is not None:
        monkeypatch.setattr(fleet, "_READ_BYTES", request.param)


def instance(instance_id: str = "i-1", zone: str = "us-east-1a", **extra: Any) -> dict[str, Any]:
    return {
        "InstanceId": instance_id,
        "State": {"Name": "running"},
        "Placement": {"AvailabilityZone": zone},
    } | extra


GOOD = {
    "Reservations": [
        {"OwnerId": "111122223333", "Instances": [instance("i-1"), instance("i-2", "eu-west-1b")]}
    ]
}
BROKEN_INSTANCES = {
    "Reservations": [
        {
            "Instances": [
                instance(zone="nowhere"),
                {
                    "InstanceId": 5,
                    "State": {},
                    "Placement": {"AvailabilityZone": "us-east-1a"},
                    "Tags": [{"Value": "x"}],
                },
            ]
        },
        {"Instances": None},
        {"Instances": [instance(Tags={"Key": "Owner"})]},
    ]
}
MANY_PROBLEMS = {"Reservations": [{"Instances": [{}]} for _ in range(30)]}
PRETTY = json.dumps(GOOD, indent=4)

CASES: dict[str, bytes] = {
    "good": json.dumps(GOOD).encode(),
    "good, pretty-printed": PRETTY.encode(),
    "good, numbers and literals around": b'{"NextToken": null, "Count": 1.5e3, "Reservations": '
    + json.dumps(GOOD["Reservations"]).encode()
    + b', "Ok": [true, false, -0.25]}',
    "empty fleet": b'{"Reservations": []}\n',
    "non-ASCII values": json.dumps(
        {"Reservations": [{"Instances": [instance(Tags=[{"Key": "Owner", "Value": "José Ñúñez 東京 🚀"}])]}]},
        ensure_ascii=False,
    ).encode(),
    "escaped values": json.dumps(
        {"Reservations": [{"Instances": [instance(Tags=[{"Key": "Owner", "Value": 'é\n"\\ \u2028'}])]}]}
    ).encode(),
    "UTF-8 BOM": codecs.BOM_UTF8 + json.dumps(GOOD).encode(),
    "UTF-16 with BOM (Windows PowerShell redirection)": json.dumps(GOOD).encode("utf-16"),
    "UTF-16-LE without BOM": json.dumps(GOOD).encode("utf-16-le"),
    "UTF-32-BE": json.dumps(GOOD).encode("utf-32-be"),
    "Reservations given twice: the last counts": b'{"Reservations": [{"Instances": [1]}], "Reservations": '
    + json.dumps(GOOD["Reservations"]).encode()
    + b"}",
    "Reservations given twice, last not a list": b'{"Reservations": [], "Reservations": 3}',
    "broken instances": json.dumps(BROKEN_INSTANCES, indent=4).encode(),
    "more problems than shown": json.dumps(MANY_PROBLEMS).encode(),
    "problems, then broken JSON further on": json.dumps(MANY_PROBLEMS).encode()[:-2] + b", }",
    "not an object": b"[1, 2]",
    "an array of instances (--query 'Reservations[].Instances[]')": json.dumps(
        [instance()], indent=2
    ).encode(),
    "a broken array": b"[1, 2",
    "a string": b'"Reservations"',
    "a number cut short": b"12.",
    "null": b"null",
    "no Reservations": b'{"NextToken": "x"}',
    "Reservations not a list": b'{"Reservations": {"Instances": []}}',
    "empty object": b"{}",
    "empty file": b"",
    "only whitespace": b" \n\t ",
    "truncated": b'{"Reservations": [',
    "truncated in a reservation": PRETTY.encode()[: len(PRETTY) // 2],
    "truncated in a string": b'{"Reservations": [{"Instances": [{"InstanceId": "i-12',
    "trailing comma in the list": b'{"Reservations": [{"Instances": []},]}',
    "trailing comma in the object": b'{"Reservations": [],}',
    "missing colon": b'{"Reservations" []}',
    "missing comma between reservations": b'{"Reservations": [{"Instances": []} {"Instances": []}]}',
    "key not a string": b"{Reservations: []}",
    "missing comma between keys": b'{"Reservations": [] "X": 1}',
    "error on line 7": PRETTY.replace('"State"', "State", 1).encode(),
    "control character in a string": b'{"Reservations": [{"Instances": [{"InstanceId": "i-\n1"}]}]}',
    "bad escape": b'{"Reservations": [{"Instances": [{"InstanceId": "i-\\x"}]}]}',
    "NaN accepted as json.loads does": b'{"Reservations": [], "X": NaN}',
    "extra data": b'{"Reservations": []} {"Reservations": []}',
    "extra data after whitespace": b'{"Reservations": []}\n\nx',
    "invalid UTF-8 in a value": b'{"Reservations": [{"Instances": [{"InstanceId": "i-\xff1"}]}]}',
    "invalid UTF-8 continuation": b'{"Reservations": [], "X": "\xc3\x28"}',
    "Latin-1 file": '{"Reservations": [{"Instances": [{"InstanceId": "i-é"}]}]}'.encode("latin-1"),
    "nested too deeply": b'{"Reservations": [{"Instances": [{"X": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}]}]}",
    "nested too deeply and never closed": b'{"Reservations": ' + b"[" * 50_000,
}


@pytest.mark.parametrize("name", list(CASES))
def test_streaming_matches_the_whole_file_loader(name: str, window: None, tmp_path: Path) -> None:
    path = tmp_path / "describe-instances.json"
    path.write_bytes(CASES[name])

    expected = loaded_whole(path)

    assert streamed(path) == expected


def test_the_cases_cover_success_and_every_kind_of_error(tmp_path: Path) -> None:
    outcomes: set[str] = set()
    for n, data in enumerate(CASES.values()):
        path = tmp_path / f"{n}.json"
        path.write_bytes(data)
        result = loaded_whole(path)
        if result and not isinstance(result[0], str):
            outcomes.add("instances")
        for line in result:
            if isinstance(line, str):
                outcomes.add(" ".join(line.removeprefix(f"{path}: ").split()[:3]))

    assert {
        "instances",
        "$: invalid JSON",
        "$: not a",
        "$: expected the",
        "$: more problems",
        "$.Reservations[0].Instances[0].InstanceId: missing or",
        "$.Reservations[1].Instances: missing or",
    } <= outcomes


def test_one_line_per_problem_with_the_instance_path(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text(json.dumps(BROKEN_INSTANCES, indent=4))

    with pytest.raises(FleetError) as caught:
        load_fleet_file(path)

    assert caught.value.lines() == [
        f"{path}: $.Reservations[0].Instances[0].Placement.AvailabilityZone: "
        "missing or not an availability zone like us-east-1a",
        f"{path}: $.Reservations[0].Instances[1].InstanceId: missing or not a string",
        f"{path}: $.Reservations[0].Instances[1].State.Name: missing or not a string",
        f"{path}: $.Reservations[0].Instances[1].Tags[0].Key: missing or not a string",
        f"{path}: $.Reservations[1].Instances: missing or not a list",
        f"{path}: $.Reservations[2].Instances[0].Tags: must be a list of {{Key, Value}} objects",
    ]


def test_invalid_json_names_line_and_column_of_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(CASES["error on line 7"])

    with pytest.raises(FleetError) as caught:
        load_fleet_file(path)

    assert caught.value.lines() == [
        f"{path}: $: invalid JSON at line 8, column 21: Expecting property name enclosed in double quotes"
    ]


def test_non_utf8_gives_the_byte_position_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(b" " * 3_000_000 + b'{"Reservations": ["\xff"]}')

    with pytest.raises(FleetError) as caught:
        load_fleet_file(path)

    assert caught.value.lines() == [
        f"{path}: $: not a JSON text: 'utf-8' codec can't decode byte 0xff in position 3000019: "
        "invalid start byte"
    ]


@pytest.mark.parametrize("name", ["sample", "two-regions"])
def test_fixtures_load_as_before(name: str, window: None) -> None:
    path = {"sample": SAMPLE, "two-regions": TWO_REGIONS}[name]
    if not path.exists():
        pytest.skip(f"{path} is not beside this clone")

    fleet_instances = load_fleet_file(path)

    assert [(i.account_id, i.region, i.instance) for i in fleet_instances] == loaded_whole(path)
    assert all(isinstance(i, FleetInstance) for i in fleet_instances)


@pytest.mark.parametrize("fidelity", ["full", "minimal"])
def test_generated_dumps_load_as_before(fidelity: str, tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    fleetgen().write_describe_instances(path, 400, seed=5, fidelity=fidelity)

    fleet_instances = load_fleet_file(path)

    assert len(fleet_instances) == 400
    assert [(i.account_id, i.region, i.instance) for i in fleet_instances] == loaded_whole(path)


def test_a_reservation_larger_than_a_read_is_decoded_whole(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    big = {
        "OwnerId": "111111111111",
        "Instances": [instance(f"i-{n}", Tags=[{"Key": "K", "Value": "v" * 200}]) for n in range(3000)],
    }
    path.write_text(json.dumps({"Reservations": [big, big]}, indent=4))
    assert path.stat().st_size > 2 * fleet._READ_BYTES

    fleet_instances = load_fleet_file(path)

    assert [i.instance for i in fleet_instances] == big["Instances"] * 2


def test_instances_share_key_strings_like_json_loads(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    fleetgen().write_describe_instances(path, 20, seed=5)

    first, *others = load_fleet_file(path)

    keys = {key: key for key in first.instance}
    assert all(keys[key] is key for other in others for key in other.instance if key in keys)
    regions = {i.region for i in [first, *others]}
    assert len({id(i.region) for i in [first, *others]}) == len(regions)


def test_memory_holds_the_instances_and_a_window_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    size = fleetgen().write_describe_instances(path, 2000, seed=9)

    tracemalloc.start()
    try:
        fleet_instances = load_fleet_file(path)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(fleet_instances) == 2000
    # Beyond the instances kept: a window of text and one reservation, not the file (json.loads
    # of the whole file peaked at its bytes, its text and its parse tree at once).
    assert peak - kept < min(size // 2, 8 * 2**20)


def test_a_named_pipe_is_read_whole_then_parsed(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs named pipes")
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    text = json.dumps(GOOD).encode()

    def write() -> None:
        with open(path, "wb") as pipe:
            pipe.write(text)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        fleet_instances = load_fleet_file(path)
    finally:
        writer.join(timeout=10)

    assert [(i.account_id, i.region, i.instance["InstanceId"]) for i in fleet_instances] == [
        ("111122223333", "us-east-1", "i-1"),
        ("111122223333", "eu-west-1", "i-2"),
    ]


def test_unreadable_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FleetError) as missing:
        load_fleet_file(tmp_path / "nope.json")
    with pytest.raises(FleetError) as directory:
        load_fleet_file(tmp_path)

    assert missing.value.lines() == [
        f"{tmp_path / 'nope.json'}: $: cannot read file: No such file or directory"
    ]
    assert directory.value.lines() == [f"{tmp_path}: $: cannot read file: Is a directory"]
