"""The embedded (offline) models queue like the real Azure traces they stand for.

Same settings, real file vs embedded model (first 2,000 requests, the trace's own arrivals):
SLO attainment within 2 points and, for the conversation trace, TTFT p90 within 15%, for
chunked prefill and Bullet. The code trace is checked on an H200 (on an A100 its first
2,000 requests overload every policy and attainment is ~15%), against the mean of two
embedded seeds. Its TTFT p90 is *not* within 15% yet: embedded seeds 0, 1, 2 gave +56%,
+8%, +35% (chunked) and +41%, 0%, +21% (Bullet) over the real file's (measured when this test
was written), so only attainment is asserted for it.
"""

from __future__ import annotations

import pytest

from bulletsim.config import load_config
from bulletsim.simulate import simulate

N = 2000


def _run(policy: str, trace: str, gpu: str, traces_dir: str, seed: int) -> dict:
    cfg = load_config(
        None,
        {"policy": policy, "gpu": gpu, "seed": seed,
         "workload": {"trace": trace, "traces_dir": traces_dir, "num_requests": N}},
    )  # fmt: skip
    return simulate(cfg).summary


@pytest.fixture
def no_real_files(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("BULLETSIM_TRACES_DIR", "")
    monkeypatch.setenv("BULLETSIM_CACHE_DIR", str(tmp_path / "no-cache"))
    (tmp_path / "empty").mkdir()
    return str(tmp_path / "empty")


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["chunked", "bullet"])
def test_embedded_conversation_trace_queues_like_the_real_file(
    policy, shared_traces_dir, no_real_files
):
    real = _run(policy, "splitwise-conv", "a100", str(shared_traces_dir), 0)
    emb = _run(policy, "splitwise-conv", "a100", no_real_files, 0)
    assert not real["workload_is_embedded_default"] and emb["workload_is_embedded_default"]
    assert abs(emb["slo_attainment"] - real["slo_attainment"]) <= 0.02
    assert emb["ttft_ms"]["p90"] == pytest.approx(real["ttft_ms"]["p90"], rel=0.15)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["chunked", "bullet"])
def test_embedded_code_trace_attainment_matches_the_real_file(
    policy, shared_traces_dir, no_real_files
):
    real = _run(policy, "splitwise-code", "h200", str(shared_traces_dir), 0)
    emb = [_run(policy, "splitwise-code", "h200", no_real_files, s) for s in (0, 1)]
    mean_attainment = sum(e["slo_attainment"] for e in emb) / len(emb)
    assert 0.7 < real["slo_attainment"] < 0.95  # loaded, not collapsed: a real test
    assert abs(mean_attainment - real["slo_attainment"]) <= 0.02
