"""SGLang's PD-Multiplexing (`--enable-pdmux`, arXiv 2504.14489) as a pure two-lane policy.

Mainline behaviour, read from sgl-project/sglang (late 2025), not copied:
`python/sglang/srt/multiplex/multiplexing_mixin.py` (`event_loop_pdmux`,
`adjust_stream_groups`, `update_split_prefill_batch`), `.../multiplex/pdmux_context.py`
(the split table, see `pdmux_table`), `python/sglang/srt/managers/schedule_policy.py`
(`PrefillAdder.add_one_req`: whole prompts FCFS up to `max_prefill_tokens`, the first request
always admitted) and `python/sglang/srt/server_args.py` (pdmux requires chunked prefill off).

One scheduler thread runs ticks. A tick: admit a prefill batch if none is in flight; if the
split must change, drain (wait until both partitions are idle) and pick the table row; launch
one decode step on the decode partition and `max(1, 65536 // batch tokens)` more prefill
layers on the prefill partition; wait for the decode step only; if the prefill has finished
on the GPU, its requests emit their first token now and join decode. The split changes only
at three events: a batch is admitted, a batch finishes and merges into decode, decode
empties. With no decode running, ticks cost no GPU time: every remaining layer is launched
at once and the result is taken as soon as the GPU finishes it. CPU time is not modelled.

In this simulator the prefill lane is the prefill stream (it runs launched layers FIFO) and
the decode lane is the tick; the scheduler's steps run in `_advance`, called by whichever lane
polls, and only when no tick is in flight. A drain is the policy returning no work until the
prefill lane is idle (the decode lane always is between ticks). The split is published the
way Bullet publishes it (`allocation`), and it changes only while both lanes are idle.

`pdmux-slo` is NOT mainline SGLang: it follows the PD-Multiplexing paper and LMSYS blog
(Sep 2025) in giving decode just enough SMs for its TPOT/ITL SLO and the rest to prefill,
choosing among every green-context split with decode >= 16 SMs, at the same three events
and with the same engine (drains, ticks, one batch in flight).
"""

from __future__ import annotations

from bulletsim.core import Work, co_runner
from bulletsim.policies.base import PolicyContext
from bulletsim.policies.pdmux_params import (  # noqa: F401 - the params are imported from here too
    PDMuxEngineParams,
    PDMuxParams,
    PDMuxSLOParams,
)
from bulletsim.policies.pdmux_table import (
    full_table,
    parse_manual_divisions,
    row_by_batch,
    row_by_threshold,
    slo_rows,
    split_rows,
)
from bulletsim.policies.two_lane import TwoLanePolicy


def sglang_max_running(kv_tokens: int, context_tokens: int) -> int:
    """SGLang's default request limit: clamp(kv_tokens / context * 512, 2048, 4096)."""
    return min(max(int(kv_tokens / context_tokens * 512), 2048), 4096)


class PDMux(TwoLanePolicy):
    name = "pdmux"

    def __init__(self, params: PDMuxParams | None = None) -> None:
        p = self.params = params or PDMuxParams()
        super().__init__(
            max_prefill_tokens=p.max_prefill_tokens,
            window_layers=1,  # a "window" is one layer: ticks launch whole layers
            max_running_requests=p.max_running_requests or 1,
            handoff_s=p.handoff_ms / 1e3,
        )
        self.row = 0
        self.adjust = False  # the split must be re-chosen (after a drain) at the next tick
        self.draining = False  # the scheduler waits for the prefill lane to go idle
        self.tick_open = False  # a decode step is in flight: the scheduler waits on it
        self.decode_due = False  # a tick began with a decode step the decode lane must run
        self.launched = 0  # layers of the batch launched on the prefill stream so far
        self.layers_per_tick = 1
        self.counts = {"drains": 0, "drain_waits": 0, "repartitions": 0, "batches": 0}

    def bind(self, ctx: PolicyContext) -> None:
        super().bind(ctx)
        p, total = self.params, ctx.total_sms
        gpu = getattr(ctx.latency, "gpu", None)
        p.check_gpu(gpu, total)
        min_sms, step, _ = p.granularity(gpu)
        self.thresholds: list[int] | None = None
        middle = self._middle_rows(total, min_sms, step)
        self.table = full_table(total, middle)
        if not p.max_running_requests:
            model = getattr(ctx.latency, "model", None)
            context = getattr(model, "max_context_tokens", 0) or 1 << 62  # unknown: the floor
            kv = ctx.state.kv
            self.max_running = sglang_max_running(kv.capacity_blocks * kv.block_size, context)
        self._set_row(0)

    def _middle_rows(self, total: int, min_sms: int, step: int) -> list[tuple[int, int]]:
        p = self.params
        if not p.manual_divisions:
            return split_rows(total, min_sms, step, p.sm_group_num - 2)
        manual = parse_manual_divisions(p.manual_divisions)
        self.thresholds = [t for _, _, t in manual]
        return [(a, b) for a, b, _ in manual]

    # -- the split ----------------------------------------------------------------------------
    def decode_batch_size(self) -> int:
        pool = self.ctx.state.decode
        return len(pool) + pool.num_waiting_to_join

    def choose_row(self) -> int:
        """Row 0 with only prefill (or nothing), the last with only decode, else by batch."""
        bs = self.decode_batch_size()
        if bs and self.batch:
            if self.thresholds is not None:
                return row_by_threshold(bs, self.thresholds)
            return row_by_batch(bs, len(self.table), self.params.decode_bs_divisor)
        return len(self.table) - 1 if bs else 0

    def _set_row(self, row: int) -> None:
        self.row = row
        self.num_sms["prefill"], self.num_sms["decode"] = self.table[row]

    # -- the scheduler thread -----------------------------------------------------------------
    def _advance(self, now_s: float) -> None:
        """What the scheduler does at `now_s` if it is free (no decode step in flight)."""
        if self.tick_open:
            return
        if self.draining and self.prefill_stream_idle():
            self.draining = False
        if not self.draining:
            if not self.batch and self.start_batch(now_s):  # SGLang's PrefillAdder
                n = self.window_shape.prefill_tokens
                self.layers_per_tick = max(1, self.params.split_forward_token_budget // n)
                self.launched = 0
                self.adjust = True
                self.counts["batches"] += 1
            if self.row > 0 and not self.decode_batch_size():
                self.adjust = True
        if self.adjust:
            if not self.prefill_stream_idle():  # drain: every launched layer finishes first
                if not self.draining:
                    self.counts["drain_waits"] += 1
                self.draining = True
                return
            self.adjust = False
            self.counts["drains"] += 1
            row = self.choose_row()
            if row != self.row:
                self.counts["repartitions"] += 1
                self._set_row(row)
        if self.decode_batch_size():
            self.tick_open = self.decode_due = True
            if self.batch:
                self.launched = min(self.num_layers, self.launched + self.layers_per_tick)
        elif self.batch:
            self.launched = self.num_layers  # ticks without decode take no GPU time

    def prefill_stream_idle(self) -> bool:
        """No prefill layer is running or launched and waiting (the stream would sync now)."""
        return not self.busy["prefill"] and (not self.batch or self.window_index >= self.launched)

    def _finish_batch(self, now_s: float) -> None:
        """The batch's result is processed: first tokens now, its requests join decode."""
        self.ctx.state.complete_chunks(self.batch, now_s)
        self.batch = []
        self.adjust = True

    # -- lanes --------------------------------------------------------------------------------
    def next_work(self, lane: str, now_s: float) -> Work | None:
        self._advance(now_s)
        if lane == "decode":
            if not self.decode_due:
                return None
            self.decode_due = False
            shape = self.begin_decode(now_s)
            if shape is None:  # every member was preempted: a tick without decode
                self.tick_open = False
                self._advance(now_s)
                return None
            d = self.num_sms["decode"]
            assert d > 0, "pdmux: a decode step on a row without decode SMs"
            self.busy["decode"] = True
            return Work("decode", shape, d, decode=True, tag=f"row {self.row}")
        if self.busy["prefill"] or not self.batch or self.window_index >= self.launched:
            return None
        p = self.num_sms["prefill"]
        assert p > 0, "pdmux: prefill layers on a row without prefill SMs"
        self.busy["prefill"] = True
        return self.prefill_work(p, 0.0, self.launched - self.window_index)

    def stays_idle(self, lane: str) -> bool:
        """True when next_work(lane) would return None and change nothing (engine hook): while
        a tick is open the scheduler does nothing, so an idle prefill lane with no launched
        layer waiting need not be woken at every decode step."""
        if lane != "prefill" or not self.tick_open or self.busy["prefill"]:
            return False
        return not self.batch or self.window_index >= self.launched

    def on_work_done(self, work: Work, now_s: float) -> None:
        self.busy[work.lane] = False
        if work.lane == "decode":
            self.ctx.state.end_decode_step(now_s)
            self.tick_open = False
            if self.batch and self.window_index >= self.num_layers:
                self._finish_batch(now_s)  # the end-of-tick event query found it done
            return
        self.window_index = work.layers[1]
        if self.window_index >= self.num_layers and not self.tick_open:
            self._finish_batch(now_s)  # no tick in flight: the spinning scheduler sees it now


class PDMuxSLO(PDMux):
    name = "pdmux-slo"

    def __init__(self, params: PDMuxSLOParams | None = None) -> None:
        super().__init__(params or PDMuxSLOParams())

    def bind(self, ctx: PolicyContext) -> None:
        super().bind(ctx)
        self.tpot_target_s = ctx.slo.tpot_s * self.params.tpot_target_frac

    def _middle_rows(self, total: int, min_sms: int, step: int) -> list[tuple[int, int]]:
        return slo_rows(total, min_sms, step)

    def choose_row(self) -> int:
        """With both phases: the fewest decode SMs whose step meets the target beside the
        prefill, else the most; otherwise as mainline."""
        if not (self.batch and self.decode_batch_size()):
            return super().choose_row()
        shape = self.decode_step(include_pending=True)
        lat = self.ctx.latency
        last = len(self.table) - 2
        for row in range(1, last + 1):
            p, d = self.table[row]
            if lat.predict(shape, d, co_runner("prefill", p)) <= self.tpot_target_s:
                return row
        return last
