"""After a sweep (CPU only): samples -> parquet -> fitted profile -> report, and installation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bulletsim.hardware import get_gpu, resolve_mechanism
from bulletsim.latency.profile import PROFILE_DIR, profile_filename, read_profile, write_profile
from bulletsim.latency.profile_format import profile_mechanism
from bulletsim.models import get_model
from calibrate.fit import fit_profile
from calibrate.samples import load_samples, to_parquet


def finish(out: Path, meta: dict, install: bool, report: bool = True) -> tuple[Path, dict]:
    """Fit the samples under `out`, write the profile (and install it), plot the report.

    The profile's file name carries its mechanism (`profile_filename`): a libsmctrl profile
    installs as `<gpu>__<model>.libsmctrl.json` beside the green-context one, never over it.
    ValueError (before the fit) when `install` would replace another mechanism's profile."""
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    df = load_samples(out / "samples.jsonl")
    to_parquet(df, out / "samples.parquet")
    gpu, model = get_gpu(meta["gpu"]), get_model(meta["model"], meta.get("tp", 1))
    mechanism = resolve_mechanism(meta["mechanism"])
    if install:  # before any work: the fit must not end in a refusal
        check_install(PROFILE_DIR / profile_filename(gpu.name, model.name, model.tp, mechanism),
                      mechanism)  # fmt: skip
    doc = fit_profile(df, model, gpu, meta)
    path = write_profile(doc, out / profile_filename(gpu.name, model.name, model.tp, mechanism))
    if install:
        dst = PROFILE_DIR / path.name
        samples_dst = PROFILE_DIR / path.name.replace(".json", ".samples.parquet")
        _copy_atomic(out / "samples.parquet", samples_dst)
        _copy_atomic(path, dst)
    if report:
        try:
            from calibrate.report import write_report

            write_report(doc, df, out)
        except Exception as e:  # noqa: BLE001 - the profile is written; a plot must not lose it
            print(f"warning: report failed: {type(e).__name__}: {e}")
    return path, doc


def check_install(dst: Path, mechanism: str) -> None:
    """ValueError unless installing a profile measured under `mechanism` at `dst` replaces
    nothing or a profile of the same mechanism: the file name carries the mechanism
    (`profile_filename`), so a profile of another one there is an older layout's, never
    overwritten."""
    if not dst.is_file():
        return
    try:
        theirs = profile_mechanism(read_profile(dst))
    except ValueError as e:
        raise ValueError(f"{dst} is not a profile this tool wrote ({e}); not replaced") from None
    if theirs != mechanism:
        raise ValueError(
            f"{dst} holds a profile measured under {theirs}; a {mechanism} profile does not "
            "replace it (install the other one under its own name, or move it first)"
        )


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)


def refit(samples: Path, meta_path: Path, out: Path, install: bool) -> tuple[Path, dict]:
    """Redo the fit from a samples file (.jsonl or .parquet) and its meta.json."""
    meta = json.loads(meta_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    if samples.resolve() != (out / "samples.jsonl").resolve():
        df = load_samples(samples)
        with open(out / "samples.jsonl", "w") as f:
            for rec in df.to_dict("records"):
                f.write(json.dumps({k: v for k, v in rec.items() if v == v}) + "\n")
    return finish(out, meta, install)
