"""EXPERIMENTAL: the split-K skinny GEMM launched with programmatic dependent launch (PDL),
prefetching the first slices of its weights into L2 before it waits for the previous kernel.

With PDL (`launch_pdl=True`; Hopper) a kernel may be scheduled before the previous kernel on
the stream has finished; it must execute `griddepcontrol.wait` (`gdc_wait`) before it reads
anything the previous kernel wrote (`kernels.pdl_available`). Weights are written by no
kernel, so their prefetch may start earlier. Same arithmetic as `skinny_gemm.SkinnyGemm`.
Not one of `selection.GEMM_PATHS` (no profile prices it; alone it is slower than cuBLAS, its
gain shows only in a chain of PDL kernels), so the engine does not run it;
`benchmarks/decode_variants.py` times a decode step with it. GPU-only module.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from bulletsim.gpu.skinny_gemm import SkinnyGemm


@triton.jit
def _skinny_pdl(
    x_ptr, w_ptr, y_ptr, ws_ptr, lock_ptr, M, N, K,
    SPLIT: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_M: tl.constexpr,
    NUM_STAGES: tl.constexpr, PREFETCH: tl.constexpr,
):  # fmt: skip
    gdc_launch_dependents()
    pid_n = tl.program_id(0)
    split = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_k = tl.arange(0, BLOCK_K)
    m_mask = offs_m < M
    k_per_split = K // SPLIT
    k0 = split * k_per_split
    # L2 prefetch of the first PREFETCH weight slices: one 128-byte line per (row, 64 cols)
    lines = tl.arange(0, PREFETCH * BLOCK_K // 64)
    pf = w_ptr + offs_n[:, None].to(tl.int64) * K + k0 + lines[None, :] * 64
    tl.inline_asm_elementwise(
        "prefetch.global.L2 [$1]; mov.u32 $0, 0;",
        "=r,l",
        [pf],
        dtype=tl.int32,
        is_pure=False,
        pack=1,
    )
    gdc_wait()
    w_ptrs = w_ptr + offs_n[:, None].to(tl.int64) * K + (k0 + offs_k)[None, :]
    x_ptrs = x_ptr + offs_m[None, :].to(tl.int64) * K + (k0 + offs_k)[:, None]
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for _ in tl.range(0, k_per_split, BLOCK_K, num_stages=NUM_STAGES):
        w = tl.load(w_ptrs)
        xt = tl.load(x_ptrs, mask=m_mask[None, :], other=0.0)
        acc = tl.dot(w, xt, acc)
        w_ptrs += BLOCK_K
        x_ptrs += BLOCK_K
    y_ptrs = y_ptr + offs_m[None, :].to(tl.int64) * N + offs_n[:, None]
    if SPLIT == 1:
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=m_mask[None, :])
    else:
        tile = BLOCK_N * BLOCK_M
        base_ws = ws_ptr + pid_n.to(tl.int64) * SPLIT * tile
        cell = tl.arange(0, BLOCK_N)[:, None] * BLOCK_M + offs_m[None, :]
        tl.store(base_ws + split * tile + cell, acc)
        tl.debug_barrier()
        done = tl.atomic_add(lock_ptr + pid_n, 1, sem="acq_rel")
        if done == SPLIT - 1:
            total = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
            for s in range(SPLIT):
                total += tl.load(base_ws + s * tile + cell, cache_modifier=".cg")
            tl.store(y_ptrs, total.to(y_ptr.dtype.element_ty), mask=m_mask[None, :])
            tl.store(lock_ptr + pid_n, 0)


class SkinnyGemmPdl(SkinnyGemm):
    """`SkinnyGemm` launched with PDL, prefetching `prefetch` weight slices before the wait."""

    def __init__(self, *a, prefetch: int = 2, **kw) -> None:
        super().__init__(*a, **kw)
        self.prefetch = prefetch

    @property
    def name(self) -> str:
        return "pdl-" + super().name

    def __call__(self, x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        m, k = x.shape
        n = w.shape[0]
        if not self.fits(m, n, k):
            raise ValueError(f"{self.name} does not fit M={m} N={n} K={k}")
        pre = 2 if self.prefetch >= 2 and k // self.split >= 2 * self.block_k else 1
        _skinny_pdl[(n // self.block_n, self.split)](
            x, w, out, self.ws if self.ws is not None else out, self.lock, m, n, k,
            SPLIT=self.split, BLOCK_N=self.block_n, BLOCK_K=self.block_k, BLOCK_M=64,
            NUM_STAGES=self.stages, PREFETCH=pre, num_warps=self.warps, launch_pdl=True,
        )  # fmt: skip
        return out
