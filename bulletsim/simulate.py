"""The old name of a simulated run, kept for callers: see `bulletsim.run`."""

from __future__ import annotations

from bulletsim.run import RunResult, simulate

SimResult = RunResult

__all__ = ["SimResult", "simulate"]
