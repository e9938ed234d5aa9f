"""Host terms of the latency model: launch-bound eager steps and inter-step gaps (CPU only)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from bulletsim.config import load_config
from bulletsim.core import WorkShape
from bulletsim.latency.host import MAX_OVERLAP_EXP, HostParams, overlap
from bulletsim.latency.profile import PROFILE_DIR, ProfileLatency, read_profile, validate
from bulletsim.live.fake import FakeExecutor
from bulletsim.live.run import live_run
from bulletsim.run import simulate

HOST = {"launch_s": 20e-6, "eager_fixed_s": 1e-3, "gap_s": {"batch": 1e-3, "window": 2e-4,
        "graph": 5e-4}}  # fmt: skip


@pytest.fixture(scope="module")
def doc() -> dict:
    return read_profile(PROFILE_DIR / "h200__llama-3.1-8b.json")


def with_host(doc: dict, host: dict | None = HOST, scale: dict | None = None) -> dict:
    d = copy.deepcopy(doc)
    if host is not None:
        d["host"] = host
    if scale is not None:
        d["exec"]["kernel_scale"] = scale
    return d


def _cfg(policy="chunked", n=60, rate=20.0, **extra):
    over = {"policy": policy, "gpu": "h200", "workload": {"trace": "splitwise",
            "num_requests": n, "rate": rate}}  # fmt: skip
    return load_config(None, over | extra)


def test_an_eager_step_lasts_at_least_its_host_launch_time(doc):
    base, host = ProfileLatency(doc), ProfileLatency(with_host(doc))
    small = WorkShape(prefill_tokens=16, prefill_attn_pairs=136, prefill_kv_tokens=16,
                      num_prefill_seqs=1, logits_tokens=1)  # fmt: skip
    launch = 1e-3 + 20e-6 * 13 * 32  # eager_fixed + launch_s * kernels_per_layer * layers
    assert base.predict(small, 132) < launch  # a 16-token step is launch-bound
    assert host.predict(small, 132) == pytest.approx(launch)
    big = WorkShape(prefill_tokens=8192, prefill_attn_pairs=8192 * 8193 / 2,
                    prefill_kv_tokens=8192, num_prefill_seqs=1, logits_tokens=1)  # fmt: skip
    assert host.predict(big, 132) == base.predict(big, 132) > launch  # GPU-bound: unchanged
    window = WorkShape(16, 136, 16, 1, num_layers=8)
    assert host.predict(window, 64) == pytest.approx(1e-3 + 20e-6 * 13 * 8)
    decode = WorkShape(decode_tokens=4, decode_ctx_tokens=400, logits_tokens=4)
    assert host.predict(decode, 132) == base.predict(decode, 132)  # a graph: one launch


def test_launch_gaps_by_kind(doc):
    host, base = ProfileLatency(with_host(doc)), ProfileLatency(doc)
    pre = WorkShape(prefill_tokens=100, num_prefill_seqs=1, num_layers=8)
    dec = WorkShape(decode_tokens=2, decode_ctx_tokens=20)
    assert host.launch_gap_s(pre, 0) == 1e-3
    assert host.launch_gap_s(pre, 8) == 2e-4
    assert host.launch_gap_s(dec, 0) == 5e-4
    assert base.launch_gap_s(pre, 0) == base.launch_gap_s(dec, 0) == 0.0


def test_kernel_scale_multiplies_the_kernel_parts_only(doc):
    base = ProfileLatency(doc)
    scaled = ProfileLatency(with_host(doc, None, {"memory": 2.0, "compute": 0.5}))
    dec = WorkShape(decode_tokens=64, decode_ctx_tokens=64 * 2049, logits_tokens=64)
    m, c = base.time_split_s(dec, 132)
    m2, c2 = scaled.time_split_s(dec, 132)
    assert (m2, c2) == pytest.approx((2 * m, 0.5 * c))
    assert scaled.predict(dec, 132) - base.predict(dec, 132) == pytest.approx(m + -0.5 * c)


def test_a_profile_without_host_terms_simulates_as_before(doc):
    # zero host terms and unit kernel scale change nothing, bit for bit
    zero = with_host(doc, {"gap_s": {"batch": 0.0}}, {"memory": 1.0, "compute": 1.0})
    cfg = _cfg("bullet", bullet={"mechanism": "green-ctx"})
    a = simulate(cfg, latency=ProfileLatency(doc))
    b = simulate(cfg, latency=ProfileLatency(zero))
    pd.testing.assert_frame_equal(a.iterations, b.iterations)
    pd.testing.assert_frame_equal(a.requests, b.requests)


def test_the_simulator_waits_the_host_gap_before_each_launch(doc):
    cfg = _cfg(n=20, rate=5.0)
    lat = ProfileLatency(with_host(doc))
    it = simulate(cfg, latency=lat).iterations
    before = simulate(cfg, latency=ProfileLatency(doc)).iterations
    gaps = it["start_s"].to_numpy()[1:] - it["end_s"].to_numpy()[:-1]
    kinds = it["phase"].astype(str).to_numpy()[1:]
    back_to_back = gaps < 0.5e-3 + 1e-9  # at least the decode gap between any two steps
    dec = gaps[back_to_back & (kinds == "decode")]
    assert len(dec) > 10 and list(dec) == pytest.approx([5e-4] * len(dec))
    assert (gaps >= 5e-4 - 1e-12).all()  # every launch waits its gap, idle or not
    assert it["end_s"].max() > before["end_s"].max()


def test_the_fake_executor_keeps_the_simulators_timeline_with_host_terms(doc):
    cfg = _cfg(n=40)
    lat = ProfileLatency(with_host(doc))
    live = live_run(cfg, FakeExecutor(), latency=lat).result
    sim = simulate(cfg, latency=lat)
    cols = ["start_s", "end_s", "prefill_tokens", "decode_tokens"]
    pd.testing.assert_frame_equal(live.iterations[cols], sim.iterations[cols], rtol=1e-9)


@pytest.mark.parametrize(
    ("host", "msg"),
    [
        ({"launch_s": -1.0}, "must be >= 0"),
        ({"gap_s": {"prefill": 1e-3}}, "unknown host gap kinds"),
        ({"gap_s": {"graph": 2.0}}, "seconds in [0, 1)"),
        ({"launches": 3}, "unknown host parameters"),
        ({"eager_overlap_exp": 0.5}, "eager_overlap_exp must be a number in [1, 64]"),
        ({"eager_overlap_exp": 100}, "eager_overlap_exp must be a number in [1, 64]"),
        ({"eager_overlap_exp": True}, "eager_overlap_exp must be a number in [1, 64]"),
        ({"eager_overlap_exp": "2"}, "eager_overlap_exp must be a number in [1, 64]"),
    ],
)
def test_a_bad_host_section_is_a_one_line_error(doc, host, msg):
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace(")", r"\)")):
        validate(with_host(doc, host))


def test_overlap_is_the_max_the_sum_or_the_k_norm_between():
    a, b = np.array([3.0, 0.0, 5.0]), np.array([4.0, 0.0, 0.0])
    np.testing.assert_array_equal(overlap(a, b, None), [4.0, 0.0, 5.0])
    np.testing.assert_allclose(overlap(a, b, 1.0), [7.0, 0.0, 5.0])
    np.testing.assert_allclose(overlap(a, b, 2.0), [5.0, 0.0, 5.0])
    scalar = overlap(3.0, 4.0, 2.0)
    assert scalar == pytest.approx(5.0) and isinstance(scalar, float)
    # within 1.1% of the max at the largest exponent a fit may reach
    assert 4.0 < overlap(3.0, 4.0, MAX_OVERLAP_EXP) < 4.0 * 1.011


def test_an_eager_step_is_the_k_norm_of_its_gpu_and_host_launch_times(doc):
    base = ProfileLatency(doc)
    k2 = ProfileLatency(with_host(doc, HOST | {"eager_overlap_exp": 2.0}))
    launch = 1e-3 + 20e-6 * 13 * 32
    mid = WorkShape(prefill_tokens=512, prefill_attn_pairs=512 * 513 / 2, prefill_kv_tokens=512,
                    num_prefill_seqs=1, logits_tokens=1)  # fmt: skip
    gpu = base.predict(mid, 132)
    assert k2.predict(mid, 132) == pytest.approx((gpu**2 + launch**2) ** 0.5)
    assert k2.predict(mid, 132) > max(gpu, launch)  # partly overlapped: longer than either
    decode = WorkShape(decode_tokens=4, decode_ctx_tokens=400, logits_tokens=4)
    assert k2.predict(decode, 132) == base.predict(decode, 132)  # a graph: one launch


def test_host_params_round_trip():
    h = HostParams(launch_s=1e-5, eager_fixed_s=2e-3, gap_s={"graph": 4e-4})
    again = HostParams(**h.to_dict())
    assert again.gap("graph") == 4e-4 and again.gap("batch") == 0.0
    assert again.eager_launch_s(32) == pytest.approx(2e-3 + 1e-5 * 13 * 32)
    assert again.eager_overlap_exp is None  # absent: the max
    k = HostParams(**(h.to_dict() | {"eager_overlap_exp": 3.0}))
    assert HostParams(**k.to_dict()).eager_step_s(0.01, 32) == pytest.approx(
        (0.01**3 + k.eager_launch_s(32) ** 3) ** (1 / 3)
    )


def test_the_clock_can_follow_another_model_than_the_policy():
    # fidelity re-simulates a live run with the policy predicting as the live one did while
    # the clock follows a refitted profile: every iteration lasts the timing model's time
    from bulletsim.latency.constant import ConstantLatency

    cfg = _cfg(n=20, rate=5.0)
    res = simulate(
        cfg, latency=ConstantLatency(step_s=0.01), timing=ConstantLatency(step_s=0.02, name="t")
    )
    it = res.iterations
    assert list(it["end_s"] - it["start_s"]) == pytest.approx([0.02] * len(it))
    assert res.meta["timing_model"] == "t" and res.meta["latency_model"] == "constant"


def test_two_lanes_share_one_host_thread(doc):
    # The host prepares (gap) and enqueues (eager launch) one launch at a time: over both of
    # Bullet's lanes, the intervals [start - own gap, start + eager launch] never overlap.
    from bulletsim.latency.host import HostParams, gap_kind

    lat = ProfileLatency(with_host(doc))
    h = HostParams(**HOST)
    cfg = _cfg("bullet", n=60, rate=20.0, bullet={"mechanism": "green-ctx"})
    it = simulate(cfg, latency=lat).iterations.sort_values("start_s")
    spans = []
    for r in it.itertuples():
        first = max(int(r.layer_start), 0)
        seqs = int(r.decode_tokens) + int(r.num_prefill_seqs)
        own = h.gap(gap_kind(int(r.prefill_tokens), first), seqs)
        layers = 32 if r.layer_start < 0 else int(r.layer_end - r.layer_start)
        busy = h.eager_launch_s(layers) if r.prefill_tokens else 0.0
        spans.append((r.start_s - own, r.start_s + busy, str(r.lane)))
    spans.sort()
    lanes = {s[2] for s in spans}
    assert lanes == {"prefill", "decode"}
    overlaps = [(a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1] - 1e-12]
    assert not overlaps, overlaps[:3]
    waited = it[it["lane"] == "decode"]  # some decode launch waited for a prefill launch
    gaps = waited["start_s"].to_numpy()[1:] - waited["end_s"].to_numpy()[:-1]
    assert (gaps > 5e-4 + 13 * 20e-6 * 8).any()


def test_a_bad_host_gap_names_its_field_kind_and_value():
    from bulletsim.latency.host import HostParams

    with pytest.raises(ValueError, match=r"host gap_per_seq_s\['graph'\] .* got -1"):
        HostParams(gap_per_seq_s={"batch": 0.0, "window": 0.0, "graph": -1})
