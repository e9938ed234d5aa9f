"""Attention backends: flashinfer, torch SDPA and our Triton kernel, all reference-checked.

Prefill: ragged causal attention over new tokens (`FlashinferPrefill` with the FA3 or FA2
kernels, `SdpaPrefill`). Decode: paged GQA attention over the KV cache (`FlashinferDecode`
with tensor cores, as SGLang runs bf16 Llama-3.1-8B, or CUDA cores; `TritonPagedDecode`;
`SdpaGatherDecode`, which gathers the pages into dense K/V for SDPA). Every backend has the
same `plan(...)` / `run(...)` shape and a `name` from `selection.PREFILL_BACKENDS` /
`DECODE_BACKENDS`, so the layer code, CUDA-graph capture and the per-partition choice
(`llama.LlamaModel.use_partition`) do not care which one runs. Each flashinfer wrapper gets
its own float workspace (split-k scratch): co-running lanes must not share one. GPU-only.
"""

from __future__ import annotations

import math

import torch

from bulletsim.gpu.kernels import TritonPagedDecode


def flashinfer_available() -> bool:
    try:
        import flashinfer  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return False
    return True


class FlashinferPrefill:
    """flashinfer ragged prefill; `kernel` "fa3" (Hopper) or "fa2"."""

    def __init__(
        self, num_qo_heads: int, num_kv_heads: int, head_dim: int, workspace, kernel: str = "fa3"
    ):
        import flashinfer

        self.qh, self.kvh, self.d = num_qo_heads, num_kv_heads, head_dim
        self.name = f"flashinfer-{kernel}"
        self.wrapper = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(
            workspace, "NHD", backend=kernel
        )

    def set_num_sms(self, num_sms: int) -> None:
        """flashinfer plans from the device's SM count; nothing to re-plan."""

    def plan(self, seq_lens: list[int]) -> None:
        indptr = torch.tensor(
            [0, *torch.tensor(seq_lens).cumsum(0).tolist()], dtype=torch.int32, device="cuda"
        )
        self.wrapper.plan(
            indptr,
            indptr,
            self.qh,
            self.kvh,
            self.d,
            causal=True,
            q_data_type=torch.bfloat16,
            kv_data_type=torch.bfloat16,
        )

    def run(self, q, k, v, out):
        """q [T, QH, D], k/v [T, KVH, D] -> out [T, QH, D]."""
        return self.wrapper.run(q, k, v, out=out)


class SdpaPrefill:
    """Equal-length sequences through torch SDPA on one fixed backend."""

    def __init__(self, num_qo_heads: int, num_kv_heads: int, head_dim: int, backend):
        self.qh, self.kvh, self.d = num_qo_heads, num_kv_heads, head_dim
        self.backend = backend
        self.name = "sdpa-" + str(backend).split(".")[-1].lower().removesuffix("_attention")

    def set_num_sms(self, num_sms: int) -> None:
        pass

    def plan(self, seq_lens: list[int]) -> None:
        assert len(set(seq_lens)) == 1, "SDPA prefill takes equal-length sequences"
        self.num_seqs, self.seq_len = len(seq_lens), seq_lens[0]

    def run(self, q, k, v, out):
        from torch.nn.attention import sdpa_kernel

        s, n = self.num_seqs, self.seq_len
        qb = q.view(s, n, self.qh, self.d).transpose(1, 2)
        kb = k.view(s, n, self.kvh, self.d).transpose(1, 2)
        vb = v.view(s, n, self.kvh, self.d).transpose(1, 2)
        with sdpa_kernel([self.backend]):
            o = torch.nn.functional.scaled_dot_product_attention(
                qb, kb, vb, is_causal=True, enable_gqa=True
            )
        out.view(s, n, self.qh, self.d).copy_(o.transpose(1, 2))
        return out


class FlashinferDecode:
    """flashinfer paged decode with CUDA-graph-safe buffers (one wrapper per batch).

    `use_tensor_cores=True` runs the decode through flashinfer's prefill (tensor-core)
    kernels: ~60-65 GB/s of KV per SM on the H200 against ~24 for the CUDA-core kernel
    (issue 9); SGLang picks it for bf16 when the GQA group is >= 4."""

    def __init__(
        self, num_qo_heads, num_kv_heads, head_dim, page_size, workspace, use_tensor_cores: bool
    ):
        self.qh, self.kvh, self.d, self.page = num_qo_heads, num_kv_heads, head_dim, page_size
        self.workspace = workspace
        self.use_tensor_cores = use_tensor_cores
        self.name = "flashinfer-tc" if use_tensor_cores else "flashinfer-cc"

    def set_num_sms(self, num_sms: int) -> None:
        """flashinfer plans its split-k from the device's SM count; nothing to re-plan."""

    def plan(self, block_table: torch.Tensor, seq_lens: torch.Tensor, max_seq_len: int) -> None:
        import flashinfer

        b = block_table.shape[0]
        lens = seq_lens.cpu()
        pages = (lens + self.page - 1) // self.page
        indptr = torch.zeros(b + 1, dtype=torch.int32)
        indptr[1:] = pages.cumsum(0)
        table = block_table.cpu()
        indices = torch.cat([table[i, : pages[i]] for i in range(b)]).to(torch.int32)
        last = (lens - (pages - 1) * self.page).to(torch.int32)
        self._bufs = [indptr.cuda(), indices.cuda(), last.cuda()]
        self.wrapper = flashinfer.BatchDecodeWithPagedKVCacheWrapper(
            self.workspace,
            "NHD",
            use_cuda_graph=True,
            use_tensor_cores=self.use_tensor_cores,
            paged_kv_indptr_buffer=self._bufs[0],
            paged_kv_indices_buffer=self._bufs[1],
            paged_kv_last_page_len_buffer=self._bufs[2],
        )
        self.wrapper.plan(
            *self._bufs,
            self.qh,
            self.kvh,
            self.d,
            self.page,
            q_data_type=torch.bfloat16,
            kv_data_type=torch.bfloat16,
        )

    def run(self, q, k_cache, v_cache, out):
        # q comes as a strided view of the QKV output; flashinfer's decode wants it dense
        # (a strided q gave wrong results on the H200, 2026-11-22 explore run).
        return self.wrapper.run(q.contiguous(), (k_cache, v_cache), out=out)


def reference_attention(q, k, v, causal_offset: int | None) -> torch.Tensor:
    """float32 GQA attention for one sequence: q [n, QH, D], k/v [m, KVH, D] -> [n, QH, D].

    Query i sees keys j <= i + causal_offset (causal_offset = m - n for a causal suffix).
    """
    qh, kvh, d = q.shape[1], k.shape[1], q.shape[2]
    rep = qh // kvh
    qf, kf, vf = (t.float() for t in (q, k, v))
    kf, vf = kf.repeat_interleave(rep, dim=1), vf.repeat_interleave(rep, dim=1)
    s = torch.einsum("nhd,mhd->hnm", qf, kf) / math.sqrt(d)
    if causal_offset is not None:
        n, m = q.shape[0], k.shape[0]
        allowed = torch.arange(m, device=q.device)[None, :] <= (
            torch.arange(n, device=q.device)[:, None] + causal_offset
        )
        s = s.masked_fill(~allowed[None], float("-inf"))
    return torch.einsum("hnm,mhd->nhd", s.softmax(-1), vf)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


class SdpaGatherDecode:
    """Decode through torch SDPA: gather each sequence's pages into dense K/V, then attend
    (the gather is extra traffic; a baseline that needs no custom kernel)."""

    name = "sdpa-gather"

    def __init__(self, num_qo_heads, num_kv_heads, head_dim, page_size):
        self.qh, self.kvh, self.d, self.page = num_qo_heads, num_kv_heads, head_dim, page_size

    def set_num_sms(self, num_sms: int) -> None:
        pass

    def plan(self, block_table: torch.Tensor, seq_lens: torch.Tensor, max_seq_len: int) -> None:
        b, pages = block_table.shape
        self.table = block_table.long()
        span = torch.arange(pages * self.page, device=block_table.device)
        # mask [B, 1, 1, L]: True where the key exists
        self.mask = (span[None, :] < seq_lens[:, None])[:, None, None, :]

    def run(self, q, k_cache, v_cache, out):
        b = q.shape[0]
        k = k_cache[self.table].reshape(b, -1, self.kvh, self.d).transpose(1, 2)
        v = v_cache[self.table].reshape(b, -1, self.kvh, self.d).transpose(1, 2)
        o = torch.nn.functional.scaled_dot_product_attention(
            q.reshape(b, self.qh, 1, self.d), k, v, attn_mask=self.mask, enable_gqa=True
        )
        out.view(b, self.qh, self.d).copy_(o.view(b, self.qh, self.d))
        return out


def make_decode_backends(names, qh, kvh, d, page, total_sms, workspace) -> dict:
    """{name: unplanned backend} for each available decode backend in `names`;
    `workspace(name)` gives the float workspace of a flashinfer backend."""
    out = {}
    for name in names:
        if name.startswith("flashinfer") and not flashinfer_available():
            continue
        if name == "flashinfer-tc":
            out[name] = FlashinferDecode(qh, kvh, d, page, workspace(name), True)
        elif name == "flashinfer-cc":
            out[name] = FlashinferDecode(qh, kvh, d, page, workspace(name), False)
        elif name == "triton-splitk":
            out[name] = TritonPagedDecode(qh, kvh, d, page, total_sms)
        elif name == "sdpa-gather":
            out[name] = SdpaGatherDecode(qh, kvh, d, page)
        else:
            raise ValueError(f"unknown decode backend {name!r}")
    return out


def sdpa_backends():
    from torch.nn.attention import SDPBackend

    return [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
