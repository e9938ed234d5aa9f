"""A persistent Triton matmul whose grid is the partition: y[M, N] = x[M, K] @ w[N, K]^T.

One program per SM of the partition (`num_sms`), each walking output tiles with stride
`num_sms` (grouped ordering for L2 reuse), so a partition of n SMs runs ceil(tiles / n)
full rounds instead of a grid sized for the whole GPU. After the persistent matmul of the
Triton tutorials (`python/tutorials/09-persistent-matmul.py`, non-TMA variant). GPU-only.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _tile_of(tile_id, num_pid_in_group, num_pid_m, GROUP_M: tl.constexpr):
    group_id = tile_id // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + (tile_id % group_size_m)
    pid_n = (tile_id % num_pid_in_group) // group_size_m
    return pid_m, pid_n


# M and NUM_SMS change from launch to launch (rows of a batch; min(partition, tiles)):
# unspecialised, so one compile per tile config serves every row count (Triton otherwise
# compiles again when a value's "== 1" / "divisible by 16" class first changes, which cost
# 0.27-0.47 s of host time in the middle of live runs: results/live-h200/NOTES.md, S4R5-S4R8)
@triton.jit(do_not_specialize=["M", "NUM_SMS"])
def _persistent_matmul_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    stride_am,
    stride_ak,
    stride_bn,
    stride_bk,
    stride_cm,
    stride_cn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    NUM_SMS,
):
    start_pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    k_tiles = tl.cdiv(K, BLOCK_K)
    num_tiles = num_pid_m * num_pid_n
    num_pid_in_group = GROUP_M * num_pid_n
    for tile_id in tl.range(start_pid, num_tiles, NUM_SMS):
        pid_m, pid_n = _tile_of(tile_id, num_pid_in_group, num_pid_m, GROUP_M)
        offs_am = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_bn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_am = tl.where(offs_am < M, offs_am, 0)
        offs_bn = tl.where(offs_bn < N, offs_bn, 0)
        offs_am = tl.max_contiguous(tl.multiple_of(offs_am, BLOCK_M), BLOCK_M)
        offs_bn = tl.max_contiguous(tl.multiple_of(offs_bn, BLOCK_N), BLOCK_N)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for ki in range(k_tiles):
            offs_k = ki * BLOCK_K + tl.arange(0, BLOCK_K)
            a = tl.load(
                a_ptr + offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak,
                mask=offs_k[None, :] < K,
                other=0.0,
            )
            b = tl.load(
                b_ptr + offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn,
                mask=offs_k[:, None] < K,
                other=0.0,
            )
            acc = tl.dot(a, b, acc)
        offs_cm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_cn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        c_ptrs = c_ptr + offs_cm[:, None] * stride_cm + offs_cn[None, :] * stride_cn
        c_mask = (offs_cm[:, None] < M) & (offs_cn[None, :] < N)
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=c_mask)


def config_for(rows: int) -> dict:
    """Tile shape by row count: 128x256x64 (3 stages, 8 warps: the tutorial's Hopper bf16
    choice) for prefill-sized GEMMs, 64x128x64 (4 stages, 4 warps) for decode-sized ones."""
    if rows >= 128:
        return dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, num_stages=3, num_warps=8)
    return dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_stages=4, num_warps=4)


def persistent_matmul(
    x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, num_sms: int
) -> torch.Tensor:
    """out[M, N] = x[M, K] @ w[N, K]^T with `num_sms` persistent programs (bf16 in/out,
    float32 accumulation)."""
    m, k = x.shape
    n = w.shape[0]
    cfg = config_for(m)
    tiles = triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(n, cfg["BLOCK_N"])
    programs = max(1, min(num_sms, tiles))
    _persistent_matmul_kernel[(programs,)](
        x,
        w,
        out,
        m,
        n,
        k,
        x.stride(0),
        x.stride(1),
        w.stride(0),
        w.stride(1),
        out.stride(0),
        out.stride(1),
        NUM_SMS=programs,
        **cfg,
    )
    return out
