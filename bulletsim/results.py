"""Results directories: resolved config, parquet tables, a flat summary; written atomically.

Layout of `results/<run>/`: `config.json` (resolved config + versions + git sha + latency
model provenance), `requests.parquet`, `iterations.parquet`, `sm_timeline.parquet` (their
columns: `records.py`'s docstring; both count `num_sms` as the SMs that ran, the timeline adds
the policy's split as `policy_sms`), `summary.json`. Everything is deterministic (no
wall-clock stamps), so the same seed and inputs give byte-identical files. A run is written
to a hidden sibling directory and renamed into place, so an interrupted write never leaves a
complete-looking directory; only a folder holding bulletsim's marker `.bulletsim-results` is
ever replaced (`outdir.py`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd

from bulletsim.outdir import staged_dir
from bulletsim.run import RunResult

RESULTS_VERSION = 1


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def dump_json(obj, path: Path) -> None:
    path.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def git_sha() -> str | None:
    """HEAD of the checkout that runs; the environment's BULLETSIM_GIT_SHA wins (a copy of
    the tree without its .git, e.g. on a lent GPU machine, names the commit it was made from)."""
    if os.environ.get("BULLETSIM_GIT_SHA"):
        return os.environ["BULLETSIM_GIT_SHA"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("bulletsim", "simpy", "numpy", "pandas", "scipy", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def run_metadata(res: RunResult) -> dict:
    return {
        "results_version": RESULTS_VERSION,
        "config": res.config.to_dict(),
        "workload": {
            "name": res.workload.name,
            "source": res.workload.source,
            "is_embedded_default": res.workload.is_embedded_default,
            "num_requests": len(res.workload.requests),
            "num_dropped": res.workload.num_dropped,
            "num_clipped": res.workload.num_clipped,
            "notes": list(res.workload.notes),
        },
        "latency_model": res.latency.describe(),
        "slo_source": res.slo_source,
        "versions": versions(),
        "git_sha": git_sha(),
    }


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    df.to_parquet(path, index=False, engine="pyarrow", compression="zstd")


TABLE_FILES = ("requests.parquet", "iterations.parquet", "sm_timeline.parquet")


def write_run_files(
    res: RunResult,
    folder: Path,
    extra_json: dict[str, dict] | None = None,
    digests_in: str | None = None,
) -> None:
    """The run's files into `folder` (a staged folder from `outdir.staged_dir`).

    `extra_json` adds files (name -> content), e.g. a live run's `live.json`; `digests_in`
    names one of them that also records `files`: the sha256 of each table written, so a
    reader can tell a table of another run copied into the folder."""
    import hashlib

    dump_json(run_metadata(res), folder / "config.json")
    _write_parquet(res.requests, folder / "requests.parquet")
    _write_parquet(res.iterations, folder / "iterations.parquet")
    _write_parquet(res.sm_log, folder / "sm_timeline.parquet")
    extra = dict(extra_json or {})
    if digests_in is not None:
        extra[digests_in] = dict(extra[digests_in]) | {
            "files": {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in TABLE_FILES}
        }
    for name, obj in extra.items():
        dump_json(obj, folder / name)
    dump_json(res.summary, folder / "summary.json")  # last: its presence marks completeness


def write_results(
    res: RunResult,
    out_dir: str | Path,
    extra_json: dict[str, dict] | None = None,
    digests_in: str | None = None,
) -> Path:
    """Write a run's folder atomically (see `outdir.staged_dir`); `extra_json`, `digests_in`:
    as `write_run_files`.

    Raises ValueError, touching nothing, when `out_dir` is a file or a folder bulletsim did
    not write; an earlier run's folder (marker `.bulletsim-results`) is replaced whole.
    """
    with staged_dir(out_dir, "run") as tmp:
        write_run_files(res, tmp, extra_json, digests_in)
    return Path(out_dir)


def load_results(run_dir: str | Path) -> dict:
    """Read a results directory back: summary, config and the three tables."""
    d = Path(run_dir)
    if not (d / "summary.json").is_file():
        raise FileNotFoundError(f"{d} is not a complete results directory (no summary.json)")
    return {
        "summary": json.loads((d / "summary.json").read_text()),
        "config": json.loads((d / "config.json").read_text()),
        "requests": pd.read_parquet(d / "requests.parquet"),
        "iterations": pd.read_parquet(d / "iterations.parquet"),
        "sm_timeline": pd.read_parquet(d / "sm_timeline.parquet"),
    }
