"""How wrong is a derived profile? The transfer's own error, measured on the source GPU.

`derive.py` moves a measured kernel time to another GPU by the fitted SRM's ratio:
t_T = t_S * SRM_T / SRM_S. Its one assumption is that a kernel's deviation from the SRM
(wave steps, small-kernel latency, library choices) stays the same when the resources
behind it change. Nothing measured on the target can check that, but the source GPU can:
its partitions *are* GPUs with fewer resources. So, for every measured grid cell (op, shape,
m SMs), predict the cell at n SMs by the same SRM ratio,

    t_pred(x, n) = t_meas(x, m) * SRM(x, n) / SRM(x, m),

with n / m the target's datasheet ratio of the resource that bounds the kernel (peak bf16
FLOP/s for compute-bound kernels, HBM bandwidth for memory-bound ones, by the SRM's own
split), n taken from the measured SM grid, and compare with t_meas(x, n). The spread of
those errors is the estimate printed with every run that uses the derived profile.

What this covers: a change of compute or bandwidth of the size the target has, carried
through measured kernel artefacts. What it cannot cover (stated in the profile): another
partition mechanism (libsmctrl TPC masks vs green contexts), the target's own kernel
libraries and tile choices, its clocks under power limits (the H200 drops from 1980 to
~1500 MHz under full-GPU GEMMs), L2 size, and HBM behaviour of another memory generation.
CPU only.
"""

from __future__ import annotations

import math

import numpy as np

from bulletsim.hardware import GPUSpec
from bulletsim.latency.ops import OpCost, linear_ops
from bulletsim.latency.profile import LINEAR_OPS, ProfileLatency
from bulletsim.latency.roofline import op_time_split

TRANSFERS = (
    "each kernel's measured deviation from the fitted SRM at the same share of the GPU",
    "compute-bound kernels scaled by the per-SM peak bf16 ratio, memory-bound ones by the "
    "HBM bandwidth ratio (the SRM's split)",
    "contention factors, per-layer overhead and the CUDA-graph saving, unchanged",
)
CANNOT_TRANSFER = (
    "the partition mechanism (source: green contexts in 8-SM steps; a target partitioned "
    "by libsmctrl TPC masks has no green-context wave effects and other granularity)",
    "the target's own GEMM/attention kernels and their persistent-grid sizing",
    "clocks under power limits (H200: 1980 MHz per kernel, ~1500 MHz under long full-GPU "
    "GEMMs, so partitions can be more efficient per SM than the whole GPU)",
    "L2 size and the target's HBM generation",
)


def _cells(pl: ProfileLatency):
    """(op name, OpCost builder, grid rows) for every measured grid of the profile."""
    grid, m = pl.doc["grid"], pl.model
    for k, name in enumerate(LINEAR_OPS):
        lin = grid["linear"]
        for x, row in zip(lin["tokens"], lin["ops"][name], strict=True):
            yield name, linear_ops(m, int(x))[k], row
    for key, axis, make in (
        ("final_norm", "tokens", pl.final_norm_op),
        ("lm_head", "rows", pl.lm_head_op),
        ("attn_prefill", "pairs", pl.attn_prefill_op),
    ):
        for x, row in zip(grid[key][axis], grid[key]["time_s"], strict=True):
            yield key, make(x), row
    ad = grid["attn_decode"]
    for b, plane in zip(ad["batch"], ad["time_s"], strict=True):
        for c, row in zip(ad["ctx"], plane, strict=True):
            yield "attn_decode", pl.attn_decode_op(b, b * (c + 1)), row


def _nearest(sms: list[int], x: float) -> int:
    return min(sms, key=lambda n: (abs(math.log(n) - math.log(x)), n))


def self_transfer_errors(doc: dict, dst: GPUSpec, min_sms: int = 16) -> dict:
    """The derive transfer's error to `dst`, estimated on the measured profile `doc`'s GPU
    (module docstring). Returns percentages (median, p90, max, time-weighted mean absolute
    error) over all kernels and per op, and the SM pairs used."""
    shape_only = "tp" in doc["meta"].get("derived_from", {})  # a TP shard shape transfer
    if doc["meta"]["kind"] != "measured" and not shape_only:
        raise ValueError("estimate a transfer's error on a measured profile")
    pl = ProfileLatency(doc)
    src, params = pl.gpu, pl.params
    sms = [n for n in doc["grid"]["sms"] if n >= min_sms]
    col = {n: i for i, n in enumerate(doc["grid"]["sms"])}
    r_cmp = dst.peak_bf16_flops / src.peak_bf16_flops
    r_mem = dst.mem_bw_bytes_s / src.mem_bw_bytes_s
    errs: list[float] = []
    abs_sum = meas_sum = 0.0
    by_op: dict[str, list[float]] = {}
    pairs: set[tuple[str, int, int]] = set()
    for name, op, row in _cells(pl):
        for m in sms:
            mem_s, cmp_s = op_time_split(op, m, src, params)
            bound = "memory" if mem_s >= cmp_s else "compute"
            ratio = r_mem if bound == "memory" else r_cmp
            n = _nearest(sms, m * ratio)
            t_m, t_n = row[col[m]], row[col[n]]
            if n == m or t_m is None or t_n is None:
                continue
            pred = t_m * _srm(op, n, src, params) / _srm(op, m, src, params)
            e = pred / t_n - 1.0
            errs.append(abs(e))
            by_op.setdefault(name, []).append(abs(e))
            abs_sum += abs(pred - t_n)
            meas_sum += t_n
            pairs.add((bound, m, n))
    if not errs:
        return {"note": f"no SM pairs at the {dst.name}/{src.name} ratios on this grid"}
    return {
        "method": "self-transfer on the source GPU's partitions (calibrate/transfer_error.py)",
        "ratios": {"compute": round(r_cmp, 3), "memory": round(r_mem, 3)},
        "kernels": _stats(errs),
        "time_weighted_pct": round(100 * abs_sum / meas_sum, 2),
        "by_op": {k: _stats(v) for k, v in sorted(by_op.items())},
        "sm_pairs": sorted([list(p) for p in pairs]),
        "roofline_only_heldout": doc.get("fit", {})
        .get("summary", {})
        .get("heldout_ops_srm_only", {}),
        "transfers": list(TRANSFERS),
        "cannot_transfer": list(CANNOT_TRANSFER),
    }


def _srm(op: OpCost, n: int, gpu: GPUSpec, params) -> float:
    mem_s, cmp_s = op_time_split(op, n, gpu, params)
    return mem_s + cmp_s


def _stats(ape: list[float]) -> dict:
    a = np.asarray(ape) * 100
    return {
        "n": int(a.size),
        "median_pct": round(float(np.median(a)), 2),
        "p90_pct": round(float(np.percentile(a, 90)), 2),
        "max_pct": round(float(a.max()), 2),
    }


def summary_line(est: dict) -> str:
    """One line for run output: the estimate and how it was made."""
    if "kernels" not in est:
        return f"error estimate: {est.get('note', 'none')}"
    k = est["kernels"]
    return (
        f"estimated transfer error per kernel: median {k['median_pct']}%, p90 {k['p90_pct']}%; "
        f"time-weighted {est['time_weighted_pct']}% (self-transfer on the source GPU's "
        "partitions; mechanism, clocks and the target's own kernels are not covered)"
    )
