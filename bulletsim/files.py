"""One check for every path a user gives where a file belongs (configs, traces, profiles...)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def require_file(path: str | Path, what: str) -> Path:
    """`path` (user-expanded) when it is a regular file, else a one-line error naming `what`.

    Raises FileNotFoundError when nothing is there, ValueError when it is a folder or another
    kind of file, so a folder given for a file is never reported as "not found".
    """
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        raise ValueError(f"{what} {p} is a folder, not a file")
    if p.exists():
        raise ValueError(f"{what} {p} is not a regular file")
    raise FileNotFoundError(f"{what} not found: {p}")


def require_writable_file(
    path: Path, flag: str, wrote_it: Callable[[Path], bool], written_by: str, example: str
) -> Path:
    """`path` if the tool may write a file there: not a folder, in an existing folder, and
    either new or a file `wrote_it` recognises as the tool's own (never overwrite what the
    tool did not write). Raises ValueError naming `flag`; `written_by` says which output it
    must be to be replaced, `example` a file name to suggest for a folder. The folder must be
    writable (the file is written as a hidden sibling, then renamed into place)."""
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name, e.g. {path / example}")
    if path.exists() and not wrote_it(path):
        raise ValueError(f"{flag} {path} exists and is not {written_by}; choose a new file name")
    if not path.parent.is_dir():
        what = "is not a folder" if path.parent.exists() else "does not exist"
        raise ValueError(f"{flag} {path}: {path.parent} {what}")
    if not folder_writable(path.parent):
        raise ValueError(f"{flag} {path}: cannot write in folder {path.parent}")
    return path


def folder_writable(folder: Path) -> bool:
    """Whether a file can be created in `folder` (tried: permissions alone do not tell for
    root or a read-only mount); the probe is an anonymous file, gone when closed."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False
