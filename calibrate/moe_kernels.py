"""MoE kernels of one GPU: router, expert alignment, grouped GEMMs, QK-norm, references.

A fused MoE layer on one GPU (Qwen3-MoE, SwiGLU experts, no shared expert):

    router   logits = h @ Wr^T [T, E]; softmax (fp32); top-k; renormalise the k weights
             (Qwen3-MoE's `norm_topk_prob`; costs the same either way)
    align    sort the T*k token copies by expert (stable), rows per expert, offsets
    gate_up  gu[c] = h[token(c)] @ Wgu[e(c)]^T for every copy c, one grouped GEMM
    act      a = silu(gu[:, :I]) * gu[:, I:]
    down     y[c] = a[c] @ Wd[e(c)]^T (grouped); x[t] = sum over t's copies of w(c) * y[c]

Grouped GEMM paths (`GROUPED_PATHS`): `torch-grouped-mm` (`torch._grouped_mm`, CUTLASS, when
the installed torch has it), `triton-grouped` (the Triton kernel below: one program per
(row tile of one expert, column tile), tiles scheduled on the device so the step can be
graph-captured) and `loop-mm` (one cuBLAS GEMM per expert: the baseline; needs the counts on
the host, so it cannot be captured). All are checked against `grouped_reference` (float32,
one expert at a time). torch is needed; Triton only for the Triton kernels. The indices and
weights a layer uses come from `bulletsim.latency.moe` routing distributions, so the load per
expert is controlled and documented (the router still runs and is timed).
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU test machines: only the torch paths and references are usable
    triton = tl = None

GROUPED_PATHS = ("torch-grouped-mm", "triton-grouped", "loop-mm")
TILE_M = 64  # Triton row tile (the padding a skewed load pays per expert)


def has_torch_grouped_mm() -> bool:
    return hasattr(torch, "_grouped_mm")


# -- router and alignment ---------------------------------------------------------------------
def router_topk(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights [T, k] fp32, expert ids [T, k] int64) from router logits [T, E]."""
    p = torch.softmax(logits.float(), dim=-1)
    w, ids = torch.topk(p, k, dim=-1)
    return w / w.sum(-1, keepdim=True), ids


def align(expert_of_copy: torch.Tensor, num_experts: int, counts_buf: torch.Tensor | None = None):
    """Sort copies by expert. Returns (order [C] int64, counts [E] int32, ends [E] int32):
    copy order[i] is the i-th row of the grouped GEMM; expert e owns rows
    [ends[e] - counts[e], ends[e]). Device-only ops (no host sync: graph-capturable)."""
    order = torch.sort(expert_of_copy, stable=True).indices
    counts = counts_buf if counts_buf is not None else expert_of_copy.new_zeros(num_experts)
    counts.zero_()
    counts.scatter_add_(0, expert_of_copy, torch.ones_like(expert_of_copy))
    ends = torch.cumsum(counts, 0).to(torch.int32)
    return order, counts.to(torch.int32), ends


def tile_schedule(counts: torch.Tensor, ends: torch.Tensor, max_tiles: int, tile_m: int):
    """(expert [max_tiles] int32, -1 for unused tiles; first row [max_tiles] int32) of each
    row tile: expert e gets ceil(counts[e] / tile_m) tiles. Device-only ops."""
    e_count = counts.shape[0]
    tiles = (counts + tile_m - 1) // tile_m
    cum = torch.cumsum(tiles, 0)
    i = torch.arange(max_tiles, device=counts.device, dtype=cum.dtype)
    e = torch.searchsorted(cum, i, right=True)
    valid = e < e_count
    e_safe = torch.clamp(e, max=e_count - 1)
    first_tile = cum[e_safe] - tiles[e_safe]
    row0 = (ends[e_safe] - counts[e_safe]) + (i - first_tile) * tile_m
    return torch.where(valid, e_safe, -1).to(torch.int32), row0.to(torch.int32)


# -- grouped GEMM paths ---------------------------------------------------------------------------
def grouped_reference(a: torch.Tensor, w: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """float32 y = a_e @ w[e]^T for each expert's consecutive rows; a [C, K], w [E, N, K]."""
    out, start = [], 0
    for e, n in enumerate(counts):
        out.append(a[start : start + n].float() @ w[e].float().t())
        start += n
    return torch.cat(out) if out else a.new_zeros((0, w.shape[1]), dtype=torch.float32)


def grouped_torch(a: torch.Tensor, w: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """`torch._grouped_mm`: a [C, K] rows grouped by `ends` (int32 [E]) times w [E, N, K]^T."""
    return torch._grouped_mm(a, w.transpose(-2, -1), offs=ends)


def grouped_loop(a: torch.Tensor, w: torch.Tensor, counts_host: list[int], out: torch.Tensor):
    """One GEMM per expert with rows (host-known counts); out [C, N]."""
    start = 0
    for e, n in enumerate(counts_host):
        if n:
            torch.mm(a[start : start + n], w[e].t(), out=out[start : start + n])
        start += n
    return out


if triton is not None:

    @triton.jit
    def _grouped_kernel(
        a_ptr,
        w_ptr,
        c_ptr,
        tile_e_ptr,
        tile_row_ptr,
        ends_ptr,
        N,
        K,
        stride_am,
        stride_we,
        stride_wn,
        stride_cm,
        BM: tl.constexpr,
        BN: tl.constexpr,
        BK: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        e = tl.load(tile_e_ptr + pid_m)
        row0 = tl.load(tile_row_ptr + pid_m)
        e_safe = tl.maximum(e, 0)
        row_end = tl.where(e >= 0, tl.load(ends_ptr + e_safe), row0)  # unused tile: no rows
        rm = row0 + tl.arange(0, BM)
        rn = pid_n * BN + tl.arange(0, BN)
        rk = tl.arange(0, BK)
        m_ok = rm < row_end
        n_ok = rn < N
        a_ptrs = a_ptr + rm[:, None].to(tl.int64) * stride_am + rk[None, :]
        w_ptrs = w_ptr + e_safe.to(tl.int64) * stride_we + rn[None, :] * stride_wn + rk[:, None]
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            k_ok = rk + k0 < K
            a_t = tl.load(a_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            w_t = tl.load(w_ptrs, mask=n_ok[None, :] & k_ok[:, None], other=0.0)
            acc += tl.dot(a_t, w_t)
            a_ptrs += BK
            w_ptrs += BK
        c_ptrs = c_ptr + rm[:, None].to(tl.int64) * stride_cm + rn[None, :]
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])

    @triton.jit
    def _qk_norm_kernel(x_ptr, wq_ptr, wk_ptr, row_stride, num_q, eps, D: tl.constexpr):
        t = tl.program_id(0)
        h = tl.program_id(1)
        offs = tl.arange(0, D)
        ptr = x_ptr + t.to(tl.int64) * row_stride + h * D + offs
        x = tl.load(ptr).to(tl.float32)
        rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / D + eps)
        w = tl.where(h < num_q, tl.load(wq_ptr + offs), tl.load(wk_ptr + offs)).to(tl.float32)
        tl.store(ptr, (x * rstd * w).to(x_ptr.dtype.element_ty))


def grouped_triton(
    a: torch.Tensor,
    w: torch.Tensor,
    tile_e: torch.Tensor,
    tile_row: torch.Tensor,
    ends: torch.Tensor,
    out: torch.Tensor,
    block_n: int = 128,
    block_k: int = 64,
) -> torch.Tensor:
    """The Triton grouped GEMM: out [C, N] = a [C, K] (grouped rows) @ w [E, N, K]^T."""
    n, k = w.shape[1], w.shape[2]
    assert a.stride(1) == 1 and w.stride(2) == 1 and out.stride(1) == 1
    grid = (tile_e.shape[0], triton.cdiv(n, block_n))
    _grouped_kernel[grid](
        a, w, out, tile_e, tile_row, ends, n, k, a.stride(0), w.stride(0), w.stride(1),
        out.stride(0), BM=TILE_M, BN=block_n, BK=block_k, num_warps=4, num_stages=3,
    )  # fmt: skip
    return out


def qk_norm_(qkv: torch.Tensor, num_q: int, num_k: int, head_dim: int, wq, wk, eps=1e-6):
    """Qwen3's per-head RMSNorm of q and k, in place on the QKV output [T, (q+2k) * D]."""
    t = qkv.shape[0]
    if t:
        _qk_norm_kernel[(t, num_q + num_k)](qkv, wq, wk, qkv.stride(0), num_q, eps, D=head_dim)
    return qkv


def qk_norm_reference(qkv: torch.Tensor, num_q: int, num_k: int, head_dim: int, wq, wk, eps=1e-6):
    """float32 reference of `qk_norm_` (returns the normalised q and k heads [T, q+k, D])."""
    x = qkv[:, : (num_q + num_k) * head_dim].float().view(qkv.shape[0], -1, head_dim)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    w = torch.cat([wq.float().expand(num_q, -1), wk.float().expand(num_k, -1)])
    return x * w


def moe_reference(h, token_of_copy, expert_of_copy, weight_of_copy, wgu, wd) -> torch.Tensor:
    """float32 MoE output [T, H]: sum over copies of weight * down(silu(g) * u), one expert
    at a time (the unfused definition the kernels must match)."""
    out = torch.zeros(h.shape[0], h.shape[1], dtype=torch.float32, device=h.device)
    for e in torch.unique(expert_of_copy).tolist():
        sel = (expert_of_copy == e).nonzero().flatten()
        tok = token_of_copy[sel]
        gu = h[tok].float() @ wgu[e].float().t()
        g, u = gu.chunk(2, -1)
        y = (torch.nn.functional.silu(g) * u) @ wd[e].float().t()
        out.index_add_(0, tok, y * weight_of_copy[sel].float()[:, None])
    return out


def combine(y, order, slot, weight, full, out, num_tokens: int, k: int, dense: bool):
    """out[t] = sum_j weight * y over token t's copies (non-atomic, like SGLang's moe_sum).

    y [C, H]: grouped-GEMM rows in expert order (`order` from `align`); slot [C]: token * k +
    choice of each copy; full [T*k, H] scratch. `dense`: every slot has a copy (TP), so the
    scratch needs no zeroing; under EP a GPU holds only some of a token's copies."""
    y.mul_(weight.index_select(0, order).to(y.dtype)[:, None])
    if not dense:
        full.zero_()
    full.index_copy_(0, slot.index_select(0, order), y)
    return torch.sum(full.view(num_tokens, k, -1), dim=1, out=out)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64; inf when `out` holds a NaN or inf."""
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))
