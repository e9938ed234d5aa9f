"""Two lanes, one KV cache: the machinery Bullet and its spatial ablations share.

The prefill lane runs unchunked batches in layer windows; the decode lane runs one decode
step over the whole pool at a time. Subclasses decide how many SMs each lane holds
(`allocation`); this class forms batches, builds the work and commits progress. A request
whose prefill completes hands over to the decode lane without copying KV (the cache is
shared); the handoff cost is added to the batch's last window.
"""

from __future__ import annotations

from bulletsim.core import PrefillChunk, Work, WorkShape
from bulletsim.policies.base import PolicyContext
from bulletsim.policies.batching import (
    can_start_prefill,
    decode_step_shape,
    decode_totals,
    form_batch,
    prefill_shape,
    with_layers,
)


class TwoLanePolicy:
    lanes = ("prefill", "decode")
    max_overlap_sms = 0  # disjoint partitions; the naive ablation overrides

    def __init__(
        self,
        *,
        max_prefill_tokens: int,
        window_layers: int | None,
        max_running_requests: int,
        handoff_s: float,
    ) -> None:
        self.max_prefill_tokens = max_prefill_tokens
        self.window_layers = window_layers  # None = the whole model in one window
        self.max_running = max_running_requests
        self.handoff_s = handoff_s
        self.ctx: PolicyContext | None = None
        self.num_sms = {"prefill": 0, "decode": 0}  # SMs each lane holds now
        self.busy = {"prefill": False, "decode": False}
        self.batch: list[PrefillChunk] = []
        self.batch_deadline_s = 0.0  # tightest TTFT deadline in the batch
        self.window_index = 0
        self.num_windows = 1
        self.window_shape = WorkShape()
        self.last_window_shape = WorkShape()
        self.tail_s = 0.0  # lm_head + per-step overhead + handoff, paid by the last window
        self._head_memo: dict[tuple[int, int], float] = {}
        self._decode_totals: tuple[int, int] | None = None
        self._decode_shape = WorkShape()

    def bind(self, ctx: PolicyContext) -> None:
        self.ctx = ctx
        self.num_layers = ctx.latency.num_layers
        k = self.window_layers or self.num_layers
        self.layers_per_window = max(1, min(k, self.num_layers))

    def allocation(self, lane: str) -> int:
        return self.num_sms[lane]

    def stays_idle(self, lane: str) -> bool:
        return False  # not provable in general; Bullet overrides where it is

    def launch_overhead_s(self, lane: str, num_sms: int, overhead_s: float) -> float:
        """Modelled overhead of starting work on `num_sms` SMs, on top of `overhead_s`
        (none here; Bullet adds its prediction and re-masking costs)."""
        return overhead_s

    # -- prefill lane -----------------------------------------------------------------------
    def prefill_has_work(self) -> bool:
        return bool(self.batch) or can_start_prefill(self.ctx.state, self.max_running)

    def start_batch(self, now_s: float) -> bool:
        """Form the next batch if none is in flight; False when there is nothing to run."""
        if self.batch:
            return True
        st = self.ctx.state
        if not st.waiting:
            return False
        self.batch = form_batch(st, now_s, self.max_prefill_tokens, self.max_running)
        if not self.batch:
            return False
        slo = self.ctx.slo
        self.batch_deadline_s = min(
            ch.request.spec.arrival_s + slo.ttft_limit_s(ch.request.spec.prompt_tokens)
            for ch in self.batch
        )
        k, n = self.layers_per_window, self.num_layers
        self.window_index = 0
        self.num_windows = -(-n // k)
        window = self.window_shape = prefill_shape(self.batch, k)
        last = n - k * (self.num_windows - 1)
        self.last_window_shape = window if last == k else with_layers(window, last)
        # What a full step costs beyond its layers (lm_head, sampling, launch), priced on the
        # whole GPU (the split it will run on is not known yet). It is ~1 ms and depends on
        # the rows reaching lm_head, hardly on the prompt, so 256-token buckets share a price.
        key = (window.prefill_tokens // 256, window.logits_tokens)
        head_s = self._head_memo.get(key)
        if head_s is None:
            lat, sms = self.ctx.latency, self.ctx.total_sms
            full = with_layers(window, None)
            head_s = lat.predict(full, sms) - lat.predict(with_layers(window, n), sms)
            self._head_memo[key] = head_s = max(0.0, head_s)
        self.tail_s = head_s + self.handoff_s
        return True

    def prefill_work(self, num_sms: int, overhead_s: float, num_windows: int = 1) -> Work:
        """The next `num_windows` windows of the batch as one unit of work."""
        k = self.layers_per_window
        first = self.window_index * k
        end = min(self.num_layers, first + num_windows * k)
        last = end == self.num_layers
        if num_windows == 1:
            shape = self.last_window_shape if last else self.window_shape
        else:
            shape = with_layers(self.window_shape, end - first)
        overhead_s = self.launch_overhead_s(
            "prefill", num_sms, overhead_s + (self.tail_s if last else 0.0)
        )
        return Work(
            "prefill",
            shape,
            num_sms,
            prefill=self.batch,
            layers=(first, end),
            overhead_s=overhead_s,
            tag=f"windows {self.window_index + 1}-{-(-end // k)}/{self.num_windows}",
        )

    def remaining_windows(self) -> int:
        return self.num_windows - self.window_index

    # -- decode lane ------------------------------------------------------------------------
    def decode_has_work(self) -> bool:
        pool = self.ctx.state.decode
        return bool(len(pool) or pool.num_waiting_to_join)

    def begin_decode(self, now_s: float) -> WorkShape | None:
        """Start a decode step (may preempt under KV pressure); None if nobody is left."""
        st = self.ctx.state
        st.begin_decode_step(now_s)
        if not st.decode.in_step:
            return None
        return self.decode_step()

    def decode_step(self, *, include_pending: bool = False) -> WorkShape:
        """The shape of the next decode step (see `decode_totals`).

        The pool changes only at decode steps and handoffs, while planning asks at every
        prefill window and decode step: the shape is rebuilt only when its totals change.
        """
        totals = decode_totals(self.ctx.state, include_pending=include_pending)
        if totals != self._decode_totals:
            self._decode_totals = totals
            self._decode_shape = decode_step_shape(*totals)
        return self._decode_shape

    # -- both -------------------------------------------------------------------------------
    def on_work_done(self, work: Work, now_s: float) -> None:
        lane = work.lane
        self.busy[lane] = False
        st = self.ctx.state
        if lane == "decode":
            st.end_decode_step(now_s)
            return
        end = work.layers[1] if work.layers else self.num_layers
        self.window_index = -(-end // self.layers_per_window)
        if end >= self.num_layers:
            st.complete_chunks(self.batch, now_s)
            self.batch = []
