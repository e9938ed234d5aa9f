"""Figures for runs and sweeps (matplotlib, Agg backend), saved as PNG and SVG.

`fig_*` functions return a Figure (the notebook uses them); `plot_run` and `plot_sweep`
write the standard set into a results directory, each file atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
# Same inputs -> byte-identical SVGs: fixed element ids (hash salt) and no date (see save).
matplotlib.rcParams["svg.hashsalt"] = "bulletsim"
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

if TYPE_CHECKING:
    from bulletsim.run import RunResult

LANE_COLORS = {"prefill": "tab:orange", "decode": "tab:blue", "main": "tab:gray"}


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write `name`.png and `name`.svg into out_dir atomically; close the figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        path = out_dir / f"{name}.{ext}"
        tmp = out_dir / f".{name}.tmp-{os.getpid()}.{ext}"
        meta = {"Date": None} if ext == "svg" else {}
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=ext, metadata=meta)
        os.replace(tmp, path)
        paths.append(path)
    plt.close(fig)
    return paths


def time_weighted_sms(sm_timeline: pd.DataFrame, end_s: float) -> dict[str, float]:
    """Per lane, the SMs it held averaged over time (0 to `end_s`), not over iterations.

    `sm_timeline` holds one row per allocation change (`records.SM_TIMELINE_COLUMNS`); its
    `num_sms` (the SMs launches ran on, not the policy's `policy_sms`) holds until the lane's
    next change. Averaging iterations instead would over-weight short
    steps (a lane doing many 5 ms steps would count more than one holding SMs for 1 s).
    """
    out = {}
    for lane, g in sm_timeline.groupby(sm_timeline["lane"].astype(str), sort=True):
        t = np.append(g["time_s"].to_numpy(dtype=float), end_s)
        held = np.diff(t) * g["num_sms"].to_numpy(dtype=float)
        out[lane] = float(held.sum() / end_s) if end_s > 0 else float("nan")
    return out


def _binned_sms(g: pd.DataFrame, edges: np.ndarray) -> np.ndarray:
    """Time-weighted mean of one lane's step function inside each [edges[i], edges[i+1])."""
    t = g["time_s"].to_numpy(dtype=float)
    v = g["num_sms"].to_numpy(dtype=float)
    # integral of the step function at every edge, then differences per bin
    idx = np.searchsorted(t, edges, side="right") - 1
    area_before = np.concatenate(([0.0], np.cumsum(np.diff(t) * v[:-1])))
    at = np.where(idx >= 0, area_before[np.maximum(idx, 0)] + (edges - t[np.maximum(idx, 0)])
                  * v[np.maximum(idx, 0)], 0.0)  # fmt: skip
    return np.diff(at) / np.diff(edges)


def fig_timeline(
    sm_timeline: pd.DataFrame,
    iterations: pd.DataFrame,
    total_sms: int | None = None,
    window_s: tuple[float, float] | None = None,
    title: str = "",
    num_bins: int = 300,
) -> Figure:
    """SMs held per lane over queue lengths, on one time axis.

    With `window_s` the raw steps of that window are drawn (single windows and steps can
    be told apart); without, the whole run is aggregated into `num_bins` time bins (each
    lane's time-weighted mean SMs, mean queue lengths): a full run has far more changes
    than a figure has pixels.
    """
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    it = iterations
    end = float(it["end_s"].max()) if len(it) else 1.0
    lanes = sm_timeline.groupby(sm_timeline["lane"].astype(str), sort=True)
    mean_sms = time_weighted_sms(sm_timeline, end)
    if window_s is None and end > 0:
        edges = np.linspace(0.0, end, num_bins + 1)
        mid = 0.5 * (edges[1:] + edges[:-1])
        for lane, g in lanes:
            label = f"{lane} (mean {mean_sms[lane]:.0f} SMs)"
            ax1.plot(mid, _binned_sms(g, edges), label=label, color=LANE_COLORS.get(lane), lw=1)
        bins = np.clip(np.searchsorted(edges, it["end_s"], side="right") - 1, 0, num_bins - 1)
        for col in ("num_waiting", "num_running"):
            means = pd.Series(it[col].to_numpy()).groupby(bins).mean()
            ax2.plot(mid[means.index], means.to_numpy(), label=col.removeprefix("num_"), lw=1)
        ax1.set_ylabel(f"SMs held (mean per {end / num_bins:.2g} s)")
    else:
        for lane, g in lanes:
            t = list(g["time_s"]) + [end]
            n = list(g["num_sms"]) + [g["num_sms"].iloc[-1]]
            ax1.step(t, n, where="post", label=lane, color=LANE_COLORS.get(lane), lw=1)
        ax2.step(it["end_s"], it["num_waiting"], where="post", label="waiting", lw=1)
        ax2.step(it["end_s"], it["num_running"], where="post", label="running", lw=1)
        ax1.set_ylabel("SMs held")
    if total_sms:
        ax1.axhline(total_sms, color="k", lw=0.6, ls=":", label=f"GPU ({total_sms} SMs)")
    ax1.legend(loc="upper right", fontsize=8)
    ax1.set_title(title or "SM split over time")
    ax2.set_xlabel("simulated time (s)")
    ax2.set_ylabel("requests")
    ax2.legend(loc="upper right", fontsize=8)
    if window_s is not None:
        ax2.set_xlim(*window_s)
    return fig


def sweep_title(points: pd.DataFrame, trace: str) -> str:
    """`trace: GPU, model, latency model, workload source, n` from a sweep's points."""
    p = points[points["trace"] == trace]

    def one(col: str) -> str:
        vals = [str(x) for x in dict.fromkeys(p[col].dropna())] if col in p else []
        return "/".join(vals) or "-"

    source = one("workload_source")
    source = "embedded model" if source.startswith("embedded") else Path(source).name
    n = one("num_requests").removesuffix(".0")
    return f"{trace}: {one('gpu')}, {one('model')}\n{one('latency_model')}\n{source}, n={n}"


def _first_seed(p: pd.DataFrame) -> pd.DataFrame:
    if "seed" not in p or not len(p):
        return p
    grid = p[p["kind"] == "grid"]
    return p[p["seed"] == (grid["seed"].iloc[0] if len(grid) else p["seed"].min())]


def fig_attainment(
    points: pd.DataFrame, capacity: pd.DataFrame | None = None, target: float = 0.9
) -> Figure:
    """SLO attainment vs request rate, one panel per trace (the first seed's points).

    The attainment axis is zoomed to where the curves are; the target is a labelled line;
    each capacity is a labelled marker with its interval over seeds shaded. Hollow points
    are runs stopped early: their value is an upper bound.
    """
    traces = list(dict.fromkeys(points["trace"]))
    fig, axes = plt.subplots(1, len(traces), figsize=(5.5 * len(traces), 4.4), squeeze=False)
    for ax, trace in zip(axes[0], traces, strict=True):
        p = _first_seed(points[points["trace"] == trace])
        shown = [100 * target]
        for k, (label, g) in enumerate(p.groupby("label", sort=False)):
            g = g.sort_values("rate_req_s")
            y = 100 * g["slo_attainment"]
            stopped = g["stopped_early"].astype(bool) if "stopped_early" in g else y < -1
            (line,) = ax.plot(g["rate_req_s"][~stopped], y[~stopped], "-", lw=1, label=label)
            color = line.get_color()
            ax.plot(g["rate_req_s"][~stopped], y[~stopped], "o", ms=3, color=color)
            ax.plot(g["rate_req_s"][stopped], y[stopped], "o", ms=4, mfc="none", color=color)
            shown += list(y[~stopped])
            if capacity is None:
                continue
            c = capacity[(capacity["trace"] == trace) & (capacity["label"] == label)]
            if not len(c) or not c["capacity_req_s"].iloc[0] > 0:
                continue
            cap = float(c["capacity_req_s"].iloc[0])
            lo, hi = (
                float(c[x].iloc[0]) if x in c else np.nan for x in ("capacity_lo", "capacity_hi")
            )
            if np.isfinite(lo) and np.isfinite(hi):
                ax.axvspan(lo, hi, color=color, alpha=0.12, lw=0)
            ax.axvline(cap, color=color, ls="--", lw=0.8)
            ax.annotate(f"{label}: {cap:.2f}", (cap, 100 * target), xytext=(4, 6 + 11 * k),
                        textcoords="offset points", color=color, fontsize=7)  # fmt: skip
        ax.axhline(100 * target, color="k", lw=0.6, ls=":", label=f"target {100 * target:g}%")
        low = min(v for v in shown if np.isfinite(v))
        ax.set_ylim(max(0.0, min(low, 100 * target) - 2.0), 100.5)
        ax.set_title(sweep_title(points, trace), fontsize=9)
        ax.set_xlabel("request rate (req/s)")
        ax.set_ylabel("SLO attainment (%)")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def fig_latency(points: pd.DataFrame, q: str = "p90") -> Figure:
    """TTFT (per prompt token when the SLO is) and TPOT percentiles vs rate, SLO lines drawn."""
    traces = list(dict.fromkeys(points["trace"]))
    fig, axes = plt.subplots(2, len(traces), figsize=(5.5 * len(traces), 6.5), squeeze=False)
    for j, trace in enumerate(traces):
        p = _first_seed(points[points["trace"] == trace])
        norm = "norm_ttft_slo_ms_per_token" in p and p["norm_ttft_slo_ms_per_token"].notna().any()
        ttft_col = f"norm_ttft_{q}_ms_per_token" if norm else f"ttft_{q}_ms"
        for label, g in p.groupby("label", sort=False):
            g = g.sort_values("rate_req_s")
            if ttft_col in g:
                axes[0][j].plot(g["rate_req_s"], g[ttft_col], "o-", ms=3, label=label)
            axes[1][j].plot(g["rate_req_s"], g[f"tpot_{q}_ms"], "o-", ms=3, label=label)
        slo_ttft = "norm_ttft_slo_ms_per_token" if norm else "ttft_slo_ms"
        for ax, col, unit in ((axes[0][j], slo_ttft, "ms/token" if norm else "ms"),
                              (axes[1][j], "tpot_slo_ms", "ms")):  # fmt: skip
            if col in p and p[col].notna().any():
                v = float(p[col].dropna().iloc[0])
                ax.axhline(v, color="r", lw=0.8, ls="--", label=f"SLO {v:g} {unit}")
        axes[0][j].set_title(sweep_title(points, trace), fontsize=9)
        axes[0][j].set_yscale("log")
        axes[0][j].set_ylabel(f"TTFT {q} ({'ms per prompt token' if norm else 'ms'})")
        axes[1][j].set_ylabel(f"TPOT {q} (ms)")
        axes[1][j].set_xlabel("request rate (req/s)")
        axes[0][j].legend(fontsize=7)
        axes[1][j].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _run_title(summary: dict) -> str:
    return f"{summary['policy']} on {summary['workload']} ({summary['gpu']}, {summary['model']})"


def plot_result(res: RunResult, out_dir: str | Path) -> list[Path]:
    """Write the SM/queue timeline of a finished run (`run.RunResult`) into `out_dir`."""
    from bulletsim.hardware import get_gpu

    sms = get_gpu(res.config.gpu).num_sms
    fig = fig_timeline(res.sm_log, res.iterations, sms, title=_run_title(res.summary))
    return save(fig, Path(out_dir), "sm_timeline")


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write the SM/queue timeline of a results directory (already written) into it."""
    from bulletsim.results import load_results

    d = Path(run_dir)
    r = load_results(d)
    from bulletsim.hardware import get_gpu

    sms = get_gpu(r["summary"]["gpu"]).num_sms  # the GPU's line, as plot_result draws it
    fig = fig_timeline(r["sm_timeline"], r["iterations"], sms, title=_run_title(r["summary"]))
    return save(fig, d, "sm_timeline")


def plot_sweep(sweep_dir: str | Path) -> list[Path]:
    """Attainment and latency vs rate, plus the timeline run's SM split, into the sweep dir."""
    from bulletsim.results import load_results
    from bulletsim.sweep_report import load_sweep

    d = Path(sweep_dir)
    sw = load_sweep(d)
    target = float(sw["spec"].get("target_attainment", 0.9))
    fig = fig_attainment(sw["points"], sw["capacity"], target)
    paths = save(fig, d, "attainment_vs_rate")
    paths += save(fig_latency(sw["points"]), d, "latency_vs_rate")
    if sw["timeline"] is not None:
        r = load_results(sw["timeline"])
        s = r["summary"]
        rate = s["offered_rate_req_s"]  # null in JSON when infinite or undefined
        rate_text = f"{rate:.2f} req/s" if rate is not None else s.get("offered_rate_note", "")
        title = f"{s['policy']} on {s['workload']} at {rate_text}"
        it = r["iterations"]
        paths += save(fig_timeline(r["sm_timeline"], it, title=title), d, "sm_timeline")
        # A few seconds in steady state, where single windows and steps can be told apart.
        t0 = 0.4 * float(it["end_s"].max()) if len(it) else 0.0
        zoom = fig_timeline(r["sm_timeline"], it, window_s=(t0, t0 + 2.0), title=title + " (zoom)")
        paths += save(zoom, d, "sm_timeline_zoom")
    return paths
