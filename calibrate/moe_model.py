"""Qwen3-MoE layers at the per-GPU shapes of TP or EP, as kernels the calibrator can time.

`MoeBlock` holds one GPU's experts (TP: all E experts, each 1/tp of `moe_intermediate_size`
wide; EP: E/ep whole experts) for a few layers and turns a routed batch (`MoeRoute`, drawn
from a `bulletsim.latency.moe` routing distribution; under EP the copies of the *busiest*
GPU, which sets the layer's time) into kernels named as `bulletsim.latency.ops` names the
layer's linear ops: `gate_up` = router GEMM + softmax/top-k + align + grouped gate_up GEMM,
`norm_rope_act` = SiLU*mul, `down` = grouped down GEMM + weighted combine (rows put back in
(token, choice) order, then summed over the k choices: no atomics).

`Qwen3MoeModel` is `bulletsim.gpu.llama.LlamaModel` (attention: GQA 64/4 heads split over
tp, paged KV, flashinfer / SDPA / Triton backends chosen per partition, RoPE, partition-aware
GEMMs for qkv, o, router and lm_head) with Qwen3's QK-norm after the QKV GEMM and the MoE
block in place of the dense MLP, so `calibrate.sweep.Sweep` and `calibrate.fit` measure and
fit it exactly as the dense profile. GPU-only module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from bulletsim.gpu.kernels import silu_mul
from bulletsim.gpu.llama import LlamaModel
from bulletsim.latency.moe import Routing
from bulletsim.models import ModelSpec
from calibrate import moe_kernels as mk


@dataclass(slots=True)
class MoeRoute:
    """The copies one GPU runs for a batch of `num_tokens`: token, local expert and combine
    weight of each copy (device tensors), rows per local expert (host), the Triton tile
    bound, and the draw's load figures."""

    num_tokens: int
    token: torch.Tensor  # [C] int64
    expert: torch.Tensor  # [C] int64, local expert index
    weight: torch.Tensor  # [C] fp32
    slot: torch.Tensor  # [C] int64: token * k + which of the token's k choices
    counts_host: list[int]
    max_tiles: int
    gpu_copies: list[int]  # copies per EP rank of this draw (one entry under TP)


def draw_route(
    num_tokens: int, spec: ModelSpec, ep: int, routing: Routing, seed: int, device="cuda"
) -> MoeRoute:
    """Route `num_tokens` tokens top-k by `routing` (numpy rng seeded with (seed, T)) and keep
    the copies of the most loaded EP rank (under TP, ep == 1: all copies)."""
    e_all, k = spec.num_experts, spec.experts_per_token
    rng = np.random.default_rng([seed, num_tokens])
    ids = routing.sample(num_tokens, e_all, k, rng)  # [T, k]
    w = rng.random(ids.shape) + 0.1
    w /= w.sum(1, keepdims=True)
    g = e_all // ep
    per_rank = np.bincount((ids // g).ravel(), minlength=ep)
    r = int(np.argmax(per_rank))
    mask = (ids // g) == r
    tok, choice = np.nonzero(mask)  # row-major: copies in token order
    exp_local = ids[mask] - r * g
    counts = np.bincount(exp_local, minlength=g)
    c = int(mask.sum())
    max_tiles = math.ceil(c / mk.TILE_M) + g if c else 1

    def dev(x, dtype):
        return torch.as_tensor(x, dtype=dtype).to(device)

    return MoeRoute(
        num_tokens,
        dev(tok, torch.int64),
        dev(exp_local, torch.int64),
        dev(w[mask], torch.float32),
        dev(tok * k + choice, torch.int64),
        counts.tolist(),
        max_tiles,
        per_rank.tolist(),
    )


class MoeBlock:
    """One GPU's experts for `num_layers` layers and the kernels of its MoE block."""

    def __init__(
        self, spec: ModelSpec, ep: int, num_layers: int, path: str, seed: int = 0, device="cuda"
    ):
        if path not in mk.GROUPED_PATHS:
            raise ValueError(f"unknown grouped GEMM path {path!r}; valid: {mk.GROUPED_PATHS}")
        if ep not in (1, spec.tp):
            raise ValueError(f"ep must be 1 (TP experts) or tp={spec.tp}, got {ep}")
        self.spec, self.ep, self.path = spec, ep, path
        self.h = spec.hidden_size
        self.num_local = spec.num_experts // ep
        self.inter = spec.moe_intermediate_size // (spec.tp if ep == 1 else 1)
        g = torch.Generator(device=device).manual_seed(seed + 7)

        def w(*shape):
            return torch.randn(*shape, device=device, dtype=torch.bfloat16, generator=g) * (
                shape[-1] ** -0.5
            )

        self.router = [w(spec.num_experts, self.h) for _ in range(num_layers)]
        self.wgu = [w(self.num_local, 2 * self.inter, self.h) for _ in range(num_layers)]
        self.wd = [w(self.num_local, self.h, self.inter) for _ in range(num_layers)]

    def buffers(self, route: MoeRoute, device="cuda") -> dict:
        c, t = route.token.shape[0], route.num_tokens
        e = torch.empty
        return {
            "logits": e(t, self.spec.num_experts, device=device, dtype=torch.bfloat16),
            "gu": torch.randn(c, 2 * self.inter, device=device, dtype=torch.bfloat16),
            "act": torch.randn(c, self.inter, device=device, dtype=torch.bfloat16),
            "y": torch.randn(c, self.h, device=device, dtype=torch.bfloat16),
            "full": torch.zeros(
                t * self.spec.experts_per_token, self.h, device=device, dtype=torch.bfloat16
            ),  # fmt: skip
            "counts": torch.zeros(self.num_local, device=device, dtype=torch.int64),
            "state": {},
        }

    def kernels(self, layer: int, h, x_out, route: MoeRoute, bufs: dict, gemm=None) -> list:
        """[(op, launch)]: gate_up (router + align + grouped GEMM), act, down (+ combine)."""
        k = self.spec.experts_per_token
        wr, wgu, wd = self.router[layer], self.wgu[layer], self.wd[layer]
        st = bufs["state"]

        def gate_up():
            if gemm is not None:
                gemm.run("router", h, wr, bufs["logits"])
            else:
                torch.mm(h, wr.t(), out=bufs["logits"])
            mk.router_topk(bufs["logits"], k)  # timed; the route's draw replaces its choice
            order, counts, ends = mk.align(route.expert, self.num_local, bufs["counts"])
            st["order"], st["ends"] = order, ends
            rows = h.index_select(0, route.token.index_select(0, order))
            if self.path == "torch-grouped-mm":
                bufs["gu_out"] = mk.grouped_torch(rows, wgu, ends)
            elif self.path == "triton-grouped":
                te, tr = mk.tile_schedule(counts, ends, route.max_tiles, mk.TILE_M)
                st["tiles"] = (te, tr)
                bufs["gu_out"] = mk.grouped_triton(rows, wgu, te, tr, ends, bufs["gu"])
            else:
                bufs["gu_out"] = mk.grouped_loop(rows, wgu, route.counts_host, bufs["gu"])

        def act():
            silu_mul(bufs["gu_out"], bufs["act"])

        def down():
            a = bufs["act"]
            if self.path == "torch-grouped-mm":
                y = mk.grouped_torch(a, wd, st["ends"])
            elif self.path == "triton-grouped":
                te, tr = st["tiles"]
                y = mk.grouped_triton(a, wd, te, tr, st["ends"], bufs["y"])
            else:
                y = mk.grouped_loop(a, wd, route.counts_host, bufs["y"])
            dense = self.ep == 1  # TP: all T*k copies live on every GPU
            mk.combine(y, st["order"], route.slot, route.weight, bufs["full"], x_out,
                       route.num_tokens, k, dense)  # fmt: skip

        return [("gate_up", gate_up), ("norm_rope_act", act), ("down", down)]


class Qwen3MoeModel(LlamaModel):
    """Qwen3-MoE decoder layers on one GPU of a TP group (attention TP-sharded; experts
    TP-sharded when ep == 1, else expert-parallel), for `calibrate.sweep.Sweep`."""

    def __init__(
        self,
        spec: ModelSpec,
        ep: int,
        routing: Routing,
        path: str,
        num_layers: int = 8,
        seed: int = 0,
        **kw,
    ):
        if not spec.is_moe:
            raise ValueError(f"{spec.name} is not a MoE model")
        # The dense MLP of LlamaModel is unused: make it tiny (intermediate tp * 8 -> 8).
        super().__init__(
            replace(spec, intermediate_size=8 * spec.tp), num_layers=num_layers, seed=seed, **kw
        )
        self.moe_spec, self.ep, self.routing, self.seed = spec, ep, routing, seed
        self.moe = MoeBlock(spec, ep, self.num_layers, path, seed)
        g = torch.Generator(device="cuda").manual_seed(seed + 3)
        self.q_norm = [
            1 + 0.1 * torch.randn(self.d, device="cuda", dtype=torch.bfloat16, generator=g)
            for _ in range(self.num_layers)
        ]
        self.k_norm = [t.flip(0).contiguous() for t in self.q_norm]
        self._route: MoeRoute | None = None

    def _buffers(self, t: int) -> dict:
        bufs = super()._buffers(t)
        self._route = draw_route(t, self.moe_spec, self.ep, self.routing, self.seed)
        self._moe_bufs = self.moe.buffers(self._route)
        return bufs

    def prefill_batch(self, seq_lens):
        b = super().prefill_batch(seq_lens)
        b.extra.update(route=self._route, moe=self._moe_bufs)
        return b

    def decode_batch(self, batch_size, ctx_tokens):
        b = super().decode_batch(batch_size, ctx_tokens)
        b.extra.update(route=self._route, moe=self._moe_bufs)
        return b

    def refresh(self, b) -> None:
        super().refresh(b)
        for name in ("gu", "act", "y"):
            buf = b.extra["moe"][name]
            buf.copy_(torch.randn_like(buf))
        torch.cuda.synchronize()

    def gemm_operands(self, b):
        """(op, x, w, out) of every partition-aware GEMM of a layer of `b` (and the head)."""
        return self._gemm_operands(b)

    def _gemm_operands(self, b):
        w = self.layers[0]
        rows = b.h if b.phase == "decode" else b.h[: len(b.seq_lens)]
        return [
            ("qkv", b.h, w.wqkv, b.qkv),
            ("o", b.attn_out, w.wo, b.x),
            ("router", b.h, self.moe.router[0], b.extra["moe"]["logits"]),
            ("lm_head", rows, self.lm_head, b.logits),
        ]

    def kernel_names(self, b) -> dict[str, str]:
        names = super().kernel_names(b)
        names["gate_up"] = names["down"] = self.moe.path
        return names

    def layer_kernels(self, layer: int, b):
        """Llama's attention half with QK-norm after the QKV GEMM, then the MoE block."""
        # Llama's indices 0..6: norm, qkv, rope, kv write, attention, o, norm. Attention must
        # stay at index 4 (LlamaModel's backend selection and check time kernel 4), so the
        # QK-norm joins the RoPE launch's entry.
        llama = super().layer_kernels(layer, b)
        assert [n for n, _ in llama[:5]] == ["norm_rope_act", "qkv", "norm_rope_act"] + [
            "norm_rope_act",
            f"attn_{b.phase}",
        ], "llama layer order changed"
        qn, kn, rope = self.q_norm[layer], self.k_norm[layer], llama[2][1]

        def qk_norm_rope():
            mk.qk_norm_(b.qkv, self.qh, self.kvh, self.d, qn, kn)
            rope()

        moe = self.moe.kernels(layer, b.h, b.x, b.extra["route"], b.extra["moe"], self.gemm)
        return [*llama[:2], ("norm_rope_act", qk_norm_rope), *llama[3:7], *moe]


def check_moe_layer(model: Qwen3MoeModel, b, tol: float = 2e-2) -> dict[str, float]:
    """Every kernel of layer 0 on fresh inputs against float32 references (outputs poisoned
    first): QKV, QK-norm + RoPE, attention (LlamaModel's check), O, and the whole MoE block
    against `moe_kernels.moe_reference` with the route's own experts and weights. Raises
    AssertionError naming the ops above `tol`; returns {op: rel error}."""
    from bulletsim.gpu.check import _rope_ref
    from bulletsim.gpu.llama import attention_error

    ks = model.layer_kernels(0, b)
    w = model.layers[0]
    r = slice(0, min(256, b.num_tokens))
    for x in (b.x, b.res):
        x.copy_(torch.randn_like(x))
    errs: dict[str, float] = {}
    ks[0][1]()
    h0 = b.h.clone()
    b.qkv.fill_(float("nan"))
    ks[1][1]()
    torch.cuda.synchronize()
    errs["qkv"] = mk.rel_err(b.qkv[r], h0[r].float() @ w.wqkv.float().t())
    qkv0 = b.qkv.clone()
    ks[2][1]()
    torch.cuda.synchronize()
    nrot, d = model.qh + model.kvh, model.d
    normed = mk.qk_norm_reference(qkv0[r], model.qh, model.kvh, d, model.q_norm[0], model.k_norm[0])
    ref = _rope_ref(normed, b.positions[r], model.cos, model.sin)
    errs["qk_norm_rope"] = mk.rel_err(b.qkv[r][:, : nrot * d].view(-1, nrot, d), ref)
    errs[f"attn_{b.phase}"] = attention_error(model, b)
    b.h.copy_(torch.randn_like(b.h))
    h1 = b.h.clone()
    route = b.extra["route"]
    for buf in (b.extra["moe"]["gu"], b.extra["moe"]["act"], b.extra["moe"]["y"]):
        buf.fill_(float("nan"))
    b.x.fill_(float("nan"))
    for _, fn in ks[7:]:
        fn()
    torch.cuda.synchronize()
    ref = mk.moe_reference(
        h1, route.token, route.expert, route.weight, model.moe.wgu[0], model.moe.wd[0]
    )
    errs["moe_block"] = mk.rel_err(b.x, ref)
    model.refresh(b)
    bad = {k: v for k, v in errs.items() if not v <= tol}
    if bad:
        raise AssertionError(f"MoE layer check failed (rel err > {tol}): {bad}")
    return {k: float(f"{v:.2e}") for k, v in errs.items()}
