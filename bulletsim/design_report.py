"""A design's files: every cell's sweep, the combined tables, and a summary per axis.

Layout: `design.json` (the design), `cells/<gpu>-<model>-<slo>/` (each an ordinary sweep
directory, `sweep_report.write_sweep`), `capacity.csv` and `points.csv` (all cells, with
`cell`, `gpu`, `model` and `slo_set` columns), `axes.csv` and `summary.md` (one table per
axis). A folder is only written into when it is new, empty or a design this tool wrote
(it holds `design.json`).

Summary per axis value, over every (GPU, model, SLO set, trace, policy) row with that value:
how many rows have a capacity (a row whose jobs failed has none and is counted apart), the
mean, min and max capacity (each row's capacity is its mean over seeds); the policy
with the highest capacity in most of the contexts (GPU, model, SLO set, trace) that have the
value, with how many it won (a tie for the highest wins none); and the geometric mean of the
Bullet variants' capacity gain over the best baseline (the sweep's `gain`, paired by seed).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bulletsim.design import AXES, Cell, DesignSpec
from bulletsim.sweep_capacity import is_bullet
from bulletsim.sweep_report import atomic_write_text, write_sweep

CONTEXT = ("gpu", "model", "slo_set", "trace")
COLUMN = {"gpu": "gpu", "model": "model", "slo": "slo_set", "trace": "trace", "policy": "label"}


def combine(cells: list[Cell], results: dict, which: int) -> pd.DataFrame:
    """All cells' points (which=0) or capacity (which=1) rows, cell columns in front."""
    frames = []
    for c in cells:
        df = results[c.name][which].copy()
        # points already carry the resolved gpu and model of each run; keep those
        for i, (col, value) in enumerate(
            [("cell", c.name), ("gpu", c.gpu), ("model", c.model), ("slo_set", c.slo)]
        ):
            if col not in df.columns:
                df.insert(i, col, value)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def axis_summary(cap: pd.DataFrame) -> pd.DataFrame:
    """One row per (axis, value): capacities, the policy that wins most, Bullet's gain."""
    winners = {}
    for ctx, g in cap.groupby(list(CONTEXT), sort=False):
        top = g[g["capacity_req_s"] == g["capacity_req_s"].max()]
        winners[ctx] = top["label"].iloc[0] if len(top) == 1 else None  # a tie wins nothing
    rows = []
    for axis in AXES:
        col = COLUMN[axis]
        for value, g in cap.groupby(col, sort=False):
            caps = g["capacity_req_s"].dropna()
            ctxs = {tuple(r) for r in g[list(CONTEXT)].itertuples(index=False)}
            won = [winners[c] for c in ctxs if winners[c] is not None]
            if axis == "policy":
                best, wins = value, sum(w == value for w in won)
            else:
                counts = pd.Series(won, dtype=object).value_counts(sort=False)
                best = str(counts.idxmax()) if len(counts) else ""
                wins = int(counts.max()) if len(counts) else 0
            gains = g[g["label"].map(is_bullet)]["gain"].dropna()
            gains = gains[gains > 0]
            rows.append(
                {
                    # rows with a capacity; a failed cell (NaN) is counted apart, never in
                    # the mean, min and max
                    "axis": axis, "value": value, "rows": len(caps),
                    "rows_without_capacity": len(g) - len(caps),
                    "capacity_mean_req_s": caps.mean() if len(caps) else math.nan,
                    "capacity_min_req_s": caps.min() if len(caps) else math.nan,
                    "capacity_max_req_s": caps.max() if len(caps) else math.nan,
                    "best_policy": best, "contexts_won": wins, "contexts": len(ctxs),
                    "bullet_gain_geomean": float(np.exp(np.log(gains).mean()))
                    if len(gains) else math.nan,
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def _num(x: float, nd: int = 2) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.{nd}f}"


def summary_markdown(design: DesignSpec, cells: list[Cell], axes: pd.DataFrame) -> str:
    sw = design.sweep
    lines = [
        f"Design: {len(cells)} cells (GPU x model x SLO set), each a sweep of "
        f"{len(sw.policies)} policies x {len(sw.traces)} traces; {sw.num_requests} requests "
        f"per point, seeds {','.join(map(str, sw.seeds))}, capacity at "
        f"{100 * sw.target_attainment:g}% attainment. Each cell's own tables and warnings: "
        "cells/<cell>/capacity.md.",
        "",
        "Per axis value: capacity over every row with that value (a row's capacity is its mean "
        "over seeds); the policy with the highest capacity in most contexts (GPU, model, SLO "
        "set, trace) that have the value (ties win none); Bullet gain = geometric mean of the "
        "Bullet variants' capacity / best baseline's.",
        "",
    ]
    for axis in AXES:
        g = axes[axes["axis"] == axis]
        best = "contexts won" if axis == "policy" else "best policy (contexts won)"
        lines += [
            f"### by {axis}",
            "",
            f"| {axis} | rows | capacity mean (req/s) | min | max | {best} | Bullet gain |",
            "|---|---:|---:|---:|---:|---|---:|",
        ]
        for r in g.itertuples(index=False):
            won = f"{r.contexts_won}/{r.contexts}"
            best_s = won if axis == "policy" else f"{r.best_policy or '-'} ({won})"
            gain = "-" if math.isnan(r.bullet_gain_geomean) else f"{r.bullet_gain_geomean:.2f}x"
            rows = f"{r.rows}" + (
                f" (+{r.rows_without_capacity} failed)" if r.rows_without_capacity else ""
            )
            lines.append(
                f"| {r.value} | {rows} | {_num(r.capacity_mean_req_s)} | "
                f"{_num(r.capacity_min_req_s)} | {_num(r.capacity_max_req_s)} | {best_s} | "
                f"{gain} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_design(out: Path, design: DesignSpec, cells: list[Cell], results: dict) -> str:
    """Write every file of the design; returns summary.md's text."""
    out.mkdir(parents=True, exist_ok=True)
    for c in cells:
        write_sweep(out / "cells" / c.name, c.spec, *results[c.name])
    points, cap = combine(cells, results, 0), combine(cells, results, 1)
    axes = axis_summary(cap)
    md = summary_markdown(design, cells, axes)
    what = dataclasses.asdict(design)
    what["sweep"].pop("workers")  # what was computed, not how
    csv = {"index": False, "float_format": "%.6g"}
    atomic_write_text(out / "points.csv", points.to_csv(**csv))
    atomic_write_text(out / "capacity.csv", cap.to_csv(**csv))
    atomic_write_text(out / "axes.csv", axes.to_csv(**csv))
    atomic_write_text(out / "summary.md", md)
    atomic_write_text(out / "design.json", json.dumps(what, indent=2, sort_keys=True) + "\n")
    return md
