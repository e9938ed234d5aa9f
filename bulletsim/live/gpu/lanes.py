"""Which stream (and so which SMs) a lane's launch of n SMs runs on.

A single-lane policy runs on the whole GPU. Two lanes (Bullet) share it through green
contexts made by one `cuDevSmResourceSplitByCount` per size (`bulletsim.gpu.green`): the
decode lane runs on a split's *group* of n SMs (the policy's count rounded up to a multiple
of 8), the prefill lane on a split's *remainder* (132 - s SMs, the largest remainder within
the policy's count). Groups and remainders of different splits are disjoint whenever
n <= s, which holds whenever the policy's counts fit the GPU (checked with the `%smid`
probe by benchmarks/live_h200.py), so the lanes never share an SM unless one holds the whole
GPU (each lane has its own whole-GPU stream). Created before any green context exists.
"""

from __future__ import annotations

import torch

from bulletsim.live.green_lanes import green_lane_sms, max_split

LANES = ("main", "prefill", "decode")  # single-lane policies use "main"


class LanePartitions:
    def __init__(self, total_sms: int) -> None:
        self.total = total_sms
        self.max_split = max_split(total_sms)
        self.full_streams = {lane: torch.cuda.Stream() for lane in LANES}
        self.pool = None

    def enable_green(self, gpu) -> None:
        """Make the green-context pairs (once; 1-2 ms per context)."""
        if self.pool is None:
            from bulletsim.gpu.green import GreenContextPool

            self.pool = GreenContextPool(gpu)

    def stream(self, lane: str, sms: int):
        """(stream, physical SMs, key) for a launch of `sms` SMs on `lane`."""
        if self.pool is None or sms >= self.total:
            return self.full_streams[lane], self.total, f"full-{lane}"
        n, key = green_lane_sms(lane, sms, self.total)  # the rule the fake executor uses too
        if lane == "decode":
            group, _ = self.pool.pair(n)
            return group.stream, group.num_sms, key
        _, rest = self.pool.pair(self.total - n)
        return rest.stream, rest.num_sms, key

    def partitions(self, lane: str) -> list[tuple[str, object, int]]:
        """Every distinct (key, stream, SMs) a launch on `lane` can get."""
        seen: dict[str, tuple[str, object, int]] = {}
        for sms in range(1, self.total + 1):
            stream, phys, key = self.stream(lane, sms)
            seen.setdefault(key, (key, stream, phys))
        return list(seen.values())
