"""Figures for runs and sweeps (matplotlib, Agg backend), saved as PNG and SVG.

`fig_*` functions return a Figure (the notebook uses them); `plot_run` and `plot_sweep`
write the standard set into a results directory, each file atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# Same inputs -> byte-identical SVGs: fixed element ids (hash salt) and no date (see save).
matplotlib.rcParams["svg.hashsalt"] = "bulletsim"
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

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


def fig_timeline(
    sm_timeline: pd.DataFrame,
    iterations: pd.DataFrame,
    total_sms: int | None = None,
    window_s: tuple[float, float] | None = None,
    title: str = "",
) -> Figure:
    """SMs held per lane (steps) over queue lengths, on one time axis."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    sm = sm_timeline.copy()
    it = iterations
    end = float(it["end_s"].max()) if len(it) else 1.0
    for lane, g in sm.groupby(sm["lane"].astype(str), sort=True):
        t = list(g["time_s"]) + [end]
        n = list(g["num_sms"]) + [g["num_sms"].iloc[-1]]
        ax1.step(t, n, where="post", label=lane, color=LANE_COLORS.get(lane), lw=1)
    if total_sms:
        ax1.axhline(total_sms, color="k", lw=0.6, ls=":", label=f"GPU ({total_sms} SMs)")
    ax1.set_ylabel("SMs held")
    ax1.legend(loc="upper right", fontsize=8)
    ax1.set_title(title or "SM split over time")
    ax2.step(it["end_s"], it["num_waiting"], where="post", label="waiting", lw=1)
    ax2.step(it["end_s"], it["num_running"], where="post", label="running", lw=1)
    ax2.set_xlabel("simulated time (s)")
    ax2.set_ylabel("requests")
    ax2.legend(loc="upper right", fontsize=8)
    if window_s is not None:
        ax2.set_xlim(*window_s)
    return fig


def fig_attainment(points: pd.DataFrame, capacity: pd.DataFrame | None = None) -> Figure:
    """SLO attainment vs request rate, one panel per trace, capacity marked."""
    traces = list(dict.fromkeys(points["trace"]))
    fig, axes = plt.subplots(1, len(traces), figsize=(5 * len(traces), 3.8), squeeze=False)
    for ax, trace in zip(axes[0], traces, strict=True):
        p = points[points["trace"] == trace]
        for label, g in p.groupby("label", sort=False):
            g = g.sort_values("rate_req_s")
            (line,) = ax.plot(g["rate_req_s"], 100 * g["slo_attainment"], "o-", ms=3, label=label)
            if capacity is not None:
                c = capacity[(capacity["trace"] == trace) & (capacity["label"] == label)]
                if len(c) and c["capacity_req_s"].iloc[0] > 0:
                    ax.axvline(c["capacity_req_s"].iloc[0], color=line.get_color(), ls="--", lw=0.8)
        target = 90.0
        ax.axhline(target, color="k", lw=0.6, ls=":")
        ax.set_title(trace)
        ax.set_xlabel("request rate (req/s)")
        ax.set_ylabel("SLO attainment (%)")
        ax.set_ylim(0, 102)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig_latency(points: pd.DataFrame, q: str = "p90") -> Figure:
    """TTFT and TPOT percentiles vs rate, one column per trace."""
    traces = list(dict.fromkeys(points["trace"]))
    fig, axes = plt.subplots(2, len(traces), figsize=(5 * len(traces), 6), squeeze=False)
    for j, trace in enumerate(traces):
        p = points[points["trace"] == trace]
        for label, g in p.groupby("label", sort=False):
            g = g.sort_values("rate_req_s")
            axes[0][j].plot(g["rate_req_s"], g[f"ttft_{q}_ms"], "o-", ms=3, label=label)
            axes[1][j].plot(g["rate_req_s"], g[f"tpot_{q}_ms"], "o-", ms=3, label=label)
        axes[0][j].set_title(trace)
        axes[0][j].set_yscale("log")
        axes[0][j].set_ylabel(f"TTFT {q} (ms)")
        axes[1][j].set_ylabel(f"TPOT {q} (ms)")
        axes[1][j].set_xlabel("request rate (req/s)")
        axes[0][j].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write the SM/queue timeline of a results directory into it."""
    from bulletsim.results import load_results

    d = Path(run_dir)
    r = load_results(d)
    s = r["summary"]
    title = f"{s['policy']} on {s['workload']} ({s['gpu']}, {s['model']})"
    sms = r["config"].get("latency_model", {}).get("total_sms")
    fig = fig_timeline(r["sm_timeline"], r["iterations"], sms, title=title)
    return save(fig, d, "sm_timeline")


def plot_sweep(sweep_dir: str | Path) -> list[Path]:
    """Attainment and latency vs rate, plus the timeline run's SM split, into the sweep dir."""
    from bulletsim.results import load_results
    from bulletsim.sweep_report import load_sweep

    d = Path(sweep_dir)
    sw = load_sweep(d)
    paths = save(fig_attainment(sw["points"], sw["capacity"]), d, "attainment_vs_rate")
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
