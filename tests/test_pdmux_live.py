"""PD-Multiplexing on the live engine's host loop (fake executor, no GPU).

PDMux re-partitions only after a drain, so no launch ever runs across a split change: with a
latency model that ignores co-runners, the live loop must reproduce the simulator to the bit.
(With contention the two differ where they snapshot the co-runner: the simulator prices an
iteration beside what runs when it starts, the live loop beside what is in flight at launch.)
"""

from __future__ import annotations

import pandas as pd
import pytest

from bulletsim.config import load_config
from bulletsim.latency.constant import ConstantLatency
from bulletsim.live.fake import FakeExecutor
from bulletsim.live.run import live_run
from bulletsim.run import simulate

LAT = ConstantLatency(
    step_s=2e-3,
    prefill_token_s=50e-6,
    decode_token_s=40e-6,
    num_layers=32,
    total_sms=132,
    scale_with_sms=True,
)


@pytest.mark.parametrize("policy", ["pdmux", "pdmux-slo"])
def test_live_loop_reproduces_the_simulator_exactly(policy):
    cfg = load_config(
        None,
        {
            "policy": policy,
            "gpu": "h200",
            "workload": {"trace": "splitwise", "num_requests": 150, "rate": 20.0},
        },
    )
    live = live_run(cfg, FakeExecutor(), latency=LAT).result
    sim = simulate(cfg, latency=LAT)
    pd.testing.assert_frame_equal(live.requests, sim.requests)
    cols = ["lane", "start_s", "end_s", "num_sms", "prefill_tokens", "decode_tokens"]
    cols += ["layer_start", "layer_end"]
    pd.testing.assert_frame_equal(live.iterations[cols], sim.iterations[cols])
    assert live.metrics == sim.metrics
    both = set(live.iterations["num_sms"]) - {132}
    assert both, "the lanes never shared the GPU"


def test_green_lane_rule_is_the_gpu_engines():
    from bulletsim.live.green_lanes import green_lane_sms

    # PDMux's rows on 132 SMs as the GPU engine runs them: decode rounded up to a group of
    # 8, prefill the remainder of that split (4 SMs less than SGLang's table)
    got = {(p, d): (green_lane_sms("prefill", p, 132)[0], green_lane_sms("decode", d, 132)[0])
           for p, d in ((112, 20), (104, 28), (72, 60))}  # fmt: skip
    assert got == {(112, 20): (108, 24), (104, 28): (100, 32), (72, 60): (68, 64)}
    assert green_lane_sms("decode", 132, 132) == (132, "full-decode")
    assert green_lane_sms("decode", 4, 132) == (8, "g8")
    assert green_lane_sms("prefill", 130, 132) == (124, "r8")  # the smallest split is 8
    assert green_lane_sms("decode", 127, 132) == (120, "g120")  # splits stop at 120


def test_fake_executor_records_the_partitions_a_gpu_run_would():
    from bulletsim.live.cli import make_executor

    cfg = load_config(
        None,
        {"policy": "pdmux", "gpu": "h200",
         "workload": {"trace": "splitwise", "num_requests": 60, "rate": 20.0}},
    )  # fmt: skip
    ex = make_executor("fake", cfg)
    assert ex.green
    it = live_run(cfg, ex, latency=LAT).result.iterations
    decode = set(it[it["lane"] == "decode"]["num_sms"]) - {132}
    prefill = set(it[it["lane"] == "prefill"]["num_sms"]) - {132}
    assert decode and prefill, "the lanes never shared the GPU"
    assert all(d % 8 == 0 for d in decode) and 20 not in decode  # SGLang's 20 runs as 24
    assert all((132 - p) % 8 == 0 for p in prefill) and 112 not in prefill
    chunked = load_config(None, {"policy": "chunked", "gpu": "h200"})
    assert not make_executor("fake", chunked).green
