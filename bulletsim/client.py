"""The concurrency-limited benchmark client: at most N requests in flight.

This is what `vllm bench serve --max-concurrency N` and `sglang.bench_serving
--max-concurrency N` do: requests are generated at their open-loop times (all at t = 0 with
`--request-rate inf`) and a semaphore of N lets one go only when one of the N in flight has
finished. With an infinite rate that is the closed-loop client of queueing theory: N users,
each sending its next request when its previous one finishes (plus `think_s`).

Requests go out in id order; a request's `arrival_s` is rewritten to its send time,
max(its open-loop time, the time a slot freed). Pure Python (no simpy): `ServingState` asks it
what to send and tells it about finishes.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Sequence

from bulletsim.core import RequestSpec


class ConcurrencyLimitedClient:
    """Sends `specs` in order with at most `max_concurrency` unfinished at any time.

    `free_at` holds the time each free slot becomes usable (a slot is busy from a send until
    that request finishes, then free again `think_s` later).
    """

    def __init__(
        self, specs: Sequence[RequestSpec], max_concurrency: int, think_s: float = 0.0
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if not think_s >= 0:
            raise ValueError(f"think_s must be >= 0, got {think_s}")
        self.specs = specs
        self.max_concurrency = max_concurrency
        self.think_s = think_s
        self.free_at = [0.0] * min(max_concurrency, len(specs))
        self._next = 0

    def next_send_s(self) -> float | None:
        """When the next request goes out, or None until a request finishes (or all sent)."""
        if self._next >= len(self.specs) or not self.free_at:
            return None
        return max(self.specs[self._next].arrival_s, self.free_at[0])

    def sends_until(self, now_s: float) -> list[RequestSpec]:
        """Every request sent by `now_s`, with arrival_s = its send time."""
        out = []
        while (t := self.next_send_s()) is not None and t <= now_s:
            heapq.heappop(self.free_at)
            out.append(dataclasses.replace(self.specs[self._next], arrival_s=t))
            self._next += 1
        return out

    def on_finish(self, now_s: float) -> None:
        """A request finished at `now_s`: its slot is free again after the think time."""
        heapq.heappush(self.free_at, now_s + self.think_s)
