"""Answers to trust: early stop, steady state, intervals over seeds, the zero-load ceiling."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bulletsim.config import load_config
from bulletsim.intervals import mean_interval, ratio_interval, requests_needed, seeds_needed
from bulletsim.simulate import simulate
from bulletsim.steady_state import steady_state
from bulletsim.sweep import SweepSpec, run_sweep
from bulletsim.sweep_capacity import capacity_warnings


def _cfg(policy: str, rate: float, n: int = 300):
    return load_config(
        None,
        {"policy": policy, "latency": "roofline", "workload": {
            "trace": "splitwise-code", "arrival": "poisson", "rate": rate, "num_requests": n}},
    )  # fmt: skip


@pytest.mark.parametrize("policy", ["chunked", "bullet"])
def test_early_stop_only_stops_runs_that_certainly_fail(policy):
    over = _cfg(policy, 12.0)
    full = simulate(over).summary["slo_attainment"]
    stopped = simulate(over, stop_below_attainment=0.9)
    s = stopped.summary
    assert full < 0.9 and s["stopped_early"]
    # the bound holds: the full run's attainment is at most what the stopped run allowed
    assert full <= s["slo_attainment_upper_bound"] < 0.9
    assert s["stopped_at_s"] < simulate(over).summary["duration_s"]
    light = _cfg(policy, 1.0)
    ok = simulate(light, stop_below_attainment=0.9).summary
    assert "stopped_early" not in ok and ok["slo_attainment"] >= 0.9
    # a target the full run misses by a hair is still a failure, never a false stop
    assert (
        simulate(light, stop_below_attainment=ok["slo_attainment"]).summary.get("stopped_early")
        is None
    )


def _frame(arrival, finish):
    return pd.DataFrame({"arrival_s": arrival, "finish_s": finish})


def test_steady_state_tells_a_stable_run_from_a_growing_queue():
    arrival = np.arange(1000) * 0.1  # 10 req/s
    stable = steady_state(_frame(arrival, arrival + 0.05))  # served at once
    assert stable["steady"] and not stable["queue_growing"]
    assert stable["offered_steady_req_s"] == pytest.approx(10.0, rel=0.01)
    assert stable["throughput_steady_req_s"] == pytest.approx(10.0, rel=0.01)
    assert stable["completed_share"] == pytest.approx(1.0, abs=0.01)
    # served at 8 req/s in arrival order: the queue grows by 2 req/s, completions lag
    slow = steady_state(_frame(arrival, np.arange(1, 1001) * 0.125))
    assert slow["queue_growing"] and not slow["steady"]
    assert slow["completed_share"] == pytest.approx(0.8, abs=0.02)
    assert slow["drain_share"] == pytest.approx((125 - 99.9) / 125, rel=1e-6)
    assert slow["n_for_drain"] > 1000  # a longer run would make the drain a small share


def test_intervals_match_the_t_formula_and_pair_ratios_by_seed():
    x = [4.0, 5.0, 6.0]
    iv = mean_interval(x)
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sample sd of 4,5,6 is 1
    assert (iv.point, iv.lo, iv.hi) == pytest.approx((5.0, 5 - half, 5 + half))
    assert iv.half_width_rel == pytest.approx(half / 5)
    assert math.isnan(mean_interval([5.0]).lo)
    # paired: the baseline moves with the seed, the ratio does not -> a zero-width interval
    r = ratio_interval([6.0, 9.0, 12.0], [4.0, 6.0, 8.0])
    assert (r.point, r.lo, r.hi) == pytest.approx((1.5, 1.5, 1.5))
    assert requests_needed(iv, 1000, 0.1) == math.ceil(1000 * (iv.half_width_rel / 0.1) ** 2)
    assert seeds_needed(iv, 0.1) > 3 and seeds_needed(mean_interval([5.0, 5.0]), 0.1) == 2


def test_zero_load_ceiling_below_target_makes_capacity_undefined():
    # 0.05 ms per prompt token: no prefill of an 8B model is that fast, even alone
    spec = SweepSpec(
        policies=("chunked-2048",), traces=("splitwise-code",), rates=(1.0,), num_requests=40,
        seeds=(0, 1), base={"latency": "roofline", "slo": {"norm_ttft_ms_per_token": 0.05}},
    )  # fmt: skip
    points, cap = run_sweep(spec)
    r = cap.iloc[0]
    assert r.zero_load_attainment < 0.9 and not r.capacity_defined
    assert math.isnan(r.capacity_req_s) and set(points["kind"]) == {"grid"}  # no bisecting
    assert any("capacity undefined" in w for w in capacity_warnings(cap, spec))


def test_time_weighted_sms_weigh_by_time_not_by_change():
    from bulletsim.plots import _binned_sms, time_weighted_sms

    # 10 SMs for 1 s, 20 SMs for 2 s, 0 for the last second of a 4 s run
    sm = pd.DataFrame({"time_s": [0.0, 1.0, 3.0], "lane": ["d"] * 3, "num_sms": [10, 20, 0]})
    assert time_weighted_sms(sm, 4.0) == {"d": pytest.approx(12.5)}
    assert list(_binned_sms(sm, np.array([0.0, 2.0, 4.0]))) == pytest.approx([15.0, 10.0])


def test_paper_table_reads_sweeps_and_puts_the_paper_beside(tmp_path):
    from bulletsim.paper_table import main
    from bulletsim.sweep_report import write_sweep

    spec = SweepSpec(policies=("bullet", "chunked-2048"), traces=("splitwise-code",),
                     rates=(1.0, 3.0), num_requests=40, rel_tol=0.2, seeds=(0, 1),
                     base={"latency": "roofline"})  # fmt: skip
    points, cap = run_sweep(spec)
    write_sweep(tmp_path / "preset-a", spec, points, cap)
    (tmp_path / "paper.csv").write_text(
        "trace,label,paper_capacity_req_s,source\nsplitwise-code,bullet,3.5,test\n"
    )
    assert main([str(tmp_path)]) == 0
    text = (tmp_path / "tables.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| splitwise-code | bullet"))
    assert f"{cap.capacity_req_s.iloc[0]:.2f} [" in row and row.endswith("| ~3.5 |")
    assert "### preset-a" in text and "Convention: sglang-llama3" in text
    assert main([str(tmp_path / "missing")]) == 2


def test_intervals_are_never_tighter_than_the_search_resolution():
    # two seeds on the same bisection steps: their ratios agree to 1e-5, but each capacity is
    # located only to 2%, so the gain cannot be stated to better than a factor 1.02 each way
    bullet, chunked = [12.2048, 12.3546], [12.7451, 12.9015]
    tight = ratio_interval(bullet, chunked)
    assert tight.hi / tight.lo < 1.0001
    r = ratio_interval(bullet, chunked, 0.02)
    assert r.point == pytest.approx(tight.point)
    assert r.lo <= tight.lo / 1.02 * (1 + 1e-12) and r.hi >= tight.hi * 1.02 * (1 - 1e-12)
    m = mean_interval([10.0, 10.0], 0.02)
    assert (m.lo, m.hi) == pytest.approx((9.8, 10.2))
