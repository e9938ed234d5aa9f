"""Where a named trace's real file is looked for, in order.

1. `trace_file`, if given (must exist);
2. `traces_dir`, else env BULLETSIM_TRACES_DIR: it must hold one of the trace's files (a
   folder that does not exist, or holds none of them, is an error naming the files, never a
   silent fallback to the cache or the embedded model);
3. without either, the user cache, env BULLETSIM_CACHE_DIR or ~/.cache/bulletsim/traces;
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
        folder = Path(given).expanduser()
        if not folder.is_dir():
            source = "traces_dir" if traces_dir else f"env {TRACES_DIR_ENV}"
            raise FileNotFoundError(
                f"{source} {folder} is not a folder; give the folder holding the real trace "
                "files (`bulletsim traces list` shows their names)"
            )
        dirs.append(folder)
    dirs.append(cache_dir())
    return dirs


def find_trace_file(
    info: TraceInfo,
    trace_file: str | None = None,
    traces_dir: str | None = None,
    strict: bool = True,
) -> Path | None:
    """The real file to load for `info`, or None when no folder holds one. A traces folder
    given (`traces_dir` or the env) must hold it: FileNotFoundError naming the files looked
    for (`strict`; `traces list` passes False to list what is missing)."""
    if trace_file is not None:
        path = Path(trace_file).expanduser()
        if path.is_dir():
            raise ValueError(
                f"trace_file {path} is a folder, not a file; give the file, or pass the folder "
                "as traces_dir (--traces-dir)"
            )
        if not path.is_file():
            raise FileNotFoundError(
                f"trace_file {path} not found; `bulletsim traces download {info.name}` "
                "fetches the real file"
            )
        return path
    dirs = search_dirs(traces_dir)
    given = bool(traces_dir or os.environ.get(TRACES_DIR_ENV))
    for folder in dirs[:1] if given and strict else dirs:
        for candidate in info.files:
            if (folder / candidate.name).is_file():
                return folder / candidate.name
    if given and strict and info.files:  # a folder the user named: never the embedded model
        source = "--traces-dir" if traces_dir else f"env {TRACES_DIR_ENV}"
        wanted = " or ".join(f.name for f in info.files)
        raise FileNotFoundError(
            f"{source} {dirs[0]} holds no {wanted} (trace {info.name}); give the folder "
            f"holding it (`bulletsim traces download {info.name}` fetches it), or leave "
            f"{source} out for the embedded model"
        )
    return None
