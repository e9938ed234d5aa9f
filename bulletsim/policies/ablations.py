"""Ablations of Bullet, each removing one of its ideas (DESIGN.md, "Policies").

- static-split: two lanes on fixed, disjoint partitions (no SLO-aware re-partitioning);
- naive: both lanes on every SM at once, contending (no partitioning at all; the lanes'
  SMs overlap by design and the latency model time-slices the shared SMs);
- prefill-first: one lane, whole prompts, a prefill batch runs alone whenever one can be
  formed and decode runs only when none can (SGLang's default with chunking off).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bulletsim.core import Work
from bulletsim.float_params import RANGE, check_float_fields
from bulletsim.hardware import partition_unit_sms
from bulletsim.policies.base import PolicyContext
from bulletsim.policies.batching import decode_shape, form_batch, prefill_shape
from bulletsim.policies.two_lane import TwoLanePolicy


def _check_common(name: str, max_prefill_tokens: int, max_running: int) -> None:
    if max_prefill_tokens < 1:
        raise ValueError(f"{name}.max_prefill_tokens must be >= 1, got {max_prefill_tokens}")
    if max_running < 1:
        raise ValueError(f"{name}.max_running_requests must be >= 1, got {max_running}")


# static-split's partitions are whole TPCs, as libsmctrl masks them (fixed; `--mechanism` is
# Bullet's parameter, and policies.registry.FIXED_MECHANISMS names this for the outputs).
STATIC_SPLIT_MECHANISM = "libsmctrl"


@dataclass(frozen=True, slots=True)
class StaticSplitParams:
    """Static split: prefill_fraction of the SMs (whole TPCs) for prefill, the rest decode.

    prefill_fraction: share of the SMs held by prefill, rounded to whole TPCs, in (0, 1).
    max_prefill_tokens: batch cap (Bullet's released code's 1664, for a like comparison).
    max_running_requests: requests in decode at most (Bullet's 1024).
    handoff_ms: cost of handing a finished batch to decode (Bullet paper's 0.21 ms).
    """

    prefill_fraction: float = field(default=0.5, metadata={RANGE: (0.0, 1.0, False, False)})
    max_prefill_tokens: int = 1664
    max_running_requests: int = 1024
    handoff_ms: float = 0.21

    def __post_init__(self) -> None:
        check_float_fields(self, "static-split")
        if not 0.0 < self.prefill_fraction < 1.0:
            raise ValueError(
                f"static-split.prefill_fraction must be in (0, 1), got {self.prefill_fraction}"
            )
        _check_common("static-split", self.max_prefill_tokens, self.max_running_requests)


class StaticSplit(TwoLanePolicy):
    def __init__(self, params: StaticSplitParams | None = None) -> None:
        p = self.params = params or StaticSplitParams()
        super().__init__(
            max_prefill_tokens=p.max_prefill_tokens,
            window_layers=None,
            max_running_requests=p.max_running_requests,
            handoff_s=p.handoff_ms / 1e3,
        )
        self.name = f"static-split-{round(100 * p.prefill_fraction)}"

    def bind(self, ctx: PolicyContext) -> None:
        super().bind(ctx)
        total = ctx.total_sms
        # libsmctrl masks whole TPCs; the unit comes from the GPU spec (hardware.py)
        tpc = partition_unit_sms(STATIC_SPLIT_MECHANISM, getattr(ctx.latency, "gpu", None), total)
        p = min(total - tpc, max(tpc, tpc * round(self.params.prefill_fraction * total / tpc)))
        self.num_sms = {"prefill": p, "decode": total - p}  # held even while idle: static

    def next_work(self, lane: str, now_s: float) -> Work | None:
        sms = self.num_sms[lane]
        if lane == "prefill":
            if not self.start_batch(now_s):
                return None
            self.busy[lane] = True
            return self.prefill_work(sms, 0.0)
        if not self.decode_has_work():
            return None
        shape = self.begin_decode(now_s)
        if shape is None:
            return None
        self.busy[lane] = True
        return Work("decode", shape, sms, decode=True)


@dataclass(frozen=True, slots=True)
class NaiveParams:
    """Naive concurrency: both lanes on all SMs at once, contending (no partitioning).

    max_prefill_tokens, max_running_requests, handoff_ms: as static-split's (Bullet's values).
    """

    max_prefill_tokens: int = 1664
    max_running_requests: int = 1024
    handoff_ms: float = 0.21

    def __post_init__(self) -> None:
        check_float_fields(self, "naive")
        _check_common("naive", self.max_prefill_tokens, self.max_running_requests)


class NaiveConcurrency(StaticSplit):
    def __init__(self, params: NaiveParams | None = None) -> None:
        p = params or NaiveParams()
        TwoLanePolicy.__init__(
            self,
            max_prefill_tokens=p.max_prefill_tokens,
            window_layers=None,
            max_running_requests=p.max_running_requests,
            handoff_s=p.handoff_ms / 1e3,
        )
        self.params = p
        self.name = "naive"

    def bind(self, ctx: PolicyContext) -> None:
        TwoLanePolicy.bind(self, ctx)
        # The overlap is the point of this ablation: both lanes hold every SM.
        self.num_sms = {"prefill": ctx.total_sms, "decode": ctx.total_sms}
        self.max_overlap_sms = ctx.total_sms


@dataclass(frozen=True, slots=True)
class PrefillFirstParams:
    """Prefill-first without chunking: a whole-prompt batch runs alone when one can form.

    max_prefill_tokens: batch cap (SGLang's --max-prefill-tokens default, 16384).
    max_running_requests: requests in decode at most (Bullet's 1024, for a like comparison).
    """

    max_prefill_tokens: int = 16384
    max_running_requests: int = 1024

    def __post_init__(self) -> None:
        _check_common("prefill-first", self.max_prefill_tokens, self.max_running_requests)


class PrefillFirst:
    lanes = ("main",)
    max_overlap_sms = 0

    def __init__(self, params: PrefillFirstParams | None = None) -> None:
        self.params = params or PrefillFirstParams()
        self.name = "prefill-first"
        self.ctx: PolicyContext | None = None

    def bind(self, ctx: PolicyContext) -> None:
        self.ctx = ctx

    def allocation(self, lane: str) -> int:
        return self.ctx.total_sms

    def stays_idle(self, lane: str) -> bool:
        return False  # one lane: nothing else would wake it

    def next_work(self, lane: str, now_s: float) -> Work | None:
        st, p = self.ctx.state, self.params
        chunks = form_batch(st, now_s, p.max_prefill_tokens, p.max_running_requests)
        sms = self.ctx.total_sms
        if chunks:
            return Work("main", prefill_shape(chunks, None), sms, prefill=chunks)
        pool = st.decode
        if not (len(pool) or pool.num_waiting_to_join):
            return None
        st.begin_decode_step(now_s)
        if not pool.in_step:
            return None
        return Work("main", decode_shape(st), sms, decode=True)

    def on_work_done(self, work: Work, now_s: float) -> None:
        self.ctx.state.finish_work(work, now_s)
