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


def _interval(point: float, lo: float, hi: float, nd: int = 2) -> str:
    if point is None or math.isnan(point):
        return "-"
    if math.isnan(lo):
        return f"{point:.{nd}f}"
    return f"{point:.{nd}f} [{lo:.{nd}f}, {hi:.{nd}f}]"


def sweep_context(spec: SweepSpec, points: pd.DataFrame) -> list[str]:
    """What the numbers are about: GPU, model, latency model, workloads, SLOs, n, seeds."""

    def values(col: str, g: pd.DataFrame = points) -> str:
        vals = [str(x) for x in dict.fromkeys(g[col].dropna()) if str(x)]
        return ", ".join(vals) if vals else "-"

    seeds = ",".join(str(s) for s in spec.seeds)
    layout = ""
    if "tp" in points:
        layout = f" (tp={values('tp')}"
        if values("ep") != "-":  # an MoE model: its expert layout and routing
            layout += f", ep={values('ep')}, {values('moe_routing')} routing"
        layout += ")"
    lines = [
        f"GPU {values('gpu')}, model {values('model')}{layout}, latency model "
        f"{values('latency_model')}",
        f"{spec.num_requests} requests per point, seeds {seeds}, Poisson arrivals, "
        + (
            f"capacity to {100 * spec.rel_tol:g}% at {100 * spec.target_attainment:g}% attainment"
            if spec.capacity
            else "capacity not searched (--no-capacity: only the grid's rates ran)"
        )
        + ("; overloaded runs stop once they certainly miss" if spec.early_stop else ""),
    ]
    if "latency_provenance" in points:  # measured vs derived parts, as `run` prints them
        lines += [f"latency provenance: {p}" for p in points["latency_provenance"].dropna().unique()
                  if isinstance(p, str) and p]  # fmt: skip
    for trace, g in points.groupby("trace", sort=False):
        conv = values("convention", g)
        lines.append(
            f"{trace}: {values('workload_source', g)}; SLO {values('slo', g)}"
            + (f"; convention {conv}" if conv != "-" else "")
        )
    return lines


def policy_label(r) -> str:
    """A capacity row's policy as tables show it: the label, and the SM partition mechanism
    of a policy with partitions (`bullet (libsmctrl)`; labels alone say `bullet` for all)."""
    mech = getattr(r, "mechanism", "")
    return f"{r.label} ({mech})" if isinstance(mech, str) and mech else r.label


def mechanism_caveats(points: pd.DataFrame) -> list[str]:
    """One warning per policy label whose runs were priced by a profile measured under
    another mechanism (`partitioning.mechanism_caveat`)."""
    if "mechanism_caveat" not in points:
        return []
    rows = points[points["mechanism_caveat"].map(lambda x: isinstance(x, str) and x != "")]
    pairs = dict.fromkeys(zip(rows["label"], rows["mechanism_caveat"], strict=True))
    return [f"{label}: {caveat}" for label, caveat in pairs]


def capacity_markdown(
    cap: pd.DataFrame, spec: SweepSpec, points: pd.DataFrame, warnings: list[str]
) -> str:
    """Context, then one table per trace, then the warnings."""
    lines = [f"- {x}" for x in sweep_context(spec, points)]
    lines += [
        "",
        f"Capacity = highest Poisson rate with SLO attainment >= {100 * spec.target_attainment:g}%"
        " (bracketing + bisection), per seed; shown as the mean over seeds and its 95% "
        "Student-t interval. Gain = capacity / the best baseline's, paired by seed (geometric "
        "mean, t-interval of log ratios). Zero-load = attainment with every request alone "
        "(Wilson 95% interval); where it is below the target, capacity is undefined. Other "
        "columns: the runs at each seed's capacity, averaged; throughput excludes warm-up and "
        "drain.",
        "",
    ]
    for trace, g in cap.groupby("trace", sort=False):
        lines += [
            f"### {trace}",
            "",
            "| policy | capacity (req/s) | gain | zero-load attainment | offered (req/s) | "
            "throughput (req/s) | TTFT p90 (ms) | TPOT p90 (ms) | steady |",
            "|---|---|---|---|---:|---:|---:|---:|---|",
        ]
        for r in g.itertuples(index=False):
            defined = not (r.zero_load_attainment < spec.target_attainment)
            capacity = _interval(r.capacity_req_s, r.capacity_lo, r.capacity_hi)
            if not defined:
                capacity = "undefined"
            steady = "yes" if r.steady_at_capacity else "NO"
            if not spec.capacity:
                capacity, steady = "not searched", "-"
            gain = "-"
            if isinstance(r.gain_vs, str) and r.gain_vs and not math.isnan(r.gain):
                gain = f"{_interval(r.gain, r.gain_lo, r.gain_hi)}x vs {r.gain_vs}"
            zero = _interval(
                100 * r.zero_load_attainment, 100 * r.zero_load_lo, 100 * r.zero_load_hi, 1
            )
            lines.append(
                f"| {policy_label(r)} | {capacity} | {gain} | {zero} | "
                f"{_fmt(r.offered_rate_req_s_at_capacity)} | "
                f"{_fmt(r.throughput_steady_req_s_at_capacity)} | "
                f"{_fmt(r.ttft_p90_ms_at_capacity, 0)} | {_fmt(r.tpot_p90_ms_at_capacity, 0)} | "
                f"{steady} |"
            )
        lines.append("")
    if warnings:
        lines += ["### Warnings", "", *[f"- {w}" for w in warnings], ""]
    return "\n".join(lines)


def write_sweep(
    out: Path, spec: SweepSpec, points: pd.DataFrame, cap: pd.DataFrame, notes: tuple = ()
) -> str:
    """Write the sweep's files; returns the capacity markdown (also in capacity.md).

    `notes` (e.g. how `--auto-length` lengthened the runs) go first among the warnings.
    """
    from bulletsim.sweep_capacity import capacity_warnings, ratio_table

    out.mkdir(parents=True, exist_ok=True)
    warnings = [
        *notes,
        *mechanism_caveats(points),
        *(capacity_warnings(cap, spec) if len(cap) else []),
    ]
    md = capacity_markdown(cap, spec, points, warnings) if len(cap) else ""
    # What was computed, not how: the files are the same for any executor and worker count.
    what = {k: v for k, v in dataclasses.asdict(spec).items() if k != "workers"}
    atomic_write_text(out / "sweep.json", json.dumps(what, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out / "points.csv", points.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "capacity.csv", cap.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "capacity.md", md)
    ratios = ratio_table(cap, spec.rel_tol) if len(cap) else pd.DataFrame()
    atomic_write_text(out / "ratios.csv", ratios.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "warnings.txt", "".join(f"{w}\n" for w in warnings))
    return md


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
