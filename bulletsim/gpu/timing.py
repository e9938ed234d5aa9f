"""GPU timing per METHOD: CUDA events, warm-up, median of repeats, clocks recorded.

`time_kernels` runs a list of kernels (a layer, a step) and returns each kernel's own time
from events recorded between kernels, plus the whole span. A spin kernel queued first holds
the stream while Python enqueues the rest, so small kernels run back to back and the events
measure GPU time, not launch gaps. GPU-only module.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import time
from collections import defaultdict

import torch

SPIN_CYCLES_PER_US = 1980  # torch.cuda._sleep counts SM cycles; ~1.98 GHz under load


def bench_ms(fn, warmup: int = 3, reps: int = 10) -> float:
    """Median milliseconds of `fn` on the current stream (events around each call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def spin(us: float) -> None:
    if us > 0:
        torch.cuda._sleep(int(us * SPIN_CYCLES_PER_US))


class KernelTimes:
    """Per-op durations (ms) gathered over passes, and each pass's whole span."""

    def __init__(self) -> None:
        self.per_op: dict[str, list[float]] = defaultdict(list)
        self.spans_ms: list[float] = []
        self.enqueue_us = 0.0

    def op_ms(self, op: str, per_pass: int) -> float:
        """Median time of one occurrence-group: `per_pass` occurrences make one instance."""
        vals = self.per_op[op]
        groups = [sum(vals[i : i + per_pass]) for i in range(0, len(vals), per_pass)]
        return statistics.median(groups)


def time_kernels(
    kernels,
    stream,
    passes: int,
    spin_us: float = 0.0,
    per_kernel: bool = True,
    out: KernelTimes | None = None,
) -> KernelTimes:
    """Run `kernels` `passes` times on `stream`; events between kernels when `per_kernel`."""
    out = out or KernelTimes()
    with torch.cuda.stream(stream):
        for _ in range(passes):
            n = len(kernels) + 1 if per_kernel else 2
            evs = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
            spin(spin_us)
            t0 = time.perf_counter()
            evs[0].record()
            for i, (_, fn) in enumerate(kernels):
                fn()
                if per_kernel:
                    evs[i + 1].record()
            if not per_kernel:
                evs[1].record()
            out.enqueue_us = max(out.enqueue_us, (time.perf_counter() - t0) * 1e6)
            evs[-1].synchronize()
            out.spans_ms.append(evs[0].elapsed_time(evs[-1]))
            if per_kernel:
                for i, (name, _) in enumerate(kernels):
                    out.per_op[name].append(evs[i].elapsed_time(evs[i + 1]))
    return out


def time_graph(graph, stream, reps: int, spin_us: float = 20.0) -> list[float]:
    """Milliseconds of each of `reps` back-to-back replays of a captured CUDA graph."""
    return enqueue_graph(graph, stream, reps, spin_us).durations_ms()


class Clocks:
    """SM / memory clock (MHz) through NVML via ctypes; None where NVML is unavailable.

    `index` is NVML's device number (PCI order, blind to CUDA_VISIBLE_DEVICES); `pci_bus_id`
    ("00000000:19:00.0"), when given, names the device instead (`of_cuda_device`); neither:
    no device, every clock None."""

    def __init__(self, index: int | None = 0, pci_bus_id: str | None = None) -> None:
        self._nvml = None
        if index is None and pci_bus_id is None:
            return
        try:
            lib = ctypes.CDLL("libnvidia-ml.so.1")
            if lib.nvmlInit_v2() != 0:
                return
            handle = ctypes.c_void_p()
            if pci_bus_id is not None:
                bus = pci_bus_id.encode()
                if lib.nvmlDeviceGetHandleByPciBusId_v2(bus, ctypes.byref(handle)) != 0:
                    return
            elif lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                return
            self._nvml, self._handle = lib, handle
        except OSError:
            return

    @classmethod
    def of_cuda_device(cls, device: int = 0) -> Clocks:
        """Clocks of CUDA device `device` (torch's numbering), found in NVML by its PCI bus id:
        under CUDA_VISIBLE_DEVICES the two numberings differ. A torch without the PCI fields
        gets NVML device `device` when CUDA_VISIBLE_DEVICES is unset, else no clocks (None)
        rather than another GPU's."""
        p = torch.cuda.get_device_properties(device)
        ids = [getattr(p, f"pci_{k}_id", None) for k in ("domain", "bus", "device")]
        if all(isinstance(i, int) for i in ids):
            return cls(pci_bus_id=f"{ids[0]:08x}:{ids[1]:02x}:{ids[2]:02x}.0")
        return cls(device if os.environ.get("CUDA_VISIBLE_DEVICES") is None else None)

    def _clock(self, kind: int) -> int | None:
        if self._nvml is None:
            return None
        mhz = ctypes.c_uint()
        if self._nvml.nvmlDeviceGetClockInfo(self._handle, kind, ctypes.byref(mhz)) != 0:
            return None
        return int(mhz.value)

    def sm_mhz(self) -> int | None:
        return self._clock(1)  # NVML_CLOCK_SM

    def mem_mhz(self) -> int | None:
        return self._clock(2)  # NVML_CLOCK_MEM

    def driver_version(self) -> str | None:
        if self._nvml is None:
            return None
        buf = ctypes.create_string_buffer(96)
        if self._nvml.nvmlSystemGetDriverVersion(buf, 96) != 0:
            return None
        return buf.value.decode()


class Pending:
    """Events of work enqueued but not yet waited for (so two streams can overlap)."""

    def __init__(self, events, names=None) -> None:
        self.events, self.names = events, names

    def durations_ms(self) -> list[float]:
        self.events[-1].synchronize()
        return [a.elapsed_time(b) for a, b in zip(self.events, self.events[1:], strict=False)]


def enqueue_graph(graph, stream, reps: int, spin_us: float = 0.0) -> Pending:
    with torch.cuda.stream(stream):
        evs = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
        spin(spin_us)
        evs[0].record()
        for i in range(reps):
            graph.replay()
            evs[i + 1].record()
    return Pending(evs)


def enqueue_kernels(kernels, stream, spin_us: float = 0.0) -> Pending:
    """Enqueue one pass of `kernels` with only start/end events."""
    with torch.cuda.stream(stream):
        evs = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
        spin(spin_us)
        evs[0].record()
        for _, fn in kernels:
            fn()
        evs[1].record()
    return Pending(evs)


def inside(victim: Pending, aggressor: Pending) -> list[float]:
    """Victim durations (ms) of the repeats that ran entirely while the aggressor ran."""
    agg_start, agg_end = aggressor.events[0], aggressor.events[-1]
    agg_end.synchronize()
    victim.events[-1].synchronize()
    out = []
    for a, b in zip(victim.events, victim.events[1:], strict=False):
        if agg_start.elapsed_time(a) >= 0 and b.elapsed_time(agg_end) >= 0:
            out.append(a.elapsed_time(b))
    return out
