"""`calibrate-fit`'s inputs, checked before anything is written (CPU only).

Every fault is one ValueError line naming the file and what would be valid: a samples file
that is missing, a folder, not .jsonl/.parquet, unreadable or without usable samples; a meta
file that is missing, not a JSON object, or lacks what the fit reads; samples measured under
another SM partition mechanism than the meta file names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bulletsim.hardware import get_gpu, resolve_mechanism
from bulletsim.models import get_model
from calibrate.samples import load_samples

SAMPLE_SUFFIXES = (".jsonl", ".parquet")
# Columns the fit reads of every sample (calibrate.fit, calibrate.report).
SAMPLE_COLUMNS = ("key", "kind", "op", "phase", "split", "num_sms", "time_s")
# Keys the fit reads of meta.json (calibrate.pipeline, calibrate.fit).
META_KEYS = ("gpu", "model", "mechanism", "kind")
HINT = "give the samples.jsonl or samples.parquet of a `bulletsim calibrate` run"


def read_samples(path: Path) -> pd.DataFrame:
    """The completed samples of `path`; ValueError (one line) when there are none."""
    if not path.exists():
        raise ValueError(f"samples file not found: {path}; {HINT}")
    if path.is_dir():
        raise ValueError(f"samples file {path} is a folder; {HINT}")
    if path.suffix not in SAMPLE_SUFFIXES:
        raise ValueError(f"samples file {path} is not .jsonl or .parquet; {HINT}")
    try:
        df = load_samples(path)
    except Exception as e:  # noqa: BLE001 - pyarrow/pandas raise many kinds on a bad file
        raise ValueError(
            f"samples file {path} cannot be read as {path.suffix[1:]} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); {HINT}"
        ) from None
    missing = [c for c in SAMPLE_COLUMNS if c not in df.columns]
    if df.empty:
        raise ValueError(f"samples file {path} holds no completed samples; {HINT}")
    if missing:
        raise ValueError(
            f"{path} is not a calibration samples file: it lacks column(s) "
            f"{', '.join(missing)} (a samples file has {', '.join(SAMPLE_COLUMNS)}); {HINT}"
        )
    check_positive(df, path)
    return df


def check_positive(df: pd.DataFrame, path: Path) -> None:
    """ValueError (one line, naming the file, the column and the first bad sample's key)
    when a kernel time or SM count is not a finite number > 0 (NaN, negative, zero, inf)."""
    import numpy as np

    for col in ("time_s", "num_sms"):
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = ~(np.isfinite(vals) & (vals > 0))
        if bad.any():
            first = df.loc[bad].iloc[0]
            raise ValueError(
                f"samples file {path}: column {col} holds {int(bad.sum())} value(s) that are "
                f"not finite numbers > 0 (first: {first[col]!r} at key {first['key']!r}); "
                f"every completed sample needs a measured {col} > 0"
            )


def read_meta(path: Path) -> dict:
    """The calibration run's meta.json, checked for what the fit reads."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise ValueError(
            f"meta file {what}: {path}; give --meta, the meta.json of the calibration run"
        )
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"meta file {path} is not JSON ({e}); give the run's meta.json") from None
    if not isinstance(meta, dict):
        raise ValueError(f"meta file {path} is not a JSON object; give the run's meta.json")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(
            f"meta file {path} lacks {', '.join(missing)} (a calibration run's meta.json has "
            f"{', '.join(META_KEYS)})"
        )
    try:
        get_gpu(meta["gpu"]), get_model(meta["model"], meta.get("tp", 1))
        resolve_mechanism(meta["mechanism"])
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"meta file {path}: {e}") from None
    return meta


def check_mechanism(df: pd.DataFrame, meta: dict, samples: Path, meta_path: Path) -> None:
    """ValueError when the samples' own `mechanism` column names another mechanism than
    meta.json (a libsmctrl sweep fitted as if it were MPS would install under a wrong name)."""
    want = resolve_mechanism(meta["mechanism"])
    if "mechanism" not in df.columns:
        return
    seen = set()
    for m in df["mechanism"].dropna().unique():
        try:
            seen.add(resolve_mechanism(str(m)))
        except ValueError:
            seen.add(str(m))
    other = sorted(seen - {want})
    if other:
        raise ValueError(
            f"samples file {samples} was measured under {', '.join(sorted(seen))} (its "
            f"mechanism column) but meta file {meta_path} says {want}; give the meta.json "
            "of the same run"
        )
