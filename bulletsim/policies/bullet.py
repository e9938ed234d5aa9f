"""Bullet (arXiv 2504.19516, §3.3): prefill and decode on disjoint, re-sized SM partitions.

Before each prefill layer window and each decode step the policy predicts the decode step
time (TPOT) and the in-flight prefill's finish time (TTFT) with the latency model and splits
the GPU (DESIGN.md, "Policies"):

- decode can meet its TPOT target -> decode gets the fewest SMs that do (bisection over
  partition units), prefill the rest (or a few units less where wave quantization makes
  that as fast): under a burst prefill takes almost the whole GPU;
- decode cannot, prefill can meet its TTFT -> shrink prefill to the fewest SMs that keep it;
- neither can -> balanced split.

An idle lane holds no SMs, so an idle prefill hands decode the whole GPU at its next step
and vice versa. A lane never grows while it runs; when a lane starts work that needs SMs the
running lane holds, the policy shrinks the running lane's allocation at once. What that does
to the running work is the engine's, by mechanism (`partitioning.keeps_partition`):
libsmctrl and mps re-mask per kernel launch, so the simulator rescales the remaining work
at once and partitions never overlap (the paper's model); on green contexts (the live
engine's) a launched decode step or window keeps its partition until it ends and the new
work starts beside it, as on the GPU (issue 10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bulletsim.core import Work, WorkShape, co_runner
from bulletsim.float_params import FRACTION, check_float_fields
from bulletsim.hardware import check_mechanism
from bulletsim.partitioning import resolve_partitioning
from bulletsim.policies.base import PolicyContext
from bulletsim.policies.batching import can_start_prefill, reorder_head
from bulletsim.policies.split_planner import SplitPlanner, round_to_units
from bulletsim.policies.two_lane import TwoLanePolicy


@dataclass(frozen=True, slots=True)
class BulletParams:
    """Bullet: SLO-aware SM re-partitioning between a prefill and a decode lane.

    mechanism: libsmctrl (2-SM TPC masks, the paper's), green-ctx (the GPU's green-context
      granularity, 8 SMs on Hopper), mps (percentage caps in whole TPCs; a re-partition
      switches to a pre-created MPS context) or none (whole GPU per lane: temporal sharing
      only). `--mechanism`, `--set bullet.mechanism` and config files name it alike
      (aliases: `hardware.MECHANISM_ALIASES`).
    remask_us: host cost of one re-partition; None (default) = the mechanism's cost on the
      run's GPU with its source (`partitioning.remask_cost`: measured on the H200, the
      paper's A100 figure, or derived); a number is used as given.
    max_prefill_tokens: batch cap (the released code's fixed 1664).
    window_layers: layers per prefill window (prefill can grow between windows; it shrinks
      at once). 8 = 4 windows on 32-layer models; 4 gave the same ShareGPT capacity on the
      A100 (results/paper-a100) at more simulation cost.
    tpot_target_frac: decode steps aim at this share of the TPOT SLO, because a request's
      TPOT also pays the wait to join the pool.
    reorder: shortest-prompt-first among the first reorder_window waiting requests when
      that misses no TTFT deadline.
    wave_search_units: how many partition units below its share prefill may step down to a
      count that runs its window at least as fast (wave quantization); 0 = off.
    merge_windows: run windows whose boundaries come before the decode lane can decide as one
      unit (a simulation shortcut: the split could not change there; same timeline).
    Costs (paper): handoff 0.21 ms per batch, prediction 10.2 us.
    """

    mechanism: str = "libsmctrl"
    max_prefill_tokens: int = 1664
    window_layers: int = 8
    tpot_target_frac: float = field(default=0.9, metadata=FRACTION)
    max_running_requests: int = 1024
    reorder: bool = False
    reorder_window: int = 16
    wave_search_units: int = 8
    merge_windows: bool = True
    handoff_ms: float = 0.21
    remask_us: float | None = None
    predict_us: float = 10.2

    def resolved(self, gpu: Any) -> dict:
        """The parameters as they run on `gpu`: remask_us None filled with the mechanism's cost
        there (`partitioning.remask_cost`), so a sweep's duplicate check sees `bullet` and
        `bullet:remask_us=<that cost>` as one policy."""
        from dataclasses import asdict

        from bulletsim.partitioning import remask_cost

        out = asdict(self)
        if out["remask_us"] is None:
            out["remask_us"] = remask_cost(self.mechanism, gpu)[0]
        return out

    def __post_init__(self) -> None:
        check_float_fields(self, "bullet")
        check_mechanism(self.mechanism)
        if self.reorder_window < 2:
            raise ValueError(
                f"bullet.reorder_window must be >= 2 requests (a shorter window reorders "
                f"nothing), got {self.reorder_window}"
            )
        if self.wave_search_units < 0:
            raise ValueError(f"bullet.wave_search_units must be >= 0, got {self.wave_search_units}")
        for name in ("max_prefill_tokens", "window_layers", "max_running_requests"):
            if getattr(self, name) < 1:
                raise ValueError(f"bullet.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.tpot_target_frac <= 1.0:
            raise ValueError(
                f"bullet.tpot_target_frac must be in (0, 1], got {self.tpot_target_frac}"
            )
        if min(self.handoff_ms, self.remask_us or 0.0, self.predict_us) < 0:
            raise ValueError("bullet.handoff_ms, remask_us and predict_us must be >= 0")

    def check_model(self, model: Any) -> None:
        """ValueError when window_layers is more than `model` (a ModelSpec) has layers: the
        window would silently be the whole model (`config.RunConfig.validate` calls it)."""
        n = model.num_layers
        if self.window_layers > n:
            raise ValueError(
                f"bullet.window_layers = {self.window_layers}: {model.name} has {n} layers; "
                f"valid: 1..{n}"
            )


class Bullet(TwoLanePolicy):
    def __init__(self, params: BulletParams | None = None) -> None:
        p = self.params = params or BulletParams()
        super().__init__(
            max_prefill_tokens=p.max_prefill_tokens,
            window_layers=p.window_layers,
            max_running_requests=p.max_running_requests,
            handoff_s=p.handoff_ms / 1e3,
        )
        self.name = f"bullet-{p.mechanism}"  # outputs name the mechanism, default included
        self.decisions = {"shrink-decode": 0, "shrink-prefill": 0, "balanced": 0}
        self.last_lane = "decode"
        self._token_time: dict[int, float] = {}
        self._wave_memo: dict[tuple[int, int], int] = {}
        self.decode_end_lb_s = 0.0
        self._decode_step: tuple[float, WorkShape, int, float] | None = None
        self._window_batch: list | None = None
        self._window_memo: dict[tuple[int, int], float] = {}
        self._predict_s = p.predict_us * 1e-6

    def bind(self, ctx: PolicyContext) -> None:
        super().bind(ctx)
        self.total_sms = ctx.total_sms
        self.partitioning = resolve_partitioning(
            self.params.mechanism, getattr(ctx.latency, "gpu", None), ctx.total_sms,
            self.params.remask_us,
        )  # fmt: skip
        self.unit_sms = self.partitioning.unit_sms
        self._remask_s = self.partitioning.remask_us * 1e-6
        self.temporal = self.unit_sms >= self.total_sms
        self.planner = SplitPlanner(ctx.latency, self.total_sms, self.unit_sms)
        self.tpot_target_s = ctx.slo.tpot_s * self.params.tpot_target_frac

    # -- the split ----------------------------------------------------------------------------
    def plan(self, now_s: float, decode: WorkShape | None) -> tuple[int, int]:
        """(prefill SMs, decode SMs) for the state now; `decode` is the next decode step."""
        prefill_on = bool(self.batch) or can_start_prefill(self.ctx.state, self.max_running)
        if decode is None or not decode.decode_tokens:
            return self.total_sms, 0
        if not prefill_on:
            return 0, self.total_sms
        d_min = self.planner.decode_min_sms(decode, self.tpot_target_s, prefill_busy=True)
        if d_min is not None:
            self.decisions["shrink-decode"] += 1
            p = self._fastest_prefill(self.total_sms - d_min)
            return p, self.total_sms - p
        p_min = None
        if self.batch:
            p_min = self.planner.prefill_min_sms(
                self.window_shape,
                self.remaining_windows(),
                self.tail_s,
                self.batch_deadline_s - now_s,
                decode_busy=True,
            )
        if p_min is None:
            self.decisions["balanced"] += 1
            p = round_to_units(self.total_sms / 2, self.unit_sms, self.total_sms - self.unit_sms)
            return p, self.total_sms - p
        self.decisions["shrink-prefill"] += 1
        return p_min, self.total_sms - p_min

    def _fastest_prefill(self, p_max: int) -> int:
        """The SM count in [p_max - wave_search_units units, p_max] that runs a window fastest.

        Wave quantization makes prefill time a step function of SMs: on a plateau, SMs above
        the step buy prefill nothing, so the fastest count wins (fewest on a tie) and decode
        gets the rest (the paper's reason to model waves). GEMM waves depend on the token
        count only through whole tiles (>= 64 rows), so the answer is memoized per 64-token
        bucket and p_max, priced on the first batch of that bucket.
        """
        if not self.batch or not self.params.wave_search_units:
            return p_max
        shape = self.window_shape
        key = (shape.prefill_tokens // 64, p_max)
        best = self._wave_memo.get(key)
        if best is not None:
            return best
        unit, total = self.unit_sms, self.total_sms
        best, best_t = p_max, math.inf
        for k in range(self.params.wave_search_units + 1):
            p = p_max - k * unit
            if p < unit:
                break
            t = self._window_s(p, total - p)
            if t <= best_t:
                best, best_t = p, t
        self._wave_memo[key] = best
        return best

    def _window_s(self, p: int, d: int) -> float:
        """Predicted time of one window of the current batch on p SMs beside d decode SMs."""
        if self._window_batch is not self.batch:
            self._window_batch, self._window_memo = self.batch, {}
        t = self._window_memo.get((p, d))
        if t is None:
            co = co_runner("decode", d) if d else None
            t = self._window_memo[(p, d)] = self.ctx.latency.predict(self.window_shape, p, co)
        return t

    def launch_overhead_s(self, lane: str, num_sms: int, overhead_s: float) -> float:
        """Every decision pays a prediction; a changed partition also pays re-masking."""
        overhead_s += self._predict_s
        if num_sms != self.num_sms[lane]:
            overhead_s += self._remask_s
        return overhead_s

    def _take(self, lane: str, work: Work) -> Work:
        """Give `lane` the SMs `work` starts on; a running other lane's allocation shrinks at
        once to make room (the engine rescales it at once, or, on green contexts, lets it
        finish on the partition it launched on: module doc)."""
        sms = work.num_sms
        other = "decode" if lane == "prefill" else "prefill"
        if self.busy[other] and self.num_sms[other] > self.total_sms - sms:
            self.num_sms[other] = self.total_sms - sms
        self.num_sms[lane] = sms
        self.busy[lane] = True
        self.last_lane = lane
        return work

    def _turn(self, lane: str, other_has_work: bool) -> bool:
        """Temporal sharing (no mechanism): one lane at a time, alternating when both wait."""
        other = "decode" if lane == "prefill" else "prefill"
        if self.busy[other]:
            return False
        return not (other_has_work and self.last_lane == lane)

    # -- lanes --------------------------------------------------------------------------------
    def next_work(self, lane: str, now_s: float) -> Work | None:
        if lane == "prefill":
            return self._next_prefill(now_s)
        return self._next_decode(now_s)

    def stays_idle(self, lane: str) -> bool:
        """True when next_work(lane) would return None and change nothing (engine hook: an
        idle lane need not be woken then)."""
        if self.temporal or self.params.reorder:
            return False
        if lane == "prefill":
            return not self.prefill_has_work() and self.num_sms["prefill"] == 0
        return not self.decode_has_work() and self.num_sms["decode"] == 0

    def _next_prefill(self, now_s: float) -> Work | None:
        if not self.batch:
            if self.params.reorder:
                self._reorder(now_s)
            if not self.start_batch(now_s):
                self.num_sms["prefill"] = 0
                return None
        if self.temporal:
            if not self._turn("prefill", self.decode_has_work()):
                self.num_sms["prefill"] = 0
                return None
            p = self.total_sms
            k = 1
        else:
            p, d = self.plan(now_s, self.decode_step(include_pending=True))
            k = self._windows_before_decode_decides(now_s, p, d)
        # a merged unit still pays the predictions its inner boundaries would have made
        skipped_s = (k - 1) * self.params.predict_us * 1e-6
        return self._take("prefill", self.prefill_work(p, skipped_s, k))

    def _windows_before_decode_decides(self, now_s: float, p: int, d: int) -> int:
        """How many windows can run as one unit without skipping a useful boundary.

        The split only changes after a decode decision (the pool and so its SM need change
        at decode step ends; arrivals only lengthen the prefill queue). Window boundaries
        that come before the running decode step can end would repeat the same plan, so
        those windows run as one unit of work: the same timeline, fewer simulated events.
        An idle decode lane gets work only when this batch completes: run it to the end.
        """
        rem = self.remaining_windows()
        if rem == 1 or not self.params.merge_windows:
            return 1
        if not self.busy["decode"]:
            return 1 if self.decode_has_work() else rem
        lat = self.ctx.latency
        if self._decode_step is not None:  # priced lazily: many steps see no prefill decision
            start_s, shape, sms, overhead_s = self._decode_step
            self.decode_end_lb_s = start_s + lat.predict(shape, sms) + overhead_s
            self._decode_step = None
        slack_s = self.decode_end_lb_s - now_s
        if slack_s <= 0.0:  # the decode step may end any moment: no window fits before it
            return 1
        window_s = self._window_s(p, min(self.num_sms["decode"], self.total_sms - p))
        if window_s <= 0.0 or slack_s <= window_s:
            return 1
        return min(rem, 1 + int(slack_s / window_s * (1 - 1e-9)))

    def _next_decode(self, now_s: float) -> Work | None:
        if not self.decode_has_work():
            self.num_sms["decode"] = 0
            return None
        if self.temporal and not self._turn("decode", self.prefill_has_work()):
            self.num_sms["decode"] = 0
            return None
        shape = self.begin_decode(now_s)
        if shape is None:
            self.num_sms["decode"] = 0
            return None
        d = self.total_sms if self.temporal else self.plan(now_s, shape)[1]
        overhead_s = self.launch_overhead_s("decode", d, 0.0)
        work = self._take("decode", Work("decode", shape, d, decode=True, overhead_s=overhead_s))
        # Earliest the step can end: alone on d SMs (co-running and shrinking only slow it).
        self._decode_step = (now_s, shape, d, work.overhead_s)
        return work

    def _reorder(self, now_s: float) -> None:
        p = max(
            self.unit_sms, self.total_sms - (self.num_sms["decode"] if self.busy["decode"] else 0)
        )
        t = self._token_time.get(p)
        if t is None:
            n = self.max_prefill_tokens
            probe = WorkShape(
                prefill_tokens=n,
                prefill_attn_pairs=float(n * (n + 1) // 2),
                prefill_kv_tokens=n,
                num_prefill_seqs=1,
                logits_tokens=1,
            )
            t = self._token_time[p] = self.ctx.latency.predict(probe, p) / n
        reorder_head(
            self.ctx.state, now_s, self.params.reorder_window, t, self.ctx.slo.ttft_limit_s
        )
