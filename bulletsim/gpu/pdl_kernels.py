"""EXPERIMENTAL: the decode step's small Triton kernels launched with programmatic dependent
launch (PDL), and the split-K skinny GEMM with an L2 prefetch of its weights before the wait.

With PDL (`launch_pdl=True`; Hopper) a kernel may be scheduled before the previous kernel on
the stream has finished; it must execute `griddepcontrol.wait` (`gdc_wait`) before it reads
anything the previous kernel wrote. Each kernel here calls `gdc_launch_dependents` first (the
next PDL kernel may start at once) and `gdc_wait` before its first dependent load, so a chain
of them hides the launch latency between kernels; the GEMM also prefetches the first slices
of its weights (which no earlier kernel writes) into L2 before waiting. Same arithmetic as
`kernels.add_rmsnorm` / `silu_mul` / `rope_store` and `skinny_gemm.SkinnyGemm`. Not run by
the engine; `benchmarks/decode_variants.py` times a decode step with it. GPU-only module.
"""

from __future__ import annotations

import types

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from bulletsim.gpu import kernels as base
from bulletsim.gpu.skinny_gemm import SkinnyGemm


@triton.jit
def _add_rmsnorm_pdl(x_ptr, res_ptr, w_ptr, out_ptr, H, eps, BLOCK: tl.constexpr):
    gdc_launch_dependents()
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < H
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    gdc_wait()
    x = tl.load(x_ptr + row * H + offs, mask=mask, other=0.0).to(tl.float32)
    x += tl.load(res_ptr + row * H + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(res_ptr + row * H + offs, x.to(res_ptr.dtype.element_ty), mask=mask)
    var = tl.sum(x * x, axis=0) / H
    y = x * tl.rsqrt(var + eps) * w
    tl.store(out_ptr + row * H + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


def add_rmsnorm(x, residual, weight, out, eps: float = 1e-5):
    if residual is None:
        return base.add_rmsnorm(x, residual, weight, out, eps)
    t, h = x.shape
    _add_rmsnorm_pdl[(t,)](
        x, residual, weight, out, h, eps,
        BLOCK=triton.next_power_of_2(h), num_warps=8, launch_pdl=True,
    )  # fmt: skip
    return out


@triton.jit
def _silu_mul_pdl(gu_ptr, out_ptr, inter, BLOCK: tl.constexpr):
    gdc_launch_dependents()
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < inter
    gdc_wait()
    g = tl.load(gu_ptr + row * 2 * inter + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(gu_ptr + row * 2 * inter + inter + offs, mask=mask, other=0.0).to(tl.float32)
    y = g / (1.0 + tl.exp(-g)) * u
    tl.store(out_ptr + row * inter + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


def silu_mul(gate_up, out):
    t, two_i = gate_up.shape
    i = two_i // 2
    block = 1024
    _silu_mul_pdl[(t, triton.cdiv(i, block))](
        gate_up, out, i, BLOCK=block, num_warps=4, launch_pdl=True
    )
    return out


@triton.jit
def _rope_store_pdl(
    qkv_ptr, pos_ptr, slot_ptr, cos_ptr, sin_ptr, q_out_ptr, k_cache_ptr, v_cache_ptr,
    row_stride, QH: tl.constexpr, KVH: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    gdc_launch_dependents()
    row = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    half = tl.arange(0, D // 2)
    pos = tl.load(pos_ptr + row).to(tl.int64)
    c = tl.load(cos_ptr + pos * (D // 2) + half)
    s = tl.load(sin_ptr + pos * (D // 2) + half)
    gdc_wait()
    src = qkv_ptr + row * row_stride + head * D
    x1 = tl.load(src + half).to(tl.float32)
    x2 = tl.load(src + D // 2 + half).to(tl.float32)
    y1 = (x1 * c - x2 * s).to(q_out_ptr.dtype.element_ty)
    y2 = (x2 * c + x1 * s).to(q_out_ptr.dtype.element_ty)
    if head < QH:
        dst = q_out_ptr + (row * QH + head) * D
        tl.store(dst + half, y1)
        tl.store(dst + D // 2 + half, y2)
    else:
        kv = head - QH
        slot = tl.load(slot_ptr + row).to(tl.int64)
        dst = k_cache_ptr + (slot * KVH + kv) * D
        tl.store(dst + half, y1)
        tl.store(dst + D // 2 + half, y2)
        vsrc = qkv_ptr + row * row_stride + (QH + KVH + kv) * D
        vdst = v_cache_ptr + (slot * KVH + kv) * D
        tl.store(vdst + half, tl.load(vsrc + half))
        tl.store(vdst + D // 2 + half, tl.load(vsrc + D // 2 + half))


def rope_store(qkv, positions, kv_slots, cos, sin, q_out, k_cache, v_cache, qh, kvh, d):
    _rope_store_pdl[(qkv.shape[0], qh + kvh)](
        qkv, positions, kv_slots, cos, sin, q_out, k_cache, v_cache, qkv.stride(0),
        QH=qh, KVH=kvh, D=d, num_warps=1, launch_pdl=True,
    )  # fmt: skip


def kernels_module():
    """A stand-in for `bulletsim.gpu.kernels` in `LiveModel` (its `kernels` attribute) with
    the PDL versions of the three small kernels of a decode layer."""
    ns = types.SimpleNamespace(**{k: getattr(base, k) for k in dir(base) if not k.startswith("__")})
    ns.add_rmsnorm, ns.silu_mul, ns.rope_store = add_rmsnorm, silu_mul, rope_store
    return ns


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
