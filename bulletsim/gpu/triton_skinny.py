"""A split-K GEMM for few rows (decode): y[M, N] = x[M, K] @ w[N, K]^T with M <= 64.

EXPERIMENTAL: not one of `selection.GEMM_PATHS`, so neither the calibrator nor the live
engine runs it; `benchmarks/live_h200.py` times a decode step with it to show how far the
small-N decode GEMMs (qkv, o, down) are from the bandwidth the attention reaches (R1: the
cuBLASLt kernels moved those weights at 3.26 TB/s against 4.0 for the attention). Measured
on the H200 (R4, results/live-h200/NOTES.md) it does not help: alone 0.42-2.35 TB/s, in the
decode graph 9.06 ms against 8.98 ms with the profile's kernels. Kept as that measurement's
code; a better skinny kernel would start from it.

With 64 rows a tile of 64 x BLOCK_N output columns has too few tiles to fill 132 SMs when N
is 4096-6144 (32-96 tiles); splitting K over `split_k` programs per tile gives every SM work.
Each program writes its float32 partial sum to a workspace [split_k, M, N] and a second
kernel adds the partials and casts to bf16 (deterministic; the workspace, 1-4 MB, stays in
L2). GPU-only module.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _skinny_partial_kernel(
    x_ptr,
    w_ptr,
    ws_ptr,
    M,
    N,
    K,
    k_per_split,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_n = tl.program_id(0)
    split = tl.program_id(1)
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask = offs_m < M
    n_mask = offs_n < N
    k_start = split * k_per_split
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(k_start, k_start + k_per_split, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        a = tl.load(
            x_ptr + offs_m[:, None].to(tl.int64) * K + offs_k[None, :],
            mask=m_mask[:, None] & k_mask[None, :],
            other=0.0,
        )
        b = tl.load(
            w_ptr + offs_n[None, :].to(tl.int64) * K + offs_k[:, None],
            mask=n_mask[None, :] & k_mask[:, None],
            other=0.0,
        )
        acc = tl.dot(a, b, acc)
    out = ws_ptr + split.to(tl.int64) * M * N + offs_m[:, None].to(tl.int64) * N + offs_n[None, :]
    tl.store(out, acc, mask=m_mask[:, None] & n_mask[None, :])


@triton.jit
def _skinny_reduce_kernel(ws_ptr, y_ptr, MN, SPLIT_K: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < MN
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for s in range(SPLIT_K):
        acc += tl.load(ws_ptr + s * MN + offs, mask=mask, other=0.0)
    tl.store(y_ptr + offs, acc.to(y_ptr.dtype.element_ty), mask=mask)


def split_k_for(n: int, k: int, num_sms: int, block_n: int = 64, block_k: int = 128) -> int:
    """Splits of K so that column tiles x splits cover about two waves of `num_sms`, each
    split at least 4 BLOCK_K steps long."""
    tiles = triton.cdiv(n, block_n)
    want = max(1, (2 * num_sms + tiles - 1) // tiles)
    most = max(1, k // (4 * block_k))
    return min(want, most)


def skinny_matmul(
    x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, num_sms: int
) -> torch.Tensor:
    """out[M, N] = x[M, K] @ w[N, K]^T for M <= 64 (bf16, float32 accumulation); x, w and
    out contiguous."""
    m, k = x.shape
    n = w.shape[0]
    assert m <= 64 and x.is_contiguous() and w.is_contiguous() and out.is_contiguous()
    block_n, block_k = 64, 128
    split = split_k_for(n, k, num_sms, block_n, block_k)
    k_per_split = triton.cdiv(triton.cdiv(k, split), block_k) * block_k
    split = triton.cdiv(k, k_per_split)
    ws = torch.empty(split, m, n, device=x.device, dtype=torch.float32)
    _skinny_partial_kernel[(triton.cdiv(n, block_n), split)](
        x, w, ws, m, n, k, k_per_split, BLOCK_M=64, BLOCK_N=block_n, BLOCK_K=block_k,
        num_warps=4, num_stages=4,
    )  # fmt: skip
    block = 1024
    _skinny_reduce_kernel[(triton.cdiv(m * n, block),)](
        ws, out, m * n, SPLIT_K=split, BLOCK=block, num_warps=4
    )
    return out
