"""A Llama decoder with random bf16 weights, split into the kernels a real forward launches.

Built as parts of a model forward (not one-off micro-benchmarks) so that a live engine can run
the same modules: `LlamaModel` owns weights, the paged KV pool, the partition-aware GEMMs
(`gemm.PartitionGemm`) and the attention backends; `prefill_batch` / `decode_batch` make the
per-batch buffers with every candidate attention backend planned; `use_partition(batch,
partition)` points GEMMs and attention at a partition (choosing kernels by measurement when
asked); `layer_kernels` returns the layer's kernels as (op name, launch) pairs in forward
order, with op names matching `bulletsim.latency.ops` (qkv, o, gate_up, down, attn_prefill,
attn_decode, norm_rope_act, final_norm, lm_head); `kernel_names` says which kernel runs each.
Weights of different layers are distinct tensors far larger than L2, so walking through
layers rotates inputs past the cache. GPU-only module.
File length: ~460 lines, one model object whose weights, KV pool and per-partition kernel
choices are shared state; the kernels themselves live in kernels.py, attention.py, gemm.py.
File length: ~400 lines, one model whose parts (weights, batches, kernel choice) share state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bulletsim.gpu import attention as attn
from bulletsim.gpu.gemm import PartitionGemm
from bulletsim.gpu.kernels import add_rmsnorm, rope_, rope_cache, silu_mul
from bulletsim.gpu.selection import (
    DECODE_BACKENDS,
    GEMM_PATHS,
    Choice,
    ChoiceTable,
    pick,
    sglang_decode_backend,
)
from bulletsim.models import ModelSpec

GEMM_OPS = ("qkv", "o", "gate_up", "down", "lm_head")
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
    attn_backend: object  # the backend in use (one of `backends`)
    pages_per_layer: int
    backends: dict = field(default_factory=dict)  # name -> planned attention backend
    default_backend: str = ""
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
        gemm_paths: tuple[str, ...] = GEMM_PATHS,
        decode_backends: tuple[str, ...] = DECODE_BACKENDS,
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
        self._workspaces: dict[str, torch.Tensor] = {}
        self.prefill_backend_pref = prefill_backend
        self.decode_backend_pref = decode_backend
        self.decode_backend_names = (
            decode_backends if decode_backend == "auto" else (decode_backend,)
        )
        self._prefill_factories = None
        self.gemm = PartitionGemm(self.total_sms, gemm_paths)
        self.attn_table = ChoiceTable()

    def workspace(self, name: str) -> torch.Tensor:
        """The float workspace of attention backend `name` (one per backend kind, so lanes
        that co-run never share split-k scratch), 128 MB as flashinfer recommends."""
        if name not in self._workspaces:
            self._workspaces[name] = torch.zeros(128 * 2**20, dtype=torch.uint8, device="cuda")
        return self._workspaces[name]

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

    def refresh(self, b: Batch) -> None:
        """Fresh random activations in every buffer of `b` (after checks or selection)."""
        for name in ("x", "res", "h", "qkv", "attn_out", "gu", "act"):
            buf = getattr(b, name)
            buf.copy_(torch.randn_like(buf))
        torch.cuda.synchronize()

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
        backends = {}
        for name, make in self._prefill_backend_factories().items():
            if name.startswith("sdpa") and len(set(seq_lens)) > 1:
                continue  # SDPA prefill takes equal-length sequences
            try:
                be = make()
                be.plan(seq_lens)
            except Exception:  # noqa: BLE001 - a backend that cannot plan is not a candidate
                continue
            backends[name] = be
        if not backends:
            raise RuntimeError(f"no prefill attention backend could plan {seq_lens}")
        default = next(iter(backends))
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
            attn_backend=backends[default],
            pages_per_layer=total_pages,
            backends=backends,
            default_backend=default,
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
        backends = attn.make_decode_backends(
            self.decode_backend_names,
            self.qh,
            self.kvh,
            self.d,
            self.page,
            self.total_sms,
            self.workspace,
        )
        for name in list(backends):
            try:
                backends[name].plan(table, lens, ctx_tokens + 1)
            except Exception:  # noqa: BLE001 - a backend that cannot plan is not a candidate
                del backends[name]
        if not backends:
            raise RuntimeError(f"no decode backend available among {self.decode_backend_names}")
        rule = sglang_decode_backend(self.qh, self.kvh, "bfloat16", attn.flashinfer_available())
        default = rule if rule in backends else next(iter(backends))
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
            attn_backend=backends[default],
            pages_per_layer=total_pages,
            backends=backends,
            default_backend=default,
            extra={"block_table": table, "seq_lens": lens},
        )

    def _prefill_backend_factories(self) -> dict:
        if self._prefill_factories is None:
            self._prefill_factories = prefill_backend_factories(self)
        return self._prefill_factories

    def set_decode_backend(self, name: str) -> None:
        """Restrict decode batches made from now on to backend `name` (e.g. after the
        preferred one failed its reference check)."""
        self.decode_backend_pref = name
        self.decode_backend_names = (name,)

    # -- partitions and kernel choice --
    def use_partition(self, b: Batch, partition, select: bool = False) -> None:
        """Point the GEMMs and `b`'s attention at `partition` (n SMs). With `select`, time
        and reference-check every candidate for each of `b`'s GEMMs and its attention on
        the partition first and record the choices; otherwise use recorded choices (the
        nearest measured size at this SM count) or the default rules."""
        n = partition.num_sms
        self.gemm.num_sms = n
        for be in b.backends.values():
            be.set_num_sms(n)
        if select:
            for op, x, w, out in self._gemm_operands(b):
                self.gemm.select(op, x, w, out, partition.stream)
            self._select_attention(b, partition)
            self.refresh(b)  # selection poisons outputs: time on random data, never NaN
        op, size = self._attn_key(b)
        chosen = self.attn_table.lookup(op, size, n)
        b.attn_backend = b.backends.get(chosen, b.backends[b.default_backend])

    def kernel_names(self, b: Batch) -> dict[str, str]:
        """{op: kernel} of what `b` runs on the current partition."""
        names = {op: self.gemm.path_for(op, x.shape[0]) for op, x, _, _ in self._gemm_operands(b)}
        names[f"attn_{b.phase}"] = b.attn_backend.name
        return names

    def _gemm_operands(self, b: Batch):
        w = self.layers[0]
        rows = b.h if b.phase == "decode" else b.h[: len(b.seq_lens)]
        return [
            ("qkv", b.h, w.wqkv, b.qkv),
            ("o", b.attn_out, w.wo, b.x),
            ("gate_up", b.h, w.wgu, b.gu),
            ("down", b.act, w.wd, b.x),
            ("lm_head", rows, self.lm_head, b.logits),
        ]

    @staticmethod
    def _attn_key(b: Batch) -> tuple[str, tuple[int, ...]]:
        if b.phase == "decode":
            return "attn_decode", (b.num_tokens, b.seq_lens[0])
        return "attn_prefill", (len(b.seq_lens), b.seq_lens[0])

    def _select_attention(self, b: Batch, partition, reps: int = 3) -> None:
        op, size = self._attn_key(b)
        n = partition.num_sms
        if self.attn_table.get(op, size, n) is not None or len(b.backends) < 2:
            return
        times: dict[str, float | None] = {}
        errs: dict[str, float | None] = {}
        with torch.cuda.stream(partition.stream):
            for name, be in b.backends.items():
                b.attn_backend = be
                try:
                    errs[name] = attention_error(self, b)
                    fn = self.layer_kernels(0, b)[4][1]
                    times[name] = _median_ms(fn, reps)
                except Exception:  # noqa: BLE001 - a backend that cannot run this shape
                    times[name], errs[name] = None, None
        chosen = pick(times, errs, b.default_backend)
        self.attn_table.record(op, size, n, Choice(chosen, times, errs, b.default_backend))

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
            ("qkv", lambda: self.gemm.run("qkv", b.h, w.wqkv, b.qkv)),
            (
                "norm_rope_act",
                lambda: rope_(b.qkv, b.positions, self.cos, self.sin, self.qh + self.kvh, self.d),
            ),
            (
                "norm_rope_act",
                lambda: (k_flat.index_copy_(0, b.slots, k), v_flat.index_copy_(0, b.slots, v)),
            ),
            attn_op,
            ("o", lambda: self.gemm.run("o", b.attn_out, w.wo, b.x)),
            ("norm_rope_act", lambda: add_rmsnorm(b.x, b.res, w.norm2, b.h)),
            ("gate_up", lambda: self.gemm.run("gate_up", b.h, w.wgu, b.gu)),
            ("norm_rope_act", lambda: silu_mul(b.gu, b.act)),
            ("down", lambda: self.gemm.run("down", b.act, w.wd, b.x)),
        ]

    def head_kernels(self, b: Batch) -> list[Kernel]:
        def lm_head():
            rows = b.h if b.phase == "decode" else b.h.index_select(0, b.logits_rows)
            self.gemm.run("lm_head", rows, self.lm_head, b.logits)

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


def prefill_backend_factories(model: LlamaModel) -> dict:
    """{name: factory} of the prefill backends to plan for each batch, the default first:
    flashinfer FA3 (then FA2) when importable; the SDPA backends that run causal GQA
    prefill correctly (4096 tokens against the float32 reference) unless the model asked
    for flashinfer only (`prefill_backend="flashinfer"`: no SDPA kernel is even tried)."""
    pref = model.prefill_backend_pref
    out = {}
    if pref in ("auto", "flashinfer") and attn.flashinfer_available():
        for kernel in ("fa3", "fa2"):
            out[f"flashinfer-{kernel}"] = lambda k=kernel: attn.FlashinferPrefill(
                model.qh, model.kvh, model.d, model.workspace(f"prefill-{k}"), k
            )
    elif pref == "flashinfer":
        raise RuntimeError("flashinfer prefill requested but flashinfer is not importable")
    if pref == "flashinfer":
        return out
    n = 1024
    q = torch.randn(n, model.qh, model.d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(n, model.kvh, model.d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    out_t = torch.empty_like(q)
    ref = attn.reference_attention(q[-128:], k, v, causal_offset=n - 128)
    sdpa = attn.sdpa_backends()
    if out:  # beside flashinfer only cuDNN (the fastest SDPA prefill on the H200, 2026-11-22)
        sdpa = sdpa[:1]
    for be in sdpa:
        cand = attn.SdpaPrefill(model.qh, model.kvh, model.d, be)
        cand.plan([n])
        try:
            cand.run(q, k, v, out_t)
            torch.cuda.synchronize()
        except RuntimeError:
            continue
        if attn.rel_err(out_t[-128:], ref) <= 2e-2:
            out[cand.name] = lambda be=be: attn.SdpaPrefill(model.qh, model.kvh, model.d, be)
    if not out:
        raise RuntimeError("no prefill attention backend ran causal GQA prefill correctly")
    return out


def attention_error(model: LlamaModel, b: Batch, layer: int = 0) -> float:
    """Relative error of `b.attn_backend` against the float32 reference on fresh inputs
    (the first sequence's last 128 queries for prefill, the first two requests for decode);
    the output is poisoned first, so unwritten elements show as NaN."""
    qd, kvd, d = model.q_dim, model.kv_dim, model.d
    b.qkv.copy_(torch.randn_like(b.qkv))
    b.attn_out.fill_(float("nan"))
    k_cache, v_cache = model.layer_cache(layer, b.pages_per_layer)
    full_qkv = b.qkv.clone()
    model.layer_kernels(layer, b)[4][1]()
    torch.cuda.synchronize()
    if b.phase == "prefill":
        n0 = b.seq_lens[0]
        q = full_qkv[:n0, :qd].view(n0, model.qh, d)
        k = full_qkv[:n0, qd : qd + kvd].view(n0, model.kvh, d)
        v = full_qkv[:n0, qd + kvd :].view(n0, model.kvh, d)
        m = min(128, n0)
        ref = attn.reference_attention(q[-m:], k, v, n0 - m)
        return attn.rel_err(b.attn_out[n0 - m : n0].view(m, model.qh, d), ref)
    table = b.extra["block_table"]
    n = b.seq_lens[0] + 1
    refs = []
    for j in range(min(2, b.num_tokens)):
        kk = k_cache[table[j].long()].reshape(-1, model.kvh, d)[:n]
        vv = v_cache[table[j].long()].reshape(-1, model.kvh, d)[:n]
        q = full_qkv[j : j + 1, :qd].view(1, model.qh, d)
        refs.append(attn.reference_attention(q, kk, vv, None))
    got = b.attn_out[: len(refs)].view(len(refs), model.qh, d)
    return attn.rel_err(got, torch.cat(refs))


def _median_ms(fn, reps: int) -> float:
    from bulletsim.gpu.gemm import _median_ms as median_ms

    return median_ms(fn, reps)
