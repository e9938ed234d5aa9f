"""Fit a latency profile from calibration samples (CPU only: numpy, pandas, scipy).

1. SRM parameters (`bulletsim.latency.roofline.SRMParams`): one efficiency `alpha` per op
   class and the bandwidth knee, by robust least squares on log(predicted / measured) over
   the training per-kernel samples; the GEMM tile (wave quantization) is picked from
   candidates by the same loss. `layer_overhead_s` is the median gap between a whole layer
   and the sum of its kernels. Contention (floor, per-share slopes) is a non-negative least
   squares on the co-run slowdowns.
2. The measured grid (training samples only) that `ProfileLatency` interpolates.
3. Held-out errors: per kernel, whole layers, whole steps and co-runs, for the profile and
   for the bare SRM, so a report can say where the SRM form cannot fit (non-monotonic GEMM
   times) and the measured points carry the prediction instead.
File length: ~330 lines, the three steps above share one sample frame and split of it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, nnls

from bulletsim.core import CoRunner, WorkShape
from bulletsim.hardware import GPUSpec
from bulletsim.latency.contention import ContentionParams
from bulletsim.latency.log_grid import build_grid
from bulletsim.latency.ops import attention_ops, head_ops, linear_ops
from bulletsim.latency.profile import FORMAT, LINEAR_OPS, VERSION, ProfileLatency, srm_to_dict
from bulletsim.latency.roofline import SRMParams, op_time_s
from bulletsim.models import ModelSpec
from calibrate.gemm_faults import SLOWER_FACTOR, fault_records, kernel_choice_faults

FIT_CLASSES = ("gemm", "attn_prefill", "attn_decode", "elementwise")
TILES = ((128, 128), (128, 256), (64, 128))


def row_shape(r) -> WorkShape:
    """The WorkShape a sample measured (one layer's worth of work)."""
    if r["phase"] == "prefill":
        return WorkShape(
            prefill_tokens=int(r["tokens"]),
            prefill_attn_pairs=float(r["pairs"]),
            prefill_kv_tokens=int(r["kv_tokens"]),
            num_prefill_seqs=int(r["num_seqs"]),
            logits_tokens=int(r["logits_tokens"]),
        )
    return WorkShape(
        decode_tokens=int(r["batch"]),
        decode_ctx_tokens=int(r["kv_tokens"]),
        logits_tokens=int(r["logits_tokens"]),
    )


def row_op(r, model: ModelSpec):
    shape = row_shape(r)
    op = r["op"]
    if op in LINEAR_OPS:
        return linear_ops(model, shape.total_tokens)[LINEAR_OPS.index(op)]
    if op.startswith("attn_"):
        return next(o for o in attention_ops(model, shape) if o.name == op)
    return next(o for o in head_ops(model, shape) if o.name == op)


def _params_from(x, base: SRMParams, tile) -> SRMParams:
    alpha = dict(base.alpha)
    for c, v in zip(FIT_CLASSES, x[:-1], strict=True):
        alpha[c] = float(math.exp(v))
    return replace(base, alpha=alpha, bw_knee_frac=float(x[-1]), gemm_tile_mn=tile)


def fit_srm(
    ops_df: pd.DataFrame, model: ModelSpec, gpu: GPUSpec, base: SRMParams | None = None
) -> tuple[SRMParams, dict]:
    """Least-squares alpha per class + bandwidth knee (+ best GEMM tile) on per-kernel samples."""
    base = base or SRMParams()
    ops = [row_op(r, model) for _, r in ops_df.iterrows()]
    sms = ops_df["num_sms"].to_numpy()
    meas = ops_df["time_s"].to_numpy()
    best = None
    for tile in TILES:

        def resid(x, tile=tile):
            p = _params_from(x, base, tile)
            pred = np.array([op_time_s(o, int(n), gpu, p) for o, n in zip(ops, sms, strict=True)])
            return np.log(pred / meas)

        x0 = [math.log(base.alpha[c]) for c in FIT_CLASSES] + [base.bw_knee_frac]
        lo = [-3.0] * len(FIT_CLASSES) + [0.05]
        hi = [3.0] * len(FIT_CLASSES) + [1.0]
        sol = least_squares(resid, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1)
        if best is None or sol.cost < best[0].cost:
            best = (sol, tile)
    sol, tile = best
    params = _params_from(sol.x, base, tile)
    res = np.abs(np.expm1(sol.fun))
    by_class = {}
    for c in FIT_CLASSES:
        mask = np.array([o.op_class == c for o in ops])
        if mask.any():
            by_class[c] = _err_stats(res[mask])
    return params, {"cost": float(sol.cost), "tile": list(tile), "train_error": by_class}


def fit_contention(corun: pd.DataFrame, pl: ProfileLatency) -> tuple[ContentionParams, dict]:
    """Non-negative least squares for (floor, mem_per_share, compute_per_share).

    Uses the predictor's own form: a victim whose alone time splits into memory-bound m,
    compute-bound c and overhead o slows by (floor * (m + c) + mem * share * m +
    cmp * share * c) / (m + c + o), share = the co-runner's fraction of the SMs.
    """
    if corun.empty:
        return ContentionParams(), {"n": 0}
    rows, ys = [], []
    for _, r in corun.iterrows():
        shape = row_shape(r)
        if r["phase"] == "prefill":
            shape = replace(shape, num_layers=1, logits_tokens=0)
        n = int(r["num_sms"])
        m, c = pl.time_split_s(shape, n)
        total = pl.gpu_time_s(shape, n)
        share = float(r["co_sms"]) / pl.total_sms
        rows.append([(m + c) / total, share * m / total, share * c / total])
        ys.append(r["time_s"] / r["alone_s"] - 1.0)
    a, y = np.array(rows), np.array(ys)
    coef, _ = nnls(a, np.maximum(y, 0.0))
    params = ContentionParams(
        floor=float(coef[0]), mem_per_share=float(coef[1]), compute_per_share=float(coef[2])
    )
    pred = a @ coef
    return params, {
        "n": int(len(y)),
        "slowdown_error": _err_stats(np.abs((1 + pred) / (1 + y) - 1)),
    }


def _err_stats(ape: np.ndarray) -> dict:
    ape = np.asarray(ape, dtype=float)
    if ape.size == 0:
        return {"n": 0}
    return {
        "n": int(ape.size),
        "median_pct": round(100 * float(np.median(ape)), 2),
        "mape_pct": round(100 * float(np.mean(ape)), 2),
        "p90_pct": round(100 * float(np.quantile(ape, 0.9)), 2),
        "max_pct": round(100 * float(np.max(ape)), 2),
    }


def nonmonotonic_points(train: pd.DataFrame, tol: float = 0.02) -> list[dict]:
    """(op, tokens, sms) where a kernel got slower with more SMs (the SRM cannot do that)."""
    out = []
    lin = train[train["op"].isin(("qkv", "o", "gate_up", "down", "lm_head"))]
    for (op, tok), g in lin.groupby(["op", "tokens"]):
        g = g.groupby("num_sms")["time_s"].median().sort_index()
        vals, idx = g.to_numpy(), g.index.to_numpy()
        for k in range(1, len(vals)):
            if vals[k] > vals[k - 1] * (1 + tol):
                out.append(
                    {
                        "op": op,
                        "tokens": int(tok),
                        "sms_from": int(idx[k - 1]),
                        "sms_to": int(idx[k]),
                        "slower_pct": round(100 * (vals[k] / vals[k - 1] - 1), 1),
                    }
                )
    return out


def evaluate(df: pd.DataFrame, pl: ProfileLatency, model: ModelSpec, gpu: GPUSpec) -> dict:
    """Errors of the profile (and of its bare SRM) on held-out samples."""
    out: dict = {"ops": {}, "ops_srm": {}}
    held = df[(df["split"] == "heldout") & (df["kind"] == "op")]
    rows = []
    for _, r in held.iterrows():
        shape, n = row_shape(r), int(r["num_sms"])
        pred = pl.op_time(r["op"], shape, n)
        srm = op_time_s(row_op(r, model), n, gpu, pl.params)
        rows.append((r["op"], r["phase"], abs(pred / r["time_s"] - 1), abs(srm / r["time_s"] - 1)))
    ev = pd.DataFrame(rows, columns=["op", "phase", "ape", "ape_srm"])
    for op, g in ev.groupby("op"):
        out["ops"][op] = _err_stats(g["ape"].to_numpy())
        out["ops_srm"][op] = _err_stats(g["ape_srm"].to_numpy())
    out["ops_all"] = _err_stats(ev["ape"].to_numpy())
    out["ops_all_srm"] = _err_stats(ev["ape_srm"].to_numpy())
    lay = df[(df["kind"] == "layer") & (df["split"] == "heldout")]
    lay_ape = []
    for _, r in lay.iterrows():
        pred = pl.predict(replace(row_shape(r), num_layers=1, logits_tokens=0), int(r["num_sms"]))
        if r["phase"] == "decode":
            pred += pl.graph_saving_s  # layer samples are eager; predict assumes a graph
        lay_ape.append(abs(pred / r["time_s"] - 1))
    out["layers"] = _err_stats(np.array(lay_ape))
    out["steps"] = {}
    out["step_rows"] = []
    steps = df[df["kind"] == "step"]
    for phase, g in steps.groupby("phase"):
        apes = []
        for _, r in g.iterrows():
            # The calibrator times GPU work only; host overhead (step_overhead_s) is not in it.
            pred = pl.gpu_time_s(row_shape(r), int(r["num_sms"]))
            apes.append(abs(pred / r["time_s"] - 1))
            out["step_rows"].append(
                {
                    "phase": phase,
                    "num_sms": int(r["num_sms"]),
                    "tokens": int(r["tokens"]),
                    "ctx": _opt(r, "ctx"),
                    "measured_ms": round(1e3 * r["time_s"], 3),
                    "predicted_ms": round(1e3 * pred, 3),
                }
            )
        out["steps"][phase] = _err_stats(np.array(apes))
    cor = df[df["kind"] == "corun"]
    c_ape = []
    for _, r in cor.iterrows():
        shape = row_shape(r)
        if r["phase"] == "prefill":
            shape = replace(shape, num_layers=1, logits_tokens=0)
        co = CoRunner("prefill" if r["phase"] == "decode" else "decode", int(r["co_sms"]))
        pred = pl.predict(shape, int(r["num_sms"]), co)
        alone = pl.predict(shape, int(r["num_sms"]))
        # Compare slowdowns (the co-run's own alone time is the reference).
        c_ape.append(abs((pred / alone) / (r["time_s"] / r["alone_s"]) - 1))
    out["corun_slowdown"] = _err_stats(np.array(c_ape))
    return out


def _opt(r, col):
    v = r.get(col)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


def fit_graph_saving(df: pd.DataFrame, pl: ProfileLatency) -> dict:
    """Per-layer time a CUDA-graph decode step saves against eager per-kernel timings.

    Fitted on the co-runs' *alone* decode steps (graph replays, training data), so whole-step
    samples stay held out. Eager per-kernel events include each kernel's launch gap; a graph
    replay hides most of it.
    """
    cor = df[(df["kind"] == "corun") & (df["phase"] == "decode")]
    gaps = [
        (pl.gpu_time_s(row_shape(r), int(r["num_sms"])) - r["alone_s"]) / pl.num_layers
        for _, r in cor.iterrows()
    ]
    saving = float(np.clip(np.median(gaps), 0.0, 1e-3)) if gaps else 0.0
    return {
        "prefill": "eager",
        "decode": "graph",
        "decode_graph_saving_per_layer_s": saving,
        "fitted_on": f"{len(gaps)} graph-replayed decode steps (co-run alone references)",
    }


def fit_profile(df: pd.DataFrame, model: ModelSpec, gpu: GPUSpec, meta: dict) -> dict:
    """Samples -> profile document (meta + SRM params + grid + fit report).

    GEMM samples timed on a kernel that the selection's noisy race picked wrongly
    (`calibrate.gemm_faults`) are dropped before anything is fitted and listed in
    `fit.kernel_choice_faults`."""
    faults = kernel_choice_faults(df, str(meta.get("mechanism", "")), gpu.num_sms)
    df = df.drop(index=faults.index)
    train = df[(df["split"] == "train") & (df["kind"] == "op")].copy()
    if train.empty:
        raise ValueError("no training samples: the sweep measured nothing usable")
    params, srm_fit = fit_srm(train, model, gpu)
    lay = df[(df["kind"] == "layer") & (df["split"] == "train")]
    layer_oh = (
        float(np.clip(np.median(lay["time_s"] - lay["ops_sum_s"]), 0, None)) if len(lay) else 0.0
    )
    params = replace(
        params,
        layer_overhead_s=layer_oh,
        provenance=f"{meta['kind']}: fitted by calibrate.fit on {meta['gpu']} samples",
    )
    sms = sorted({int(v) for v in train["num_sms"]})
    gpu_spec = _gpu_dict(gpu)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "meta": {**meta, "num_sms": gpu.num_sms},
        "gpu_spec": gpu_spec,
        "srm": srm_to_dict(params),
        "grid": build_grid(train.to_dict("records"), sms),
        # no graph saving until it is fitted on these samples (next line)
        "exec": {"decode_graph_saving_per_layer_s": 0.0},
    }
    doc["exec"] = fit_graph_saving(df, ProfileLatency(doc, gpu, model))
    contention, cont_fit = fit_contention(
        df[df["kind"] == "corun"], ProfileLatency(doc, gpu, model)
    )
    doc["srm"]["contention"] = asdict(contention)
    pl = ProfileLatency(doc, gpu, model)
    ev = evaluate(df, pl, model, gpu)
    cor = df[df["kind"] == "corun"]
    doc["fit"] = {
        "summary": {
            "heldout_ops": ev["ops_all"],
            "heldout_ops_srm_only": ev["ops_all_srm"],
            "heldout_layers": ev["layers"],
            "steps": ev["steps"],
            "corun_slowdown": ev["corun_slowdown"],
        },
        "heldout_per_op": ev["ops"],
        "heldout_per_op_srm_only": ev["ops_srm"],
        "srm_fit": srm_fit,
        "contention_fit": cont_fit,
        "step_rows": ev["step_rows"],
        "nonmonotonic": nonmonotonic_points(train),
        "kernel_choice_faults": {
            "rule": "a qkv/o/gate_up/down sample is dropped when the same op, phase and SM "
            "count ran more rows on another kernel that was a candidate at its size, more "
            f"than {SLOWER_FACTOR}x faster (calibrate/gemm_faults.py)",
            "dropped": fault_records(faults),
        },
        "corun": [
            {
                k: _plain(r[k])
                for k in ("phase", "num_sms", "co_sms", "tokens", "time_s", "alone_s")
                if k in r
            }
            for _, r in cor.iterrows()
        ],
        "num_samples": {k: int(v) for k, v in df.groupby("kind").size().items()},
        "step_overhead_note": "step_overhead_s is host-side (scheduling, sampling); the "
        "calibrator times GPU work only, so it keeps the SRM default and step errors exclude it",
    }
    return doc


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def _gpu_dict(gpu: GPUSpec) -> dict:
    from dataclasses import asdict

    return asdict(gpu)
