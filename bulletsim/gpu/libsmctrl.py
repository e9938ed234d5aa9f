"""libsmctrl TPC stream masks, loaded from a user-built `libsmctrl.so` through ctypes.

libsmctrl (Bakita et al.) is not vendored: it carries no licence. Build your checkout with
`bash native/build_libsmctrl.sh PATH` (it writes `libsmctrl.so` and a `libsmctrl.json`
manifest) and pass the library with `--libsmctrl PATH` or `LIBSMCTRL_PATH`. What depends on
the CUDA driver, and how this loader fails cleanly instead of letting libsmctrl end the process:
- stream masks are written into the driver's private stream struct at an offset that
  libsmctrl picks from `cuDriverGetVersion` (13000 = CUDA 13.0 / driver 580: offset 0x51c, a
  16-byte `{enabled, mask[4]}` block since CUDA 12.0). On any other version libsmctrl calls
  `error_at_line` and *exits the process*, so `load_libsmctrl` compares the driver's version
  with the versions the build knows (its manifest, read from the checkout's switch; else the
  x86-64 table of Bakita's libsmctrl below) and raises `LibsmctrlUnavailable` instead.
  libsmctrl's own `MASK_OFF` override (an offset search) lifts the check;
- GPUs with more than 64 TPCs (H100/H200: 66) need `libsmctrl_set_stream_mask_ext`, whose mask
  is an `unsigned __int128`: on x86-64 SysV it travels in two consecutive 64-bit registers
  (low, high), which ctypes expresses as two uint64 arguments. Other ABIs (aarch64 puts it in
  an even register pair) are refused. The 64-bit call of this fork disables TPCs >= 64;
- only stream masks are used (the global mask is a launch callback that, on Hopper's TMD
  V04_00, disables every TPC above 64 and indexes pre-floorsweeping units: DESIGN.md).
A set mask bit *disables* a TPC. Masked cuBLAS GEMMs have been seen to hang, so every sample
under this mechanism runs under `bulletsim.gpu.watchdog.Watchdog`.
The loader is plain ctypes (no torch), so it fails cleanly on machines without the library.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from bulletsim.gpu.partition import Partition, PartitionPool

ENV_VAR = "LIBSMCTRL_PATH"
MANIFEST = "libsmctrl.json"  # written beside libsmctrl.so by native/build_libsmctrl.sh
# cuDriverGetVersion values whose x86-64 stream-struct offset Bakita's libsmctrl knows
# (libsmctrl.c, `libsmctrl_set_stream_mask_ext`: CUDA 8.0 .. 13.0; 13.0 = driver 580).
KNOWN_DRIVER_VERSIONS_X86_64 = (
    (8000, 9000, 9010, 9020, 10000, 10010, 10020, 11000, 11010)
    + (11020, 11030, 11040, 11050, 11060, 11070, 11080, 12000, 12010, 12020)
    + (12030, 12040, 12050, 12060, 12070, 12080, 13000)
)
MAX_TPCS = 128  # the stream struct holds four 32-bit mask words


class LibsmctrlUnavailable(RuntimeError):
    """libsmctrl.so could not be found, lacks the symbols we need, or does not know this
    driver's stream layout."""


def _cuda_version_str(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


@dataclass(frozen=True, slots=True)
class Libsmctrl:
    lib: ctypes.CDLL
    path: str
    has_ext: bool
    driver_version: int | None = None  # cuDriverGetVersion, checked at load
    manifest: dict = field(default_factory=dict)

    def set_stream_mask(self, stream_handle: int, disabled_tpcs: int) -> None:
        """Disable the TPCs whose bits are set in `disabled_tpcs` for launches on the stream
        (`stream_handle`: a CUstream, e.g. `torch.cuda.Stream().cuda_stream`)."""
        if disabled_tpcs < 0 or disabled_tpcs >> MAX_TPCS:
            raise ValueError(f"TPC mask must fit in {MAX_TPCS} bits, got {disabled_tpcs:#x}")
        if not self.has_ext:
            if disabled_tpcs >> 64:
                raise LibsmctrlUnavailable(
                    f"{self.path} has no libsmctrl_set_stream_mask_ext; needed for > 64 TPCs"
                )
            self.lib.libsmctrl_set_stream_mask(ctypes.c_void_p(stream_handle), disabled_tpcs)
            return
        lo, hi = disabled_tpcs & (2**64 - 1), disabled_tpcs >> 64
        self.lib.libsmctrl_set_stream_mask_ext(ctypes.c_void_p(stream_handle), lo, hi)

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
            "user-built libsmctrl.so (it is not vendored; build it with "
            "`bash native/build_libsmctrl.sh YOUR_CHECKOUT`)"
        )
    p = Path(chosen).expanduser()
    if p.is_dir():
        hint = " (give the libsmctrl.so inside it)" if (p / "libsmctrl.so").is_file() else ""
        raise LibsmctrlUnavailable(
            f"libsmctrl library {p} is a folder, not a file{hint}; pass the path of your "
            "user-built libsmctrl.so (native/build_libsmctrl.sh prints it)"
        )
    if not p.is_file():
        raise LibsmctrlUnavailable(f"libsmctrl library not found at {p}")
    return p


def read_manifest(lib_path: Path) -> dict:
    """The build manifest beside the library ({} when the library was built by hand)."""
    m = lib_path.parent / MANIFEST
    if not m.is_file():
        return {}
    try:
        doc = json.loads(m.read_text())
    except json.JSONDecodeError as e:
        raise LibsmctrlUnavailable(f"unreadable build manifest {m}: {e}") from None
    return doc if isinstance(doc, dict) else {}


def cuda_driver_version() -> int:
    """`cuDriverGetVersion` of the installed driver (e.g. 13000); needs no CUDA context."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        raise LibsmctrlUnavailable("no NVIDIA driver (libcuda.so.1) on this machine") from None
    v = ctypes.c_int(0)
    err = cuda.cuDriverGetVersion(ctypes.byref(v))
    if err != 0:
        raise LibsmctrlUnavailable(f"cuDriverGetVersion failed with CUresult {err}")
    return int(v.value)


def check_driver(version: int, manifest: dict, machine: str | None = None) -> None:
    """Raise `LibsmctrlUnavailable` unless the build knows `version`'s stream layout on this
    CPU architecture (libsmctrl would exit the process, or write at a wrong offset)."""
    machine = machine or platform.machine()
    if "stream_mask_driver_versions" in manifest:
        known = tuple(manifest["stream_mask_driver_versions"])
        source = f"its build manifest ({MANIFEST})"
        if manifest.get("arch", machine) != machine:
            raise LibsmctrlUnavailable(
                f"libsmctrl was built for {manifest['arch']}, this machine is {machine}"
            )
    elif machine == "x86_64":
        known, source = KNOWN_DRIVER_VERSIONS_X86_64, "Bakita's libsmctrl x86-64 table"
    else:
        raise LibsmctrlUnavailable(
            f"no build manifest and no known stream-mask offsets for {machine}; build with "
            "native/build_libsmctrl.sh"
        )
    if version in known or os.environ.get("MASK_OFF"):
        return
    newest = max(known) if known else None
    raise LibsmctrlUnavailable(
        f"driver reports CUDA {_cuda_version_str(version)} ({version}); this libsmctrl knows "
        f"the stream struct of {', '.join(_cuda_version_str(v) for v in known)} "
        f"(from {source}){' (newest ' + _cuda_version_str(newest) + ')' if newest else ''}; "
        "use a checkout that supports this driver, or search the offset with MASK_OFF"
    )


def load_libsmctrl(
    path: str | os.PathLike | None = None, driver_version: int | None = None
) -> Libsmctrl:
    """Load libsmctrl.so and check it can mask streams on this driver and machine.

    `driver_version` (cuDriverGetVersion form) is read from libcuda when None. Raises
    `LibsmctrlUnavailable` with a one-line reason: not configured, not found, not loadable,
    missing symbols, a driver or CPU architecture whose stream layout the build does not know."""
    p = find_libsmctrl(path)
    manifest = read_manifest(p)
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
        if platform.machine() != "x86_64":
            raise LibsmctrlUnavailable(
                f"the 128-bit mask of libsmctrl_set_stream_mask_ext is passed as two uint64 "
                f"registers, which holds on x86-64 only; this machine is {platform.machine()}"
            )
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
    version = cuda_driver_version() if driver_version is None else driver_version
    check_driver(version, manifest)
    return Libsmctrl(lib, str(p), has_ext, version, manifest)


def tpc_mask_for(first_tpc: int, num_tpcs: int, total_tpcs: int) -> int:
    """Disabled-TPC bitmask that leaves TPCs [first_tpc, first_tpc + num_tpcs) enabled."""
    assert 0 <= first_tpc and first_tpc + num_tpcs <= total_tpcs
    enabled = ((1 << num_tpcs) - 1) << first_tpc
    return ((1 << total_tpcs) - 1) & ~enabled


def new_raw_stream() -> int:
    """A fresh non-blocking CUstream in the current (torch's primary) context, as an int.

    Not `torch.cuda.Stream()`: torch hands out streams from a fixed pool (32 per priority,
    round robin), so the 131 streams of a pool would share 32 and overwrite each other's
    masks. Driver API through ctypes (`cuStreamCreate`), after torch made its context current."""
    import torch

    torch.cuda.current_stream().synchronize()  # makes torch's context current on this thread
    cuda = ctypes.CDLL("libcuda.so.1")
    ctx = ctypes.c_void_p()
    if cuda.cuCtxGetCurrent(ctypes.byref(ctx)) != 0 or not ctx.value:
        raise RuntimeError("no current CUDA context to create a masked stream in")
    stream = ctypes.c_void_p()
    err = cuda.cuStreamCreate(ctypes.byref(stream), 1)  # CU_STREAM_NON_BLOCKING
    if err != 0:
        raise RuntimeError(f"cuStreamCreate failed with CUresult {err}")
    return int(stream.value)


class LibsmctrlPool(PartitionPool):
    """Partitions as TPC-masked streams: n SMs = TPCs [0, n/2), complement = the rest.

    Each partition has its own stream (created here, wrapped as `torch.cuda.ExternalStream`)
    whose mask is set once; launching on a partition's stream is Bullet's per-launch mask."""

    mechanism = "libsmctrl"

    def __init__(self, path: str | None = None, sms_per_tpc: int = 2) -> None:
        import torch

        torch.cuda.init()
        self.lib = load_libsmctrl(path)
        props = torch.cuda.get_device_properties(0)
        total_tpcs = props.multi_processor_count // sms_per_tpc
        super().__init__(total_tpcs * sms_per_tpc, sms_per_tpc)
        self.total_tpcs = total_tpcs
        full = Partition("full", self.total_sms, torch.cuda.Stream(), self.mechanism)
        self._single[self.total_sms] = full
        for tpcs in range(1, total_tpcs):
            low = self.masked(0, tpcs)
            high = self.masked(tpcs, total_tpcs - tpcs)
            self._single.setdefault(low.num_sms, low)
            self._pairs[low.num_sms] = (low, high)

    def masked(self, first: int, count: int) -> Partition:
        """A new stream allowed only TPCs [first, first + count)."""
        import torch

        raw = new_raw_stream()
        self.lib.set_stream_mask(raw, tpc_mask_for(first, count, self.total_tpcs))
        stream = torch.cuda.ExternalStream(raw)
        return Partition(f"t{first}+{count}", count * self.granularity, stream, self.mechanism)
