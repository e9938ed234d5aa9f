"""Results folders the tool owns: a marker file, checks before any work, atomic replacement.

A folder bulletsim wrote holds `.bulletsim-results`, a JSON marker with a schema tag, the
folder's kind ("run", "sweep" or "design") and the list of every file it wrote (relative paths).
Only such a folder is ever replaced, and only when it holds nothing else: a file a user put
there (not in the list) makes the run fail *before* simulating. Two exceptions, both about live
runs: files bulletsim wrote from the run afterwards (a `fidelity --table` table, a
`calibrate --from-live` profile; `own_outputs`) do not block it and are kept, copied into the
new folder; and a folder holding a live run is never replaced unless its live.json shows the
fake executor (GPU device times cannot be measured again; `live_run_refusal` fails closed).
Replacing is atomic: the new folder is built in a hidden temporary sibling and renamed into
place, so an interrupted run leaves the old folder (or nothing) and never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bulletsim.files import folder_writable

MARKER = ".bulletsim-results"
SCHEMA = "bulletsim-results/1"
KINDS = ("run", "sweep", "design")


def read_marker(path: Path) -> dict | None:
    """The marker of a folder bulletsim wrote, or None (no marker, unreadable, other schema)."""
    try:
        data = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return None
    return data


def _listed_files(path: Path) -> list[str]:
    return sorted(
        p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() or p.is_symlink()
    )


def check_out_dir(out: str | Path, kind: str) -> Path:
    """Raise ValueError unless `out` can receive a results folder of `kind`; returns it.

    Called before any simulation. Refused: an empty path, the current folder or one of its
    parents, the home folder, an existing file, an existing non-empty folder bulletsim did
    not write (no marker, or files not in its list that are not `kept_outputs`), a folder of
    the other kind, a folder holding a live run (`live_run_refusal`), and a location
    whose nearest existing parent is not a writable folder.
    """
    assert kind in KINDS
    if str(out).strip() == "":
        raise ValueError("--out: empty path; give a folder name, e.g. --out results/my-run")
    path = Path(out).expanduser()
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents or resolved == Path.home().resolve():
        raise ValueError(
            f"--out {out}: names the current folder, a parent of it or the home folder; "
            "give a new folder, e.g. --out results/my-run"
        )
    if path.exists() or path.is_symlink():
        if not path.is_dir() or path.is_symlink():
            raise ValueError(f"--out {out}: exists and is not a folder; choose another path")
        entries = list(path.iterdir())
        if entries:
            marker = read_marker(path)
            if marker is None:
                raise ValueError(
                    f"--out {out}: folder exists and bulletsim did not write it (no {MARKER} "
                    "marker); choose a new or empty folder"
                )
            if marker.get("kind") != kind:
                raise ValueError(
                    f"--out {out}: holds a bulletsim {marker.get('kind')} results folder, "
                    f"not a {kind}; choose another path"
                )
            if refusal := live_run_refusal(path, out):
                raise ValueError(refusal)
            foreign = [f for f in _unlisted(path, marker) if not _derived_output(path / f)]
            if foreign:
                raise ValueError(
                    f"--out {out}: holds files bulletsim did not write ({', '.join(foreign[:3])}"
                    f"{', ...' if len(foreign) > 3 else ''}); move them or choose another folder"
                )
    parent = resolved.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not folder_writable(parent):
        raise ValueError(f"--out {out}: cannot write under {parent} (not a writable folder)")
    return path


def _derived_output(file: Path) -> bool:
    """Whether `file` is a profile `calibrate --from-live` wrote or a table `fidelity --table`
    wrote, recognised by its content as those commands recognise the files they may replace
    (which run it was written from is not known)."""
    from bulletsim.own_outputs import is_fidelity_table, is_refit_profile

    return file.is_file() and (is_refit_profile(file) or is_fidelity_table(file))


def _has_measured_column(path: Path) -> bool:
    """Whether `path/iterations.parquet` has a `measured_s` column (only live runs write it);
    reads the schema alone. An unreadable file says nothing either way: False."""
    import pyarrow.parquet as pq

    file = path / "iterations.parquet"
    if not file.is_file():
        return False
    try:
        return "measured_s" in pq.read_schema(file).names
    except Exception:  # pyarrow raises several types for a damaged file
        return False


def live_run_refusal(path: Path, out: str | Path) -> str | None:
    """Why the folder `path` (named `out` by the user) must not be replaced as holding a live
    run, or None when it may be. It holds one when it has a live.json (readable or not) or an
    iterations.parquet with a `measured_s` column; it may be replaced only when live.json
    parses and its executor section says executor "fake" and measured exactly false (the fake
    executor's times are predictions and can be made again). Anything else fails closed: a GPU
    run's measurements cannot be made again, and an edited, truncated or missing live.json
    cannot show that they are not such."""
    live_file = path / "live.json"
    has_live_file = live_file.exists() or live_file.is_symlink()
    if not has_live_file and not _has_measured_column(path) and not _live_summary(path):
        return None
    unreadable = ""
    try:
        live = json.loads(live_file.read_text())
    except (OSError, ValueError, RecursionError):
        live = None
        unreadable = (
            "; its live.json is unreadable"
            if has_live_file
            else "; it has no live.json, and its summary.json or iterations.parquet is a live run's"
        )
    executor = live.get("executor") if isinstance(live, dict) else None
    if (
        isinstance(executor, dict)
        and executor.get("executor") == "fake"
        and executor.get("measured") is False
        and "device" not in executor  # the GPU executor names its device; the fake has none
        and _live_summary(path) in (None, "live:fake")
    ):
        return None
    return (
        f"{out} holds a GPU live run (measurements that cannot be made again{unreadable}): "
        "choose another --out, or move it away yourself"
    )


def _live_summary(path: Path) -> str | None:
    """summary.json's engine when it names a live one ("live:gpu", "live:fake"), else None."""
    try:
        engine = json.loads((path / "summary.json").read_text()).get("engine")
    except (OSError, ValueError, RecursionError, AttributeError):
        return None
    return engine if isinstance(engine, str) and engine.startswith("live:") else None


def kept_outputs(path: Path) -> list[str]:
    """The files (relative paths) a replacement of the bulletsim folder `path` keeps: those not
    in its marker's list that are bulletsim fidelity tables or refitted profiles
    (`_derived_output`). Empty when `path` is not a bulletsim folder."""
    marker = read_marker(path) if path.is_dir() else None
    if marker is None:
        return []
    return [f for f in _unlisted(path, marker) if _derived_output(path / f)]


def _unlisted(path: Path, marker: dict) -> list[str]:
    """The files (relative paths) under `path` that its marker does not list."""
    listed = set(marker.get("files", [])) | {MARKER}
    return [f for f in _listed_files(path) if f not in listed]


def kept_note(path: Path, kept: list[str]) -> str:
    """The line printed once `path` was replaced keeping the files `kept` (`kept_outputs`)."""
    return (
        f"note: keeping {', '.join(kept)} in {path} (bulletsim fidelity tables / refitted "
        "profiles, not the run's own files)"
    )


def _carry_kept(old: Path, new: Path) -> list[str]:
    """Copy `old`'s kept files into the staged folder `new` (copies, so `old` stays whole until
    the rename) and return their names; ValueError when the new run wrote a file of the same
    name."""
    kept = kept_outputs(old)
    for name in kept:
        dst = new / name
        if dst.exists() or dst.is_symlink():
            raise ValueError(
                f"--out {old}: {name} (a bulletsim fidelity table / refitted profile kept from "
                "the folder) has the name of a file this run writes; move it away or choose "
                "another --out"
            )
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(old / name, dst)
    return kept


def _write_marker(folder: Path, kind: str) -> None:
    files = [f for f in _listed_files(folder) if f != MARKER]
    text = json.dumps({"schema": SCHEMA, "kind": kind, "files": files}, indent=2) + "\n"
    (folder / MARKER).write_text(text)


@contextmanager
def staged_dir(out: str | Path, kind: str) -> Iterator[Path]:
    """Yield an empty hidden sibling of `out` to write into; on success it replaces `out`.

    `out` is checked again (`check_out_dir`) before it is replaced, and its `kept_outputs` are
    copied into the new folder (unlisted in its marker, as before) and named on stderr once
    the replacement is done (`kept_note`). On any exception,
    KeyboardInterrupt included, the temporary folder is removed and `out` is left as it was.
    """
    out = check_out_dir(out, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        yield tmp
        _write_marker(tmp, kind)
        check_out_dir(out, kind)
        kept = _carry_kept(out, tmp)
        if out.exists():
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
        if kept:  # only now: every check passed and the folder was replaced
            print(kept_note(out, kept), file=sys.stderr)
    except BaseException:
        if old.exists() and not out.exists():  # stopped between the two renames: put it back
            old.rename(out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def config_hash(resolved: dict) -> str:
    """8 hex digits of SHA-256 over the resolved config (sorted JSON): distinct configs,
    distinct default folder names."""
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def is_bulletsim_dir(path: Path, kind: str) -> bool:
    marker = read_marker(path) if path.is_dir() else None
    return marker is not None and marker.get("kind") == kind
