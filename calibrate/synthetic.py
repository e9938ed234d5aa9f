"""Synthetic calibration samples drawn from a known SRM (for tests and for dry runs on CPU).

Produces the same columns as a GPU sweep, for the same grid, so the fit, the profile and the
report can be exercised without a GPU, and the fit can be checked to recover the parameters
that generated the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bulletsim.core import CoRunner
from bulletsim.hardware import GPUSpec
from bulletsim.latency.contention import contention_factors
from bulletsim.latency.profile import LINEAR_OPS
from bulletsim.latency.roofline import SRMParams, op_time_s
from bulletsim.models import ModelSpec
from calibrate.fit import row_op, row_shape
from calibrate.grids import Grid
from calibrate.samples import sample_key
from calibrate.sweep_shapes import decode_shape, prefill_shape

OPS_PER_LAYER = (*LINEAR_OPS,)


def synthetic_samples(
    grid: Grid, model: ModelSpec, gpu: GPUSpec, params: SRMParams, noise: float = 0.0, seed: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows: list[dict] = []

    def jitter() -> float:
        return float(np.exp(rng.normal(0.0, noise))) if noise else 1.0

    def point(phase: str, shape: dict, n: int, split: str) -> None:
        layer_s = 0.0
        attn = f"attn_{phase}"
        for op in (*OPS_PER_LAYER, attn, "final_norm", "lm_head"):
            r = {"phase": phase, "op": op, "num_sms": n, **shape}
            t = op_time_s(row_op(r, model), n, gpu, params) * jitter()
            if op not in ("final_norm", "lm_head"):
                layer_s += t
            rows.append(
                {
                    **r,
                    "key": sample_key("op", phase, op, n, **shape),
                    "kind": "op",
                    "time_s": t,
                    "split": split,
                }
            )
        rows.append(
            {
                "phase": phase,
                "op": "layer",
                "num_sms": n,
                **shape,
                "kind": "layer",
                "key": sample_key("layer", phase, "layer", n, **shape),
                "split": split,
                "time_s": layer_s + params.layer_overhead_s,
                "ops_sum_s": layer_s,
            }
        )

    for t in grid.prefill_tokens:
        for n in grid.sms:
            point("prefill", prefill_shape(1, t), n, "train")
        for n in grid.sms_heldout:
            point("prefill", prefill_shape(1, t), n, "heldout")
    for t in grid.prefill_tokens_heldout:
        for n in grid.sms:
            point("prefill", prefill_shape(1, t), n, "heldout")
    for b, c in grid.decode_shapes():
        for n in grid.sms:
            point("decode", decode_shape(b, c), n, "train")
        for n in grid.sms_heldout:
            point("decode", decode_shape(b, c), n, "heldout")
    # whole steps: every layer plus the head (GPU time only, no host overhead)
    from bulletsim.latency.roofline import RooflineLatency

    rl = RooflineLatency(gpu, model, params)
    steps = [("prefill", prefill_shape(s, n_tok)) for s, n_tok in grid.step_prefill]
    steps += [("decode", decode_shape(b, c)) for b, c in grid.step_decode]
    for phase, shape in steps:
        for n in grid.step_sms:
            r = {"phase": phase, **shape}
            t = rl.predict(row_shape(r), n) - params.step_overhead_s
            rows.append(
                {
                    **r,
                    "op": "step",
                    "num_sms": n,
                    "kind": "step",
                    "split": "heldout",
                    "key": sample_key("step", phase, "step", n, **shape),
                    "time_s": t,
                }
            )
    for b, c in grid.corun_decode:
        for dk in grid.corun_decode_sms:
            pk = gpu.num_sms - dk
            shape = decode_shape(b, c)
            r = {"phase": "decode", **shape}
            # GPU time only, as the sweep measures it (no host-side step overhead)
            alone = rl.predict(row_shape(r), dk) - params.step_overhead_s
            co = rl.predict(row_shape(r), dk, CoRunner("prefill", pk)) - params.step_overhead_s
            rows.append(
                {
                    **r,
                    "op": "step",
                    "num_sms": dk,
                    "co_sms": pk,
                    "co_phase": "prefill",
                    "kind": "corun",
                    "split": "train",
                    "time_s": co,
                    "alone_s": alone,
                    "key": sample_key("corun", "decode", "step", dk, **shape),
                }
            )
            f_mem, f_cmp, _ = contention_factors(
                params.contention, pk, gpu.num_sms, CoRunner("decode", dk)
            )
            for t in grid.corun_prefill_tokens:
                shp = prefill_shape(1, t)
                rows.append(
                    {
                        "phase": "prefill",
                        **shp,
                        "op": "layer",
                        "num_sms": pk,
                        "co_sms": dk,
                        "co_phase": "decode",
                        "kind": "corun",
                        "split": "train",
                        "time_s": f_cmp,
                        "alone_s": 1.0,
                        "key": sample_key("corun", "prefill", "layer", pk, **shp),
                    }
                )
    df = pd.DataFrame(rows)
    df["status"] = "ok"
    return df
