"""The seam between the live host loop and whatever runs the kernels.

An executor launches one `Work` at a time per lane, asynchronously, and reports when it has
finished on the device and how long it ran there. The loop never blocks on a launch: it polls
(`poll`) and sleeps in `wait` until a launch may have finished or the next arrival is due.
Times are seconds since the run started, on the executor's clock (wall clock for a GPU, a
virtual clock for the fake).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bulletsim.core import CoRunner, Work
from bulletsim.policies.base import PolicyContext


@dataclass(slots=True, eq=False)
class Launch:
    """One unit of work in flight on a lane.

    `num_sms` is what the work physically runs on (a green-context partition can be coarser
    than the policy's count); `predicted_s` is the latency model's time for the same work on
    those SMs beside `co_runner` (what was in flight on the other lane at launch), plus the
    work's overheads. The executor fills `start_s`, `end_s` (device times) and `measured_s`.
    """

    lane: str
    work: Work
    num_sms: int
    co_runner: CoRunner | None
    predicted_s: float
    launched_s: float
    host_s: float = 0.0  # CPU seconds the launch itself took (host-side preparation)
    start_s: float = -1.0
    end_s: float = -1.0
    measured_s: float = -1.0
    handle: Any = None  # executor-private (CUDA events, graph, buffers)


class Executor(Protocol):
    """Runs lanes' work; one launch in flight per lane. An executor holding physical KV pages
    follows the state's admits, preemptions and finishes as its `StateObserver`."""

    name: str

    def begin(self, ctx: PolicyContext, lanes: tuple[str, ...]) -> None:
        """Bind to a run (state, latency model, SMs) and do all setup (weights, graphs,
        warm-up); the run clock does not start yet."""
        ...

    def start_clock(self) -> None:
        """Start the run clock at 0 (after `begin`, right before the first arrival is due)."""
        ...

    def now(self) -> float:
        """Seconds since `start_clock`."""
        ...

    def physical_sms(self, lane: str, num_sms: int) -> int:
        """SMs a launch of `num_sms` on `lane` really gets (the partition it maps to)."""
        ...

    def launch(self, launch: Launch) -> None:
        """Start `launch.work` on its lane without waiting for it."""
        ...

    def poll(self, launch: Launch) -> bool:
        """True once the work has finished; then start_s, end_s and measured_s are set."""
        ...

    def wait(self, until_s: float | None, in_flight: list[Launch]) -> None:
        """Return when a launch in `in_flight` may have finished, or at `until_s`."""
        ...

    def sm_clock_mhz(self) -> float:
        """The GPU's SM clock now (MHz); NaN without a GPU or where it cannot be read."""
        ...

    def describe(self) -> dict:
        """Metadata for results: device, driver, versions, kernels, what is measured."""
        ...
