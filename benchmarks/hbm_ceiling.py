"""Measured HBM ceilings of the GPU in this process: device copy and streaming read.

The decode step's roofline is stated against three denominators: the datasheet (H200: 4.8
TB/s, NVIDIA H200 product brief), the device copy (`copy_tb_s`: read + write bytes of a torch
`copy_`) and the streaming read (`read_tb_s`: a Triton kernel that reads a buffer far larger
than the L2 once and writes one float per program), the most a read-dominated kernel such as
a decode step can reach here. GPU only.
"""

from __future__ import annotations

READ_TILINGS = ((4096, 4), (8192, 4), (16384, 8), (8192, 8))  # (elements per load, warps)


def copy_tb_s(nbytes: int = 4 << 30, reps: int = 10) -> float:
    """Device-to-device copy bandwidth (bytes read + written per second, TB/s), median."""
    import torch

    from bulletsim.gpu.timing import bench_ms

    x = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    ms = bench_ms(lambda: y.copy_(x), warmup=2, reps=reps)
    return 2 * nbytes / (ms / 1e3) / 1e12


def read_tb_s(nbytes: int = 4 << 30, reps: int = 10) -> dict:
    """Streaming-read bandwidth (TB/s of bytes read), median per tiling of `READ_TILINGS`
    and the best: {"tilings": {name: {"ms", "tb_s"}}, "read_tb_s": best}. Each program sums
    8 loads of its tile (evict-first) and stores one float; the sum is checked."""
    import torch
    import triton
    import triton.language as tl

    from bulletsim.gpu.timing import bench_ms

    @triton.jit
    def read_sum(x, partial, n, BLOCK: tl.constexpr, ITERS: tl.constexpr):
        base = tl.program_id(0).to(tl.int64) * BLOCK * ITERS
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for i in range(ITERS):
            offs = base + i * BLOCK + tl.arange(0, BLOCK)
            acc += tl.load(x + offs, mask=offs < n, other=0.0, eviction_policy="evict_first")
        tl.store(partial + tl.program_id(0), tl.sum(acc))

    n = nbytes // 2
    x = torch.ones(n, dtype=torch.bfloat16, device="cuda")
    res: dict = {"bytes_read": 2 * n, "tilings": {}}
    for block, warps in READ_TILINGS:
        grid = triton.cdiv(n, block * 8)
        partial = torch.empty(grid, dtype=torch.float32, device="cuda")

        def go(block=block, warps=warps, grid=grid, partial=partial):
            read_sum[(grid,)](x, partial, n, BLOCK=block, ITERS=8, num_warps=warps)

        go()
        torch.cuda.synchronize()
        if abs(float(partial.double().sum()) - n) > 1e-3 * n:
            raise ValueError(f"read kernel b{block}-w{warps} summed a wrong total")
        ms = bench_ms(go, warmup=2, reps=reps)
        res["tilings"][f"b{block}-w{warps}"] = {"ms": ms, "tb_s": 2 * n / (ms / 1e3) / 1e12}
    res["read_tb_s"] = max(t["tb_s"] for t in res["tilings"].values())
    return res
