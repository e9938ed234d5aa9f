"""Triton kernels for the elementwise parts of a Llama layer and a paged decode attention.

These are what a small engine runs when it has no flashinfer: fused add+RMSNorm, in-place
RoPE (rotate-half, Llama convention), SiLU*mul, and a split-K ("flash-decoding") paged
attention for GQA decode. GPU-only module: imports torch and triton.
"""

from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl

from bulletsim.gpu.direct_launch import DirectLaunch

try:  # programmatic dependent launch (Triton >= 3.3; Hopper and later)
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait
except ImportError:  # pragma: no cover - older Triton: kernels run without PDL
    gdc_launch_dependents = gdc_wait = None


@triton.jit
def _add_rmsnorm_kernel(
    x_ptr,
    res_ptr,
    w_ptr,
    out_ptr,
    H,
    eps,
    HAS_RES: tl.constexpr,
    BLOCK: tl.constexpr,
    PDL: tl.constexpr = False,
):
    if PDL:  # see `pdl_available`: the next kernel may launch now; wait for the previous
        gdc_launch_dependents()
        gdc_wait()
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < H
    x = tl.load(x_ptr + row * H + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_RES:
        x += tl.load(res_ptr + row * H + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(res_ptr + row * H + offs, x.to(res_ptr.dtype.element_ty), mask=mask)
    var = tl.sum(x * x, axis=0) / H
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    y = x * tl.rsqrt(var + eps) * w
    tl.store(out_ptr + row * H + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


_ADD_RMSNORM = DirectLaunch(_add_rmsnorm_kernel)


def add_rmsnorm(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    out: torch.Tensor,
    eps: float = 1e-5,
    pdl: bool = False,
) -> torch.Tensor:
    """out = rmsnorm(x + residual) * weight; residual <- x + residual (when given).
    `pdl`: launched with programmatic dependent launch (`pdl_available`)."""
    t, h = x.shape
    _ADD_RMSNORM(
        (t,),
        x,
        residual if residual is not None else x,
        weight,
        out,
        h,
        eps,
        residual is not None,
        _pow2(h),
        pdl,
        num_warps=8,
        launch_pdl=pdl,
    )
    return out


@functools.cache
def _pow2(n: int) -> int:
    return triton.next_power_of_2(n)


@triton.jit
def _silu_mul_kernel(gu_ptr, out_ptr, inter, BLOCK: tl.constexpr, PDL: tl.constexpr = False):
    if PDL:
        gdc_launch_dependents()
        gdc_wait()
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < inter
    g = tl.load(gu_ptr + row * 2 * inter + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(gu_ptr + row * 2 * inter + inter + offs, mask=mask, other=0.0).to(tl.float32)
    y = g / (1.0 + tl.exp(-g)) * u
    tl.store(out_ptr + row * inter + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


_SILU_MUL = DirectLaunch(_silu_mul_kernel)


def silu_mul(gate_up: torch.Tensor, out: torch.Tensor, pdl: bool = False) -> torch.Tensor:
    """out = silu(gate) * up, with gate_up = [gate | up] along the last dimension; `pdl` as
    in `add_rmsnorm`."""
    t, two_i = gate_up.shape
    i = two_i // 2
    block = 1024
    _SILU_MUL((t, -(-i // block)), gate_up, out, i, block, pdl, num_warps=4, launch_pdl=pdl)
    return out


def pdl_available() -> bool:
    """Whether the small kernels can run with programmatic dependent launch (PDL): Triton
    has `gdc_wait` and the GPU is Hopper or later (compute capability >= 9).

    With PDL a kernel may be scheduled before the previous kernel on its stream finished
    (`launch_pdl`); these kernels first let their own successor launch
    (`gdc_launch_dependents`) and then wait until the previous kernel's writes are visible
    (`gdc_wait`) before reading anything, so the result is the same and only the launch
    latency between kernels is hidden (CUDA programming guide, "Programmatic Dependent
    Launch and Synchronization"). A kernel launched without PDL after one of them waits
    for it to finish as usual."""
    return gdc_wait is not None and torch.cuda.get_device_capability()[0] >= 9


@triton.jit
def _rotated(qkv_ptr, pos_ptr, cos_ptr, sin_ptr, row, head, row_stride, D: tl.constexpr):
    """Both halves of head `head` of row `row`, rotated by the row's position (float32)."""
    half = tl.arange(0, D // 2)
    pos = tl.load(pos_ptr + row).to(tl.int64)
    c = tl.load(cos_ptr + pos * (D // 2) + half)
    s = tl.load(sin_ptr + pos * (D // 2) + half)
    base = qkv_ptr + row * row_stride + head * D
    x1 = tl.load(base + half).to(tl.float32)
    x2 = tl.load(base + D // 2 + half).to(tl.float32)
    return x1 * c - x2 * s, x2 * c + x1 * s


@triton.jit
def _rope_kernel(qkv_ptr, pos_ptr, cos_ptr, sin_ptr, row_stride, D: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    half = tl.arange(0, D // 2)
    y1, y2 = _rotated(qkv_ptr, pos_ptr, cos_ptr, sin_ptr, row, head, row_stride, D)
    base = qkv_ptr + row * row_stride + head * D
    tl.store(base + half, y1.to(qkv_ptr.dtype.element_ty))
    tl.store(base + D // 2 + half, y2.to(qkv_ptr.dtype.element_ty))


def rope_(
    qkv: torch.Tensor,
    positions: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    num_rot_heads: int,
    head_dim: int,
) -> torch.Tensor:
    """Rotate the first `num_rot_heads` heads (q then k) of each row of `qkv` in place."""
    _rope_kernel[(qkv.shape[0], num_rot_heads)](
        qkv, positions, cos, sin, qkv.stride(0), D=head_dim, num_warps=1
    )
    return qkv


@triton.jit
def _rope_store_kernel(
    qkv_ptr,
    pos_ptr,
    slot_ptr,
    cos_ptr,
    sin_ptr,
    q_out_ptr,
    k_cache_ptr,
    v_cache_ptr,
    row_stride,
    QH: tl.constexpr,
    KVH: tl.constexpr,
    D: tl.constexpr,
    PDL: tl.constexpr = False,
):
    if PDL:
        gdc_launch_dependents()
        gdc_wait()
    row = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    half = tl.arange(0, D // 2)
    r1, r2 = _rotated(qkv_ptr, pos_ptr, cos_ptr, sin_ptr, row, head, row_stride, D)
    y1 = r1.to(q_out_ptr.dtype.element_ty)
    y2 = r2.to(q_out_ptr.dtype.element_ty)
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


_ROPE_STORE = DirectLaunch(_rope_store_kernel)


def rope_store(
    qkv: torch.Tensor,
    positions: torch.Tensor,
    kv_slots: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    q_out: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    num_q_heads: int,
    num_kv_heads: int,
    head_dim: int,
    pdl: bool = False,
) -> None:
    """One kernel for what follows the QKV GEMM: RoPE on q into the dense `q_out`
    [T, QH, D], RoPE on k into `k_cache`, v copied into `v_cache`, both at flat slot
    `kv_slots[t]` (caches viewed as [slots, KVH, D], contiguous). Replaces rope_ + two
    index_copy_ + the copy that makes q dense (four launches, q and k read twice). `pdl` as in
    `add_rmsnorm`."""
    _ROPE_STORE(
        (qkv.shape[0], num_q_heads + num_kv_heads),
        qkv,
        positions,
        kv_slots,
        cos,
        sin,
        q_out,
        k_cache,
        v_cache,
        qkv.stride(0),
        num_q_heads,
        num_kv_heads,
        head_dim,
        pdl,
        num_warps=1,
        launch_pdl=pdl,
    )


# the small kernels launched directly after their first call, by name (live.json reports them)
DIRECT_LAUNCHES = {"add_rmsnorm": _ADD_RMSNORM, "silu_mul": _SILU_MUL, "rope_store": _ROPE_STORE}


def rope_cache(max_pos: int, head_dim: int, theta: float = 500000.0, device="cuda"):
    """cos/sin tables [max_pos, head_dim/2] in float32 (Llama-3 base theta, no scaling)."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = torch.arange(max_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float().to(device), ang.sin().float().to(device)


@triton.jit
def _decode_split_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    table_ptr,
    lens_ptr,
    mid_o_ptr,
    mid_lse_ptr,
    scale,
    max_pages,
    q_stride,
    QH: tl.constexpr,
    KVH: tl.constexpr,
    G: tl.constexpr,
    G_PAD: tl.constexpr,
    D: tl.constexpr,
    PAGE: tl.constexpr,
    SPLITS,
    BLOCK_N: tl.constexpr,
):
    b = tl.program_id(0)
    kvh = tl.program_id(1)
    sp = tl.program_id(2)
    seq_len = tl.load(lens_ptr + b)
    split_len = tl.cdiv(tl.cdiv(seq_len, SPLITS), BLOCK_N) * BLOCK_N
    start = sp * split_len
    end = tl.minimum(start + split_len, seq_len)
    offs_g = tl.arange(0, G_PAD)
    offs_d = tl.arange(0, D)
    g_mask = offs_g < G
    heads = kvh * G + offs_g
    q = tl.load(
        q_ptr + b * q_stride + heads[:, None] * D + offs_d[None, :], mask=g_mask[:, None], other=0.0
    )
    m = tl.full([G_PAD], float("-inf"), tl.float32)
    l_sum = tl.zeros([G_PAD], tl.float32)
    acc = tl.zeros([G_PAD, D], tl.float32)
    for n0 in range(start, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_mask = offs_n < end
        page = tl.load(
            table_ptr + b.to(tl.int64) * max_pages + offs_n // PAGE, mask=n_mask, other=0
        )
        row = (page.to(tl.int64) * PAGE + offs_n % PAGE) * KVH + kvh
        k = tl.load(k_ptr + row[:, None] * D + offs_d[None, :], mask=n_mask[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k)) * scale
        s = tl.where(n_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        p = tl.exp(s - m_new[:, None])
        alpha = tl.exp(m - m_new)
        v = tl.load(v_ptr + row[:, None] * D + offs_d[None, :], mask=n_mask[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        l_sum = l_sum * alpha + tl.sum(p, 1)
        m = m_new
    has = l_sum > 0
    out = acc / tl.where(has, l_sum, 1.0)[:, None]
    lse = tl.where(has, m + tl.log(tl.where(has, l_sum, 1.0)), float("-inf"))
    mid = (b * QH + heads) * SPLITS + sp
    tl.store(mid_o_ptr + mid[:, None] * D + offs_d[None, :], out, mask=g_mask[:, None])
    tl.store(mid_lse_ptr + mid, lse, mask=g_mask)


@triton.jit
def _decode_reduce_kernel(
    mid_o_ptr, mid_lse_ptr, out_ptr, SPLITS, S_PAD: tl.constexpr, D: tl.constexpr
):
    bh = tl.program_id(0).to(tl.int64)
    offs_s = tl.arange(0, S_PAD)
    offs_d = tl.arange(0, D)
    s_mask = offs_s < SPLITS
    lse = tl.load(mid_lse_ptr + bh * SPLITS + offs_s, mask=s_mask, other=float("-inf"))
    w = tl.exp(lse - tl.max(lse, 0))
    o = tl.load(
        mid_o_ptr + (bh * SPLITS + offs_s)[:, None] * D + offs_d[None, :],
        mask=s_mask[:, None],
        other=0.0,
    )
    y = tl.sum(o * w[:, None], 0) / tl.sum(w, 0)
    tl.store(out_ptr + bh * D + offs_d, y.to(out_ptr.dtype.element_ty))


class TritonPagedDecode:
    """Paged GQA decode attention: q [B, QH, D] over K/V caches [pages, PAGE, KVH, D].

    `plan` fixes the batch (block table, lengths, split count) so that `run` can be captured
    in a CUDA graph; buffers are reused across runs.
    """

    name = "triton-splitk"

    def __init__(
        self, num_qo_heads: int, num_kv_heads: int, head_dim: int, page_size: int, total_sms: int
    ):
        self.qh, self.kvh, self.d, self.page = num_qo_heads, num_kv_heads, head_dim, page_size
        self.total_sms = total_sms

    def set_num_sms(self, num_sms: int) -> None:
        """Size the split count for a partition of `num_sms` SMs (re-plans when it changes)."""
        if num_sms != self.total_sms:
            self.total_sms = num_sms
            if getattr(self, "block_table", None) is not None:
                self.plan(self.block_table, self.seq_lens, self.max_seq_len)

    def plan(self, block_table: torch.Tensor, seq_lens: torch.Tensor, max_seq_len: int) -> None:
        b = block_table.shape[0]
        self.block_table, self.seq_lens, self.max_seq_len = block_table, seq_lens, max_seq_len
        # Enough programs for two waves on the SMs it runs on, no split under 256 keys.
        want = math.ceil(2 * self.total_sms / (b * self.kvh))
        self.splits = max(1, min(want, math.ceil(max_seq_len / 256), 64))
        self.mid_o = torch.empty(
            b, self.qh, self.splits, self.d, dtype=torch.float32, device=block_table.device
        )
        self.mid_lse = torch.empty(
            b, self.qh, self.splits, dtype=torch.float32, device=block_table.device
        )

    def run(
        self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, out: torch.Tensor
    ) -> torch.Tensor:
        b = q.shape[0]
        g = self.qh // self.kvh
        _decode_split_kernel[(b, self.kvh, self.splits)](
            q,
            k_cache,
            v_cache,
            self.block_table,
            self.seq_lens,
            self.mid_o,
            self.mid_lse,
            1.0 / math.sqrt(self.d),
            self.block_table.shape[1],
            q.stride(0),
            QH=self.qh,
            KVH=self.kvh,
            G=g,
            G_PAD=max(16, triton.next_power_of_2(g)),
            D=self.d,
            PAGE=self.page,
            SPLITS=self.splits,
            BLOCK_N=64,
            num_warps=4,
            num_stages=2,
        )
        _decode_reduce_kernel[(b * self.qh,)](
            self.mid_o,
            self.mid_lse,
            out,
            SPLITS=self.splits,
            S_PAD=triton.next_power_of_2(self.splits),
            D=self.d,
            num_warps=4,
        )
        return out
