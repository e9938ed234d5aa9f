"""A watchdog for samples that may hang the GPU (masked GEMMs under libsmctrl).

A hung kernel cannot be cancelled from the host, so on timeout the process exits with code 3
after flushing; the sample was marked `pending` beforehand, so `--resume` skips it and keeps
every sample measured so far.
"""

from __future__ import annotations

import os
import sys
import threading


class Watchdog:
    def __init__(self, timeout_s: float, what: str = "sample") -> None:
        self.timeout_s, self.what = timeout_s, what
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        sys.stderr.write(
            f"\nwatchdog: {self.what} exceeded {self.timeout_s:.0f}s (GPU hang?); exiting. "
            "Re-run with --resume to continue past it.\n"
        )
        sys.stderr.flush()
        os._exit(3)

    def __enter__(self) -> Watchdog:
        self._timer = threading.Timer(self.timeout_s, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
