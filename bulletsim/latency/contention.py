"""Interference between two lanes that run at the same time on (mostly) disjoint SM partitions.

SM partitioning isolates compute but not HBM bandwidth, L2 or NVLink, so a kernel slows down
while another partition is busy. The form, kept simple so a calibrated fit can replace the
three numbers (the calibrator measures co-run pairs on a grid of splits):

    share      = co_runner.num_sms / total_sms
    mem_factor = 1 + floor + mem_per_share * share       (memory-bound ops: GEMV, decode attn,
                                                          elementwise, all-reduce)
    cmp_factor = 1 + floor + compute_per_share * share   (compute-bound ops: prefill GEMMs,
                                                          prefill attention)

An op is memory- or compute-bound by which roofline limb binds it on its own partition, so a
decode (memory-bound almost everywhere) slows by ~mem_factor and a prefill by ~cmp_factor.
When the partitions overlap (the policy may briefly over-subscribe during a re-split, or run
both lanes on every SM in the naive-concurrency ablation), the shared SMs are time-sliced:
each lane keeps `overlap_share` of them. The co-runner's phase is not used yet: a decode
co-runner and a prefill co-runner of the same size cost the same until measurements say
otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from bulletsim.core import CoRunner, WorkShape


@dataclass(frozen=True, slots=True)
class ContentionParams:
    """Slowdown of one lane caused by the other; defaults are leads from DESIGN.md (H200)."""

    # Measured on the H200: disjoint partitions still interfere, +3..20% for co-running
    # copy/GEMM pairs. The floor is the low end (any co-runner at all).
    floor: float = 0.03
    # Chosen so a memory-bound op beside a co-runner holding ~75% of the SMs lands at the
    # measured +20% top end: 1 + 0.03 + 0.22 * 0.77 = 1.20.
    mem_per_share: float = 0.22
    # Bullet paper: prefill slows < 8% when it holds > 60% of SMs, i.e. co-runner share
    # < 0.4: 1 + 0.03 + 0.10 * 0.4 = 1.07.
    compute_per_share: float = 0.10
    # Even time-slicing of SMs both lanes hold (assumption; no measurement yet).
    overlap_share: float = 0.5

    def __post_init__(self) -> None:
        if min(self.floor, self.mem_per_share, self.compute_per_share) < 0:
            raise ValueError("contention factors must be >= 0")
        if not 0.0 < self.overlap_share <= 1.0:
            raise ValueError(f"overlap_share must be in (0, 1], got {self.overlap_share}")


def contention_factors(
    params: ContentionParams, num_sms: int, total_sms: int, co_runner: CoRunner
) -> tuple[float, float, int]:
    """(memory-bound factor, compute-bound factor, effective SMs) for a lane beside `co_runner`."""
    if co_runner.num_sms <= 0:
        return 1.0, 1.0, num_sms
    share = min(co_runner.num_sms, total_sms) / total_sms
    overlap = max(0, num_sms + co_runner.num_sms - total_sms)
    effective_sms = max(1, round(num_sms - overlap * (1.0 - params.overlap_share)))
    base = 1.0 + params.floor
    mem_factor = base + params.mem_per_share * share
    return mem_factor, base + params.compute_per_share * share, effective_sms


class ContendedPredict:
    """`predict` for a latency model that prices work as (memory-bound s, compute-bound s) on
    n SMs (`_parts(shape, n)`) plus fixed overheads (`_overhead(shape)`): alone, or beside a
    co-runner, whose contention factors scale the two parts and whose shared SMs shrink n.

    One implementation for the roofline and the calibrated profile. A subclass sets
    `total_sms`, `params.contention` and an empty dict `_factors` (the factors memo, keyed by
    (SMs, co-runner phase, co-runner SMs): a tuple of str and ints hashes in C, a CoRunner
    does not).
    """

    total_sms: int
    _factors: dict[tuple[int, str, int], tuple[float, float, int]]

    def _parts(self, shape: WorkShape, n: int) -> tuple[float, float]:
        raise NotImplementedError

    def _overhead(self, shape: WorkShape) -> float:
        raise NotImplementedError

    def predict(self, shape: WorkShape, num_sms: int, co_runner: CoRunner | None = None) -> float:
        """Seconds to run `shape` on `num_sms` SMs, alone or beside `co_runner`; 0 for no work.

        Raises ValueError unless 1 <= num_sms <= total_sms.
        """
        if not 0 < num_sms <= self.total_sms:
            raise ValueError(f"num_sms must be in 1..{self.total_sms}, got {num_sms}")
        if not (shape.prefill_tokens or shape.decode_tokens or shape.logits_tokens):
            return 0.0
        if co_runner is None:
            mem_s, cmp_s = self._parts(shape, num_sms)
            return mem_s + cmp_s + self._overhead(shape)
        key = (num_sms, co_runner.phase, co_runner.num_sms)
        factors = self._factors.get(key)
        if factors is None:
            factors = self._factors[key] = contention_factors(
                self.params.contention, num_sms, self.total_sms, co_runner
            )
        f_mem, f_cmp, eff_sms = factors
        mem_s, cmp_s = self._parts(shape, eff_sms)
        return f_mem * mem_s + f_cmp * cmp_s + self._overhead(shape)
