"""PD-Multiplexing (SGLang mainline and the SLO variant): hand-checkable decisions.

Constant latency scaling with SMs on a 132-SM GPU with 4 layers: a full prefill costs 1 ms per
prompt token on all SMs, a decode step 1 ms per member on all SMs; on n SMs both take 132/n
times as long. Without a GPU spec the table uses Hopper's granularity (minimum 8, step 8).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from bulletsim.core import SLO, RequestSpec
from bulletsim.engine import SimEngine
from bulletsim.hardware import get_gpu
from bulletsim.invariants import check_run
from bulletsim.kvcache import KVCache
from bulletsim.latency.constant import ConstantLatency
from bulletsim.latency.roofline import RooflineLatency
from bulletsim.models import get_model
from bulletsim.policies.base import PolicyContext
from bulletsim.policies.pdmux import PDMux, PDMuxParams, PDMuxSLO, PDMuxSLOParams
from bulletsim.policies.pdmux_table import (
    full_table,
    parse_manual_divisions,
    row_by_batch,
    row_by_threshold,
    slo_rows,
    split_rows,
)
from bulletsim.policies.registry import make_policy
from bulletsim.records import request_frame
from bulletsim.state import ServingState

TOTAL = 132
LAT = ConstantLatency(
    prefill_token_s=1e-3, decode_token_s=1e-3, num_layers=4, total_sms=TOTAL, scale_with_sms=True
)
DECODE_ON_20_S = 1e-3 * 132 / 20  # one member on row 1's 20 decode SMs: 6.6 ms
LAYER_100_ON_112_S = 100e-3 / 4 * 132 / 112  # one layer of a 100-token prompt on 112 SMs


def run(specs, policy, *, slo=SLO(tpot_s=0.2, ttft_s=10.0), lat=LAT, total=TOTAL, blocks=100_000):
    st = ServingState(specs, KVCache(blocks, 16))
    eng = SimEngine(policy, PolicyContext(st, lat, total, slo))
    it = eng.run().to_frame()
    req = request_frame(st.requests)
    check_run(req, it, num_requests=len(specs), kv_capacity_blocks=blocks, total_sms=total)
    check_splits_change_only_when_idle(it, eng.sm_log)
    return req, it, eng


def check_splits_change_only_when_idle(it, sm_log) -> None:
    """A re-partition happens only after a drain: no iteration of either lane spans it."""
    changes = {t for t, _, _ in sm_log if t > 0}
    s, e = it["start_s"].to_numpy(), it["end_s"].to_numpy()
    for t in changes:
        assert not ((s < t - 1e-12) & (e > t + 1e-12)).any(), f"split changed mid-work at {t}"


def lane(it, name):
    return it[it["lane"].astype(str) == name]


def layers(df):
    return df[["layer_start", "layer_end"]].values.tolist()


# -- the table and the row rule ---------------------------------------------------------------
def test_table_for_132_and_108_sms():
    # 132 SMs, Hopper (min 8, step 8): prefill in {72..112} (>= half, decode >= 16): 6 splits
    assert full_table(132, split_rows(132, 8, 8, 6)) == (
        (132, 0), (112, 20), (104, 28), (96, 36), (88, 44), (80, 52), (72, 60), (0, 132),
    )  # fmt: skip
    # 108 SMs, Ampere (min 4, step 2): 20 candidates 54..92, every 20 // 6 = 3rd, first six
    assert split_rows(108, 4, 2, 6) == [(84, 24), (78, 30), (72, 36), (66, 42), (60, 48), (54, 54)]
    # fewer rows than splits: sm_group_num 4 -> 2 rows, every 6 // 2 = 3rd of 72..112
    assert split_rows(132, 8, 8, 2) == [(96, 36), (72, 60)]
    # more rows than splits: all of them
    assert len(split_rows(132, 8, 8, 10)) == 6
    with pytest.raises(ValueError, match="no prefill-majority split"):
        split_rows(24, 8, 8, 6)


def test_row_by_decode_batch_size():
    # G = 8 rows: clamp(bs * 6 // 36, 1, 6)
    rows = {bs: row_by_batch(bs, 8, 36) for bs in (1, 5, 6, 12, 18, 35, 36, 1000)}
    assert rows == {1: 1, 5: 1, 6: 1, 12: 2, 18: 3, 35: 5, 36: 6, 1000: 6}
    assert row_by_batch(10, 8, 10) == 6  # the divisor is a parameter
    # manual rows: the last whose threshold <= bs; below every threshold: row 1
    assert [row_by_threshold(bs, [4, 8, 64]) for bs in (1, 4, 9, 64, 500)] == [1, 1, 2, 3, 3]
    assert parse_manual_divisions("112:20:0, 96:36:32") == [(112, 20, 0), (96, 36, 32)]
    # ';' and '/' separate rows too (a sweep's --policy spec uses ',' between parameters)
    assert parse_manual_divisions("112:20:0;96:36:32") == parse_manual_divisions(
        "112:20:0/96:36:32"
    )
    for bad in ("112:20", "a:b:c"):
        with pytest.raises(ValueError, match="not three integers; PREFILL:DECODE:THRESHOLD"):
            parse_manual_divisions(bad)


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("-8:140:0", "prefill SMs must be >= 1, got -8"),
        ("112:20:-1", "threshold must be >= 0, got -1"),
        ("112:20:8,104:28:4", "threshold 4 is below the previous row's 8"),
    ],
)
def test_manual_rows_name_what_is_wrong(rows, problem):
    with pytest.raises(ValueError, match=problem) as e:
        parse_manual_divisions(rows)
    assert "1073741824" not in str(e.value)


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("120:20:0", r"prefill \+ decode = 140 SMs, more than the h200's 132"),
        ("111:21:0", r"groups of 8 \+ k \* 8 SMs; prefill must be one .* e.g. 112:20:0"),
        ("112:12:0", "decode one or the rest"),
    ],
)
def test_manual_rows_must_be_green_context_splits_of_the_gpu(rows, problem):
    params = PDMuxParams(sm_group_num=2 + len(rows.split(",")), manual_divisions=rows)
    with pytest.raises(ValueError, match=problem):
        params.check_gpu(get_gpu("h200"), 132)
    PDMuxParams(sm_group_num=3, manual_divisions="104:24:0").check_gpu(get_gpu("h200"), 132)


def test_min_sms_must_be_a_group_the_gpu_makes_and_bounds_both_sides():
    with pytest.raises(ValueError, match="pdmux-slo.min_sms = 66: .* multiple of 8 >= 8"):
        PDMuxSLOParams(min_sms=66).check_gpu(get_gpu("h200"), 132)
    with pytest.raises(ValueError, match="pdmux.step_sms = 4"):
        PDMuxParams(step_sms=4).check_gpu(get_gpu("h200"), 132)
    # min_sms 64: the SLO variant's only split with both sides >= 64 is (64, 68)
    pol = PDMuxSLO(PDMuxSLOParams(min_sms=64))
    run([RequestSpec(0, 0.0, 10, 2)], pol)
    assert pol.table == ((132, 0), (64, 68), (0, 132))
    # min_sms 32: prefill 32..100, so the decode side is never below 32 (was 20 at (112, 20))
    assert slo_rows(132, 32, 8)[0] == (96, 36)


def test_slo_variant_does_not_take_mainline_table_parameters():
    names = {f.name for f in dataclasses.fields(PDMuxSLOParams)}
    assert not names & {"sm_group_num", "manual_divisions", "decode_bs_divisor"}
    assert {"tpot_target_frac", "min_sms", "handoff_ms"} <= names


@pytest.mark.parametrize("value", [math.nan, math.inf, 1e308, -1.0])
@pytest.mark.parametrize("cls", [PDMuxParams, PDMuxSLOParams])
def test_handoff_must_be_a_finite_time(cls, value):
    with pytest.raises(ValueError, match="handoff_ms must be a finite time in"):
        cls(handoff_ms=value)


def test_params_are_checked():
    with pytest.raises(ValueError, match="sm_group_num"):
        PDMuxParams(sm_group_num=2)
    with pytest.raises(ValueError, match="2 rows"):
        PDMuxParams(sm_group_num=4, manual_divisions="112:20:0")
    with pytest.raises(ValueError, match="tpot_target_frac"):
        PDMuxSLOParams(tpot_target_frac=0.0)
    assert make_policy("pdmux").name == "pdmux"
    assert make_policy("pdmux-slo").name == "pdmux-slo"


# -- timelines --------------------------------------------------------------------------------
def test_single_request_drains_at_admission_merge_and_decode_empty():
    # No decode: row 0, every layer launched at once, 10 ms on 132 SMs; the merge moves to the
    # decode-only row (two 1 ms steps); decode empties -> back to row 0.
    pol = PDMux()
    req, it, eng = run([RequestSpec(0, 0.0, 10, 3)], pol)
    r = req.iloc[0]
    assert (r.first_token_s, r.finish_s) == pytest.approx((0.010, 0.012))
    assert layers(lane(it, "prefill")) == [[0, 4]]
    assert lane(it, "prefill")["num_sms"].tolist() == [132]
    assert lane(it, "decode")["num_sms"].tolist() == [132, 132]
    assert pol.counts["drains"] == 3  # admission, merge, decode empty
    changes = [(round(t, 6), ln, n) for t, ln, n in eng.sm_log if t > 0]
    assert changes == [
        (0.010, "prefill", 0), (0.010, "decode", 132),
        (0.012, "prefill", 132), (0.012, "decode", 0),
    ]  # fmt: skip


def _decoding_plus_prompt(r0_output: int, r1_arrival_s: float, extra=()):
    # r0 decodes alone; r1 (100 tokens) arrives mid-step. budget 150 -> 150 // 100 = 1 layer
    # per tick.
    specs = [RequestSpec(0, 0.0, 10, r0_output), RequestSpec(1, r1_arrival_s, 100, 3), *extra]
    pol = PDMux(PDMuxParams(split_forward_token_budget=150))
    return pol, *run(specs, pol)


def test_tick_launches_layers_and_first_token_waits_for_the_tick():
    # r0: prefill 0-10 ms, decode steps of 1 ms from 10 ms. r1 arrives at 12.5 ms, inside the
    # step 12-13 ms: it is admitted when that tick ends (13 ms), row clamp(1*6//36,1,6) = 1 =
    # (112, 20). Ticks are 6.6 ms decode steps on 20 SMs, each launching one layer of
    # 29.46 ms: the prefill stream is the bottleneck and runs [0,1] then the queued [1,4],
    # finishing at 13 ms + 4 layers; the first token comes at the end of the tick in flight.
    pol, req, it, eng = _decoding_plus_prompt(60, 0.0125)
    pre = lane(it, "prefill")
    r1 = pre[pre["prefill_tokens"] == 100]
    assert layers(r1) == [[0, 1], [1, 4]]
    assert set(r1["num_sms"]) == {112}
    gpu_done = 0.013 + 4 * LAYER_100_ON_112_S
    assert r1["end_s"].max() == pytest.approx(gpu_done)
    tick_end = 0.013 + 18 * DECODE_ON_20_S  # 17 ticks end before gpu_done, the 18th after
    assert 0.013 + 17 * DECODE_ON_20_S < gpu_done < tick_end
    assert req.loc[1, "admitted_s"] == pytest.approx(0.013)
    assert req.loc[1, "first_token_s"] == pytest.approx(tick_end)
    dec = lane(it, "decode")
    during = dec[(dec["start_s"] >= 0.013 - 1e-9) & (dec["end_s"] <= tick_end + 1e-9)]
    assert len(during) == 18 and set(during["num_sms"]) == {20}
    after = dec[dec["start_s"] >= tick_end - 1e-9]
    assert set(after["num_sms"]) == {132}  # merged, nothing waiting: decode-only row
    assert set(after["decode_tokens"]) <= {1, 2} and 2 in set(after["decode_tokens"])


def test_later_arrivals_wait_for_the_batch_in_flight():
    # r2 (5 tokens) arrives at 14 ms, just after r1's batch was admitted: no second batch may
    # start, so r2 waits until r1's result is taken at the tick end, then is admitted at the
    # next tick start (the same instant) beside a decode batch of 2 (row 1).
    r2 = RequestSpec(2, 0.014, 5, 2)
    pol, req, it, _ = _decoding_plus_prompt(60, 0.0125, extra=(r2,))
    tick_end = 0.013 + 18 * DECODE_ON_20_S
    assert req.loc[2, "admitted_s"] == pytest.approx(tick_end)
    pre = lane(it, "prefill")
    assert pre[pre["prefill_tokens"] == 5]["num_sms"].tolist() == [112]
    assert pol.counts["batches"] == 3


def test_decode_emptying_drains_launched_layers_then_gives_prefill_the_gpu():
    # r0 (4 output tokens) decodes 10-11, 11-12 ms. r1 arrives at 10.5 ms and is admitted at
    # 11 ms on row 1: tick 11-17.6 ms launches layer 1, tick 17.6-24.2 ms launches layer 2 and
    # r0 finishes. Decode is empty: the drain waits for both launched layers on 112 SMs
    # ([0,1] then the queued [1,2]); then row 0 and the last two layers on all 132 SMs.
    pol, req, it, eng = _decoding_plus_prompt(4, 0.0105)
    pre = lane(it, "prefill")
    r1 = pre[pre["prefill_tokens"] == 100]
    assert layers(r1) == [[0, 1], [1, 2], [2, 4]]
    assert r1["num_sms"].tolist() == [112, 112, 132]
    drained = 0.011 + 2 * LAYER_100_ON_112_S
    assert r1["start_s"].iloc[2] == pytest.approx(drained)
    assert req.loc[0, "finish_s"] == pytest.approx(0.011 + 2 * DECODE_ON_20_S)
    assert req.loc[1, "first_token_s"] == pytest.approx(drained + 2 * 0.025)
    assert pol.counts["drain_waits"] == 1
    assert (round(drained, 6), "prefill", 132) in [(round(t, 6), ln, n) for t, ln, n in eng.sm_log]


def test_admission_caps_batches_at_max_prefill_tokens_first_always_admitted():
    specs = [RequestSpec(i, 0.0, n, 1) for i, n in enumerate((10_000, 6_000, 20_000, 100))]
    pol = PDMux()
    _, it, _ = run(specs, pol, slo=SLO(tpot_s=1.0, ttft_s=1e3))
    # 10k + 6k = 16k <= 16384; 20k alone (first of its batch); then 100
    assert lane(it, "prefill")["prefill_tokens"].tolist() == [16_000, 20_000, 100]
    assert pol.layers_per_tick == 65536 // 100


def test_slo_variant_gives_decode_just_enough_sms():
    # TPOT 5 ms, target 100%: one member needs 132 / d ms <= 5 -> d >= 26.4 -> 28 SMs (104, 28)
    specs = [RequestSpec(0, 0.0, 10, 60), RequestSpec(1, 0.0125, 100, 2)]
    pol = PDMuxSLO(PDMuxSLOParams(tpot_target_frac=1.0))
    _, it, _ = run(specs, pol, slo=SLO(tpot_s=5e-3, ttft_s=10.0))
    pre = lane(it, "prefill")
    assert set(pre[pre["prefill_tokens"] == 100]["num_sms"]) == {104}
    # a looser SLO: 10 ms -> d >= 13.2 -> the smallest split: prefill in multiples of 8 up
    # to 132 - 16, so (112, 20)
    pol = PDMuxSLO(PDMuxSLOParams(tpot_target_frac=1.0))
    _, it, _ = run(specs, pol, slo=SLO(tpot_s=10e-3, ttft_s=10.0))
    pre = lane(it, "prefill")
    assert set(pre[pre["prefill_tokens"] == 100]["num_sms"]) == {112}
    assert pol.table[1] == (112, 20) and pol.table[-2] == (8, 124)


# -- invariants on random runs ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["pdmux", "pdmux-slo"])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_runs_keep_the_invariants(name, seed):
    rng = np.random.default_rng(seed)
    n = 60
    arrivals = np.cumsum(rng.exponential(0.03, n))
    specs = [
        RequestSpec(i, float(a), int(p), int(o))
        for i, (a, p, o) in enumerate(
            zip(arrivals, rng.integers(1, 6000, n), rng.integers(1, 300, n), strict=True)
        )
    ]
    gpu = get_gpu("h200")
    lat = RooflineLatency(gpu, get_model("llama-3.1-8b"))
    pol = make_policy(name)
    # a small cache (11,200 tokens) forces admission waits, and with seed 1 a preemption
    req, it, _ = run(specs, pol, lat=lat, total=gpu.num_sms, blocks=700)
    assert req["num_preemptions"].sum() == seed
    assert pol.counts["drain_waits"] >= 1  # decode emptied under a running prefill
    table = set(pol.table)
    pairs = it.groupby("lane", observed=True)["num_sms"].agg(set).to_dict()
    assert pairs["prefill"] <= {p for p, _ in table} and pairs["decode"] <= {d for _, d in table}
    assert pol.counts["drains"] >= pol.counts["repartitions"] >= 1
    assert (req["first_token_s"] >= req["admitted_s"]).all()
