"""Serving state that policies read and change: queues, KV cache, decode pool, counters.

One object is shared by every lane of an engine (Bullet's prefill and decode lanes share one
KV cache). Its methods keep the invariants (KV never above capacity, every request finishes
once, output tokens conserved); policies decide *what* to do, this class does the
bookkeeping. No simpy, no torch.

Every admit, preempt and finish is reported to an optional observer (`observe`), so an
engine with physical KV pages can mirror the block accounting (see `engine_api`).
Inter-token-latency samples go to the run's `ITLSamples` (metrics data, not serving state).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bulletsim.client import ConcurrencyLimitedClient
from bulletsim.core import PrefillChunk, Request, RequestSpec, Work
from bulletsim.decode_pool import DecodePool
from bulletsim.itl import ITLSamples
from bulletsim.kvcache import KVCache

if TYPE_CHECKING:
    from bulletsim.engine_api import StateObserver


class ServingState:
    """`client`: a concurrency-limited client that decides when each spec is sent (its
    arrival_s is then the send time); None = open loop, every spec arrives at its arrival_s."""

    def __init__(
        self,
        specs: Sequence[RequestSpec],
        kv: KVCache,
        *,
        reserve_fraction: float = 0.7,
        itl: ITLSamples | None = None,
        client: ConcurrencyLimitedClient | None = None,
    ) -> None:
        if not 0.0 <= reserve_fraction <= 1.0:
            raise ValueError(f"reserve_fraction must be in [0, 1], got {reserve_fraction}")
        self.specs = specs
        self.kv = kv
        self.reserve_fraction = reserve_fraction
        self.itl = itl if itl is not None else ITLSamples()
        self.observer: StateObserver | None = None
        self.decode = DecodePool(kv)
        self.requests: list[Request] = []  # every arrived request, in arrival order
        self.waiting: deque[Request] = deque()  # arrived, holding no KV (preempted at front)
        self.prefilling: deque[Request] = deque()  # admitted, prefill not finished (FCFS)
        self.prefill_extra_blocks = 0  # future decode blocks of admitted, not-yet-decoding
        self.num_finished = 0
        self.num_preemptions = 0
        self._next_arrival = 0
        self.client = client

    def observe(self, observer: StateObserver | None) -> None:
        """Report admits, preemptions and finishes to `observer` from now on (None: stop)."""
        self.observer = observer

    # -- arrivals -------------------------------------------------------------------------
    def admit_arrivals(self, now_s: float) -> int:
        """Move every request that has arrived by `now_s` into the waiting queue."""
        if self.client is not None:
            sent = self.client.sends_until(now_s)
            for spec in sent:
                r = Request(spec, prefill_target_tokens=spec.prompt_tokens)
                self.requests.append(r)
                self.waiting.append(r)
            return len(sent)
        specs, i, n = self.specs, self._next_arrival, len(self.specs)
        start = i
        while i < n and specs[i].arrival_s <= now_s:
            r = Request(specs[i], prefill_target_tokens=specs[i].prompt_tokens)
            self.requests.append(r)
            self.waiting.append(r)
            i += 1
        self._next_arrival = i
        return i - start

    def next_arrival_s(self) -> float | None:
        if self.client is not None:
            return self.client.next_send_s()
        i = self._next_arrival
        return self.specs[i].arrival_s if i < len(self.specs) else None

    @property
    def all_done(self) -> bool:
        return self.num_finished == len(self.specs)

    @property
    def num_running(self) -> int:
        d = self.decode
        return len(d.members) + len(d.pending) + len(self.prefilling)

    # -- admission ------------------------------------------------------------------------
    def _extra_blocks(self, r: Request) -> int:
        final_tokens = r.prefill_target_tokens + (r.spec.output_tokens - r.generated_tokens - 1)
        return self.kv.blocks_for(final_tokens) - self.kv.blocks_for(r.prefill_target_tokens)

    def reserved_blocks(self) -> int:
        """Blocks held back for running requests' future output (times reserve_fraction)."""
        outstanding = self.decode.outstanding_blocks + self.prefill_extra_blocks
        return int(self.reserve_fraction * outstanding + 0.999999)

    def can_admit(self, r: Request) -> bool:
        need = self.kv.blocks_for(r.prefill_target_tokens)
        extra = int(self.reserve_fraction * self._extra_blocks(r) + 0.999999)
        return need + extra + self.reserved_blocks() <= self.kv.free_blocks

    def admit(self, r: Request, now_s: float) -> None:
        """Allocate the request's prefill blocks and append it to the prefilling queue."""
        num_blocks = self.kv.blocks_for(r.prefill_target_tokens)
        self.kv.allocate(r, num_blocks)
        self.prefill_extra_blocks += self._extra_blocks(r)
        if r.admitted_s < 0:
            r.admitted_s = now_s
        self.prefilling.append(r)
        if self.observer is not None:
            self.observer.on_admit(r, num_blocks, now_s)

    # -- progress -------------------------------------------------------------------------
    def complete_chunks(self, chunks: Sequence[PrefillChunk], now_s: float) -> list[Request]:
        """Apply finished prefill chunks; requests whose prefill completed emit a token.

        Returns the requests that completed their prefill (already handed to decode, or
        finished if that token was their last).
        """
        completed = []
        for ch in chunks:
            r = ch.request
            r.prefilled_tokens = ch.start_tokens + ch.num_tokens
            if r.prefilled_tokens < r.prefill_target_tokens:
                continue
            completed.append(r)
            if self.prefilling[0] is r:
                self.prefilling.popleft()
            else:
                self.prefilling.remove(r)
            self.prefill_extra_blocks -= self._extra_blocks(r)
            if r.generated_tokens:  # a recompute after preemption: the gap is one ITL
                self.itl.add(now_s - r.last_token_s)
            r.generated_tokens += 1
            if r.first_token_s < 0:
                r.first_token_s = now_s
            r.last_token_s = now_s
            if r.generated_tokens >= r.spec.output_tokens:
                self._finish(r, now_s)
            else:
                self.decode.add(r)
        return completed

    def finish_work(self, work: Work, now_s: float) -> None:
        """Commit a full-step `work` that ended at `now_s`: its decode step, then its chunks."""
        if work.decode:
            self.end_decode_step(now_s)
        if work.prefill:
            self.complete_chunks(work.prefill, now_s)

    def end_decode_step(self, now_s: float) -> list[Request]:
        """Complete the decode step in flight at `now_s`; return the requests it finished."""
        done = self.decode.end_step(now_s, self.itl)
        self.num_finished += len(done)
        if self.observer is not None:
            for r in done:
                self.observer.on_finish(r, now_s)
        if self.client is not None:
            for _ in done:
                self.client.on_finish(now_s)
        return done

    def begin_decode_step(self, now_s: float) -> int:
        """Start a decode step, preempting youngest members until its KV growth fits.

        Returns the number of preemptions made.
        """
        n = 0
        while victims := self.decode.begin_step():
            for v in victims:
                self.preempt(v, now_s)
                n += 1
        return n

    def preempt(self, r: Request, now_s: float) -> None:
        """Recompute preemption: drop the request's KV, queue it first for a new prefill."""
        self.decode.preempt(r, now_s)
        r.num_preemptions += 1
        self.num_preemptions += 1
        r.prefill_target_tokens = r.spec.prompt_tokens + r.generated_tokens
        r.prefilled_tokens = 0
        self.waiting.appendleft(r)
        if self.observer is not None:
            self.observer.on_preempt(r, now_s)

    def _finish(self, r: Request, now_s: float) -> None:
        r.finish_s = now_s
        self.kv.release(r.num_blocks)
        r.num_blocks = 0
        self.num_finished += 1
        if self.observer is not None:
            self.observer.on_finish(r, now_s)
        if self.client is not None:
            self.client.on_finish(now_s)
