"""workflow.safe_files: no file Tagwarden writes is ever written through a symbolic link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workflow.cli import main
from workflow.safe_files import (
    UnsafePath,
    open_dir_no_follow,
    open_for_write_no_follow,
    write_text_no_follow,
)


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    target = tmp_path / "elsewhere" / "precious.txt"
    target.parent.mkdir()
    target.write_text("keep me")
    return target


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_creates_then_replaces_a_regular_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    assert write_text_no_follow(path, "one") == path
    first_inode = path.stat().st_ino
    write_text_no_follow(path, "two é")
    assert path.read_text(encoding="utf-8") == "two é"
    assert path.stat().st_ino != first_inode  # a new file renamed into place, not rewritten in place
    assert leftovers(tmp_path) == []


def test_write_refuses_a_link_to_an_existing_file_and_leaves_the_target_alone(
    tmp_path: Path, precious: Path
) -> None:
    link = tmp_path / "report.html"
    link.symlink_to(precious)
    with pytest.raises(UnsafePath, match="is a symbolic link; refusing to write through it"):
        write_text_no_follow(link, "overwritten")
    assert precious.read_text() == "keep me"
    assert link.is_symlink()
    assert leftovers(tmp_path) == []


def test_write_refuses_a_dangling_link_and_creates_nothing_at_its_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    with pytest.raises(UnsafePath):
        write_text_no_follow(link, "x")
    assert not target.exists()


def test_write_refuses_a_folder_and_a_fifo(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(UnsafePath, match="is a directory"):
        write_text_no_follow(tmp_path / "folder", "x")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UnsafePath, match="not a regular file"):
        write_text_no_follow(tmp_path / "pipe", "x")


def test_exclusive_write_refuses_any_existing_name(tmp_path: Path, precious: Path) -> None:
    path = tmp_path / "summary.json"
    write_text_no_follow(path, "{}", exclusive=True)
    with pytest.raises(FileExistsError):
        write_text_no_follow(path, "{}", exclusive=True)
    assert path.read_text() == "{}"
    assert leftovers(tmp_path) == []


def test_open_for_write_refuses_an_existing_link_even_when_dangling(tmp_path: Path, precious: Path) -> None:
    (tmp_path / "to-file").symlink_to(precious)
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing-here")
    for name in ("to-file", "dangling"):
        with pytest.raises((FileExistsError, UnsafePath)):
            open_for_write_no_follow(tmp_path / name)
    assert precious.read_text() == "keep me"
    assert not (tmp_path / "nothing-here").exists()


def test_open_for_write_in_a_folder_descriptor(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    fd = open_dir_no_follow(folder)
    try:
        with open_for_write_no_follow("findings.jsonl", dir_fd=fd) as handle:
            handle.write("{}\n")
    finally:
        os.close(fd)
    assert (folder / "findings.jsonl").read_text() == "{}\n"


def test_open_dir_refuses_a_linked_folder(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    with pytest.raises(UnsafePath, match="symbolic link"):
        open_dir_no_follow(tmp_path / "link")


def test_graph_out_refuses_a_planted_link_with_one_line_and_exit_2(
    tmp_path: Path, precious: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "graph.html"
    link.symlink_to(precious)
    assert main(["graph", "--out", str(link)]) == 2
    err = capsys.readouterr().err
    assert err == f"--out: {link} is a symbolic link; refusing to write through it\n"
    assert precious.read_text() == "keep me"
    assert main(["graph", "--out", str(tmp_path / "real.html")]) == 0
    assert "<svg" in (tmp_path / "real.html").read_text(encoding="utf-8")
