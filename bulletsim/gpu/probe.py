"""Which SMs did a partition really use? A `%smid` probe, native when built, else Triton.

The native probe is `native/build/libbulletsim_native.so` (`make -C native`); without it the
same kernel is written in Triton with inline PTX. Both launch many short, sleeping blocks on
the partition's stream so that every SM the partition owns receives some, and return the set.
GPU-only module: imports torch.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import torch

NATIVE_LIB = Path(__file__).resolve().parents[2] / "native" / "build" / "libbulletsim_native.so"


def _load_native() -> ctypes.CDLL | None:
    path = Path(os.environ.get("BULLETSIM_NATIVE_LIB", NATIVE_LIB))
    if not path.exists():
        return None
    lib = ctypes.CDLL(str(path))
    lib.bulletsim_smid_probe.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_uint,
    ]
    lib.bulletsim_smid_probe.restype = ctypes.c_int
    return lib


def _triton_probe_kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def smid_probe(out_ptr):
        pid = tl.program_id(0)
        # nanosleep keeps each block resident long enough for the grid to spread out.
        smid = tl.inline_asm_elementwise(
            "nanosleep.u32 20000; mov.u32 $0, %smid;",
            "=r,r",
            [pid],
            dtype=tl.int32,
            is_pure=False,
            pack=1,
        )
        tl.store(out_ptr + pid, smid)

    return smid_probe


class SmidProbe:
    """`probe(stream)` -> sorted SM ids the stream's launches can reach."""

    def __init__(self, num_blocks: int = 4096, sleep_ns: int = 20_000, prefer_native: bool = True):
        self.num_blocks = num_blocks
        self.sleep_ns = sleep_ns
        self._native = _load_native() if prefer_native else None
        self._triton = None if self._native else _triton_probe_kernel()
        self.kind = "native" if self._native else "triton"
        self._buf = torch.full((num_blocks,), -1, dtype=torch.int32, device="cuda")

    def launch(self, stream: torch.cuda.Stream, buf: torch.Tensor | None = None) -> torch.Tensor:
        """Enqueue the probe on `stream` without waiting; returns the device buffer to read."""
        buf = self._buf if buf is None else buf
        with torch.cuda.stream(stream):
            buf.fill_(-1)
            if self._native is not None:
                err = self._native.bulletsim_smid_probe(
                    stream.cuda_stream, buf.data_ptr(), self.num_blocks, self.sleep_ns
                )
                if err != 0:
                    raise RuntimeError(f"native smid probe launch failed: cudaError {err}")
            else:
                self._triton[(self.num_blocks,)](buf)
        return buf

    def probe(self, stream: torch.cuda.Stream) -> list[int]:
        buf = self.launch(stream)
        stream.synchronize()
        return decode(buf)

    def probe_concurrent(self, streams: list[torch.cuda.Stream]) -> list[list[int]]:
        """Probe several streams at once (they run concurrently, as co-running lanes do)."""
        bufs = [torch.full_like(self._buf, -1) for _ in streams]
        for s, b in zip(streams, bufs, strict=True):
            self.launch(s, b)
        torch.cuda.synchronize()
        return [decode(b) for b in bufs]


def decode(buf: torch.Tensor) -> list[int]:
    ids = buf.cpu().tolist()
    assert min(ids) >= 0, "probe blocks left unwritten"
    return sorted(set(ids))


def sm_mask_hex(sm_ids: list[int]) -> str:
    """SM set as a hex bitmask (bit i = SM i), compact enough to keep with every sample."""
    mask = 0
    for i in sm_ids:
        mask |= 1 << i
    return f"{mask:x}"


def verify(probe: SmidProbe, part) -> dict:
    """Probe `part`'s SM set now; the sample fields that record it (sets `part.sm_ids`)."""
    ids = probe.probe(part.stream)
    part.sm_ids = ids
    return {
        "sm_ids_hex": sm_mask_hex(ids),
        "sm_count_probed": len(ids),
        "sm_verified": len(ids) == part.num_sms,
        "partition": part.name,
    }


def verify_pair(probe: SmidProbe, a, b) -> tuple[dict, dict]:
    """Probe a co-running pair concurrently: fields for `a` and `co_*` fields for `b`;
    verified means each used its own count of SMs and the two sets were disjoint."""
    ia, ib = probe.probe_concurrent([a.stream, b.stream])
    disjoint = not set(ia) & set(ib)
    va = {
        "sm_ids_hex": sm_mask_hex(ia),
        "sm_count_probed": len(ia),
        "partition": a.name,
        "sm_verified": len(ia) == a.num_sms and disjoint,
    }
    vb = {
        "co_sm_ids_hex": sm_mask_hex(ib),
        "co_sm_count_probed": len(ib),
        "co_partition": b.name,
        "co_sm_verified": len(ib) == b.num_sms and disjoint,
    }
    return va, vb
