"""Llama-3.1-8B forward for the live engine: bf16 weights (random, or a checkpoint), a real
paged KV pool, and the kernels the calibrated profile measured.

Weights, GEMMs and RoPE tables come from the calibrator's `LlamaModel`; every GEMM goes
through its `PartitionGemm`, which the executor points at the launch's partition and loads
with the profile's measured kernel choices (`use_choices`), so a prediction and a
measurement price the same kernel for each (op, rows, SMs). Elementwise work per layer is
fused: residual add + RMSNorm and SiLU*mul (one Triton kernel each, as calibrated) and RoPE +
KV-cache write + the dense q that attention reads (`kernels.rope_store`, one kernel instead
of four; checked against the unfused path at start-up, which is used if they disagree).
Random weights are timing-equivalent for a dense model: every kernel's shape and bytes are
the real ones; only the sampled token ids are meaningless (greedy argmax; output lengths are
forced from the trace). KV pool: per layer [num_pages, page_size, kv_heads, head_dim] for K
and for V (flashinfer's NHD paged layout); page ids are shared by all layers (`PageTable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bulletsim.models import ModelSpec


@dataclass(slots=True)
class Acts:
    """Activations of one batch of `t` tokens (kept across a prefill's layer windows)."""

    x: torch.Tensor
    res: torch.Tensor
    h: torch.Tensor
    qkv: torch.Tensor
    q: torch.Tensor  # rotated queries, dense [t, QH * D] (attention's input)
    attn_out: torch.Tensor
    gu: torch.Tensor
    act: torch.Tensor
    q3: torch.Tensor  # q viewed [t, QH, D]
    out3: torch.Tensor  # attn_out viewed [t, QH, D]


class LiveModel:
    # flashinfer's plan() needs the query dtype as well as the KV dtype (DESIGN.md)
    PLAN_DTYPES = {"q_data_type": torch.bfloat16, "kv_data_type": torch.bfloat16}

    def __init__(
        self,
        spec: ModelSpec,
        num_pages: int,
        page_size: int,
        num_slots: int,
        seed: int = 0,
        unit_sms: int = 8,
        weights_dir: Path | None = None,
    ):
        from bulletsim.gpu import kernels
        from bulletsim.gpu.llama import LlamaModel

        self.spec = spec
        page_bytes = 2 * page_size * spec.kv_heads_per_gpu * spec.head_dim * 2
        # the calibrator's model builds the weights; its own KV pool is one page (unused)
        self.base = b = LlamaModel(spec, kv_pool_bytes=page_bytes, page_size=page_size, seed=seed)
        self.gemm = b.gemm
        self.gemm.unit_sms = unit_sms  # green-context groups are multiples of 8 SMs
        self.gemm.cache_transposes = True  # the weights live as long as the model
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
        self.weights = "random bf16 at the real shapes"
        if weights_dir is not None:
            from bulletsim.live.gpu.checkpoint import load_into

            load_into(self, weights_dir)
            self.weights = f"checkpoint {weights_dir}"
        shape = (self.num_layers, num_pages, page_size, self.kvh, self.d)
        self.k = torch.empty(shape, device="cuda", dtype=torch.bfloat16)
        self.v = torch.empty(shape, device="cuda", dtype=torch.bfloat16)
        # per layer: its K and V pages, and both viewed as flat slots [slots, KVH, D] (made
        # once: a view costs ~2 us of host time, and an eager step needs 4 per layer)
        self.kv_pages = [(self.k[i], self.v[i]) for i in range(self.num_layers)]
        self.kv_slots = [
            (k.view(-1, self.kvh, self.d), v.view(-1, self.kvh, self.d)) for k, v in self.kv_pages
        ]
        self.last_token = torch.zeros(num_slots, device="cuda", dtype=torch.int64)
        self.kernels = kernels
        self.fused_rope_store = self._fused_matches_unfused()
        # decode graphs launch the small kernels with programmatic dependent launch
        self.decode_pdl = kernels.pdl_available()

    def paged_heads(self) -> tuple[int, int, int, int]:
        """(query heads, KV heads, head dim, page size): what flashinfer's paged plans take
        after the page layout."""
        return self.qh, self.kvh, self.d, self.page

    def gemm_shapes(self) -> dict[tuple[int, int], str]:
        """{(output features, input features): op} of the model's GEMMs."""
        h, lm = self.hidden, self.base.lm_head
        return {
            (self.q_dim + 2 * self.kv_dim, h): "qkv",
            (h, self.q_dim): "o",
            (2 * self.inter, h): "gate_up",
            (h, self.inter): "down",
            (lm.shape[0], h): "lm_head",
        }

    def use_choices(self, table) -> None:
        """Run the GEMM kernels of `table` (a `ChoiceTable`, e.g. the profile's)."""
        self.gemm.use_table(table, nearest_sms=True)

    def set_num_sms(self, num_sms: int) -> None:
        """The partition the next launches go to (GEMM paths and SM targets follow it)."""
        self.gemm.num_sms = num_sms

    def acts(self, t: int) -> Acts:
        def e(n):
            return torch.empty(t, n, device="cuda", dtype=torch.bfloat16)

        qkv = self.q_dim + 2 * self.kv_dim
        h = self.hidden
        q, out = e(self.q_dim), e(self.q_dim)
        heads = (t, self.qh, self.d)
        return Acts(
            e(h), e(h), e(h), e(qkv), q, out, e(2 * self.inter), e(self.inter),
            q.view(heads), out.view(heads),
        )  # fmt: skip

    def embed_into(self, a: Acts, ids: torch.Tensor) -> None:
        torch.index_select(self.embed, 0, ids, out=a.x)
        a.res.zero_()

    def layer(self, i: int, a: Acts, positions, kv_slots, attn, pdl: bool = False) -> None:
        """One decoder layer over the batch; `attn(i, q, k_cache, v_cache, out)` runs its
        attention (flashinfer paged prefill or decode) on dense q [t, QH, D]. `pdl`: the
        small kernels with programmatic dependent launch (`kernels.pdl_available`)."""
        kn, w, gemm = self.kernels, self.layers[i], self.gemm
        kn.add_rmsnorm(a.x, a.res, w.norm1, a.h, pdl=pdl)
        gemm.run("qkv", a.h, w.wqkv, a.qkv)
        q = self._rope_store(i, a, positions, kv_slots, pdl=pdl)
        k_pages, v_pages = self.kv_pages[i]
        attn(i, q, k_pages, v_pages, a.out3)
        gemm.run("o", a.attn_out, w.wo, a.x)
        kn.add_rmsnorm(a.x, a.res, w.norm2, a.h, pdl=pdl)
        gemm.run("gate_up", a.h, w.wgu, a.gu)
        kn.silu_mul(a.gu, a.act, pdl=pdl)
        gemm.run("down", a.act, w.wd, a.x)

    def _rope_store(
        self, i: int, a: Acts, positions, kv_slots, fused: bool | None = None, pdl: bool = False
    ):
        kc, vc = self.kv_slots[i]
        q = a.q3
        fused = self.fused_rope_store if fused is None else fused
        if fused:
            self.kernels.rope_store(
                a.qkv, positions, kv_slots, self.base.cos, self.base.sin, q, kc, vc,
                self.qh, self.kvh, self.d, pdl=pdl,
            )  # fmt: skip
            return q
        t, qd, kvd = a.x.shape[0], self.q_dim, self.kv_dim
        self.kernels.rope_(
            a.qkv, positions, self.base.cos, self.base.sin, self.qh + self.kvh, self.d
        )
        kc.index_copy_(0, kv_slots, a.qkv[:, qd : qd + kvd].view(t, self.kvh, self.d))
        vc.index_copy_(0, kv_slots, a.qkv[:, qd + kvd :].view(t, self.kvh, self.d))
        q.copy_(a.qkv[:, :qd].view(t, self.qh, self.d))
        return q

    def _fused_matches_unfused(self, t: int = 37) -> bool:
        """`rope_store` against rope_ + index_copy_ on random rows (layer 0, pages 1..): the
        fused kernel is used only if V agrees exactly and q, K within one bf16 rounding
        (the same float32 arithmetic; the compiler may contract it differently)."""
        if self.k.shape[1] * self.page < t + self.page:
            return False
        outs = []
        pos = torch.randint(0, 4000, (t,), device="cuda", dtype=torch.int64)
        slots = torch.randperm(t, device="cuda", dtype=torch.int64) + self.page
        qkv = torch.randn(t, self.q_dim + 2 * self.kv_dim, device="cuda", dtype=torch.bfloat16)
        for fused in (False, True):
            a = self.acts(t)
            a.qkv.copy_(qkv)
            q = self._rope_store(0, a, pos, slots, fused=fused).clone()
            k = self.k[0].view(-1, self.kvh, self.d)[slots].clone()
            v = self.v[0].view(-1, self.kvh, self.d)[slots].clone()
            outs.append((q, k, v))
        torch.cuda.synchronize()
        (q0, k0, v0), (q1, k1, v1) = outs
        close = all(torch.allclose(x, y, rtol=1e-2, atol=1e-2) for x, y in ((q0, q1), (k0, k1)))
        return close and torch.equal(v0, v1)

    def head(self, a: Acts, logit_rows, logit_slots, pdl: bool = False) -> None:
        """Final norm, lm_head on the rows that emit a token, greedy argmax into last_token.
        `logit_rows` None = every row; `pdl` as in `layer`."""
        self.kernels.add_rmsnorm(a.x, a.res, self.base.final_norm, a.h, pdl=pdl)
        rows = a.h if logit_rows is None else a.h.index_select(0, logit_rows)
        lm = self.base.lm_head
        logits = torch.empty(rows.shape[0], lm.shape[0], device="cuda", dtype=torch.bfloat16)
        self.gemm.run("lm_head", rows, lm, logits)
        self.last_token.index_copy_(0, logit_slots, logits.argmax(-1))

    def weight_bytes(self) -> int:
        """Bytes a decode step reads from weights (every layer, final norm, lm_head)."""
        per_layer = sum(
            t.numel() * t.element_size()
            for lw in self.layers
            for t in (lw.wqkv, lw.wo, lw.wgu, lw.wd, lw.norm1, lw.norm2)
        )
        b = self.base
        return per_layer + b.lm_head.numel() * 2 + b.final_norm.numel() * 2
