"""How many SMs a lane's launch of n SMs really gets on green contexts: the one rule that both
the GPU engine (`live.gpu.lanes.LanePartitions`) and the fake executor use, so a fake run
records the partitions a GPU run would.

The decode lane runs on a split's *group*: the policy's count rounded up to a multiple of
`GRANULE`, at most `max_split`. The prefill lane runs on a split's *remainder*: total - s
SMs for the smallest split s (a multiple of `GRANULE`, >= `GRANULE`, <= `max_split`) that
leaves no more than the policy's count, so it is the largest remainder within that count.
A lane asking for the whole GPU gets it. E.g. on 132 SMs PDMux's (112, 20) runs as
prefill 108 (remainder of the 24 split), decode 24; (72, 60) as 68 and 64.
`launch_sms` applies it by mechanism (the simulator and the fake executor call it).
Pure (no torch): the GPU module imports torch, this one must not.
"""

from __future__ import annotations

from bulletsim.partitioning import keeps_partition

GRANULE = 8  # green-context SM granularity on Hopper (DESIGN.md)
# cuBLAS GEMMs of a decode step (8 rows) failed with CUBLAS_STATUS_EXECUTION_FAILED on split
# remainders (4 and 12 SMs) on the H200 (2026-11-30 smoke runs), while the calibrator ran them
# on groups: decode takes groups, prefill remainders, and splits stop at 120 (>= 12 SMs).
MIN_REMAINDER_SMS = 12


def max_split(total_sms: int) -> int:
    """The largest group a split makes: the rest keeps >= MIN_REMAINDER_SMS SMs."""
    return (total_sms - MIN_REMAINDER_SMS) // GRANULE * GRANULE


def green_lane_sms(lane: str, sms: int, total_sms: int) -> tuple[int, str]:
    """(physical SMs, partition key) of a launch asking for `sms` SMs on `lane` ("decode":
    a group "g<n>"; any other lane: a remainder "r<s>"; `sms >= total_sms`: "full-<lane>")."""
    if sms >= total_sms:
        return total_sms, f"full-{lane}"
    top, g = max_split(total_sms), GRANULE
    if lane == "decode":
        n = min(top, -(-sms // g) * g)
        return n, f"g{n}"
    s = min(top, max(g, -(-(total_sms - sms) // g) * g))
    return total_sms - s, f"r{s}"


def launch_sms(mechanism: str | None, lane: str, sms: int, total_sms: int) -> int:
    """SMs a launch asking for `sms` on `lane` physically runs on under `mechanism`: green-ctx
    maps it to the partition the GPU engine makes (`green_lane_sms`, the engine's and the
    fake executor's rule); single-lane work ("main") and other mechanisms
    get what they asked for."""
    if lane == "main" or not keeps_partition(mechanism):
        return sms
    return green_lane_sms(lane, sms, total_sms)[0]
