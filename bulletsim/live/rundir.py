"""Reading a live run's results directory (what `bulletsim live` wrote)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

SM_BINS = (0, 32, 64, 96, 131, 132)  # SM-count groups of error tables (132 = whole GPU)


def read_live_run(run_dir: str | Path) -> tuple[dict, dict, pd.DataFrame, pd.DataFrame]:
    """(config.json, summary.json, requests, iterations) of a live run; FileNotFoundError /
    ValueError naming what is missing."""
    d = Path(run_dir)
    for name in ("config.json", "summary.json", "requests.parquet", "iterations.parquet"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d} is not a results directory: no {name}")
    summary = json.loads((d / "summary.json").read_text())
    if not str(summary.get("engine", "")).startswith("live:"):
        raise ValueError(f"{d} is not a live run (summary.json has no live engine)")
    meta = json.loads((d / "config.json").read_text())
    return (
        meta,
        summary,
        pd.read_parquet(d / "requests.parquet"),
        pd.read_parquet(d / "iterations.parquet"),
    )
