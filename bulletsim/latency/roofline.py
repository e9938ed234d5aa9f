"""The SM-scaling roofline (SRM): an analytic latency model that needs no GPU.

Per kernel on N of N_total SMs (Bullet paper §3.2, DESIGN.md "Latency model"):

    C(N) = C_peak * N / N_total                       compute scales with SMs
    D(N) = D_peak * min(1, N / N_knee)                bandwidth saturates at the knee
    T    = alpha[class] * max(flops / C_eff(N), bytes / D(N))

GEMMs pay wave quantization: tiles of `gemm_tile_mn` run in ceil(tiles / N) waves, so only
tiles / (waves * N) of C(N) is used. An all-reduce of S bytes over n GPUs is the ring model
fitted to NCCL measured on 2 H200s (`bulletsim/data/collectives/h200__nccl-2gpu.json`,
`latency/collectives.py`): t = (n-1) alpha_2 + 2(n-1)/n S / B, with B scaled to another GPU by
its datasheet NVLink rate (measured-fit at n = 2 on an H200, derived elsewhere; whole-GPU
column: a partition of < 24 SMs is slower, which only a shard profile's table carries).
A layer adds `layer_overhead_s`, a full step adds `step_overhead_s`.

`predict` is the simulator's hot path (called once per lane iteration): the token-count
dependent part of a layer is memoized per (tokens, SMs) and attention is a few float
operations on the shape's sums. `predict_ops` is the slow, readable per-kernel path; both give
the same number.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bulletsim.core import CoRunner, WorkShape
from bulletsim.hardware import GPUS, GPUSpec
from bulletsim.latency.contention import ContendedPredict, ContentionParams, contention_factors
from bulletsim.latency.ops import (
    OP_CLASSES,
    OpCost,
    attention_coefficients,
    head_ops,
    layer_ops,
    linear_ops,
)
from bulletsim.models import ModelSpec

# The committed NCCL table (issue 13): all-reduce on 2 H200s, 16 KB - 256 MB, and the ring
# alpha-beta fit of its whole-GPU column (alpha_2 = 7.38 us, B = 260.7 GB/s, median error 7.6%).
NCCL_TABLE = (
    Path(__file__).resolve().parent.parent / "data" / "collectives" / "h200__nccl-2gpu.json"
)


def nccl_ring_fit() -> tuple[float, float, str]:
    """(alpha_2 seconds, bus bandwidth B bytes/s, source) of the committed NCCL table's fit."""
    doc = json.loads(NCCL_TABLE.read_text())
    ab = doc["alpha_beta"]
    return float(ab["alpha2_s"]), float(ab["bus_bw_bytes_s"]), doc["source"]


_ALPHA2_S, _BUS_BW_BYTES_S, NCCL_SOURCE = nccl_ring_fit()

# alpha = measured / roofline time, from the H200 reference numbers in DESIGN.md (a datasheet
# lead for other GPUs until `bulletsim calibrate` measures them). The Bullet paper's mean is 1.61.
DEFAULT_ALPHA: dict[str, float] = {
    # The 790 TFLOP/s ceiling (alpha 1.25) is a best case. A torch 2.11 probe on the same H200
    # (CUDA events, median of 5, 2026-11-22) measured model-shaped GEMMs lower: 4096x14336x4096
    # 685 TFLOP/s (1.44), 2048x6144x4096 632 (1.56), and the b64 GEMV 64x28672x4096 at
    # 3.79 TB/s (1.27). One alpha serves both limbs; 1.45 favours the prefill GEMMs, which
    # dominate GEMM time (decode GEMVs come out ~14% slow; calibrate to split them).
    "gemm": 1.45,
    "attn_prefill": 989 / 546,  # flashinfer FA3 causal prefill, 4096 tokens: 546 TFLOP/s -> 1.81
    "attn_decode": 4.8 / 2.68,  # flashinfer paged decode, b64 x ctx 2048: 2.68 TB/s -> 1.79
    "elementwise": 4.8 / 4.24,  # device copy 4.24 TB/s read+write -> 1.13
    # NVLink datasheet rate / the bus bandwidth NCCL's ring sustained on 2 H200s (fit of the
    # committed table): 450 / 260.7 = 1.73; on another GPU B = its link rate / this alpha.
    "allreduce": GPUS["h200"].interconnect_bytes_s / _BUS_BW_BYTES_S,
}

# Memo entries before a cache is dropped (~100 MB); a run touches far fewer (tokens x SMs).
_MEMO_LIMIT = 500_000


@dataclass(frozen=True, slots=True)
class SRMParams:
    """Everything the roofline needs beyond the datasheet; the calibrator fits these."""

    # Treat as read-only: RooflineLatency copies values out of it when it is built.
    alpha: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ALPHA))
    # H200 4-GEMV decode proxy: 74% of full bandwidth at 40 SMs, 90% at 56; least squares of
    # N / N_knee through both gives N_knee = 59 of 132 SMs.
    bw_knee_frac: float = 0.45
    # Assumption: CPU scheduling, sampling and graph launch not hidden by SGLang's overlap
    # scheduler, ~0.5 ms per iteration; live mode measures it.
    step_overhead_s: float = 0.5e-3
    # Assumption: ~8 kernels per layer x ~1.2 us of launch gap / ramp-down tail each.
    layer_overhead_s: float = 10e-6
    # alpha_2: the latency of a 2-GPU all-reduce, fitted to NCCL measured on 2 H200s (7.38 us;
    # `NCCL_TABLE`); a ring of n GPUs pays (n-1) of it. (Profiles before issue 13 stored the
    # earlier assumption, 10 us per all-reduce whatever n; they price no all-reduce: tp 1.)
    allreduce_latency_s: float = _ALPHA2_S
    # Output tile of a CTA: cuBLAS/CUTLASS pick 128x128 (Ampere) up to 128x256 (Hopper) for
    # large bf16 GEMMs; the smaller tile gives the finer (conservative) wave steps.
    gemm_tile_mn: tuple[int, int] = (128, 128)
    contention: ContentionParams = field(default_factory=ContentionParams)
    provenance: str = (
        "derived: H200 reference ceilings in DESIGN.md, an H200 GEMM probe (torch 2.11), "
        "documented assumptions for overheads; all-reduce: ring fit of NCCL measured on 2 "
        "H200s (bulletsim/data/collectives/h200__nccl-2gpu.json)"
    )

    def __post_init__(self) -> None:
        if set(self.alpha) != set(OP_CLASSES):
            raise ValueError(
                f"alpha needs exactly the op classes {', '.join(OP_CLASSES)}; "
                f"got {', '.join(sorted(self.alpha))}"
            )
        if not 0.0 < self.bw_knee_frac <= 1.0:
            raise ValueError(f"bw_knee_frac must be in (0, 1], got {self.bw_knee_frac}")
        # A non-positive efficiency or a negative overhead prices some work at a negative
        # time, which the simulator cannot schedule (SimPy refuses a negative delay).
        bad = [f"alpha.{c}={v!r}" for c, v in self.alpha.items() if not 0.0 < v < math.inf]
        bad += [
            f"{k}={getattr(self, k)!r}"
            for k in ("layer_overhead_s", "step_overhead_s", "allreduce_latency_s")
            if not 0.0 <= getattr(self, k) < math.inf
        ]
        if bad:
            raise ValueError(
                f"SRM terms out of range: {', '.join(bad)} (alpha must be finite and > 0, "
                "overheads and allreduce_latency_s finite seconds >= 0)"
            )


def rates(num_sms: int, gpu: GPUSpec, params: SRMParams) -> tuple[float, float]:
    """(C(N) FLOP/s, D(N) bytes/s) of a partition of `num_sms` SMs."""
    frac = num_sms / gpu.num_sms
    return gpu.peak_bf16_flops * frac, gpu.mem_bw_bytes_s * min(1.0, frac / params.bw_knee_frac)


def wave_efficiency(op: OpCost, num_sms: int, params: SRMParams) -> float:
    """Share of the partition's compute a GEMM uses: tiles / (waves * N)."""
    if op.gemm_mnk is None:
        return 1.0
    m, n, _ = op.gemm_mnk
    tm, tn = params.gemm_tile_mn
    tiles = op.gemm_groups * math.ceil(m / tm) * math.ceil(n / tn)
    if tiles == 0:
        return 1.0
    return tiles / (math.ceil(tiles / num_sms) * num_sms)


def op_time_split(op: OpCost, num_sms: int, gpu: GPUSpec, params: SRMParams) -> tuple[float, float]:
    """(memory-bound seconds, compute-bound seconds) of one kernel; one of the two is 0."""
    alpha = params.alpha[op.op_class]
    if op.op_class == "allreduce":
        return allreduce_s(op, gpu, params), 0.0
    compute, bandwidth = rates(num_sms, gpu, params)
    t_compute = op.flops / (compute * wave_efficiency(op, num_sms, params))
    t_memory = op.bytes / bandwidth
    if t_memory >= t_compute:
        return alpha * t_memory, 0.0
    return 0.0, alpha * t_compute


def allreduce_s(op: OpCost, gpu: GPUSpec, params: SRMParams) -> float:
    """Ring all-reduce: (n-1) alpha_2 + alpha * traffic / NVLink, where `op.bytes` is already
    the ring's 2(n-1)/n of the buffer and n = `op.group_gpus`."""
    latency = (op.group_gpus - 1) * params.allreduce_latency_s
    return params.alpha["allreduce"] * op.bytes / gpu.interconnect_bytes_s + latency


def op_time_s(op: OpCost, num_sms: int, gpu: GPUSpec, params: SRMParams) -> float:
    """Predicted seconds of one kernel alone on `num_sms` SMs."""
    mem_s, cmp_s = op_time_split(op, num_sms, gpu, params)
    return mem_s + cmp_s


def kernel_table(ops: list[OpCost], gpu: GPUSpec, params: SRMParams) -> tuple[tuple, ...]:
    """What `op_time_split` needs of each kernel beyond the SM count, looked up once (a hot
    path prices one kernel list on many SM counts): (alpha, flops, bytes, GEMM tiles or 0),
    or (fixed seconds,) for an all-reduce. Empty for zero tokens (no kernels run)."""
    if not ops or ops[0].flops == 0.0:
        return ()
    table = []
    for op in ops:
        alpha = params.alpha[op.op_class]
        if op.op_class == "allreduce":
            table.append((allreduce_s(op, gpu, params),))
            continue
        tiles = 0
        if op.gemm_mnk is not None:
            m, n, _ = op.gemm_mnk
            tm, tn = params.gemm_tile_mn
            tiles = op.gemm_groups * math.ceil(m / tm) * math.ceil(n / tn)
        table.append((alpha, op.flops, op.bytes, tiles))
    return tuple(table)


class RooflineLatency(ContendedPredict):
    """`LatencyModel` from the SRM. A layer window of k layers costs k layers (no step overhead);
    a full step (`shape.num_layers is None`) adds the lm_head and `step_overhead_s`."""

    name = "roofline"

    def __init__(self, gpu: GPUSpec, model: ModelSpec, params: SRMParams | None = None) -> None:
        self.gpu, self.model = gpu, model
        self.params = params if params is not None else SRMParams()
        self.num_layers = model.num_layers
        self.total_sms = gpu.num_sms
        p = self.params
        self._rates = [(0.0, 0.0)] + [rates(n, gpu, p) for n in range(1, gpu.num_sms + 1)]
        self._linear: dict[tuple[int, int], tuple[float, float]] = {}
        self._linear_kernels: dict[int, tuple[tuple, ...]] = {}  # tokens -> kernel table
        self._head: dict[tuple[int, int, int], tuple[float, float]] = {}
        # keyed by (SMs, co-runner phase, co-runner SMs): a tuple of str and ints hashes in C
        self._factors: dict[tuple[int, str, int], tuple[float, float, int]] = {}
        self._layer_overhead_s = p.layer_overhead_s
        self._full_step_overhead_s = model.num_layers * p.layer_overhead_s + p.step_overhead_s
        attn = attention_coefficients(model)  # kept as floats: the hot path reads them
        self._flops_per_pair = attn.flops_per_pair
        self._kv_bytes = attn.kv_bytes_per_token
        self._q_bytes = attn.q_bytes_per_token
        self._a_pf, self._a_dec = p.alpha["attn_prefill"], p.alpha["attn_decode"]

    # -- hot path ---------------------------------------------------------------------------

    def _parts(self, shape: WorkShape, n: int) -> tuple[float, float]:
        tokens = shape.prefill_tokens + shape.decode_tokens
        lin = self._linear.get((tokens, n))
        if lin is None:
            if len(self._linear) > _MEMO_LIMIT:
                self._linear.clear()
            lin = self._linear[(tokens, n)] = self._split_sum(self._linear_table(tokens), n)
        mem_s, cmp_s = lin
        compute, bandwidth = self._rates[n]
        if shape.prefill_tokens:
            tc = shape.prefill_attn_pairs * self._flops_per_pair / compute
            tm = shape.prefill_kv_tokens * self._kv_bytes + shape.prefill_tokens * self._q_bytes
            tm /= bandwidth
            if tm >= tc:
                mem_s += self._a_pf * tm
            else:
                cmp_s += self._a_pf * tc
        if shape.decode_tokens:
            tc = shape.decode_ctx_tokens * self._flops_per_pair / compute
            tm = shape.decode_ctx_tokens * self._kv_bytes + shape.decode_tokens * self._q_bytes
            tm /= bandwidth
            if tm >= tc:
                mem_s += self._a_dec * tm
            else:
                cmp_s += self._a_dec * tc
        layers = shape.num_layers
        if layers is not None:
            return layers * mem_s, layers * cmp_s
        key = (tokens, shape.logits_tokens, n)
        head = self._head.get(key)
        if head is None:
            if len(self._head) > _MEMO_LIMIT:
                self._head.clear()
            head = self._head[key] = self._sum_split(head_ops(self.model, shape), n)
        return self.num_layers * mem_s + head[0], self.num_layers * cmp_s + head[1]

    def _overhead(self, shape: WorkShape) -> float:
        if not (shape.prefill_tokens or shape.decode_tokens or shape.logits_tokens):
            return 0.0
        if shape.num_layers is not None:
            return shape.num_layers * self._layer_overhead_s
        return self._full_step_overhead_s

    def _sum_split(self, ops: list[OpCost], n: int) -> tuple[float, float]:
        return self._split_sum(self._kernel_table(ops), n)

    def _linear_table(self, tokens: int) -> tuple[tuple, ...]:
        # A run sees a few thousand token counts, each on many SM counts: build the kernels
        # once per count, not once per (count, SMs).
        table = self._linear_kernels.get(tokens)
        if table is None:
            if len(self._linear_kernels) > _MEMO_LIMIT:
                self._linear_kernels.clear()
            table = self._linear_kernels[tokens] = self._kernel_table(
                linear_ops(self.model, tokens)
            )
        return table

    def _kernel_table(self, ops: list[OpCost]) -> tuple[tuple, ...]:
        return kernel_table(ops, self.gpu, self.params)

    def _split_sum(self, table: tuple[tuple, ...], n: int) -> tuple[float, float]:
        """(memory-bound, compute-bound) seconds of a `kernel_table` on n SMs: the sums of
        `op_time_split` over its kernels, the same arithmetic in the same order (same bits)."""
        mem_s = cmp_s = 0.0
        compute, bandwidth = self._rates[n]
        for k in table:
            if len(k) == 1:  # an all-reduce: fixed seconds
                mem_s += k[0]
                continue
            alpha, flops, bytes_, tiles = k
            if tiles:  # wave quantization: only tiles / (waves * n) of the SMs do work
                t_compute = flops / (compute * (tiles / (math.ceil(tiles / n) * n)))
            else:
                t_compute = flops / compute
            t_memory = bytes_ / bandwidth
            if t_memory >= t_compute:
                mem_s += alpha * t_memory
            else:
                cmp_s += alpha * t_compute
        return mem_s, cmp_s

    # -- slow, readable path ----------------------------------------------------------------

    def predict_ops(
        self, shape: WorkShape, num_sms: int, co_runner: CoRunner | None = None
    ) -> dict[str, float]:
        """Seconds per kernel name for the whole work (all its layers), plus the overheads.

        Sums to `predict(shape, num_sms, co_runner)`; meant for reports and tests.
        """
        if not 0 < num_sms <= self.total_sms:
            raise ValueError(f"num_sms must be in 1..{self.total_sms}, got {num_sms}")
        f_mem = f_cmp = 1.0
        n = num_sms
        if co_runner is not None:
            f_mem, f_cmp, n = contention_factors(
                self.params.contention, num_sms, self.total_sms, co_runner
            )
        layers = self.num_layers if shape.num_layers is None else shape.num_layers
        out: dict[str, float] = {}
        per_layer = [(op, layers) for op in layer_ops(self.model, shape)]
        head = head_ops(self.model, shape) if shape.num_layers is None else []
        for op, count in per_layer + [(op, 1) for op in head]:
            mem_s, cmp_s = op_time_split(op, n, self.gpu, self.params)
            out[op.name] = out.get(op.name, 0.0) + count * (f_mem * mem_s + f_cmp * cmp_s)
        overhead = self._overhead(shape)
        if overhead:
            out["layer_overhead"] = layers * self.params.layer_overhead_s
            if shape.num_layers is None:
                out["step_overhead"] = self.params.step_overhead_s
        return out

    def describe(self) -> dict:
        return {
            "kind": "roofline",
            "name": self.name,
            "gpu": self.gpu.name,
            "gpu_source": self.gpu.source,
            "model": self.model.name,
            "tp": self.model.tp,
            "model_source": self.model.source,
            "params": asdict(self.params),
            "provenance": self.params.provenance,
        }
