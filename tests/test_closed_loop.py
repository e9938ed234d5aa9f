"""The closed-loop client (`--max-concurrency N`) against queueing theory, exactly.

One server with a deterministic service time D (each iteration prefills exactly one
one-token-output prompt), N users, think time Z. The response time law holds for any closed
system: X = N / (Z + R). Here it is exact in both regimes:
light load (N * D <= Z + D): no request ever waits, R = D, X = N / (Z + D);
saturation (N * D > Z + D): the server never idles, X = 1 / D, R = N * D - Z.
"""

from __future__ import annotations

import pytest

from bulletsim.client import ConcurrencyLimitedClient
from bulletsim.core import SLO, RequestSpec
from bulletsim.engine import SimEngine
from bulletsim.invariants import check_run
from bulletsim.kvcache import KVCache
from bulletsim.latency.constant import ConstantLatency
from bulletsim.policies.base import PolicyContext
from bulletsim.policies.chunked import ChunkedParams, ChunkedPrefill
from bulletsim.records import request_frame
from bulletsim.state import ServingState

PROMPT, PER_TOKEN = 100, 1e-3  # D = 0.1 s


def closed_run(num_users, think_s, num, output=1, chunk=PROMPT, step_s=0.0):
    specs = [RequestSpec(i, 0.0, PROMPT, output) for i in range(num)]
    st = ServingState(
        specs, KVCache(10_000, 16), client=ConcurrencyLimitedClient(specs, num_users, think_s)
    )
    ctx = PolicyContext(st, ConstantLatency(prefill_token_s=PER_TOKEN, step_s=step_s), 132,
                        SLO(tpot_s=1.0, ttft_s=10.0))  # fmt: skip
    it = SimEngine(ChunkedPrefill(ChunkedParams(chunk_size=chunk)), ctx).run().to_frame()
    req = request_frame(st.requests)
    check_run(req, it, num_requests=num, kv_capacity_blocks=10_000, total_sms=132)
    return req


@pytest.mark.parametrize(
    ("num_users", "think_s", "throughput", "response_s"),
    [
        (1, 0.0, 10.0, 0.1),  # one user back to back: X = 1 / D
        (3, 0.5, 3 / 0.6, 0.1),  # N D = 0.3 <= Z + D = 0.6: no waiting
        (4, 0.0, 10.0, 0.4),  # saturated: R = N D - Z
        (8, 0.3, 10.0, 0.5),  # saturated: R = 0.8 - 0.3
    ],
)
def test_closed_loop_matches_the_response_time_law(num_users, think_s, throughput, response_s):
    num = 400
    req = closed_run(num_users, think_s, num)
    # steady state: drop each user's first request (all start together) and the tail
    mid = req.iloc[num_users : num - num_users]
    response = (mid["finish_s"] - mid["arrival_s"]).to_numpy()
    assert response.mean() == pytest.approx(response_s, rel=1e-9, abs=1e-12)
    finishes = mid["finish_s"].to_numpy()
    x = (len(finishes) - 1) / (finishes[-1] - finishes[0])
    assert x == pytest.approx(throughput, rel=1e-9)
    assert x == pytest.approx(num_users / (think_s + response.mean()), rel=1e-9)


def test_never_more_than_n_in_flight_and_sends_follow_finishes():
    req = closed_run(3, 0.25, 30)
    sends, finishes = req["arrival_s"].to_numpy(), sorted(req["finish_s"].to_numpy())
    assert list(sends[:3]) == [0.0, 0.0, 0.0]
    # request k >= N is sent think_s after the (k - N + 1)-th finish
    assert list(sends[3:]) == pytest.approx([f + 0.25 for f in finishes[: 30 - 3]])
    for t in sends:
        in_flight = ((req["arrival_s"] <= t) & (req["finish_s"] > t)).sum()
        assert in_flight <= 3


def test_decode_finishes_release_sends_too():
    # multi-token outputs finish in the decode pool, not at prefill completion
    req = closed_run(2, 0.0, 10, output=5, chunk=4096, step_s=0.01)
    assert (req["finish_s"] > req["first_token_s"]).all()
    sends, finishes = req["arrival_s"].to_numpy(), sorted(req["finish_s"].to_numpy())
    assert list(sends[2:]) == pytest.approx(finishes[:8])


def test_open_loop_times_with_a_concurrency_limit():
    # vLLM/SGLang with a finite rate and --max-concurrency: a request goes at
    # max(its open-loop time, a slot freeing). D = 0.1 s, one slot, arrivals 0, 0.05, 0.5
    specs = [RequestSpec(i, t, PROMPT, 1) for i, t in enumerate((0.0, 0.05, 0.5))]
    st = ServingState(specs, KVCache(10_000, 16), client=ConcurrencyLimitedClient(specs, 1))
    ctx = PolicyContext(st, ConstantLatency(prefill_token_s=PER_TOKEN), 132, SLO(tpot_s=1.0))
    SimEngine(ChunkedPrefill(ChunkedParams(chunk_size=PROMPT)), ctx).run()
    req = request_frame(st.requests)
    assert req["arrival_s"].tolist() == pytest.approx([0.0, 0.1, 0.5])
    assert req["finish_s"].tolist() == pytest.approx([0.1, 0.2, 0.6])
