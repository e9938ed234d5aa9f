"""The embedded (offline) models queue like the real Azure traces they stand for.

Issue 11's target, at the same settings (first 2,000 requests, the trace's own arrivals):
embedded vs real-file SLO attainment within 2 points and TTFT p90 within 15%, for chunked
prefill and Bullet, on the conversation trace (A100) and the code trace (H200: on an A100
its first 2,000 requests overload every policy and attainment is ~15%). The real file is one
realisation and an embedded seed another; a single seed's TTFT p90 on the bursty code trace
spreads by +-30% (seeds 0-3: 1,069-2,006 ms for chunked), so the embedded side is the mean
of seeds 0-3. Measured when written: conversation chunked -1% / +0.3 points, Bullet +1% /
+0.2; code chunked +11% / -0.0, Bullet +2% / +0.4 (`build_defaults.SEGMENT_S` says why the
code trace needed 2-minute length models). Needs the real files (`shared_traces_dir`).
"""

from __future__ import annotations

import pytest

from bulletsim.config import load_config
from bulletsim.simulate import simulate

N = 2000
EMBEDDED_SEEDS = (0, 1, 2, 3)


def _run(policy: str, trace: str, gpu: str, traces_dir: str | None, seed: int) -> dict:
    cfg = load_config(
        None,
        {"policy": policy, "gpu": gpu, "seed": seed,
         "workload": {"trace": trace, "traces_dir": traces_dir, "num_requests": N}},
    )  # fmt: skip
    return simulate(cfg).summary


@pytest.fixture
def no_real_files(tmp_path, monkeypatch) -> None:
    """No traces folder given, no env, an empty user cache: the embedded model (a given
    folder without the file is an error, never the embedded model)."""
    monkeypatch.setenv("BULLETSIM_TRACES_DIR", "")
    monkeypatch.setenv("BULLETSIM_CACHE_DIR", str(tmp_path / "no-cache"))
    return None


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["chunked", "bullet"])
@pytest.mark.parametrize(
    "trace, gpu, loaded", [("splitwise-conv", "a100", 0.999), ("splitwise-code", "h200", 0.95)]
)
def test_embedded_model_queues_like_the_real_file(
    policy, trace, gpu, loaded, shared_traces_dir, no_real_files
):
    real = _run(policy, trace, gpu, str(shared_traces_dir), 0)
    emb = [_run(policy, trace, gpu, no_real_files, s) for s in EMBEDDED_SEEDS]
    assert not real["workload_is_embedded_default"]
    assert all(e["workload_is_embedded_default"] for e in emb)
    assert real["slo_attainment"] < loaded  # some requests queue: the test can fail
    attainment = sum(e["slo_attainment"] for e in emb) / len(emb)
    ttft_p90 = sum(e["ttft_ms"]["p90"] for e in emb) / len(emb)
    assert abs(attainment - real["slo_attainment"]) <= 0.02
    assert ttft_p90 == pytest.approx(real["ttft_ms"]["p90"], rel=0.15)
