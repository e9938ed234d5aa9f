"""A fake executor for CI: every launch takes the latency model's predicted time on a virtual
clock, so the live control loop runs fast and deterministically without a GPU. When the
latency model prices host gaps (`latency.base.launch_gap_fn`), a launch starts that long after
the loop made it, as on a GPU whose host prepares each launch before its first kernel, and
no sooner than the one host thread has enqueued the previous eager launch
(`latency.base.host_launch_fn`), as the simulator models it.

With one lane (chunked prefill), and with two lanes on green contexts (`green=True`: the
simulator keeps a launch's partition too, `partitioning.keeps_partition`), the loop then
reproduces the simulator's timeline exactly; with two lanes under libsmctrl or mps it differs
where the simulator rescales a running iteration after a re-split (per-kernel re-masking,
which this loop cannot do: a launch keeps the partition it started on).
"""

from __future__ import annotations

import math

from bulletsim.latency.base import host_launch_fn, launch_gap_fn
from bulletsim.live.executor import Launch
from bulletsim.live.green_lanes import launch_sms
from bulletsim.policies.base import PolicyContext


class FakeExecutor:
    name = "fake"

    def __init__(self, granularity_sms: int | None = None, green: bool = False) -> None:
        # green: two lanes get the green-context partitions the GPU engine would make
        # (`green_lanes.launch_sms`, the GPU engine's own rule); else granularity_sms
        # rounds down to whole units; neither: exactly the SMs the policy asked for
        self.granularity_sms = granularity_sms
        self.green = green
        self.clock_s = 0.0
        self.total_sms = 0
        self.num_launches = 0
        self._gap = launch_gap_fn(None)
        self._busy = host_launch_fn(None)
        self._host_free_s = 0.0

    def begin(self, ctx: PolicyContext, lanes: tuple[str, ...]) -> None:
        self.total_sms = ctx.total_sms
        self._gap = launch_gap_fn(ctx.latency)
        self._busy = host_launch_fn(ctx.latency)

    def start_clock(self) -> None:
        self.clock_s = self._host_free_s = 0.0

    def now(self) -> float:
        return self.clock_s

    def physical_sms(self, lane: str, num_sms: int) -> int:
        if self.green and lane != "main":
            return launch_sms("green-ctx", lane, num_sms, self.total_sms)
        g = self.granularity_sms
        if g is None or num_sms >= self.total_sms:
            return num_sms
        return max(g, num_sms // g * g)

    def launch(self, launch: Launch) -> None:
        w = launch.work
        gap = self._gap(w.shape, w.layers[0] if w.layers else 0)
        gap += max(0.0, self._host_free_s - self.clock_s)  # 0 without host terms
        launch.start_s = self.clock_s + gap
        self._host_free_s = launch.start_s + self._busy(w.shape)
        launch.measured_s = launch.predicted_s
        launch.end_s = launch.start_s + launch.predicted_s
        self.num_launches += 1

    def poll(self, launch: Launch) -> bool:
        return launch.end_s <= self.clock_s

    def wait(self, until_s: float | None, in_flight: list[Launch]) -> None:
        ends = [x.end_s for x in in_flight]
        if until_s is not None:
            ends.append(until_s)
        assert ends, "waiting with nothing in flight and no arrival due"
        self.clock_s = max(self.clock_s, min(ends))

    def sm_clock_mhz(self) -> float:
        return math.nan  # no GPU

    def describe(self) -> dict:
        return {
            "executor": self.name,
            "measured": False,
            "note": "kernels replaced by timers taking the latency model's prediction",
            "granularity_sms": self.granularity_sms,
            "partitions": "green contexts as the GPU engine makes them" if self.green else None,
            "num_launches": self.num_launches,
        }
