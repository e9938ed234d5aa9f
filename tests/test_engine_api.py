"""The engine/policy contract: frozen work, one SM channel, protocol members, KV reports."""

from __future__ import annotations

import numpy as np
import pytest

from bulletsim.core import SLO, RequestSpec, Work, WorkShape
from bulletsim.engine import SimEngine
from bulletsim.kvcache import KVCache
from bulletsim.latency.constant import ConstantLatency
from bulletsim.policies.base import PolicyContext
from bulletsim.policies.bullet import Bullet, BulletParams
from bulletsim.policies.registry import make_policy, policy_names
from bulletsim.state import ServingState

TOTAL = 100
LAT = ConstantLatency(
    step_s=1e-3,
    prefill_token_s=1e-4,
    decode_token_s=3e-4,
    num_layers=32,
    total_sms=TOTAL,
    scale_with_sms=True,
)


def specs(n=120, seed=5, gap_s=0.02, max_output=80):
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(gap_s, n))
    prompts, outputs = rng.integers(1, 900, n), rng.integers(1, max_output, n)
    return [
        RequestSpec(i, float(a), int(p), int(o))
        for i, (a, p, o) in enumerate(zip(arrivals, prompts, outputs, strict=True))
    ]


def test_the_sim_engine_is_an_engine():
    from bulletsim.engine_api import Engine

    st = ServingState(specs(4), KVCache(1000, 16))
    eng = SimEngine(make_policy("chunked"), PolicyContext(st, LAT, TOTAL, SLO(0.05, 1.0)))
    assert isinstance(eng, Engine)
    assert eng.run() is eng.log and len(eng.log) > 0


def test_work_is_frozen():
    w = Work("main", WorkShape(decode_tokens=1), 8, decode=True)
    with pytest.raises(AttributeError):
        w.num_sms = 4


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_has_the_protocol_members(name):
    p = make_policy(name)
    st = ServingState(specs(4), KVCache(1000, 16))
    p.bind(PolicyContext(st, LAT, TOTAL, SLO(tpot_s=0.05, ttft_s=1.0)))
    assert isinstance(p.name, str) and p.lanes
    assert isinstance(p.max_overlap_sms, int) and p.max_overlap_sms >= 0
    for lane in p.lanes:
        assert isinstance(p.stays_idle(lane), bool)
        assert 0 <= p.allocation(lane) <= TOTAL


def snapshot(w: Work) -> tuple:
    """A Work's own fields (its chunks' requests are run state and do change)."""
    chunks = [(id(c.request), c.start_tokens, c.num_tokens) for c in w.prefill]
    return (w.lane, w.shape, w.num_sms, w.decode, w.layers, w.overhead_s, w.tag, chunks)


class RecordingBullet(Bullet):
    """Bullet that remembers every Work it handed out, as handed out."""

    def __init__(self, params):
        super().__init__(params)
        self.handed: list[tuple[Work, tuple]] = []

    def next_work(self, lane, now_s):
        w = super().next_work(lane, now_s)
        if w is not None:
            self.handed.append((w, snapshot(w)))
        return w


def test_engine_records_resizes_without_touching_the_work():
    policy = RecordingBullet(BulletParams(window_layers=4, merge_windows=False))
    # sparse arrivals, long outputs: prefills start while decode runs on the whole GPU
    st = ServingState(specs(60, gap_s=0.1, max_output=200), KVCache(10_000, 16))
    eng = SimEngine(policy, PolicyContext(st, LAT, TOTAL, SLO(0.03, None, 3e-3)))
    it = eng.run().to_frame()
    assert all(snapshot(w) == before for w, before in policy.handed)
    assert len(policy.handed) == len(it)
    # a resized iteration records the SMs it ended on, which differ from what it started on
    resized = it["num_rescales"].to_numpy() > 0
    assert resized.any(), "the scenario should shrink a running lane"
    # rows are logged at completion, Works at start: compare per lane in start order
    for lane in ("prefill", "decode"):
        rows = it[it["lane"].astype(str) == lane].sort_values("start_s", kind="stable")
        works = [w for w, _ in policy.handed if w.lane == lane]
        start_sms = np.array([w.num_sms for w in works])
        ended = rows["num_sms"].to_numpy()
        moved = rows["num_rescales"].to_numpy() > 0
        assert (ended[~moved] == start_sms[~moved]).all()
        assert (ended[moved] < start_sms[moved]).all()  # a running lane only shrinks


class KVMirror:
    """What an engine with physical KV pages would keep: pages per request."""

    def __init__(self):
        self.pages: dict[int, int] = {}
        self.admits = self.preempts = self.finishes = 0

    def on_admit(self, request, num_blocks, now_s):
        assert request.id not in self.pages
        self.pages[request.id] = num_blocks
        self.admits += 1

    def on_preempt(self, request, now_s):
        del self.pages[request.id]
        self.preempts += 1

    def on_finish(self, request, now_s):
        del self.pages[request.id]
        self.finishes += 1


@pytest.mark.parametrize("policy", ["chunked", "bullet"])
def test_state_reports_admit_preempt_finish(policy):
    reqs = specs(200, seed=9)
    st = ServingState(reqs, KVCache(400, 16), reserve_fraction=0.0)
    mirror = KVMirror()
    st.observe(mirror)
    eng = SimEngine(make_policy(policy), PolicyContext(st, LAT, TOTAL, SLO(0.03, None, 3e-3)))
    eng.run()
    assert st.num_preemptions > 0, "the scenario should preempt"
    assert mirror.preempts == st.num_preemptions
    assert mirror.finishes == len(reqs)
    assert mirror.admits == len(reqs) + st.num_preemptions
    assert mirror.pages == {}


def test_run_result_keeps_metrics_and_run_metadata_apart():
    from bulletsim.config import load_config
    from bulletsim.run import build_run, collect, simulate

    over = {"latency": "roofline", "workload": {"trace": "alpaca", "num_requests": 40}}
    res = simulate(load_config(None, over))
    assert not set(res.metrics) & set(res.meta)
    assert {"policy", "gpu", "workload_source"} <= set(res.meta)
    assert {"ttft_ms", "slo_attainment", "num_iterations"} <= set(res.metrics)
    assert res.summary == {**res.metrics, **res.meta}
    # the same run built and collected around an engine made by hand gives the same numbers
    run = build_run(load_config(None, over))
    eng = SimEngine(run.policy, run.context)
    eng.run()
    again = collect(run, eng)
    assert again.summary == res.summary
    assert again.iterations.equals(res.iterations)
