"""Partition-aware GEMMs: y = x @ w^T run by a path that knows the partition's SM count.

Paths (`selection.GEMM_PATHS`):
- "cublas": `torch.mm` (the fallback; cuBLAS sizes its grid for the whole GPU, so on a
  green context it can lose a wave: 386 against 737 TFLOP/s on 120 SMs of an H200, issue 9);
- "cublaslt-sm-target": cuBLASLt with `CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET` = the partition,
  reached by torch's carveout (`torch._C._set_sm_carveout_experimental(total - n)`) and
  `torch.addmm` with a zero bias (the bias epilogue takes the Lt path; plain `mm` ignores
  the target). The carveout is process-wide and read when the GEMM is launched (or captured
  into a graph), so it is set right before and cleared right after each launch;
- "triton-persistent": `triton_matmul.persistent_matmul` with one program per SM.

`PartitionGemm.select` times every path on the partition's stream for one (op, rows, SMs),
checks each against a float32 reference, and records the choice (`selection.pick`) in a
`ChoiceTable`; `run` uses the recorded choice, else the nearest measured one, else the
default rule. GPU-only module.
"""

from __future__ import annotations

import statistics

import torch

from bulletsim.gpu.selection import GEMM_PATHS, Choice, ChoiceTable, default_gemm_path, pick
from bulletsim.gpu.triton_matmul import persistent_matmul

# a benchmark-only path (triton_skinny.py): no profile prices it, so nothing chooses it
EXPERIMENTAL_SKINNY = "triton-skinny-splitk"


class PartitionGemm:
    """GEMMs of one model on whichever partition is current (`num_sms`)."""

    def __init__(
        self, total_sms: int, paths: tuple[str, ...] = GEMM_PATHS, unit_sms: int = 1
    ) -> None:
        unknown = set(paths) - set(GEMM_PATHS)
        if unknown:
            raise ValueError(f"unknown GEMM paths {sorted(unknown)}; valid: {GEMM_PATHS}")
        self.total_sms = total_sms
        self.num_sms = total_sms  # the partition launches go to; set by the model's owner
        self.paths = paths
        self.unit_sms = unit_sms  # partition step: counts off it are split remainders
        self.table = ChoiceTable()
        # True: a partition whose SM count was not measured uses the nearest measured count
        # of its kind (`ChoiceTable.nearest_sms`; the live engine, reading a profile)
        self.nearest_sms = False
        self._paths: dict[tuple[str, int, int], str] = {}  # memo of path_for
        # (op, SMs) where cuBLASLt with the SM target failed on this device: plain cuBLAS
        self.lt_failed: set[tuple[str, int]] = set()
        # path -> fewest rows it may run with on a partition (not the whole GPU): under
        # libsmctrl TPC masks plain cuBLAS hung for 64 rows on <= 8 TPCs and for 1 row on
        # 4 TPCs (calibrate/NOTES.md, issue 16), so the calibrator sets {"cublas": 128}
        self.min_rows: dict[str, int] = {}
        self._bias: dict[tuple[int, torch.dtype], torch.Tensor] = {}
        # id(weight) -> (weight, its transposed view); on for long-lived weights only (the
        # live engine's model): the entry keeps its weight alive
        self.cache_transposes = False
        self._wt: dict[int, tuple] = {}

    def use_table(self, table: ChoiceTable, nearest_sms: bool = True) -> None:
        """Run the choices of `table` (e.g. a calibrated profile's) from now on."""
        self.table, self.nearest_sms = table, nearest_sms
        self._paths.clear()

    # -- launching ---------------------------------------------------------------------------
    def path_for(self, op: str, rows: int) -> str:
        """The path for (op, rows) on the current partition: the table's choice at the
        nearest measured size (and, with `nearest_sms`, SM count of the same kind), else
        the default rule. Memoized: the table's nearest-size search scans every key."""
        key = (op, rows, self.num_sms)
        path = self._paths.get(key)
        if path is None:
            sms = self.num_sms
            if self.nearest_sms:
                sms = self.table.nearest_sms(op, sms, self.total_sms, self.unit_sms)
            measured = self.table.lookup(op, (rows,), sms)
            path = measured or default_gemm_path(self.num_sms, self.total_sms, rows, self.unit_sms)
            if path == "cublaslt-sm-target" and (op, self.num_sms) in self.lt_failed:
                path = "cublas"
            allowed = self.allowed(rows)
            self._paths[key] = path = path if path in allowed else allowed[0]
        return path

    def allowed(self, rows: int) -> tuple[str, ...]:
        """The paths that may run `rows` rows on the current partition (`min_rows`; the
        calibrator's `paths` already left out those that hang on every size)."""
        if self.num_sms >= self.total_sms:
            return self.paths
        ok = tuple(p for p in self.paths if rows >= self.min_rows.get(p, 0))
        return ok or ("triton-persistent",)

    def run(self, op: str, x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """out = x @ w^T on the current partition by the path chosen for (op, rows, SMs)."""
        return self.launch(self.path_for(op, x.shape[0]), x, w, out)

    def avoid_lt(self, op: str, num_sms: int) -> None:
        """Run `op` on `num_sms` SMs with plain cuBLAS from now on: cuBLASLt with the SM
        target failed there (torch then falls back to an unfused cuBLAS GEMM + bias add with
        a warning; see `selection.lt_failures`)."""
        self.lt_failed.add((op, num_sms))
        self._paths.clear()

    def paths_used(self) -> dict[str, int]:
        """{path: distinct (op, rows, SMs) keys answered with it so far}."""
        out: dict[str, int] = {}
        for path in self._paths.values():
            out[path] = out.get(path, 0) + 1
        return dict(sorted(out.items()))

    def launch(self, path: str, x: torch.Tensor, w: torch.Tensor, out: torch.Tensor):
        if path == "cublas" or (path == "cublaslt-sm-target" and x.shape[0] < 2):
            return torch.mm(x, self._t(w), out=out)
        if path == "cublaslt-sm-target":
            carve = self.total_sms - self.num_sms
            if carve <= 0:  # the whole GPU: no target to set (it is cleared after each use)
                return torch.addmm(self._zero_bias(w), x, self._t(w), out=out)
            torch._C._set_sm_carveout_experimental(carve)
            try:
                return torch.addmm(self._zero_bias(w), x, self._t(w), out=out)
            finally:
                torch._C._set_sm_carveout_experimental(None)
        if path == "triton-persistent":
            return persistent_matmul(x, w, out, self.num_sms)
        if path == EXPERIMENTAL_SKINNY:
            from bulletsim.gpu.triton_skinny import skinny_matmul

            return skinny_matmul(x, w, out, self.num_sms)
        raise ValueError(f"unknown GEMM path {path!r}; valid: {GEMM_PATHS}")

    def _t(self, w: torch.Tensor) -> torch.Tensor:
        """w.t(), made once per weight (a view costs ~1-2 us of host time per call; the entry
        keeps `w` alive, so its id is not reused while the entry exists)."""
        if not self.cache_transposes:
            return w.t()
        entry = self._wt.get(id(w))
        if entry is None:
            entry = self._wt[id(w)] = (w, w.t())
        return entry[1]

    def _zero_bias(self, w: torch.Tensor) -> torch.Tensor:
        key = (w.shape[0], w.dtype)
        if key not in self._bias:
            self._bias[key] = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
        return self._bias[key]

    # -- choosing ----------------------------------------------------------------------------
    def select(
        self, op: str, x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, stream, reps: int = 3
    ) -> str:
        """Time every path for (op, rows, current SMs) on `stream`; record and return the
        fastest correct one (ties within noise go to the default rule)."""
        rows = x.shape[0]
        existing = self.table.get(op, (rows,), self.num_sms)
        if existing is not None:
            return existing.kernel
        check_rows = slice(0, min(rows, 64))
        times: dict[str, float | None] = {}
        errs: dict[str, float | None] = {}
        with torch.cuda.stream(stream):
            ref = x[check_rows].float() @ w.float().t()
            for path in self.allowed(rows):
                try:
                    out.fill_(float("nan"))
                    self.launch(path, x, w, out)
                    stream.synchronize()
                    errs[path] = _rel_err(out[check_rows], ref)
                    times[path] = _median_ms(lambda p=path: self.launch(p, x, w, out), reps)
                except Exception:  # noqa: BLE001 - a path that cannot run this shape is skipped
                    times[path], errs[path] = None, None
        default = default_gemm_path(self.num_sms, self.total_sms, rows, self.unit_sms)
        allowed = self.allowed(rows)
        default = default if default in allowed else allowed[0]
        chosen = pick(times, errs, default)
        self.table.record(op, (rows,), self.num_sms, Choice(chosen, times, errs, default))
        self._paths.clear()
        return chosen


def _median_ms(fn, reps: int) -> float:
    """Median of `reps` event-timed calls after a warm-up, on the current stream."""
    fn()
    evs = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
    evs[0].record()
    for i in range(reps):
        fn()
        evs[i + 1].record()
    evs[-1].synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in zip(evs, evs[1:], strict=False))


def _rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out = out.double()
    if not torch.isfinite(out).all():
        return float("inf")
    ref = ref.double()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))
