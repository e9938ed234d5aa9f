"""A sweep's files: points and capacity tables (CSV + markdown), spec, written atomically.

Layout of a sweep directory: `sweep.json` (the spec), `points.csv` (every simulated point),
`capacity.csv` and `capacity.md` (per policy x trace), `timeline/` (one full run, usually
Bullet at its capacity, for the SM timeline) and the plots. Each file is written to a
temporary sibling and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import pandas as pd

from bulletsim.sweep import SweepSpec


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fmt(x: float, nd: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def capacity_markdown(cap: pd.DataFrame, target: float) -> str:
    """One table per trace; gains are against the best policy whose name is not Bullet's."""
    lines = [
        f"Capacity = highest Poisson rate with SLO attainment >= {100 * target:g}% "
        "(bracketing + bisection); other columns are the run at that rate.",
        "",
    ]
    for trace, g in cap.groupby("trace", sort=False):
        base = g[~g["label"].str.startswith("bullet")]
        ref = base.loc[base["capacity_req_s"].idxmax()] if len(base) else None
        lines += [
            f"### {trace}",
            "",
            "| policy | capacity (req/s) | throughput (req/s) | goodput (req/s) | "
            "TTFT p90 (ms) | TPOT p90 (ms) | capacity vs best baseline |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in g.itertuples(index=False):
            gain = (
                r.capacity_req_s / ref.capacity_req_s
                if ref is not None and ref.capacity_req_s > 0
                else math.nan
            )
            gain_s = "-" if math.isnan(gain) else f"{gain:.2f}x ({ref.label})"
            lines.append(
                f"| {r.label} | {_fmt(r.capacity_req_s)} | {_fmt(r.throughput_req_s_at_capacity)}"
                f" | {_fmt(r.goodput_req_s_at_capacity)} | {_fmt(r.ttft_p90_ms_at_capacity, 0)}"
                f" | {_fmt(r.tpot_p90_ms_at_capacity, 0)} | {gain_s} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_sweep(out: Path, spec: SweepSpec, points: pd.DataFrame, cap: pd.DataFrame) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "sweep.json", json.dumps(dataclasses.asdict(spec), indent=2, sort_keys=True) + "\n"
    )
    atomic_write_text(out / "points.csv", points.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "capacity.csv", cap.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "capacity.md", capacity_markdown(cap, spec.target_attainment))


def load_sweep(out: str | Path) -> dict:
    """Read a sweep directory back: spec, points and capacity frames."""
    d = Path(out)
    if not (d / "capacity.csv").is_file():
        raise FileNotFoundError(f"{d} is not a sweep directory (no capacity.csv)")
    return {
        "spec": json.loads((d / "sweep.json").read_text()),
        "points": pd.read_csv(d / "points.csv"),
        "capacity": pd.read_csv(d / "capacity.csv"),
        "timeline": d / "timeline" if (d / "timeline" / "summary.json").is_file() else None,
    }
