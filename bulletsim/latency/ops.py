"""Per-kernel work of one decoder layer (and the lm_head), on one GPU of a TP group.

Shared by the analytic roofline (`roofline.py`) and the calibrator's fit, so everything here
is a pure function of (model, shape): FLOPs and HBM bytes per kernel, no timing. Conventions:
- bf16 everywhere (`model.dtype_bytes`); a GEMM moves its weight once plus its input and
  output activations; FLOPs count a multiply-add as 2.
- Linear layers see every token of the work (prefill chunks and decode tokens are batched
  into one GEMM), so GEMM M = `shape.total_tokens`.
- Attention FLOPs are 4 * pairs * head_dim per query head (QK^T and PV); bytes are the KV
  read once plus Q in and O out (flash kernels keep scores on chip).
- Tensor parallelism is Megatron-style: QKV/gate-up column-parallel, O/down row-parallel, two
  all-reduces of the hidden state per layer. MoE experts are TP-sharded the same way (every GPU
  holds a 1/tp slice of every expert, SGLang's default; `ModelSpec.ep == 1`) or expert-parallel
  (`ep == tp`: whole experts per GPU, the layer waits for the busiest GPU); the router is
  replicated. Expert loads come from a routing distribution (`latency/moe.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bulletsim.core import WorkShape
from bulletsim.latency.moe import ExpertLoad, expert_load, parse_routing
from bulletsim.models import ModelSpec

OP_CLASSES = ("gemm", "attn_prefill", "attn_decode", "elementwise", "allreduce")


@dataclass(frozen=True, slots=True)
class OpCost:
    """Work of one kernel on one GPU. `gemm_mnk` is per group for grouped (MoE) GEMMs."""

    name: str
    op_class: str
    flops: float
    bytes: float
    gemm_mnk: tuple[int, int, int] | None = None
    gemm_groups: int = 1  # independent GEMMs of shape gemm_mnk in one launch (MoE experts)
    group_gpus: int = 1  # GPUs of a collective (an all-reduce's tp group); 1 for kernels

    @property
    def intensity(self) -> float:
        """FLOP per byte of HBM traffic."""
        return self.flops / self.bytes if self.bytes else math.inf


def gemm(name: str, m: int, n: int, k: int, dtype_bytes: int) -> OpCost:
    """y[m, n] = x[m, k] @ w[k, n]: weight read once, activations in and out."""
    return OpCost(
        name, "gemm", 2.0 * m * n * k, float(dtype_bytes * (k * n + m * k + m * n)), (m, n, k)
    )


def experts_touched(num_tokens: int, num_experts: int, experts_per_token: int) -> float:
    """Expected distinct experts hit by `num_tokens` tokens routed uniformly to top-k of E.

    Each expert is missed by one token with probability 1 - k/E, so E * (1 - (1 - k/E)^T)
    experts are touched: a decode batch of 64 on Qwen3 (k=8, E=128) already reads ~127.
    """
    if num_tokens <= 0:
        return 0.0
    return num_experts * (1.0 - (1.0 - experts_per_token / num_experts) ** num_tokens)


def moe_act_elems(model: ModelSpec, num_tokens: int) -> float:
    """Elements the SiLU*mul of the busiest GPU reads and writes: 3 per copy and width."""
    load = moe_load(model, num_tokens)
    return 3.0 * load.copies * (model.moe_intermediate_size // model.moe_shards)


def moe_load(model: ModelSpec, num_tokens: int) -> ExpertLoad:
    """The busiest GPU's expected expert load (`bulletsim.latency.moe.expert_load`)."""
    return expert_load(
        num_tokens,
        model.num_experts,
        model.experts_per_token,
        model.ep,
        parse_routing(model.moe_routing),
    )


def moe_ops(model: ModelSpec, num_tokens: int) -> list[OpCost]:
    """The MoE block of one layer on the busiest GPU, in two kernels named as the dense
    MLP's (same positions in `linear_ops`, so a profile's `gate_up` / `down` grids hold them):

    moe_gate_up: router GEMM [T, H] x [H, E] + top-k + the grouped gate_up GEMM over the
    GPU's expert copies; moe_down: the grouped down GEMM + the weighted combine. FLOPs count
    the rows padded to the row tile (`ExpertLoad.padded_rows`, what the tensor cores run);
    bytes read each touched expert's weights once plus every copy's activations in and out.
    `gemm_mnk` is one row tile of one expert and `gemm_groups` the number of row tiles, so
    the roofline's wave quantization counts tiles as a grouped kernel schedules them.
    """
    t, h, b = num_tokens, model.hidden_size, model.dtype_bytes
    e = model.num_experts
    i = model.moe_intermediate_size // model.moe_shards
    load = moe_load(model, t)
    tm = load.tile_m
    tiles = max(1, round(load.padded_rows / tm))
    router_flops, router_bytes = 2.0 * t * h * e, float(b * (h * e + t * (h + e)))
    gate_up = OpCost(
        "moe_gate_up",
        "gemm",
        2.0 * load.padded_rows * h * 2 * i + router_flops,
        b * (load.experts_touched * h * 2 * i + load.copies * (h + 2 * i)) + router_bytes,
        (tm, 2 * i, h),
        tiles,
    )
    down = OpCost(
        "moe_down",
        "gemm",
        2.0 * load.padded_rows * i * h,
        b * (load.experts_touched * i * h + load.copies * (i + 2 * h) + t * h),
        (tm, h, i),
        tiles,
    )
    return [gate_up, down]


def linear_ops(model: ModelSpec, num_tokens: int) -> list[OpCost]:
    """Kernels of one layer whose cost depends only on the token count (not on contexts):
    qkv, o, gate_up (MoE: moe_gate_up), down (moe_down), norm_rope_act, then the TP
    all-reduces; the first five in the order of `profile_format.LINEAR_OPS`."""
    t, h, b = num_tokens, model.hidden_size, model.dtype_bytes
    q_dim = model.q_heads_per_gpu * model.head_dim
    kv_dim = model.kv_heads_per_gpu * model.head_dim
    ops = [gemm("qkv", t, q_dim + 2 * kv_dim, h, b), gemm("o", t, h, q_dim, b)]
    if model.is_moe:
        ops.extend(moe_ops(model, t))
        act_elems = moe_act_elems(model, t)
    else:
        i = model.intermediate_size // model.tp
        ops.append(gemm("gate_up", t, 2 * i, h, b))
        ops.append(gemm("down", t, h, i, b))
        act_elems = 3 * t * i
    # Fused elementwise kernels: 2 RMSNorms with residual add (read x and residual, write
    # both: 4h each), RoPE on q and k (read+write), SiLU*mul (read 2 widths, write 1).
    elems = t * (8 * h + 2 * (q_dim + kv_dim)) + act_elems
    ops.append(OpCost("norm_rope_act", "elementwise", 4.0 * elems / 3, float(b * elems)))
    if model.tp > 1:
        # Ring all-reduce: each GPU sends (and receives) 2 (tp-1)/tp of the buffer; `bytes`
        # here is interconnect traffic, not HBM traffic. Two per layer (after O and down).
        ar_bytes = 2.0 * (model.tp - 1) / model.tp * t * h * b
        ar = OpCost("allreduce", "allreduce", float(t * h), ar_bytes, group_gpus=model.tp)
        ops.extend((ar, ar))
    return ops


@dataclass(frozen=True, slots=True)
class AttentionCoefficients:
    """Attention cost per unit, per GPU: the one home of the attention formulas.

    flops_per_pair: 4 * head_dim * query heads (QK^T and PV, a multiply-add counted as 2);
    kv_bytes_per_token: K and V of one token, all KV heads; q_bytes_per_token: Q in and O out
    of one query token, all query heads. A kernel over `pairs` (query, key) pairs reading
    `kv_tokens` of KV for `q_tokens` queries does `pairs * flops_per_pair` FLOPs and moves
    `kv_tokens * kv_bytes_per_token + q_tokens * q_bytes_per_token` bytes.
    """

    flops_per_pair: float
    kv_bytes_per_token: float
    q_bytes_per_token: float

    def flops(self, pairs: float) -> float:
        return pairs * self.flops_per_pair

    def bytes(self, kv_tokens: int, q_tokens: int) -> float:
        return float(kv_tokens * self.kv_bytes_per_token + q_tokens * self.q_bytes_per_token)


def attention_coefficients(model: ModelSpec) -> AttentionCoefficients:
    """The attention coefficients of `model` on one GPU of its TP group (bf16, flash kernels)."""
    d, b = model.head_dim, model.dtype_bytes
    qh, kvh = model.q_heads_per_gpu, model.kv_heads_per_gpu
    return AttentionCoefficients(4.0 * d * qh, float(b * d * 2 * kvh), float(b * d * 2 * qh))


def attention_ops(model: ModelSpec, shape: WorkShape) -> list[OpCost]:
    """Attention kernels of one layer: one for the prefill chunks, one for the decodes."""
    a = attention_coefficients(model)
    ops = []
    if shape.prefill_tokens:
        ops.append(
            OpCost(
                "attn_prefill",
                "attn_prefill",
                a.flops(shape.prefill_attn_pairs),
                a.bytes(shape.prefill_kv_tokens, shape.prefill_tokens),
            )
        )
    if shape.decode_tokens:
        ops.append(
            OpCost(
                "attn_decode",
                "attn_decode",
                a.flops(shape.decode_ctx_tokens),
                a.bytes(shape.decode_ctx_tokens, shape.decode_tokens),
            )
        )
    return ops


def layer_ops(model: ModelSpec, shape: WorkShape) -> list[OpCost]:
    """Every kernel of one decoder layer for `shape`, per GPU (TP-sharded)."""
    if shape.total_tokens <= 0:
        return []
    return linear_ops(model, shape.total_tokens) + attention_ops(model, shape)


def head_ops(model: ModelSpec, shape: WorkShape) -> list[OpCost]:
    """Final norm over every token plus the (vocab-parallel) lm_head over `logits_tokens` rows.

    The embedding gather and the logits gather across TP ranks are tiny and left out.
    """
    ops = []
    if shape.total_tokens:
        elems = 2 * shape.total_tokens * model.hidden_size
        ops.append(
            OpCost("final_norm", "elementwise", 2.0 * elems, float(model.dtype_bytes * elems))
        )
    if shape.logits_tokens:
        vocab = math.ceil(model.vocab_size / model.tp)
        ops.append(
            gemm("lm_head", shape.logits_tokens, vocab, model.hidden_size, model.dtype_bytes)
        )
    return ops
