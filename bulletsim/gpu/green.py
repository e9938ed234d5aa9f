"""Green-context partitions (mechanism "green-ctx", official CUDA >= 12.4).

For every split size at the GPU's granularity (`bulletsim.hardware.partition_unit_sms`), ONE
`cuDevSmResourceSplitByCount` call yields a group and its remainder, and a green context +
stream is made from each, up front (creating one costs 1-2 ms; switching between pre-created
ones is free; the whole pool of 32 pairs took 0.18 s on the H200). Contexts made by separate
splits would overlap (each starts at SM 0), which is why pairs always come from one split.
torch and cuda.bindings are imported inside, so this module imports anywhere.
"""

from __future__ import annotations

from bulletsim.gpu.partition import Partition, PartitionPool
from bulletsim.hardware import GPUSpec, min_partition_sms, partition_unit_sms


def _check(result):
    from cuda.bindings import driver

    err, *rest = result
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        raise RuntimeError(f"CUDA driver call failed: {name.decode() if name else err}")
    return rest[0] if len(rest) == 1 else rest


class GreenContextPool(PartitionPool):
    """Disjoint green-context pairs, one split per size, all created at construction."""

    mechanism = "green-ctx"

    def __init__(self, gpu: GPUSpec | None = None, device: int = 0) -> None:
        import torch
        from cuda.bindings import driver

        torch.cuda.init()
        # Make torch's own stream pool in the primary context *before* any green context
        # exists (DESIGN.md: torch's pool binds to whatever context is current at first use).
        self._full_stream = torch.cuda.Stream()
        total = torch.cuda.get_device_properties(device).multi_processor_count
        super().__init__(total, partition_unit_sms(self.mechanism, gpu, total))
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
        min_sms = min_partition_sms(self.mechanism, gpu, total)
        for n in range(min_sms, self.total_sms, self.granularity):
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
