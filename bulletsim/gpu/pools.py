"""`make_pool(mechanism)`: the partition pool for one of `bulletsim.hardware.MECHANISMS`.

The only module that knows every mechanism's pool, so that `partition.py` (the interface)
imports none of them and none of them import each other.
"""

from __future__ import annotations

from bulletsim.gpu.partition import FullDevicePool, PartitionPool
from bulletsim.hardware import GPUSpec, resolve_mechanism


def make_pool(
    mechanism: str, gpu: GPUSpec | None = None, libsmctrl_path: str | None = None
) -> PartitionPool:
    """Build the pool for `mechanism` on `gpu` (its spec sets the green-context granularity).

    `mechanism`: any name of the one alias table (`hardware.resolve_mechanism`). Raises
    ValueError for an unknown mechanism (naming the valid ones); the mechanism's own error
    (`LibsmctrlUnavailable`, RuntimeError for MPS without a daemon) when it is absent."""
    mechanism = resolve_mechanism(mechanism)
    if mechanism == "green-ctx":
        from bulletsim.gpu.green import GreenContextPool

        return GreenContextPool(gpu)
    if mechanism == "libsmctrl":
        from bulletsim.gpu.libsmctrl import LibsmctrlPool

        return LibsmctrlPool(libsmctrl_path)
    if mechanism == "mps":
        from bulletsim.gpu.mps import MpsPool

        return MpsPool()
    return FullDevicePool()
