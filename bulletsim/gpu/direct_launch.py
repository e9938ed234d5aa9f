"""Launch an already compiled Triton kernel without the JIT's per-call binding (GPU only).

`kernel[grid](...)` binds and specialises every argument, looks the compiled kernel up and
builds launch metadata on every call: 15-28 us of host time per call for the live engine's
small kernels on the lent H200, about as much as a cuBLAS GEMM's launch, for kernels an
eager step launches ~100 times (`benchmarks/eager_host_ops.py`, round S5R1 in
results/live-h200/NOTES.md). `DirectLaunch` keys the compiled kernel by what Triton
specialises on (constexpr values; each tensor's dtype and 16-byte alignment; each integer's
"== 1" and "divisible by 16" classes unless the kernel does not specialise it; the launch
options), compiles and launches through the JIT on a key's first call, and afterwards calls
the compiled kernel's launcher directly with the same arguments the JIT passes it (Triton
3.6's `JITFunction.run`). Any launch hook set (a profiler) or a launcher that fails sends
the call through the JIT, which is always correct.
"""

from __future__ import annotations

import torch

try:  # Triton >= 3.4 (the launch hooks' home); older: every call goes through the JIT
    from triton import knobs
except ImportError:  # pragma: no cover - GPU machines here run Triton 3.6
    knobs = None


def _spec(a, specialise: bool):
    if isinstance(a, torch.Tensor):
        return a.dtype, a.data_ptr() % 16 == 0
    if isinstance(a, bool) or not isinstance(a, int):
        return type(a)
    return (a == 1, a % 16 == 0) if specialise else int


def _hooks_set() -> bool:
    """Whether a launch hook is set: Triton 3.6 keeps them as hook chains (empty by
    default); a plain callable counts as set, and so does a Triton without `knobs`."""
    if knobs is None:
        return True
    hooks = (knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook)
    return any(h is not None and getattr(h, "calls", True) for h in hooks)


class DirectLaunch:
    """One Triton kernel's compiled variants, launched directly (see the module docstring).
    `__call__(grid, *args, **options)`: `args` are all the kernel's parameters in order,
    constexprs included; `options` the launch options (num_warps, launch_pdl, ...).
    `direct` counts the launches that bypassed the JIT; `error` is the launcher's error that
    turned direct launching off for this kernel (None while it works)."""

    def __init__(self, fn) -> None:
        self.fn = fn
        # per parameter: None for a constexpr (keyed by value), else whether ints specialise
        self._kinds = [None if p.is_constexpr else not p.do_not_specialize for p in fn.params]
        self._compiled: dict = {}
        self.direct = 0
        self.error: str | None = None

    def __call__(self, grid: tuple, *args, **options) -> None:
        key = (
            len(grid),
            tuple(a if k is None else _spec(a, k) for a, k in zip(args, self._kinds, strict=True)),
            tuple(sorted(options.items())),
        )
        k = self._compiled.get(key)
        if k is None or self.error is not None or _hooks_set():
            k = self.fn[grid](*args, **options)
            if self.error is None:
                self._compiled[key] = k
            return
        g1 = grid[1] if len(grid) > 1 else 1
        g2 = grid[2] if len(grid) > 2 else 1
        stream = torch._C._cuda_getCurrentRawStream(torch.cuda.current_device())
        try:
            k.run(grid[0], g1, g2, stream, k.function, k.packed_metadata, None, None, None, *args)
        except Exception as e:  # noqa: BLE001 - an unexpected launcher: the JIT is correct
            self.error = f"{type(e).__name__}: {e}"[:300]
            self._compiled.clear()
            self.fn[grid](*args, **options)
            return
        self.direct += 1
