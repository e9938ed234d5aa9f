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
  holds a 1/tp slice of every expert, SGLang's default), the router is replicated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bulletsim.core import WorkShape
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


def linear_ops(model: ModelSpec, num_tokens: int) -> list[OpCost]:
    """Kernels of one layer whose cost depends only on the token count (not on contexts)."""
    t, h, b = num_tokens, model.hidden_size, model.dtype_bytes
    q_dim = model.q_heads_per_gpu * model.head_dim
    kv_dim = model.kv_heads_per_gpu * model.head_dim
    ops = [gemm("qkv", t, q_dim + 2 * kv_dim, h, b), gemm("o", t, h, q_dim, b)]
    if model.is_moe:
        e, k = model.num_experts, model.experts_per_token
        i = model.moe_intermediate_size // model.tp
        touched = experts_touched(t, e, k)
        groups = max(1, round(touched))
        rows = math.ceil(t * k / groups)  # tokens per touched expert, load assumed balanced
        ops.append(gemm("router", t, e, h, b))
        # Only touched experts' weights are read; every routed token-copy moves activations.
        ops.append(
            OpCost(
                "moe_gate_up",
                "gemm",
                2.0 * t * k * h * 2 * i,
                b * (touched * h * 2 * i + t * k * (h + 2 * i)),
                (rows, 2 * i, h),
                groups,
            )
        )
        ops.append(
            OpCost(
                "moe_down",
                "gemm",
                2.0 * t * k * i * h,
                b * (touched * i * h + t * k * (i + h)),
                (rows, h, i),
                groups,
            )
        )
        act_width = k * i
    else:
        i = model.intermediate_size // model.tp
        ops.append(gemm("gate_up", t, 2 * i, h, b))
        ops.append(gemm("down", t, h, i, b))
        act_width = i
    # Fused elementwise kernels: 2 RMSNorms with residual add (read x and residual, write
    # both: 4h each), RoPE on q and k (read+write), SiLU*mul (read 2 widths, write 1).
    elems = t * (8 * h + 2 * (q_dim + kv_dim) + 3 * act_width)
    ops.append(OpCost("norm_rope_act", "elementwise", 4.0 * elems / 3, float(b * elems)))
    if model.tp > 1:
        # Ring all-reduce: each GPU sends (and receives) 2 (tp-1)/tp of the buffer; `bytes`
        # here is interconnect traffic, not HBM traffic. Two per layer (after O and down).
        ar_bytes = 2.0 * (model.tp - 1) / model.tp * t * h * b
        ops.append(OpCost("allreduce", "allreduce", float(t * h), ar_bytes))
        ops.append(OpCost("allreduce", "allreduce", float(t * h), ar_bytes))
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
