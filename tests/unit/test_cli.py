"""`tagwarden validate` and `tagwarden policy convert`: exit statuses and one line per problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workflow.cli import main

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, doc: object, name: str = "p.json") -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def test_validate_exits_0_for_shipped_policies(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in (ROOT / "policies").glob("*.json"))
    assert main(["validate", *files]) == 0
    assert capsys.readouterr().out.count("valid policy") == len(files)


def test_validate_exits_2_with_every_problem_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        {
            "version": 1,
            "name": "p",
            "rules": [{"key": "A"}, {"key": "B"}, {"key": "C", "pattern": "("}],
            "extra": True,
        },
    )
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{path}: $.extra: unknown field; allowed fields here: " + ", ".join(
        sorted(
            [
                "version",
                "name",
                "description",
                "owner_key",
                "resource_types",
                "inherit",
                "rules",
                "key_case",
                "prohibited_keys",
                "max_tags",
                "exemptions",
                "scope",
                "remediation",
            ]
        )
    )
    assert err[1].startswith(f"{path}: $.rules[2].pattern: not a valid regular expression:")
    assert len(err) == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"version": 1,\n  "name": }', "$: invalid JSON at line 2, column 11: Expecting value"),
        ("", "$: invalid JSON at line 1, column 1: Expecting value"),
        ("[]", "$: a tag policy must be a JSON object, not an array"),
    ],
)
def test_validate_rejects_unparsable_files_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    path = write(tmp_path, content)
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: {expected}")
    assert "Traceback" not in err


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.json")]) == 2
    assert (
        capsys.readouterr().err
        == f"{tmp_path / 'nope.json'}: $: cannot read file: No such file or directory\n"
    )


def test_convert_prints_a_valid_version_1_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path, {"tag1Key": "CostCenter", "tag1Value": "A,B", "tag2Key": "Owner"}, "config-rule.json"
    )
    assert main(["policy", "convert", path]) == 0
    converted = json.loads(capsys.readouterr().out)
    assert converted["version"] == 1
    assert converted["name"] == "config-rule"
    assert [r["key"] for r in converted["rules"]] == ["CostCenter", "Owner"]
    out_path = write(tmp_path, converted, "converted.json")
    assert main(["validate", "-q", out_path]) == 0


def test_unknown_command_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["frobnicate"])
    assert caught.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
