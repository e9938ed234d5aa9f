"""How a run partitions SMs: a mechanism's name -> its granularity and re-partition cost.

One resolution path for every command (`run`, `sweep`, `live`, `calibrate`, config files and
`--set`): names go through `hardware.resolve_mechanism` (one alias table), and
`resolve_partitioning` turns (mechanism, GPU) into a `Partitioning` whose re-partition cost
names its source. A cost is *measured* (on this GPU, by us), *paper* (the Bullet paper's
A100 figure), *derived* (another GPU's measurement borrowed, said so), *by-construction*
(green contexts: pre-made pairs, nothing to change at a re-partition), *no-partitions*
(`none`) or *given* (`bullet.remask_us` set by the user).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bulletsim.hardware import (
    GPUSpec,
    min_partition_sms,
    partition_unit_sms,
    resolve_mechanism,
)

COST_KINDS = ("measured", "paper", "derived", "by-construction", "no-partitions", "given")

_H200 = "results/mechanisms-h200, section 3"
# (mechanism, GPU) -> (microseconds of host time per re-partition, kind, source). Only these
# pairs were measured; any other GPU borrows the H200 figure (`derived`). libsmctrl: the
# ctypes call alone took 1.02 us. mps: a percentage is fixed when a context is created, so
# partitions are contexts made up front with an SM-count execution affinity (`cuCtxCreate_v3`,
# 85-148 ms each) and a re-partition switches context (0.29-0.61 us; a new context instead
# took 88-228 ms).
MEASURED_COST_US: dict[tuple[str, str], tuple[float, str, str]] = {
    ("libsmctrl", "h200"): (
        1.54,
        "measured",
        "H200, driver 580: launches after a mask change vs with a constant mask, median of "
        f"5 x 2000 ({_H200})",
    ),
    ("libsmctrl", "a100"): (4.1, "paper", "Bullet paper (arXiv 2504.19516), on an A100"),
    ("mps", "h200"): (
        0.47,
        "measured",
        "H200, driver 580: switches to a pre-made MPS context with an SM affinity, median of "
        f"2 x 2000 in each of 6 clients ({_H200})",
    ),
}
_DERIVED_FROM = "h200"  # the GPU whose measurements other GPUs borrow


@dataclass(frozen=True, slots=True)
class Partitioning:
    """How a policy's lanes get SMs on one GPU.

    mechanism: a `hardware.MECHANISMS` name; unit_sms / min_sms: partition step and smallest
    partition (SMs); remask_us: host cost of one re-partition (microseconds) with its
    `remask_kind` (one of COST_KINDS) and `remask_source` (one line); fixed: True when the
    policy's design fixes the mechanism (static-split, pdmux), False when it is a parameter.
    """

    mechanism: str
    unit_sms: int
    min_sms: int
    remask_us: float
    remask_kind: str
    remask_source: str
    fixed: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """`partitions: libsmctrl, 2-SM steps; re-partition 1.54 us (measured: ...)`."""
        how = "fixed by the policy" if self.fixed else "bullet.mechanism"
        if self.mechanism == "none":
            return f"partitions: none ({how}): a lane gets the whole GPU or nothing"
        return (
            f"partitions: {self.mechanism} ({how}), {self.unit_sms}-SM steps, at least "
            f"{self.min_sms}; re-partition {self.remask_us:g} us ({self.remask_kind}: "
            f"{self.remask_source})"
        )


def remask_cost(mechanism: str, gpu: GPUSpec | None) -> tuple[float, str, str]:
    """(us, kind, source) of one re-partition under `mechanism` on `gpu` (None: unknown GPU).

    ValueError (valid names listed) for an unknown mechanism."""
    m = resolve_mechanism(mechanism)
    if m == "green-ctx":
        why = "pre-made green-context pairs: a re-partition launches on the other pair's streams"
        return 0.0, "by-construction", why
    if m == "none":
        return 0.0, "no-partitions", "no partitions to change"
    name = gpu.name if gpu is not None else None
    if (m, name) in MEASURED_COST_US:
        return MEASURED_COST_US[(m, name)]
    us, _, _ = MEASURED_COST_US[(m, _DERIVED_FROM)]
    where = f"on {name}" if name else "on this (unnamed) GPU"
    return (
        us,
        "derived",
        f"the {_DERIVED_FROM.upper()} measurement, not measured {where}",
    )


def resolve_partitioning(
    mechanism: str,
    gpu: GPUSpec | None,
    total_sms: int,
    remask_us: float | None = None,
    *,
    fixed: bool = False,
) -> Partitioning:
    """The `Partitioning` of `mechanism` (any alias) on `gpu`; `remask_us` (not None) replaces
    the table's cost and is labelled `given`. ValueError for an unknown mechanism."""
    m = resolve_mechanism(mechanism)
    us, kind, source = remask_cost(m, gpu)
    if remask_us is not None:
        us, kind, source = remask_us, "given", f"set by bullet.remask_us (the table's: {us:g} us)"
    return Partitioning(
        mechanism=m,
        unit_sms=partition_unit_sms(m, gpu, total_sms),
        min_sms=min_partition_sms(m, gpu, total_sms),
        remask_us=float(us),
        remask_kind=kind,
        remask_source=source,
        fixed=fixed,
    )


def keeps_partition(mechanism: str | None) -> bool:
    """Whether a launched step keeps the SMs it started on until it ends (True for green-ctx).

    Green contexts (the live engine's mechanism): a decode step is one CUDA graph and an eager
    prefill window is enqueued on one green-context stream, so a re-split reaches a running
    lane only at its next step or window; the other lane's new work starts at once on its own
    partition beside it (the two may hold more than the GPU until the running step ends).
    libsmctrl and mps re-partition per kernel launch (a new TPC mask or MPS context for the
    next kernel, within microseconds), the paper's model: the simulator shrinks a running
    lane at once. `none` (temporal sharing) never runs two lanes at once. Any alias accepted;
    None (no partitions): False."""
    return mechanism is not None and resolve_mechanism(mechanism) == "green-ctx"


# What a profile measured under one mechanism gets wrong for a run partitioned by another
# (results/mechanisms-h200, sections 5 and 6).
_CAVEATS: dict[tuple[str, str], str] = {
    ("libsmctrl", "green-ctx"): "kernels that cannot run under TPC masks (cuBLAS decode GEMMs "
    "hang on small masks, no cuBLASLt SM target) are priced as green contexts run them; on the "
    "H200 libsmctrl decode steps measured 1.27x slower on partitions: optimistic for libsmctrl",
    ("mps", "green-ctx"): "the profile carries no MPS co-run interference (decode 1.52x beside "
    "prefill under MPS caps, 1.22x under masks): an upper bound for MPS",
    ("mps", "libsmctrl"): "the profile carries no MPS co-run interference beyond two masked "
    "streams': an upper bound for MPS",
    ("green-ctx", "libsmctrl"): "decode GEMMs are priced with the kernels that run under TPC "
    "masks (1.1-2.1x slower than green's on the H200): pessimistic for green contexts",
}


def mechanism_caveat(run_mechanism: str | None, profile_mechanism: str | None) -> str | None:
    """One line when a run partitioned by `run_mechanism` is priced by a profile measured
    under `profile_mechanism`; None when they agree, the run has no partitions, or the
    latency model is not a profile (None)."""
    if run_mechanism in (None, "none") or profile_mechanism is None:
        return None
    run_m, prof_m = resolve_mechanism(run_mechanism), resolve_mechanism(profile_mechanism)
    if run_m == prof_m:
        return None
    why = _CAVEATS.get((run_m, prof_m), "per-op times differ between mechanisms")
    return (
        f"caveat: the run partitions SMs with {run_m} but its latency profile was measured "
        f"under {prof_m}: {why} (results/mechanisms-h200/README.md)"
    )
