"""One check for every path a user gives where a file belongs (configs, traces, profiles...)."""

from __future__ import annotations

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
