"""A one-launch split-K GEMM for decode's few rows: y[M, N] = x[M, K] @ w[N, K]^T, M <= 64.

Swap-AB tiling: a program computes a [BLOCK_N, 64] tile of y^T, so the weight rows (the
large dimension) fill the MMA's 64/128-row side and the 64 batch rows its narrow side;
weights stream from HBM once, in BLOCK_K slices, through `num_stages` buffers. With N =
4096-6144 there are too few column tiles for 132 SMs, so K is split over `split` programs
per tile; each writes its float32 partial to a workspace [tiles, split, BLOCK_N, 64] and
bumps the tile's counter; the program that arrives last adds the partials in split order
(deterministic), writes y in bf16 and resets the counter (so a CUDA graph can replay it).
One launch per GEMM, unlike `triton_skinny` (partials + a reduce kernel). `PDL` / `PREFETCH`
(constexpr, off here) serve `pdl_kernels.SkinnyGemmPdl`: the same kernel launched with
programmatic dependent launch, prefetching its first weight slices into L2 before it waits.
GPU-only module.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from bulletsim.gpu.kernels import gdc_launch_dependents, gdc_wait


@triton.jit
def _skinny_kernel(
    x_ptr,
    w_ptr,
    y_ptr,
    ws_ptr,
    lock_ptr,
    M,
    N,
    K,
    SPLIT: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_M: tl.constexpr,
    NUM_STAGES: tl.constexpr,
    PDL: tl.constexpr = False,
    PREFETCH: tl.constexpr = 0,
):
    if PDL:  # the next kernel may launch now (kernels.pdl_available)
        gdc_launch_dependents()
    pid_n = tl.program_id(0)
    split = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_k = tl.arange(0, BLOCK_K)
    m_mask = offs_m < M
    k_per_split = K // SPLIT
    k0 = split * k_per_split
    if PREFETCH > 0:
        # L2 prefetch of the first PREFETCH weight slices: one 128-byte line per (row, 64
        # cols); no kernel writes weights, so this may run before the wait
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
    if PDL:  # wait for the previous kernel's writes before reading x
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
        base = ws_ptr + pid_n.to(tl.int64) * SPLIT * tile
        cell = tl.arange(0, BLOCK_N)[:, None] * BLOCK_M + offs_m[None, :]
        tl.store(base + split * tile + cell, acc)
        tl.debug_barrier()  # every thread's partial is written before the counter moves
        done = tl.atomic_add(lock_ptr + pid_n, 1, sem="acq_rel")
        if done == SPLIT - 1:
            total = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
            for s in range(SPLIT):
                total += tl.load(base + s * tile + cell, cache_modifier=".cg")
            tl.store(y_ptrs, total.to(y_ptr.dtype.element_ty), mask=m_mask[None, :])
            tl.store(lock_ptr + pid_n, 0)


class SkinnyGemm:
    """Launcher with one tiling (block_n, block_k, split, stages, warps) and its own
    workspace and counters (zeroed once; every launch leaves them zero)."""

    def __init__(self, block_n=64, block_k=128, split=1, stages=4, warps=4, max_n=1 << 17):
        self.block_n, self.block_k, self.split = block_n, block_k, split
        self.stages, self.warps = stages, warps
        tiles = triton.cdiv(max_n, block_n)
        self.lock = torch.zeros(tiles, dtype=torch.int32, device="cuda")
        self.ws = None
        if split > 1:
            self.ws = torch.empty(tiles * split * block_n * 64, dtype=torch.float32, device="cuda")

    @property
    def name(self) -> str:
        b = self
        return f"skinny-n{b.block_n}-k{b.block_k}-s{b.split}-st{b.stages}-w{b.warps}"

    def fits(self, m: int, n: int, k: int) -> bool:
        return m <= 64 and n % self.block_n == 0 and k % (self.block_k * self.split) == 0

    def __call__(self, x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        m, k = x.shape
        n = w.shape[0]
        if not self.fits(m, n, k):
            raise ValueError(f"{self.name} does not fit M={m} N={n} K={k}")
        grid = (n // self.block_n, self.split)
        _skinny_kernel[grid](
            x, w, out, self.ws if self.ws is not None else out, self.lock,
            m, n, k,
            SPLIT=self.split, BLOCK_N=self.block_n, BLOCK_K=self.block_k, BLOCK_M=64,
            NUM_STAGES=self.stages, num_warps=self.warps,
        )  # fmt: skip
        return out
