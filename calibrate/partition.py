"""SM partitions: one interface, three mechanisms.

A `Partition` is a stream whose launches run on a known set of SMs. A `PartitionPool` hands
out a partition of a requested size, or a *disjoint pair* (n SMs + the rest) for co-runs:
- `GreenContextPool` (default, official CUDA >= 12.4): for every split size at the device's
  granularity, ONE `cuDevSmResourceSplitByCount` call yields a group and its remainder, and a
  green context + stream is made from each, up front (creating one costs 1-2 ms; switching
  between pre-created ones is free). Contexts made by separate splits would overlap (each
  starts at SM 0), which is why pairs always come from one split.
- `LibsmctrlPool` (calibrate/libsmctrl.py): TPC stream masks, free to change per launch.
- `MpsPool` (calibrate/mps.py): a per-process active-thread cap, for the two-process layout.
- `FullDevicePool`: no partitioning (mechanism "none"): every request gets all SMs.
torch and cuda.bindings are imported inside the pools, so this module imports anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Partition:
    """A stream restricted to `num_sms` SMs (`sm_ids` is filled in by the probe)."""

    name: str
    num_sms: int
    stream: Any  # torch.cuda.Stream
    mechanism: str
    sm_ids: list[int] = field(default_factory=list)


class PartitionPool:
    """Base: subclasses fill `_single` (size -> partition) and `_pairs` (size -> pair)."""

    mechanism = "none"

    def __init__(self, total_sms: int, granularity: int) -> None:
        self.total_sms = total_sms
        self.granularity = granularity
        self._single: dict[int, Partition] = {}
        self._pairs: dict[int, tuple[Partition, Partition]] = {}

    def sizes(self) -> list[int]:
        """SM counts a single partition can have."""
        return sorted(self._single)

    def pair_sizes(self) -> list[int]:
        """n such that `pair(n)` gives n SMs + a disjoint complement."""
        return sorted(self._pairs)

    def get(self, num_sms: int) -> Partition:
        if num_sms not in self._single:
            raise ValueError(
                f"{self.mechanism}: no partition of {num_sms} SMs; valid: {self.sizes()}"
            )
        return self._single[num_sms]

    def pair(self, num_sms: int) -> tuple[Partition, Partition]:
        if num_sms not in self._pairs:
            raise ValueError(
                f"{self.mechanism}: no disjoint pair with {num_sms} SMs; valid: {self.pair_sizes()}"
            )
        return self._pairs[num_sms]

    def describe(self) -> dict:
        return {
            "mechanism": self.mechanism,
            "granularity_sms": self.granularity,
            "total_sms": self.total_sms,
            "sizes": self.sizes(),
            "pair_sizes": self.pair_sizes(),
        }


class FullDevicePool(PartitionPool):
    """Mechanism "none": one partition, the whole GPU, on an ordinary torch stream."""

    mechanism = "none"

    def __init__(self) -> None:
        import torch

        props = torch.cuda.get_device_properties(0)
        super().__init__(props.multi_processor_count, props.multi_processor_count)
        full = Partition("full", self.total_sms, torch.cuda.Stream(), self.mechanism)
        self._single[self.total_sms] = full


def _check(result):
    from cuda.bindings import driver

    err, *rest = result
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        raise RuntimeError(f"CUDA driver call failed: {name.decode() if name else err}")
    return rest[0] if len(rest) == 1 else rest


class GreenContextPool(PartitionPool):
    """Disjoint green-context pairs, one split per size, all created at construction."""

    mechanism = "green"

    def __init__(self, granularity: int | None = None, device: int = 0) -> None:
        import torch
        from cuda.bindings import driver

        torch.cuda.init()
        # Make torch's own stream pool in the primary context *before* any green context
        # exists (DESIGN.md: torch's pool binds to whatever context is current at first use).
        self._full_stream = torch.cuda.Stream()
        props = torch.cuda.get_device_properties(device)
        if granularity is None:
            granularity = 8 if props.major >= 9 else 2
        super().__init__(props.multi_processor_count, granularity)
        self._driver = driver
        _check(driver.cuInit(0))
        self._dev = _check(driver.cuDeviceGet(device))
        self._resource = _check(
            driver.cuDeviceGetDevResource(
                self._dev, driver.CUdevResourceType.CU_DEV_RESOURCE_TYPE_SM
            )
        )
        self._keep = []  # contexts and raw streams: keep alive for the process lifetime
        full = Partition("full", self.total_sms, self._full_stream, self.mechanism)
        self._single[self.total_sms] = full
        min_sms = max(granularity, 8 if props.major >= 9 else 4)
        for n in range(min_sms, self.total_sms, granularity):
            group, rest = self._split(n)
            if group is None:
                continue
            self._pairs[n] = (group, rest)
            self._single.setdefault(group.num_sms, group)
            if rest.num_sms > 0:
                self._single.setdefault(rest.num_sms, rest)
                self._pairs.setdefault(rest.num_sms, (rest, group))

    def _split(self, n: int) -> tuple[Partition | None, Partition | None]:
        d = self._driver
        groups, _, remaining = _check(d.cuDevSmResourceSplitByCount(1, self._resource, 0, n))
        group = groups[0]
        if group.sm.smCount != n or remaining.sm.smCount <= 0:
            return None, None
        return self._make(group, f"g{n}"), self._make(remaining, f"r{remaining.sm.smCount}")

    def _make(self, resource, name: str) -> Partition:
        d = self._driver
        desc = _check(d.cuDevResourceGenerateDesc([resource], 1))
        gctx = _check(
            d.cuGreenCtxCreate(
                desc, self._dev, d.CUgreenCtxCreate_flags.CU_GREEN_CTX_DEFAULT_STREAM
            )
        )
        raw = _check(d.cuGreenCtxStreamCreate(gctx, d.CUstream_flags.CU_STREAM_NON_BLOCKING, 0))
        self._keep.append((gctx, raw))
        import torch

        stream = torch.cuda.ExternalStream(int(raw))
        return Partition(name, int(resource.sm.smCount), stream, self.mechanism)


def make_pool(mechanism: str, libsmctrl_path: str | None = None) -> PartitionPool:
    """Build the partition pool for `mechanism` (green | libsmctrl | mps | none)."""
    if mechanism == "green":
        return GreenContextPool()
    if mechanism == "none":
        return FullDevicePool()
    if mechanism == "libsmctrl":
        from calibrate.libsmctrl import LibsmctrlPool

        return LibsmctrlPool(libsmctrl_path)
    if mechanism == "mps":
        from calibrate.mps import MpsPool

        return MpsPool()
    raise ValueError(f"unknown mechanism {mechanism!r}; valid: green, libsmctrl, mps, none")
