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
