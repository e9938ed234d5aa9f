"""libsmctrl TPC stream masks, loaded from a user-built `libsmctrl.so` through ctypes.

libsmctrl (Bakita et al.) is not vendored: it carries no licence. Build it yourself and pass
its path with `--libsmctrl PATH` or `LIBSMCTRL_PATH`. What depends on the CUDA version:
- the global mask works only up to CUDA 12.6 in libsmctrl, so only *stream* masks are used;
- GPUs with more than 64 TPCs (H100/H200: 66) need `libsmctrl_set_stream_mask_ext`, whose mask
  is an `unsigned __int128`; on x86-64 SysV that travels in two consecutive 64-bit registers
  (low, high), which ctypes can express as two uint64 arguments;
- the stream-struct offset libsmctrl patches is chosen by libsmctrl from the driver version
  (DESIGN.md: it works on driver 580 / CUDA 13.0); we record the driver version per sample.
A set mask bit *disables* a TPC. Masked cuBLAS GEMMs have been seen to hang, so every sample
under this mechanism runs under `bulletsim.gpu.watchdog.Watchdog`.
The loader is plain ctypes (no torch), so it fails cleanly on machines without the library.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

from bulletsim.gpu.partition import Partition, PartitionPool

ENV_VAR = "LIBSMCTRL_PATH"


class LibsmctrlUnavailable(RuntimeError):
    """libsmctrl.so could not be found or lacks the symbols we need."""


@dataclass(frozen=True, slots=True)
class Libsmctrl:
    lib: ctypes.CDLL
    path: str
    has_ext: bool

    def set_stream_mask(self, stream_handle: int, disabled_tpcs: int) -> None:
        """Disable the TPCs whose bits are set in `disabled_tpcs` for launches on the stream."""
        if disabled_tpcs >> 64:
            if not self.has_ext:
                raise LibsmctrlUnavailable(
                    f"{self.path} has no libsmctrl_set_stream_mask_ext; needed for > 64 TPCs"
                )
            lo, hi = disabled_tpcs & (2**64 - 1), disabled_tpcs >> 64
            self.lib.libsmctrl_set_stream_mask_ext(ctypes.c_void_p(stream_handle), lo, hi)
        elif self.has_ext:
            self.lib.libsmctrl_set_stream_mask_ext(ctypes.c_void_p(stream_handle), disabled_tpcs, 0)
        else:
            self.lib.libsmctrl_set_stream_mask(ctypes.c_void_p(stream_handle), disabled_tpcs)

    def num_tpcs(self, device: int = 0) -> int:
        n = ctypes.c_uint32(0)
        err = self.lib.libsmctrl_get_tpc_info_cuda(ctypes.byref(n), device)
        if err != 0:
            raise LibsmctrlUnavailable(f"libsmctrl_get_tpc_info_cuda failed with {err}")
        return int(n.value)


def find_libsmctrl(path: str | os.PathLike | None = None) -> Path:
    """Resolve the library path from the argument, then $LIBSMCTRL_PATH; never a default."""
    chosen = path or os.environ.get(ENV_VAR)
    if not chosen:
        raise LibsmctrlUnavailable(
            f"libsmctrl not configured: pass --libsmctrl PATH or set {ENV_VAR} to your "
            "user-built libsmctrl.so (it is not vendored)"
        )
    p = Path(chosen).expanduser()
    if not p.is_file():
        raise LibsmctrlUnavailable(f"libsmctrl library not found at {p}")
    return p


def load_libsmctrl(path: str | os.PathLike | None = None) -> Libsmctrl:
    """Load libsmctrl.so; raises `LibsmctrlUnavailable` with a one-line reason otherwise."""
    p = find_libsmctrl(path)
    try:
        lib = ctypes.CDLL(str(p))
    except OSError as e:
        raise LibsmctrlUnavailable(f"cannot load {p}: {e}") from None
    if not hasattr(lib, "libsmctrl_set_stream_mask"):
        raise LibsmctrlUnavailable(f"{p} does not export libsmctrl_set_stream_mask")
    lib.libsmctrl_set_stream_mask.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    lib.libsmctrl_set_stream_mask.restype = None
    has_ext = hasattr(lib, "libsmctrl_set_stream_mask_ext")
    if has_ext:
        # unsigned __int128 = two consecutive integer registers (low, high) on x86-64 SysV.
        lib.libsmctrl_set_stream_mask_ext.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint64,
            ctypes.c_uint64,
        ]
        lib.libsmctrl_set_stream_mask_ext.restype = None
    if hasattr(lib, "libsmctrl_get_tpc_info_cuda"):
        lib.libsmctrl_get_tpc_info_cuda.argtypes = [ctypes.POINTER(ctypes.c_uint32), ctypes.c_int]
        lib.libsmctrl_get_tpc_info_cuda.restype = ctypes.c_int
    return Libsmctrl(lib, str(p), has_ext)


def tpc_mask_for(first_tpc: int, num_tpcs: int, total_tpcs: int) -> int:
    """Disabled-TPC bitmask that leaves TPCs [first_tpc, first_tpc + num_tpcs) enabled."""
    assert 0 <= first_tpc and first_tpc + num_tpcs <= total_tpcs
    enabled = ((1 << num_tpcs) - 1) << first_tpc
    return ((1 << total_tpcs) - 1) & ~enabled


class LibsmctrlPool(PartitionPool):
    """Partitions as TPC-masked torch streams: n SMs = TPCs [0, n/2), complement = the rest."""

    mechanism = "libsmctrl"

    def __init__(self, path: str | None = None, sms_per_tpc: int = 2) -> None:
        import torch

        self.lib = load_libsmctrl(path)
        props = torch.cuda.get_device_properties(0)
        total_tpcs = (
            self.lib.num_tpcs()
            if hasattr(self.lib.lib, "libsmctrl_get_tpc_info_cuda")
            else props.multi_processor_count // sms_per_tpc
        )
        super().__init__(total_tpcs * sms_per_tpc, sms_per_tpc)
        full = Partition("full", self.total_sms, torch.cuda.Stream(), self.mechanism)
        self._single[self.total_sms] = full
        # Pairs at every even TPC count; a stream per partition, masked once.
        for tpcs in range(1, total_tpcs):
            low = self._masked(torch, 0, tpcs, total_tpcs, sms_per_tpc)
            high = self._masked(torch, tpcs, total_tpcs - tpcs, total_tpcs, sms_per_tpc)
            self._single.setdefault(low.num_sms, low)
            self._pairs[low.num_sms] = (low, high)

    def _masked(self, torch, first: int, count: int, total: int, sms_per_tpc: int) -> Partition:
        stream = torch.cuda.Stream()
        self.lib.set_stream_mask(stream.cuda_stream, tpc_mask_for(first, count, total))
        return Partition(f"t{first}+{count}", count * sms_per_tpc, stream, self.mechanism)
