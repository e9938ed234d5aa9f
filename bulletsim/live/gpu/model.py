"""Llama-3.1-8B forward for the live engine: random bf16 weights, a real paged KV pool.

Weights come from the calibrator's `LlamaModel` (the same kernels the latency profile was
measured with: Triton add+RMSNorm, RoPE and SiLU*mul; cuBLAS GEMMs through torch.mm), so a
prediction and a measurement price the same kernels. Random weights are timing-equivalent
for a dense model: every kernel's shape and bytes are the real ones; only the sampled token
ids are meaningless (greedy argmax; output lengths are forced from the trace).
KV pool: per layer [num_pages, page_size, kv_heads, head_dim] for K and for V (flashinfer's
NHD paged layout); page ids are shared by all layers and come from `PageTable`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bulletsim.models import ModelSpec


def _kernels():
    from bulletsim.gpu import kernels

    return kernels


@dataclass(slots=True)
class Acts:
    """Activations of one batch of `t` tokens (kept across a prefill's layer windows)."""

    x: torch.Tensor
    res: torch.Tensor
    h: torch.Tensor
    qkv: torch.Tensor
    attn_out: torch.Tensor
    gu: torch.Tensor
    act: torch.Tensor


class LiveModel:
    def __init__(self, spec: ModelSpec, num_pages: int, page_size: int, num_slots: int, seed=0):
        from bulletsim.gpu.llama import LlamaModel

        self.spec = spec
        page_bytes = 2 * page_size * spec.kv_heads_per_gpu * spec.head_dim * 2
        # the calibrator's model builds the weights; its own KV pool is one page (unused)
        self.base = LlamaModel(spec, kv_pool_bytes=page_bytes, page_size=page_size, seed=seed)
        b = self.base
        self.layers, self.num_layers = b.layers, b.num_layers
        self.qh, self.kvh, self.d = b.qh, b.kvh, b.d
        self.q_dim, self.kv_dim, self.inter = b.q_dim, b.kv_dim, b.inter
        self.hidden = spec.hidden_size
        self.page = page_size
        g = torch.Generator(device="cuda").manual_seed(seed + 1)
        self.embed = (
            torch.randn(
                spec.vocab_size, self.hidden, device="cuda", dtype=torch.bfloat16, generator=g
            )
            * 0.02
        )
        shape = (self.num_layers, num_pages, page_size, self.kvh, self.d)
        self.k = torch.empty(shape, device="cuda", dtype=torch.bfloat16)
        self.v = torch.empty(shape, device="cuda", dtype=torch.bfloat16)
        self.last_token = torch.zeros(num_slots, device="cuda", dtype=torch.int64)
        self.kernels = _kernels()

    def acts(self, t: int) -> Acts:
        def e(n):
            return torch.empty(t, n, device="cuda", dtype=torch.bfloat16)

        qkv = self.q_dim + 2 * self.kv_dim
        h = self.hidden
        return Acts(e(h), e(h), e(h), e(qkv), e(self.q_dim), e(2 * self.inter), e(self.inter))

    def embed_into(self, a: Acts, ids: torch.Tensor) -> None:
        torch.index_select(self.embed, 0, ids, out=a.x)
        a.res.zero_()

    def layer(self, i: int, a: Acts, positions, kv_slots, attn) -> None:
        """One decoder layer over the batch; `attn(i, q, k_cache, v_cache, out)` runs its
        attention (flashinfer paged prefill or decode)."""
        kn, w = self.kernels, self.layers[i]
        t, qd, kvd = a.x.shape[0], self.q_dim, self.kv_dim
        kn.add_rmsnorm(a.x, a.res, w.norm1, a.h)
        torch.mm(a.h, w.wqkv.t(), out=a.qkv)
        kn.rope_(a.qkv, positions, self.base.cos, self.base.sin, self.qh + self.kvh, self.d)
        k = a.qkv[:, qd : qd + kvd].view(t, self.kvh, self.d)
        v = a.qkv[:, qd + kvd :].view(t, self.kvh, self.d)
        self.k[i].view(-1, self.kvh, self.d).index_copy_(0, kv_slots, k)
        self.v[i].view(-1, self.kvh, self.d).index_copy_(0, kv_slots, v)
        q = a.qkv[:, :qd].reshape(t, self.qh, self.d)  # dense copy (flashinfer wants it)
        attn(i, q, self.k[i], self.v[i], a.attn_out.view(t, self.qh, self.d))
        torch.mm(a.attn_out, w.wo.t(), out=a.x)
        kn.add_rmsnorm(a.x, a.res, w.norm2, a.h)
        torch.mm(a.h, w.wgu.t(), out=a.gu)
        kn.silu_mul(a.gu, a.act)
        torch.mm(a.act, w.wd.t(), out=a.x)

    def head(self, a: Acts, logit_rows, logit_slots) -> None:
        """Final norm, lm_head on the rows that emit a token, greedy argmax into last_token.
        `logit_rows` None = every row."""
        self.kernels.add_rmsnorm(a.x, a.res, self.base.final_norm, a.h)
        rows = a.h if logit_rows is None else a.h.index_select(0, logit_rows)
        logits = torch.mm(rows, self.base.lm_head.t())
        self.last_token.index_copy_(0, logit_slots, logits.argmax(-1))
