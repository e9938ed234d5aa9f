"""After a sweep (CPU only): samples -> parquet -> fitted profile -> report, and installation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bulletsim.hardware import get_gpu
from bulletsim.latency.profile import PROFILE_DIR, profile_filename, write_profile
from bulletsim.models import get_model
from calibrate.fit import fit_profile
from calibrate.samples import load_samples, to_parquet


def finish(out: Path, meta: dict, install: bool, report: bool = True) -> tuple[Path, dict]:
    """Fit the samples under `out`, write the profile (and install it), plot the report."""
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    df = load_samples(out / "samples.jsonl")
    to_parquet(df, out / "samples.parquet")
    gpu, model = get_gpu(meta["gpu"]), get_model(meta["model"], meta.get("tp", 1))
    doc = fit_profile(df, model, gpu, meta)
    path = write_profile(doc, out / profile_filename(gpu.name, model.name, model.tp))
    if install:
        shutil.copyfile(path, PROFILE_DIR / path.name)
        samples_dst = PROFILE_DIR / path.name.replace(".json", ".samples.parquet")
        shutil.copyfile(out / "samples.parquet", samples_dst)
    if report:
        try:
            from calibrate.report import write_report

            write_report(doc, df, out)
        except Exception as e:  # noqa: BLE001 - the profile is written; a plot must not lose it
            print(f"warning: report failed: {type(e).__name__}: {e}")
    return path, doc


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
