"""Fidelity of the simulator against a live run: the same requests and config, re-simulated.

`resimulate_live(run_dir)` reads a live results directory (`bulletsim live`), rebuilds its
config and its exact requests (arrival, prompt and output tokens, as the live engine served
them), simulates them, and compares request metrics with `bulletsim.fidelity.compare`
(TTFT / TPOT / ITL / E2E mean, p50, p90, p99; throughput; SLO attainment; per-request
errors). `iteration_errors` is the latency model's own error on the live iterations:
err = predicted / measured - 1 for the same work on the same SMs beside the same co-runner,
summarised as median and p90 of |err| by lane phase and SM count: the predictions the live run
recorded, or, with another profile, every iteration priced again under it
(`bulletsim.live.refit.price_run`, the simulator's own formula).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bulletsim.fidelity.compare import Comparison, compare
from bulletsim.fidelity.observed import observed_from_request_frame
from bulletsim.files import require_file
from bulletsim.hardware import get_gpu
from bulletsim.latency.factory import build_latency
from bulletsim.live.engine_exec import run_engine_exec
from bulletsim.live.offered import offered
from bulletsim.live.run_config import live_config
from bulletsim.live.rundir import SM_BINS, host_times_measured, read_json_object, read_live_run
from bulletsim.models import get_model
from bulletsim.run import RunResult, simulate
from bulletsim.workload.workload import Workload, make_requests


@dataclass(slots=True)
class LiveFidelity:
    run_dir: Path
    live_summary: dict
    sim: RunResult
    comparison: Comparison
    iterations: pd.DataFrame  # the errors table (see iteration_errors)


def resimulate_live(
    run_dir: str | Path,
    profile: str | Path | dict | None = None,
    policy_profile: str | Path | dict | None = None,
) -> LiveFidelity:
    """Re-simulate `run_dir`'s requests under its config. `profile`: a latency profile (file or
    document) to use instead of the installed one (e.g. the profile the live run predicted
    with, or one refitted on other live runs); its iteration errors are then re-priced.
    `policy_profile`: the profile the policy predicts with, when not `profile` (the one the
    live run's policy used, so the simulated policy decides as the live one did while the
    clock follows `profile`). The clock prices the work as the run's engine ran it (its decode
    graphs' batch sizes, its eager prefill kernel: `live.engine_exec`,
    `ProfileLatency.with_exec`); the policy predicts with its profile as given, as the live
    one did."""
    from bulletsim.latency.profile import ProfileLatency
    from bulletsim.live.refit import repriced

    meta, summary, req, it = read_live_run(run_dir)
    cfg = live_config(meta, Path(run_dir) / "config.json")
    errors = iteration_errors(it)
    gpu, model = get_gpu(cfg.gpu), get_model(cfg.model, tp=cfg.tp)
    if profile is not None:
        doc = _profile_doc(profile)
        base = ProfileLatency(doc, gpu, model, source=_source(profile))
        errors = repriced(doc, run_dir)
    else:
        base = build_latency(cfg.latency, gpu, model, cfg.partition_mechanism(), cfg.profile)
    clock = base
    extra = run_engine_exec(run_dir)  # padded decode graphs, the engine's eager kernel
    if extra and isinstance(base, ProfileLatency):
        clock = base.with_exec(extra)
    latency = base
    if policy_profile is not None:
        pdoc, psource = _profile_doc(policy_profile), _source(policy_profile)
        latency = ProfileLatency(pdoc, gpu, model, source=psource)
    timing = None if clock is latency else clock
    req = req.sort_values("id")
    specs = make_requests(
        req["arrival_s"].to_numpy(np.float64),
        req["prompt_tokens"].to_numpy(np.int64),
        req["output_tokens"].to_numpy(np.int64),
    )
    wl = Workload(
        summary["workload"], f"live run {run_dir}", False, specs, 0, 0,
        ("requests: the live run's own (arrival, prompt, output), replayed",),
    )  # fmt: skip
    sim = simulate(cfg, workload=wl, latency=latency, timing=timing)
    label = f"simulated ({sim.summary['policy']}, {(timing or sim.latency).name})"
    sim_obs = observed_from_request_frame(label, sim.requests, sim.summary["itl_ms"])
    live_obs = observed_from_request_frame(
        f"live ({summary['engine']})", req.reset_index(drop=True), summary["itl_ms"]
    )
    return LiveFidelity(Path(run_dir), summary, sim, compare(sim_obs, live_obs, sim.slo), errors)


def _source(profile: str | Path | dict) -> str:
    """How a profile is named in errors: its file, or that it was given as a document."""
    return "(given as a document)" if isinstance(profile, dict) else str(profile)


def _profile_doc(profile: str | Path | dict) -> dict:
    from bulletsim.latency.profile import read_profile

    if isinstance(profile, dict):
        return profile
    return read_profile(require_file(profile, "latency profile"))


def iteration_errors(it: pd.DataFrame) -> pd.DataFrame:
    """Median and p90 of |predicted / measured - 1| (percent) and the median signed error of
    the predictions the live run recorded, per (phase, SM group), plus an "all" row per
    phase. Empty for runs without predictions."""
    if not len(it) or "predicted_s" not in it:
        return pd.DataFrame()
    ok = it["measured_s"] > 0
    pred = it.loc[ok, "predicted_s"]
    err = (pred / it.loc[ok, "measured_s"] - 1.0) * 100.0
    df = pd.DataFrame(
        {
            "phase": it.loc[ok, "phase"].astype(str),
            "sms": pd.cut(it.loc[ok, "num_sms"], SM_BINS).astype(str),
            "err": err,
        }
    )
    rows = []
    groups = list(df.groupby(["phase", "sms"])) + [((p, "all"), g) for p, g in df.groupby("phase")]
    for (phase, sms), g in groups:
        e = g["err"].to_numpy()
        rows.append(
            {
                "phase": phase,
                "sms": sms,
                "n": len(e),
                "median_abs_pct": float(np.median(np.abs(e))),
                "p90_abs_pct": float(np.percentile(np.abs(e), 90)),
                "median_pct": float(np.median(e)),
            }
        )
    return pd.DataFrame(rows)


def headline(f: LiveFidelity) -> dict:
    """The figures the README table shows for one run."""
    c = f.comparison
    it = f.iterations
    all_rows = it[it["sms"] == "all"] if len(it) else it
    n = all_rows["n"].to_numpy() if len(it) else np.zeros(0)
    med = all_rows["median_abs_pct"].to_numpy() if len(it) else np.zeros(0)
    return {
        "run": f.run_dir.name,
        "policy": f.live_summary["policy"],
        "workload": f.live_summary["workload"],
        "rate": offered(read_json_object(f.run_dir / "config.json"))[0],
        "throughput_live": c.row("throughput_req_s").measured,
        "throughput_err_pct": c.row("throughput_req_s").error_pct,
        "tpot_mean_live_ms": c.row("tpot_ms", "mean").measured,
        "tpot_mean_err_pct": c.row("tpot_ms", "mean").error_pct,
        "ttft_p50_live_ms": c.row("ttft_ms", "p50").measured,
        "ttft_p50_err_pct": c.row("ttft_ms", "p50").error_pct,
        "slo_live": c.row("slo_attainment").measured,
        "slo_sim": c.row("slo_attainment").sim,
        "iter_median_abs_pct": float(np.average(med, weights=n)) if n.sum() else float("nan"),
        # the fake executor's times are the latency model's own predictions: not a measurement
        "measured": host_times_measured(f.run_dir),
    }


FAKE_MEETS = "n/a (fake executor)"
# The issue's targets at 50-90% load: |error| of throughput, mean TPOT, TTFT p50 (percent).
TARGETS_PCT = {"throughput_err_pct": 5.0, "tpot_mean_err_pct": 5.0, "ttft_p50_err_pct": 10.0}


def targets_met(r: dict) -> str:
    """Which of the targets (throughput 5%, TPOT 5%, TTFT p50 10%) one table row meets, e.g.
    "thr, TPOT" or "none"; `FAKE_MEETS` for a fake-executor run (`measured` false), whose
    "live" figures are the simulator's predictions replayed, so it can meet nothing."""
    if not r.get("measured", True):
        return FAKE_MEETS
    names = {"throughput_err_pct": "thr", "tpot_mean_err_pct": "TPOT", "ttft_p50_err_pct": "TTFT"}
    met = [names[k] for k, lim in TARGETS_PCT.items() if abs(r[k]) <= lim]
    return ", ".join(met) if met else "none"


def _num(x: float | None, spec: str, unit: str = "") -> str:
    """`x` formatted by `spec` plus `unit`; "n/a" for a figure without samples (None or NaN)."""
    return "n/a" if x is None or x != x else format(x, spec) + unit


def markdown_table(rows: list[dict]) -> str:
    """One line per live run: live figures, the simulator's error on them and which targets
    the line meets; with a "fit_on" key per row (held-out fidelity), the runs it was fitted on."""
    fit = any("fit_on" in r for r in rows)
    head = (
        "| workload | policy | rate (req/s) | live thr (req/s) | thr err | live TPOT mean "
        "(ms) | TPOT err | live TTFT p50 (ms) | TTFT p50 err | SLO live / sim | iteration "
        "median abs err | meets |" + (" profile fitted on |" if fit else "") + "\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        + ("---|" if fit else "")
        + "\n"
    )
    lines = [
        f"| {r['workload']} | {r['policy']} | "
        f"{r['rate']} | "
        f"{_num(r['throughput_live'], '.2f')} | {_num(r['throughput_err_pct'], '+.1f', '%')} | "
        f"{_num(r['tpot_mean_live_ms'], '.2f')} | {_num(r['tpot_mean_err_pct'], '+.1f', '%')} | "
        f"{_num(r['ttft_p50_live_ms'], '.1f')} | {_num(r['ttft_p50_err_pct'], '+.1f', '%')} | "
        f"{_num(100 * r['slo_live'], '.1f', '%')} / {_num(100 * r['slo_sim'], '.1f', '%')}"
        f" | {_num(r['iter_median_abs_pct'], '.1f', '%')} | {targets_met(r)} |"
        + (f" {r.get('fit_on', '')} |" if fit else "")
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"
