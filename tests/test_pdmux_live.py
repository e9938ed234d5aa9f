"""PD-Multiplexing on the live engine's host loop (fake executor, no GPU).

PDMux re-partitions only after a drain, so no launch ever runs across a split change; on green
contexts the simulator runs each launch on the partition the GPU engine makes and prices it
beside what is in flight at launch, in the live loop's lane order (issue 10). With a latency
model that ignores co-runners and with the installed profile (contention), the live loop on
the fake executor (green partitions, as `bulletsim live` makes it) must reproduce the
simulator to the bit.
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


@pytest.mark.parametrize("latency", [LAT, None], ids=["constant", "profile"])
@pytest.mark.parametrize("policy", ["pdmux", "pdmux-slo"])
def test_live_loop_reproduces_the_simulator_exactly(policy, latency):
    cfg = load_config(
        None,
        {
            "policy": policy,
            "gpu": "h200",
            "workload": {"trace": "splitwise", "num_requests": 150, "rate": 20.0},
        },
    )
    live = live_run(cfg, FakeExecutor(green=True), latency=latency).result
    sim = simulate(cfg, latency=latency)
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


def test_the_committed_pdmux_slo_live_runs_reproduce_their_table():
    # results/live-h200/pdmux-slo/fidelity.md: a committed pdmux-slo run on the H200,
    # re-simulated with the profile it predicted with, gives its table line to the printed
    # digit; live, the policy chose only the (112, 20) split (README: run as 108 / 24 SMs).
    from pathlib import Path

    from bulletsim.live.fidelity import headline, markdown_table, resimulate_live

    root = Path(__file__).resolve().parents[1] / "results" / "live-h200"
    run = root / "runs-pdmux-slo" / "splitwise-pdmux-slo-r19-n500"
    f = resimulate_live(run, profile=root / "profile-r2-run-time.json")
    line = markdown_table([headline(f)]).splitlines()[-1]
    assert line in (root / "pdmux-slo" / "fidelity.md").read_text().splitlines()
    it = pd.read_parquet(run / "iterations.parquet")
    both = it[it.num_sms < 132]
    assert set(both.policy_sms) == {20, 112}
    pairs = set(zip(both.lane, both.num_sms, strict=True))
    assert pairs == {("decode", 24), ("prefill", 108)}


def test_pdmux_slo_runs_written_with_mainlines_table_keys_still_load():
    # runs made before pdmux-slo stopped listing sm_group_num / decode_bs_divisor /
    # manual_divisions (it ignored the first two, used the third only when set)
    import json
    from pathlib import Path

    from bulletsim.live.fidelity import live_config

    root = Path(__file__).resolve().parents[1] / "results" / "live-h200" / "runs-pdmux-slo"
    meta = json.loads((root / "sharegpt-pdmux-slo-r38.1-n500" / "config.json").read_text())
    assert "sm_group_num" in meta["config"]["policy_params"]["pdmux-slo"]
    cfg = live_config(meta)
    assert cfg.policy == "pdmux-slo"
    assert cfg.policy_params["pdmux-slo"]["tpot_target_frac"] == 0.9
    meta["config"]["policy_params"]["pdmux-slo"]["manual_divisions"] = "112:20:0"
    with pytest.raises(ValueError, match="manual_divisions"):
        live_config(meta)
