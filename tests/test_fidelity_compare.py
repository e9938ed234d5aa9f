"""The fidelity comparison on hand-made sides whose every figure is worked out below."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bulletsim.core import SLO
from bulletsim.fidelity.compare import compare, side_summary
from bulletsim.fidelity.observed import Observed, itl_stats_ms, observed_from_request_frame


def _side(label: str, ttft_s, e2e_s, out, duration_s, itl_s=()) -> Observed:
    n = len(ttft_s)
    df = pd.DataFrame(
        {
            "prompt_tokens": np.full(n, 100, np.int64),
            "output_tokens": np.asarray(out, np.int64),
            "ttft_s": np.asarray(ttft_s, np.float64),
            "e2e_s": np.asarray(e2e_s, np.float64),
        }
    )
    return Observed(label, df, itl_stats_ms(np.asarray(itl_s)), duration_s)


# measured: 4 requests, TTFT 0.1..0.4 s, 11 output tokens, E2E = TTFT + 1.0 s -> TPOT 100 ms
MEAS = _side("measured", [0.1, 0.2, 0.3, 0.4], [1.1, 1.2, 1.3, 1.4], [11] * 4, 2.0,
             [0.1, 0.1, 0.1, 0.1, 0.2])  # fmt: skip


def test_side_summary_by_hand():
    s = side_summary(MEAS, SLO(tpot_s=0.15, ttft_s=0.25))
    # TTFT ms 100,200,300,400: mean 250, p50 250, p90 = 300 + 0.7*100 = 370, p99 = 397
    assert s["ttft_ms"] == pytest.approx({"mean": 250, "p50": 250, "p90": 370, "p99": 397})
    assert s["tpot_ms"] == pytest.approx({"mean": 100, "p50": 100, "p90": 100, "p99": 100})
    # ITL 100,100,100,100,200: mean 120, p50 100, p90 = 100 + 0.6*100 = 160, p99 = 196
    assert s["itl_ms"] == pytest.approx({"mean": 120, "p50": 100, "p90": 160, "p99": 196})
    assert s["throughput_req_s"] == 2.0  # 4 requests / 2 s
    assert s["output_throughput_tok_s"] == 22.0  # 44 tokens / 2 s
    assert s["ttft_attainment"] == 0.5  # 0.1 and 0.2 <= 0.25
    assert s["tpot_attainment"] == 1.0
    assert s["slo_attainment"] == 0.5
    # normalized TTFT: 2 ms/token * 100 tokens = 0.2 s -> 0.1 and 0.2 meet it
    norm = side_summary(MEAS, SLO(tpot_s=0.09, norm_ttft_s_per_token=0.002))
    assert norm["ttft_attainment"] == 0.5 and norm["tpot_attainment"] == 0.0


def test_compare_errors_and_per_request():
    # sim: every TTFT 10% high, E2E the same as measured -> TPOT a little lower
    sim = _side("sim", [0.11, 0.22, 0.33, 0.44], [1.1, 1.2, 1.3, 1.4], [11] * 4, 2.5,
                [0.12] * 5)  # fmt: skip
    c = compare(sim, MEAS, SLO(tpot_s=0.15, ttft_s=0.25))
    for stat in ("mean", "p50", "p90", "p99"):
        assert c.row("ttft_ms", stat).error_pct == pytest.approx(10.0)
        assert c.row("e2e_ms", stat).error_pct == pytest.approx(0.0)
    assert c.row("itl_ms", "mean").error_pct == pytest.approx(0.0)  # 120 vs 120
    assert c.row("itl_ms", "p50").error_pct == pytest.approx(20.0)  # 120 vs 100
    assert c.row("throughput_req_s").sim == 1.6  # 4 / 2.5 s
    assert c.row("throughput_req_s").error_pct == pytest.approx(-20.0)
    assert c.row("ttft_attainment").sim == 0.5  # 0.11 and 0.22
    assert c.per_request["ttft_abs_rel_error_p50_pct"] == pytest.approx(10.0)
    assert c.per_request["e2e_abs_rel_error_p90_pct"] == pytest.approx(0.0)
    assert c.to_dict()["rows"][0]["metric"] == "ttft_ms"


def test_different_requests_skip_per_request_rows():
    other = _side("sim", [0.1], [1.1], [11], 1.0)
    c = compare(other, MEAS, SLO(tpot_s=0.15, ttft_s=0.25))
    assert c.per_request == {} and "per-request errors skipped" in c.notes[0]
    assert math.isnan(c.row("itl_ms", "mean").sim)  # no ITL sample on that side


def test_observed_from_request_frame():
    frame = pd.DataFrame(
        {
            "id": [1, 0],
            "arrival_s": [1.0, 0.0],
            "first_token_s": [1.5, 0.2],
            "finish_s": [3.0, 1.2],
            "prompt_tokens": [10, 20],
            "output_tokens": [4, 1],
        }
    )
    o = observed_from_request_frame("live", frame, itl_stats_ms(np.array([0.5])))
    assert o.requests["ttft_s"].tolist() == pytest.approx([0.2, 0.5])  # id order
    assert o.requests["e2e_s"].tolist() == pytest.approx([1.2, 2.0])
    assert o.duration_s == 3.0
    assert o.tpot_s.tolist()[1] == pytest.approx(0.5)  # (2.0 - 0.5) / 3
    assert math.isnan(o.tpot_s.tolist()[0])  # single-token output
