"""After a sweep (CPU only): samples -> parquet -> fitted profile -> report, and installation.

Files written into the output folder carry a provenance marker (`calibrate.own_files`): the
profile JSON and `report.md` are stamped `calibrate.pipeline`, `report.png` and
`samples.parquet` carry it in their metadata. `refit` (`calibrate-fit`) checks its inputs
and that folder before it writes anything, and replaces only files it recognises as its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

import bulletsim.latency.profile_format as profile_format
from bulletsim.hardware import get_gpu, resolve_mechanism
from bulletsim.latency.profile import profile_filename, write_profile
from bulletsim.models import get_model
from calibrate import install as installer
from calibrate import sample_identity
from calibrate.fit import fit_profile
from calibrate.fit_inputs import check_mechanism, read_meta, read_samples
from calibrate.own_files import (
    MARK_KEY,
    check_outputs,
    is_own_json,
    is_own_text,
    marker_line,
    stamped,
    write_text_atomic,
)
from calibrate.samples import load_samples

TOOL = "calibrate.pipeline"
PROFILE_DIR = profile_format.PROFILE_DIR  # tests point both at a copy


def check_install(dst: Path, mechanism: str, replace: bool = False) -> None:
    """`calibrate.install.check_install` (kept here for callers)."""
    installer.check_install(dst, mechanism, replace)


def installed_path(profile_name: str) -> Path:
    return PROFILE_DIR / profile_name


def is_own_png(path: Path) -> bool:
    try:
        return marker_line(TOOL).encode() in path.read_bytes()
    except OSError:
        return False


def is_own_parquet(path: Path) -> bool:
    try:
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
    except Exception:  # noqa: BLE001 - not a parquet file: not ours
        return False
    return meta.get(MARK_KEY.encode()) == TOOL.encode()


def write_parquet(df: pd.DataFrame, path: Path, meta: dict | None = None) -> Path:
    """`df` as zstd parquet stamped with this tool's marker (and the identity of `meta`'s
    run, `calibrate.sample_identity`), written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    md = {**(table.schema.metadata or {}), MARK_KEY.encode(): TOOL.encode()}
    if meta is not None:
        md[sample_identity.PARQUET_KEY] = json.dumps(sample_identity.identity(meta)).encode()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table.replace_schema_metadata(md), tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def owned_outputs(profile_name: str, with_samples: bool) -> dict:
    """The files `finish` writes in its folder -> how each is recognised as its own."""
    owned = {
        profile_name: lambda p: is_own_json(p, TOOL),
        "report.md": lambda p: is_own_text(p, TOOL),
        "report.png": is_own_png,
    }
    if with_samples:
        owned["samples.parquet"] = is_own_parquet
    return owned


def finish(
    out: Path,
    meta: dict,
    install: bool,
    report: bool = True,
    replace: bool = False,
    df: pd.DataFrame | None = None,
    say=print,
    doc: dict | None = None,
) -> tuple[Path, dict]:
    """Fit the samples under `out` (or `df`; `doc`: their fit, already made), write the
    profile (and install it), plot the report. Without `df`: a calibration run's folder (its
    samples.jsonl; meta.json and samples.parquet written here).

    The profile's file name carries its mechanism (`profile_filename`): a libsmctrl profile
    installs as `<gpu>__<model>.libsmctrl.json` beside the green-context one, never over it.
    ValueError (before the fit) when `install` would replace an installed profile without
    `replace`, or another mechanism's profile. `say` gets the lines naming what was installed."""
    gpu, model = get_gpu(meta["gpu"]), get_model(meta["model"], meta.get("tp", 1))
    mechanism = resolve_mechanism(meta["mechanism"])
    name = profile_filename(gpu.name, model.name, model.tp, mechanism)
    if install:  # before any work: the fit must not end in a refusal
        check_install(installed_path(name), mechanism, replace)
    if df is None:
        check_outputs(out, owned_outputs(name, True), TOOL)
        write_text_atomic(out / "meta.json", json.dumps(meta, indent=1) + "\n")
        df = load_samples(out / "samples.jsonl")
        write_parquet(df, out / "samples.parquet", meta)
    if doc is None:
        doc = stamped(TOOL, fit_profile(df, model, gpu, meta))
    path = write_profile(doc, out / name)
    if install:
        for line in installer.install(doc, path, out / "samples.parquet", replace, PROFILE_DIR):
            say(line)
    if report:
        try:
            from calibrate.report import write_report

            write_report(doc, df, out, marker_line(TOOL))
        except Exception as e:  # noqa: BLE001 - the profile is written; a plot must not lose it
            say(f"warning: report failed: {type(e).__name__}: {e}")
    return path, doc


def refit(
    samples: Path,
    meta_path: Path,
    out: Path,
    install: bool,
    replace: bool = False,
    say=print,
) -> tuple[Path, dict]:
    """Redo the fit from a samples file (.jsonl or .parquet) and its meta.json into `out`.

    Everything is checked before anything is written (ValueError, one line): the inputs
    (`calibrate.fit_inputs`), that the samples are the meta's run's
    (`calibrate.sample_identity`), the install target, and `out` (a folder whose files by this
    tool's names are its own; a meta.json there must equal `meta_path`'s), then the fit itself:
    nothing is written until it succeeds, and a failure or Ctrl-C after that removes what this
    run created (files that were there before are left)."""
    df = read_samples(samples)
    meta = read_meta(meta_path)
    check_mechanism(df, meta, samples, meta_path)
    sample_identity.check_identity(df, meta, samples, meta_path)
    gpu, model = get_gpu(meta["gpu"]), get_model(meta["model"], meta.get("tp", 1))
    mechanism = resolve_mechanism(meta["mechanism"])
    name = profile_filename(gpu.name, model.name, model.tp, mechanism)
    if install:
        check_install(installed_path(name), mechanism, replace)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (default: the samples' folder)")
    parquet = out / "samples.parquet"
    copy_samples = not (parquet.exists() and parquet.resolve() == samples.resolve())
    check_outputs(out, owned_outputs(name, copy_samples), TOOL)
    meta_dst = out / "meta.json"
    write_meta = True
    if meta_dst.exists():
        try:
            same = json.loads(meta_dst.read_text()) == meta
        except (OSError, ValueError):
            same = False
        if not same:
            raise ValueError(
                f"{meta_dst} exists and differs from {meta_path}; move it away or choose "
                "another --out folder"
            )
        write_meta = False
    doc = fit_checked(df, gpu, model, meta, samples)  # the fit before anything is written
    made = [p for p in (out, meta_dst, parquet, out / name, out / "report.md", out / "report.png")
            if not p.exists()]  # fmt: skip
    try:
        out.mkdir(parents=True, exist_ok=True)
        if write_meta:
            write_text_atomic(meta_dst, json.dumps(meta, indent=1) + "\n")
        if copy_samples:
            write_parquet(df, parquet, meta)
        return finish(out, meta, install, replace=replace, df=df, say=say, doc=doc)
    except BaseException:  # a failure or Ctrl-C leaves only what was there before
        for p in made:
            if p != out:
                p.unlink(missing_ok=True)
        if out in made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def fit_checked(df: pd.DataFrame, gpu, model, meta: dict, samples: Path) -> dict:
    """The stamped profile fitted on `df`; ValueError (one line, naming the samples file) when
    the samples do not make a profile (a partial run without some op's grid)."""
    try:
        return stamped(TOOL, fit_profile(df, model, gpu, meta))
    except (IndexError, KeyError, ZeroDivisionError, ValueError) as e:
        ops = ", ".join(sorted(str(o) for o in df["op"].dropna().unique()))
        raise ValueError(
            f"samples file {samples}: its {len(df)} samples do not make a profile "
            f"({type(e).__name__}: {e}); op column holds {ops}; give a whole calibration run's "
            "samples"
        ) from None
