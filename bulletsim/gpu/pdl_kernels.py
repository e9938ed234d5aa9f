"""EXPERIMENTAL: the split-K skinny GEMM launched with programmatic dependent launch (PDL),
prefetching the first slices of its weights into L2 before it waits for the previous kernel.

With PDL (`launch_pdl=True`; Hopper) a kernel may be scheduled before the previous kernel on
the stream has finished; it must execute `griddepcontrol.wait` (`gdc_wait`) before it reads
anything the previous kernel wrote (`kernels.pdl_available`). Weights are written by no
kernel, so their prefetch may start earlier. Same kernel as `skinny_gemm.SkinnyGemm` (its
`PDL` / `PREFETCH` switches), so the same arithmetic.
Not one of `selection.GEMM_PATHS` (no profile prices it; alone it is slower than cuBLAS, its
gain shows only in a chain of PDL kernels), so the engine does not run it;
`benchmarks/decode_variants.py` times a decode step with it. GPU-only module.
"""

from __future__ import annotations

import torch

from bulletsim.gpu.skinny_gemm import SkinnyGemm, _skinny_kernel


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
        _skinny_kernel[(n // self.block_n, self.split)](
            x, w, out, self.ws if self.ws is not None else out, self.lock, m, n, k,
            SPLIT=self.split, BLOCK_N=self.block_n, BLOCK_K=self.block_k, BLOCK_M=64,
            NUM_STAGES=self.stages, PDL=True, PREFETCH=pre, num_warps=self.warps,
            launch_pdl=True,
        )  # fmt: skip
        return out
