"""Decode steps as CUDA graphs, one per (partition, padded batch bucket).

A graph keeps the SM partition of the stream it was captured on (calibrate/NOTES.md), so a
decode lane that can run on 17 partitions needs its graphs captured on each. Inputs live in
static buffers per bucket (request slots, positions, KV slots) and flashinfer's decode
wrapper per bucket is re-planned before every replay with the step's page layout (its
CUDA-graph mode keeps the kernel grid fixed). Padded rows read and write the scratch page and
the scratch slot of `PageTable`. GEMMs: the profile's choice for (op, bucket rows,
partition), captured with the partition's SM target. Attention: flashinfer's tensor-core
decode (SGLang's choice for bf16 with a GQA group >= 4; on 16-64 SM partitions it ran
2.3-2.7x faster than the CUDA-core kernel, DESIGN.md), which JIT-compiles the same fa2
module as the paged prefill. The small Triton kernels (add + RMSNorm, RoPE + KV write,
SiLU*mul) run with programmatic dependent launch in the graphs where the GPU and Triton have
it (`LiveModel.decode_pdl`): their launch overlaps the previous kernel's tail; kernel times
are unchanged, only the gaps between kernels shrink (results/live-h200/NOTES.md).
"""

from __future__ import annotations

import time

import torch

from bulletsim.latency.graph_buckets import LIVE_ENGINE_BUCKETS

# Padded batch sizes (SGLang captures 1..160 in similar steps); larger batches run eager. The
# simulator prices a decode graph at these sizes when a profile names them.
BUCKETS = LIVE_ENGINE_BUCKETS


class DecodeGraphs:
    def __init__(self, model, num_pages: int, workspace_bytes: int = 768 * 2**20) -> None:
        import flashinfer

        self.model = model
        self.workspace = torch.empty(workspace_bytes, dtype=torch.uint8, device="cuda")
        self.indices = torch.zeros(num_pages + BUCKETS[-1], dtype=torch.int32, device="cuda")
        self.wrappers, self.inputs, self.acts = {}, {}, {}
        for b in BUCKETS:
            self.wrappers[b] = flashinfer.BatchDecodeWithPagedKVCacheWrapper(
                self.workspace,
                "NHD",
                use_cuda_graph=True,
                use_tensor_cores=True,
                paged_kv_indptr_buffer=torch.zeros(b + 1, dtype=torch.int32, device="cuda"),
                paged_kv_indices_buffer=self.indices,
                paged_kv_last_page_len_buffer=torch.ones(b, dtype=torch.int32, device="cuda"),
            )
            # slots, positions, kv slots (int64); padded rows: scratch slot, position 0, slot 0
            self.inputs[b] = torch.zeros(3, b, dtype=torch.int64, device="cuda")
            self.acts[b] = model.acts(b)
        self.graphs: dict[tuple[str, int], torch.cuda.CUDAGraph] = {}
        self.mempool = torch.cuda.graph_pool_handle()
        self.capture_s = 0.0

    @staticmethod
    def bucket(n: int) -> int | None:
        for b in BUCKETS:
            if b >= n:
                return b
        return None

    def plan(self, b: int, indptr, indices, last) -> None:
        """Lay out the step's pages (host int32 arrays, padded to the bucket)."""
        layout = (torch.from_numpy(a) for a in (indptr, indices, last))
        self.wrappers[b].plan(*layout, *self.model.paged_heads(), **self.model.PLAN_DTYPES)

    def _body(self, b: int) -> None:
        m, acts, inp, wrapper = self.model, self.acts[b], self.inputs[b], self.wrappers[b]
        slots, positions, kv_slots = inp[0], inp[1], inp[2]

        def attn(i, q, k_cache, v_cache, out):
            wrapper.run(q, (k_cache, v_cache), out=out)

        m.embed_into(acts, m.last_token.index_select(0, slots))
        for i in range(m.num_layers):
            m.layer(i, acts, positions, kv_slots, attn, pdl=m.decode_pdl)
        m.head(acts, None, slots, pdl=m.decode_pdl)

    def capture(self, key: str, stream, scratch_slot: int, num_sms: int) -> None:
        """Capture every bucket's step on `stream` (one partition of `num_sms` SMs: the GEMM
        paths and cuBLASLt SM targets for it are baked into the graph), after an eager
        warm-up."""
        import numpy as np

        t0 = time.perf_counter()
        self.model.set_num_sms(num_sms)
        for b in BUCKETS:
            self.inputs[b][0].fill_(scratch_slot)
            with torch.cuda.stream(stream):
                self.plan(
                    b,
                    np.arange(b + 1, dtype=np.int32),
                    np.zeros(b, dtype=np.int32),
                    np.ones(b, dtype=np.int32),
                )
            self.graphs[(key, b)] = self.capture_bucket(b, stream)
        torch.cuda.synchronize()
        self.capture_s += time.perf_counter() - t0

    def capture_bucket(self, b: int, stream) -> torch.cuda.CUDAGraph:
        """Warm up, then capture bucket `b`'s step on `stream` as planned and with the
        model's current partition (also used by the benchmark to compare GEMM paths)."""
        with torch.cuda.stream(stream):
            self._body(b)  # warm-up: Triton/cuBLAS/flashinfer set up on this stream
        stream.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=stream, pool=self.mempool):
            self._body(b)
        return g
