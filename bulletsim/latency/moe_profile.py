"""A MoE profile measured under one routing distribution, predicting another.

A calibrated MoE profile (`calibrate/moe_calibrate.py`) measures the MoE kernels (`gate_up` =
router + grouped gate_up GEMM, `down` = grouped down GEMM + combine) with token copies drawn
from one routing distribution (`meta.moe.routing`, uniform for the committed profiles). When
the simulated model routes differently (`ModelSpec.moe_routing`, e.g. `zipf:0.6`), every
measured MoE cell is scaled by the roofline's ratio for the same tokens and SMs,

    t'(tokens, n) = t(tokens, n) * SRM(op under the model's routing) / SRM(op under the measured)

so the measured kernel keeps its own efficiency and the roofline supplies only what the
routing changes: the busiest GPU's copies, the padding of skewed experts and the experts
whose weights are read (`bulletsim.latency.moe`). The calibrator's skewed samples, which the
fit never sees, measure how well this holds (`calibrate/moe_fit.py`).
"""

from __future__ import annotations

from dataclasses import replace

from bulletsim.hardware import GPUSpec
from bulletsim.latency.ops import linear_ops
from bulletsim.latency.roofline import SRMParams, op_time_s
from bulletsim.models import ModelSpec

MOE_GRID_OPS = {"gate_up": 2, "down": 3}  # grid name -> index in `linear_ops`


def measured_routing(doc: dict) -> str:
    """The routing a profile's MoE cells were measured under (uniform when unstated)."""
    return doc["meta"].get("moe", {}).get("routing", "uniform")


def reroute(doc: dict, model: ModelSpec, gpu: GPUSpec, params: SRMParams) -> dict:
    """`doc` with its MoE grid cells scaled to `model.moe_routing` (the same `doc` when the
    model is dense or routes as measured). Pure: the input is not modified."""
    routing = measured_routing(doc)
    if not model.is_moe or model.moe_routing == routing:
        return doc
    base = replace(model, moe_routing=routing)
    lin = doc["grid"]["linear"]
    sms = doc["grid"]["sms"]
    ops = dict(lin["ops"])
    for name, k in MOE_GRID_OPS.items():
        rows = []
        for tokens, row in zip(lin["tokens"], lin["ops"][name], strict=True):
            new, old = linear_ops(model, int(tokens))[k], linear_ops(base, int(tokens))[k]
            rows.append(
                [
                    None
                    if v is None
                    else v * op_time_s(new, n, gpu, params) / op_time_s(old, n, gpu, params)
                    for v, n in zip(row, sms, strict=True)
                ]
            )
        ops[name] = rows
    meta = {**doc["meta"], "moe_rerouted": {"measured": routing, "predicting": model.moe_routing}}
    return {**doc, "meta": meta, "grid": {**doc["grid"], "linear": {**lin, "ops": ops}}}
