"""Where a named trace's real file is looked for, in order.

1. `trace_file`, if given (must exist);
2. `traces_dir`, else env BULLETSIM_TRACES_DIR, if it holds one of the trace's files;
3. the user cache, env BULLETSIM_CACHE_DIR or ~/.cache/bulletsim/traces;
4. otherwise None: the caller falls back to the embedded model.
"""

from __future__ import annotations

import os
from pathlib import Path

from bulletsim.workload.catalog import TraceInfo

TRACES_DIR_ENV = "BULLETSIM_TRACES_DIR"
CACHE_DIR_ENV = "BULLETSIM_CACHE_DIR"


def cache_dir() -> Path:
    """The user cache of downloaded traces (not created here)."""
    override = os.environ.get(CACHE_DIR_ENV)
    return Path(override).expanduser() if override else Path.home() / ".cache/bulletsim/traces"


def search_dirs(traces_dir: str | None) -> list[Path]:
    """The folders searched for real files, in order."""
    dirs = []
    given = traces_dir or os.environ.get(TRACES_DIR_ENV)
    if given:
        dirs.append(Path(given).expanduser())
    dirs.append(cache_dir())
    return dirs


def find_trace_file(
    info: TraceInfo, trace_file: str | None = None, traces_dir: str | None = None
) -> Path | None:
    """The real file to load for `info`, or None when no folder holds one."""
    if trace_file is not None:
        path = Path(trace_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"trace_file {path} not found; `bulletsim traces download {info.name}` "
                "fetches the real file"
            )
        return path
    for folder in search_dirs(traces_dir):
        for candidate in info.files:
            if (folder / candidate.name).is_file():
                return folder / candidate.name
    return None
