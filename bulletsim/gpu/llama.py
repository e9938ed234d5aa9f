"""A Llama decoder with random bf16 weights, split into the kernels a real forward launches.

Built as parts of a model forward (not one-off micro-benchmarks) so that a live engine can run
the same modules: `LlamaModel` owns weights, the paged KV pool and the attention backends;
`prefill_batch` / `decode_batch` make the per-batch buffers; `layer_kernels` returns the
layer's kernels as (op name, launch) pairs in forward order, with op names matching
`bulletsim.latency.ops` (qkv, o, gate_up, down, attn_prefill, attn_decode, norm_rope_act,
final_norm, lm_head). Weights of different layers are distinct tensors far larger than L2,
so walking through layers rotates inputs past the cache. GPU-only module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bulletsim.gpu import attention as attn
from bulletsim.gpu.kernels import add_rmsnorm, rope_, rope_cache, silu_mul
from bulletsim.models import ModelSpec

Kernel = tuple[str, Callable[[], object]]


@dataclass(slots=True)
class LayerWeights:
    wqkv: torch.Tensor
    wo: torch.Tensor
    wgu: torch.Tensor
    wd: torch.Tensor
    norm1: torch.Tensor
    norm2: torch.Tensor


@dataclass(slots=True)
class Batch:
    """Buffers and metadata of one unit of work (prefill of `seq_lens`, or a decode step)."""

    phase: str
    num_tokens: int
    seq_lens: list[int]  # prefill: new tokens per sequence; decode: context before the step
    x: torch.Tensor
    res: torch.Tensor
    h: torch.Tensor
    qkv: torch.Tensor
    attn_out: torch.Tensor
    gu: torch.Tensor
    act: torch.Tensor
    positions: torch.Tensor
    slots: torch.Tensor  # flat KV slot (page * page_size + offset) of every new token
    logits_rows: torch.Tensor
    logits: torch.Tensor
    attn_backend: object
    pages_per_layer: int
    extra: dict = field(default_factory=dict)


class LlamaModel:
    def __init__(
        self,
        spec: ModelSpec,
        num_layers: int | None = None,
        kv_pool_bytes: float = 40e9,
        page_size: int = 16,
        prefill_backend: str = "auto",
        decode_backend: str = "auto",
        seed: int = 0,
        max_positions: int = 32768,
    ):
        self.spec = spec
        self.num_layers = num_layers or spec.num_layers
        h, d = spec.hidden_size, spec.head_dim
        self.qh, self.kvh, self.d = spec.q_heads_per_gpu, spec.kv_heads_per_gpu, d
        self.q_dim, self.kv_dim = self.qh * d, self.kvh * d
        self.inter = spec.intermediate_size // spec.tp
        self.page = page_size
        self.total_sms = torch.cuda.get_device_properties(0).multi_processor_count
        g = torch.Generator(device="cuda").manual_seed(seed)

        def w(out_f, in_f):
            return (
                torch.randn(out_f, in_f, device="cuda", dtype=torch.bfloat16, generator=g)
                * in_f**-0.5
            )

        def norm():
            return 1.0 + 0.1 * torch.randn(h, device="cuda", dtype=torch.bfloat16, generator=g)

        self.layers = [
            LayerWeights(
                w(self.q_dim + 2 * self.kv_dim, h),
                w(h, self.q_dim),
                w(2 * self.inter, h),
                w(h, self.inter),
                norm(),
                norm(),
            )
            for _ in range(self.num_layers)
        ]
        self.final_norm = norm()
        self.lm_head = w(spec.vocab_size // spec.tp, h)
        self.cos, self.sin = rope_cache(max_positions, d)
        page_bytes = 2 * page_size * self.kvh * d * 2
        self.num_pages = int(kv_pool_bytes // page_bytes)
        self.k_pool = torch.randn(
            self.num_pages, page_size, self.kvh, d, device="cuda", dtype=torch.bfloat16, generator=g
        )
        self.v_pool = torch.randn_like(self.k_pool)
        self.workspace = torch.zeros(256 * 2**20, dtype=torch.uint8, device="cuda")
        self.prefill_backend_pref = prefill_backend
        self.decode_backend_pref = decode_backend
        self._prefill_factory = None

    # -- KV pool: every layer sees its own window of the pool (wrapping once it is full) --
    def layer_cache(self, layer: int, pages: int) -> tuple[torch.Tensor, torch.Tensor]:
        if pages > self.num_pages:
            raise ValueError(f"KV pool too small: {pages} pages needed, {self.num_pages} exist")
        span = max(1, self.num_pages - pages + 1)
        off = (layer * pages) % span
        return self.k_pool[off : off + pages], self.v_pool[off : off + pages]

    # -- batches --
    def _buffers(self, t: int) -> dict:
        def e(*shape):
            return torch.randn(*shape, device="cuda", dtype=torch.bfloat16)

        return dict(
            x=e(t, self.spec.hidden_size),
            res=e(t, self.spec.hidden_size),
            h=e(t, self.spec.hidden_size),
            qkv=e(t, self.q_dim + 2 * self.kv_dim),
            attn_out=e(t, self.q_dim),
            gu=e(t, 2 * self.inter),
            act=e(t, self.inter),
        )

    def prefill_batch(self, seq_lens: list[int]) -> Batch:
        t = sum(seq_lens)
        pages = [(n + self.page - 1) // self.page for n in seq_lens]
        total_pages = sum(pages)
        perm = torch.randperm(total_pages, device="cuda", dtype=torch.int32)
        slots, positions, rows, start = [], [], [], 0
        for n, p in zip(seq_lens, pages, strict=True):
            tok = torch.arange(n, device="cuda")
            slots.append(perm[start + tok // self.page].long() * self.page + tok % self.page)
            positions.append(tok)
            start += p
            rows.append(sum(seq_lens[: len(rows) + 1]) - 1)
        backend = self._make_prefill_backend()
        backend.plan(seq_lens)
        return Batch(
            "prefill",
            t,
            list(seq_lens),
            **self._buffers(t),
            positions=torch.cat(positions).int(),
            slots=torch.cat(slots),
            logits_rows=torch.tensor(rows, device="cuda"),
            logits=torch.empty(
                len(seq_lens), self.lm_head.shape[0], device="cuda", dtype=torch.bfloat16
            ),
            attn_backend=backend,
            pages_per_layer=total_pages,
        )

    def decode_batch(self, batch_size: int, ctx_tokens: int) -> Batch:
        """One decode step: each request has `ctx_tokens` cached and adds one token."""
        pages_each = (ctx_tokens + 1 + self.page - 1) // self.page
        total_pages = batch_size * pages_each
        table = torch.randperm(total_pages, device="cuda", dtype=torch.int32).view(
            batch_size, pages_each
        )
        lens = torch.full((batch_size,), ctx_tokens + 1, device="cuda", dtype=torch.int32)
        pos = torch.full((batch_size,), ctx_tokens, device="cuda", dtype=torch.int32)
        slots = table[:, ctx_tokens // self.page].long() * self.page + ctx_tokens % self.page
        backend = attn.make_decode_backend(
            self.decode_backend_pref,
            self.qh,
            self.kvh,
            self.d,
            self.page,
            self.workspace,
            self.total_sms,
        )
        backend.plan(table, lens, ctx_tokens + 1)
        return Batch(
            "decode",
            batch_size,
            [ctx_tokens] * batch_size,
            **self._buffers(batch_size),
            positions=pos,
            slots=slots,
            logits_rows=torch.arange(batch_size, device="cuda"),
            logits=torch.empty(
                batch_size, self.lm_head.shape[0], device="cuda", dtype=torch.bfloat16
            ),
            attn_backend=backend,
            pages_per_layer=total_pages,
            extra={"block_table": table, "seq_lens": lens},
        )

    def _make_prefill_backend(self):
        if self._prefill_factory is None:
            self._prefill_factory = choose_prefill_backend(self)
        return self._prefill_factory()

    # -- kernels --
    def layer_kernels(self, layer: int, b: Batch) -> list[Kernel]:
        w = self.layers[layer]
        k_cache, v_cache = self.layer_cache(layer, b.pages_per_layer)
        t, qd, kvd = b.num_tokens, self.q_dim, self.kv_dim
        q = b.qkv[:, :qd].view(t, self.qh, self.d)
        k = b.qkv[:, qd : qd + kvd].view(t, self.kvh, self.d)
        v = b.qkv[:, qd + kvd :].view(t, self.kvh, self.d)
        k_flat = k_cache.view(-1, self.kvh, self.d)
        v_flat = v_cache.view(-1, self.kvh, self.d)
        out = b.attn_out.view(t, self.qh, self.d)
        if b.phase == "prefill":
            attn_op = ("attn_prefill", lambda: b.attn_backend.run(q, k, v, out))
        else:
            attn_op = ("attn_decode", lambda: b.attn_backend.run(q, k_cache, v_cache, out))
        return [
            ("norm_rope_act", lambda: add_rmsnorm(b.x, b.res, w.norm1, b.h)),
            ("qkv", lambda: torch.mm(b.h, w.wqkv.t(), out=b.qkv)),
            (
                "norm_rope_act",
                lambda: rope_(b.qkv, b.positions, self.cos, self.sin, self.qh + self.kvh, self.d),
            ),
            (
                "norm_rope_act",
                lambda: (k_flat.index_copy_(0, b.slots, k), v_flat.index_copy_(0, b.slots, v)),
            ),
            attn_op,
            ("o", lambda: torch.mm(b.attn_out, w.wo.t(), out=b.x)),
            ("norm_rope_act", lambda: add_rmsnorm(b.x, b.res, w.norm2, b.h)),
            ("gate_up", lambda: torch.mm(b.h, w.wgu.t(), out=b.gu)),
            ("norm_rope_act", lambda: silu_mul(b.gu, b.act)),
            ("down", lambda: torch.mm(b.act, w.wd.t(), out=b.x)),
        ]

    def head_kernels(self, b: Batch) -> list[Kernel]:
        def lm_head():
            rows = b.h if b.phase == "decode" else b.h.index_select(0, b.logits_rows)
            torch.mm(rows, self.lm_head.t(), out=b.logits)

        return [
            ("final_norm", lambda: add_rmsnorm(b.x, b.res, self.final_norm, b.h)),
            ("lm_head", lm_head),
        ]

    def step_kernels(
        self, b: Batch, layers: range | None = None, head: bool = True
    ) -> list[Kernel]:
        layers = range(self.num_layers) if layers is None else layers
        ks = [k for i in layers for k in self.layer_kernels(i, b)]
        return ks + (self.head_kernels(b) if head else [])


def choose_prefill_backend(model: LlamaModel):
    """flashinfer when importable; else the fastest SDPA backend that matches the reference."""
    if model.prefill_backend_pref in ("auto", "flashinfer") and attn.flashinfer_available():
        return lambda: attn.FlashinferPrefill(model.qh, model.kvh, model.d, model.workspace)
    from bulletsim.gpu.timing import bench_ms

    n = 4096
    q = torch.randn(n, model.qh, model.d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(n, model.kvh, model.d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    out = torch.empty_like(q)
    ref = attn.reference_attention(q[-256:], k, v, causal_offset=n - 256)
    best = None
    for be in attn.sdpa_backends():
        cand = attn.SdpaPrefill(model.qh, model.kvh, model.d, be)
        cand.plan([n])
        try:
            cand.run(q, k, v, out)
            torch.cuda.synchronize()
        except RuntimeError:
            continue
        if attn.rel_err(out[-256:], ref) > 2e-2:
            continue
        ms = bench_ms(lambda c=cand: c.run(q, k, v, out))
        if best is None or ms < best[0]:
            best = (ms, be)
    if best is None:
        raise RuntimeError("no SDPA backend ran causal GQA prefill correctly")
    be = best[1]
    return lambda: attn.SdpaPrefill(model.qh, model.kvh, model.d, be)
