"""Writing files without ever writing through a symbolic link.

Every file the CLI writes goes through this module, so that a link planted where an output will
go (``ln -s ~/.bashrc out/report.html``) can never make Tagwarden overwrite its target:

* :func:`open_for_write_no_follow` creates a new file with ``O_CREAT | O_EXCL | O_NOFOLLOW``: it
  fails if anything (a file, a link, a dangling link) already has that name, so the file it returns
  is always one it made itself. Pass ``dir_fd`` (a folder opened with :func:`open_dir_no_follow`) to
  create it inside a folder that cannot be swapped for a link between checks.
* :func:`write_text_no_follow` writes a whole file: to a fresh temporary file beside the
  destination (made the way above), then renamed over it. The rename replaces a name, never writes
  through it; an existing destination that is a link (or not a regular file) is refused with
  :class:`UnsafePath`. Readers see the old file or the new one, never half of it.
* :func:`open_dir_no_follow` opens a folder for ``dir_fd`` use, refusing a link.

All of them raise :class:`UnsafePath` (an ``OSError``) for a link, with the path in the message, so
a caller can print one line and exit 2.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_text_no_follow(folder / "report.csv", "a,b\\n").read_text()
'a,b\\n'
>>> (folder / "elsewhere").write_text("precious")
8
>>> (folder / "link.csv").symlink_to(folder / "elsewhere")
>>> write_text_no_follow(folder / "link.csv", "overwrite?")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
workflow.safe_files.UnsafePath: ... is a symbolic link; refusing to write through it
>>> (folder / "elsewhere").read_text()
'precious'
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import IO

__all__ = [
    "UnsafePath",
    "open_dir_no_follow",
    "open_for_write_no_follow",
    "write_text_no_follow",
]

# O_NOFOLLOW exists on every POSIX system Tagwarden runs on (Linux for Lambda and CI, macOS for
# laptops); O_DIRECTORY too. Windows has neither: there, getattr gives 0 and the lstat checks
# below are the only defence.
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FILE_MODE = 0o644


class UnsafePath(OSError):
    """A path Tagwarden will not write: a symbolic link, or not a regular file or folder.

    ``str()`` of it is one line naming the path, ready for ``Problem("--out", str(err))``.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.errno = code


def _refuse_link(path: Path | str, err: OSError) -> None:
    # open() with O_NOFOLLOW on a link fails with ELOOP (Linux, macOS) or EMLINK (FreeBSD), and
    # with ENOTDIR when O_DIRECTORY is also given: ask lstat which it was.
    if err.errno in {errno.ELOOP, errno.EMLINK} or (err.errno == errno.ENOTDIR and os.path.islink(path)):
        raise UnsafePath(err.errno, f"{path} is a symbolic link; refusing to write through it") from None


def open_dir_no_follow(path: Path | str) -> int:
    """Open a folder (not a link to one) and return its descriptor, for ``dir_fd`` arguments.

    The caller closes it (``os.close``). Raises :class:`UnsafePath` if ``path`` is a link and
    ``NotADirectoryError``/``FileNotFoundError`` as ``os.open`` does.

    >>> import tempfile
    >>> fd = open_dir_no_follow(tempfile.gettempdir())
    >>> os.close(fd)
    """
    try:
        return os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC)
    except OSError as err:
        _refuse_link(path, err)
        raise


def open_for_write_no_follow(
    path: Path | str, *, dir_fd: int | None = None, mode: int = _FILE_MODE
) -> IO[str]:
    """Create ``path`` and open it for writing; fail if anything at all already has that name.

    ``O_EXCL`` makes the kernel refuse an existing name, link or not (``FileExistsError``), so
    nothing that was there before is ever written. With ``dir_fd``, ``path`` is relative to that
    open folder. Text mode is UTF-8 with ``\\n`` line ends.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with open_for_write_no_follow(folder / "findings.jsonl") as handle:
    ...     _ = handle.write("{}\\n")
    >>> open_for_write_no_follow(folder / "findings.jsonl")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: [Errno 17] File exists: ...
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
    try:
        fd = os.open(path, flags, mode, dir_fd=dir_fd)
    except OSError as err:
        _refuse_link(path, err)
        raise
    return os.fdopen(fd, "w", encoding="utf-8", newline="\n")


def _check_destination(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(errno.ELOOP, f"{path} is a symbolic link; refusing to write through it")
    if stat.S_ISDIR(info.st_mode):
        raise UnsafePath(errno.EISDIR, f"{path} is a directory; give a file name")
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePath(errno.EINVAL, f"{path} is not a regular file; refusing to replace it")


def write_text_no_follow(path: Path | str, text: str, *, exclusive: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` as a whole, never through a link; return the path.

    The text goes to a new temporary file beside ``path`` (a random name, created exclusively and
    without following links), which is then renamed onto ``path``: an existing regular file is
    replaced in one step, a link or a folder at ``path`` is refused with :class:`UnsafePath`.
    ``exclusive=True`` also refuses an existing regular file (``FileExistsError``).

    The last component is what is protected: folders above it are the caller's choice (an output
    folder may well be a link the user made on purpose).

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "graph.html"
    >>> _ = write_text_no_follow(target, "<p>one</p>")
    >>> write_text_no_follow(target, "<p>two</p>").read_text()
    '<p>two</p>'
    """
    destination = Path(path)
    _check_destination(destination)
    if exclusive and os.path.lexists(destination):
        raise FileExistsError(errno.EEXIST, f"{destination} already exists")
    folder = destination.parent
    temporary = folder / f".{destination.name}.{secrets.token_hex(8)}.tmp"
    try:
        with open_for_write_no_follow(temporary) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # Between the check above and this rename, a link may have appeared at ``destination``:
        # rename replaces the name (the link itself), it never writes into the link's target.
        _check_destination(destination)
        if exclusive:
            # link() fails if the name exists, whatever it is: no window for a planted link.
            os.link(temporary, destination, follow_symlinks=False)
        else:
            os.replace(temporary, destination)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return destination
