"""SM partitions: the interface every mechanism implements.

A `Partition` is a stream whose launches run on a known set of SMs. A `PartitionPool` hands
out a partition of a requested size, or a *disjoint pair* (n SMs + the rest) for co-runs.
Mechanisms (`bulletsim.hardware.MECHANISMS`): `green.GreenContextPool` ("green-ctx"),
`libsmctrl.LibsmctrlPool`, `mps.MpsPool`, and `FullDevicePool` here ("none"); `pools.make_pool`
builds one by name. This module imports none of them (no import cycle) and imports torch
only inside `FullDevicePool`, so it imports anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Partition:
    """A stream restricted to `num_sms` SMs (`sm_ids` is filled in by the probe)."""

    name: str
    num_sms: int
    stream: Any  # torch.cuda.Stream (or ExternalStream of a green context)
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
