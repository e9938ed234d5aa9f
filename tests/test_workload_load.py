"""load_workload end to end: resolution order, arrivals, cuts, length rules, seeding, speed."""

from __future__ import annotations

import numpy as np
import pytest

from bulletsim.workload import Workload, WorkloadConfig, load_workload

CONV = "AzureLLMInferenceTrace_conv.csv"
ARXIV = "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv"


@pytest.fixture(autouse=True)
def _no_user_files(monkeypatch, tmp_path):
    # Only what a test puts there may be found: an empty cache and no traces dir from env.
    monkeypatch.setenv("BULLETSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BULLETSIM_TRACES_DIR", raising=False)


def load(seed: int = 0, **kwargs) -> Workload:
    return load_workload(WorkloadConfig(**kwargs), np.random.default_rng(seed))


def lengths(w: Workload) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([r.prompt_tokens for r in w.requests]),
        np.array([r.output_tokens for r in w.requests]),
    )


def assert_well_formed(w: Workload) -> None:
    assert [r.id for r in w.requests] == list(range(len(w.requests)))
    times = [r.arrival_s for r in w.requests]
    assert times == sorted(times) and times[0] == 0.0


def test_splitwise_uses_the_real_timestamps(shared_traces_dir):
    w = load(traces_dir=str(shared_traces_dir))
    assert_well_formed(w)
    assert (w.name, w.source, w.is_embedded_default) == (
        "splitwise",
        str(shared_traces_dir / CONV),
        False,
    )
    assert len(w.requests) == 19_366 and w.num_dropped == 0
    assert w.requests[-1].arrival_s == pytest.approx(3501.721937, abs=1e-6)
    assert (w.requests[0].prompt_tokens, w.requests[0].output_tokens) == (374, 44)
    half = load(traces_dir=str(shared_traces_dir), time_scale=0.5, num_requests=100)
    assert [r.arrival_s for r in half.requests] == pytest.approx(
        [r.arrival_s * 0.5 for r in w.requests[:100]]
    )


def test_trace_cut_by_duration_and_tiled(shared_traces_dir):
    w = load(traces_dir=str(shared_traces_dir), trace="splitwise-code", duration_s=60.0)
    assert max(r.arrival_s for r in w.requests) < 60.0
    w = load(traces_dir=str(shared_traces_dir), trace="splitwise-code", num_requests=10_000)
    assert len(w.requests) == 10_000 and any("repeated" in n for n in w.notes)


def test_resolution_order(shared_traces_dir, tmp_path, monkeypatch):
    a, b, cache = tmp_path / "a", tmp_path / "b", tmp_path / "cache"
    for folder in (a, b, cache):
        folder.mkdir()
        (folder / CONV).symlink_to(shared_traces_dir / CONV)
    monkeypatch.setenv("BULLETSIM_TRACES_DIR", str(b))
    explicit = str(shared_traces_dir / CONV)
    assert load(trace_file=explicit, traces_dir=str(a), num_requests=5).source == explicit
    assert load(traces_dir=str(a), num_requests=5).source == str(a / CONV)
    assert load(num_requests=5).source == str(b / CONV)
    assert load(num_requests=5).source == str(b / CONV)
    # a folder given without the file: an error naming it, never the cache or embedded model
    with pytest.raises(FileNotFoundError, match=f"traces-dir {tmp_path} holds no {CONV}"):
        load(traces_dir=str(tmp_path), num_requests=5)
    monkeypatch.setenv("BULLETSIM_TRACES_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"env BULLETSIM_TRACES_DIR {tmp_path} holds"):
        load(num_requests=5)
    monkeypatch.delenv("BULLETSIM_TRACES_DIR")
    assert load(num_requests=5).source == str(cache / CONV)
    monkeypatch.setenv("BULLETSIM_TRACES_DIR", str(b))
    (cache / CONV).unlink()
    monkeypatch.delenv("BULLETSIM_TRACES_DIR")
    w = load(num_requests=5)
    assert w.is_embedded_default and w.source.startswith("embedded model splitwise-conv.json")
    assert "real file not found" in w.notes[0]
    with pytest.raises(FileNotFoundError, match="bulletsim traces download splitwise"):
        load(trace_file=str(tmp_path / "nope.csv"))


@pytest.mark.parametrize("trace", ["splitwise-code", "sharegpt", "alpaca", "arxiv-long"])
@pytest.mark.parametrize("real", [True, False])
def test_same_seed_same_workload(shared_traces_dir, tmp_path, trace, real):
    where = str(shared_traces_dir) if real else None  # None: the embedded model
    kwargs = {"trace": trace, "traces_dir": where, "num_requests": 500, "arrival": "gamma"}
    a, b, c = load(1, **kwargs), load(1, **kwargs), load(2, **kwargs)
    assert a.is_embedded_default is not real
    assert a.requests == b.requests and a.requests != c.requests
    assert_well_formed(a)


def test_sharegpt_vllm_filter_counts(shared_traces_dir):
    # Llama-2 content counts (no BOS in the lengths; the filter adds it, as vLLM's does)
    w = load(trace="sharegpt", traces_dir=str(shared_traces_dir), sharegpt_filter="vllm",
             convention="llama2-nobos")  # fmt: skip
    assert len(w.requests) == 883 and w.num_dropped == 109  # 1 empty + 108 by the filter
    prompt, output = lengths(w)
    assert prompt.mean() == pytest.approx(235.9, abs=0.05)
    assert output.mean() == pytest.approx(240.8, abs=0.05)
    assert any("vllm ShareGPT filter dropped 108" in n for n in w.notes)


def test_sharegpt_conventions_match_the_provenance_tables(shared_traces_dir):
    # PROVENANCE.md section 6: vLLM filter, Llama-3 counts: 899 requests, input mean 209.3,
    # output mean 204.8 (content tokens); the convention counts BOS in both lengths
    w = load(trace="sharegpt", traces_dir=str(shared_traces_dir), convention="vllm-llama3")
    prompt, output = lengths(w)
    assert len(w.requests) == 899
    assert (prompt.mean() - 1, output.mean() - 1) == pytest.approx((209.3, 204.8), abs=0.05)
    assert "vllm-llama3" in w.convention and any("convention vllm-llama3" in n for n in w.notes)
    # role-aware: only pairs that open human -> gpt (586 with the vLLM filter, Llama-2)
    w = load(trace="sharegpt", traces_dir=str(shared_traces_dir), sharegpt_filter="vllm",
             convention="role-aware-llama3")  # fmt: skip
    assert 580 < len(w.requests) < 600
    # the chat template adds the same 34 tokens (beyond BOS) to every prompt
    plain = load(trace="sharegpt", traces_dir=str(shared_traces_dir), convention="sglang-llama3")
    chat = load(trace="sharegpt", traces_dir=str(shared_traces_dir),
                convention="sglang-llama3-chat")  # fmt: skip
    assert len(plain.requests) == len(chat.requests)
    assert lengths(chat)[0].sum() - lengths(plain)[0].sum() == 34 * len(plain.requests)
    # arxiv-long reads the long (POD) table: every prompt above 4K
    long = load(trace="arxiv", traces_dir=str(shared_traces_dir), convention="arxiv-long")
    assert lengths(long)[0].min() > 4096 and long.name == "arxiv-long"


def test_poisson_rate_on_a_length_table(shared_traces_dir):
    w = load(trace="arxiv", traces_dir=str(shared_traces_dir), rate=4.0)
    assert len(w.requests) == 28_257  # every row once, shuffled
    assert len(w.requests) / w.requests[-1].arrival_s == pytest.approx(4.0, rel=0.03)
    w = load(trace="arxiv", traces_dir=str(shared_traces_dir), num_requests=40_000)
    assert len(w.requests) == 40_000 and any("with replacement" in n for n in w.notes)
    assert any("default 2.0 req/s" in n for n in w.notes)


def test_over_length_is_counted_never_silent(shared_traces_dir):
    folder = str(shared_traces_dir)
    real = load(trace="arxiv", traces_dir=folder)
    prompt, output = lengths(real)
    num_over = int((prompt + output > 3000).sum())
    dropped = load(trace="arxiv", traces_dir=folder, max_total_tokens=3000)
    assert dropped.num_dropped == num_over and len(dropped.requests) == len(prompt) - num_over
    clipped = load(trace="arxiv", traces_dir=folder, max_total_tokens=3000, over_length="clip")
    assert clipped.num_clipped == num_over and clipped.num_dropped == 0
    p, o = lengths(clipped)
    assert (p + o).max() <= 3000
    assert np.array_equal(np.sort(o), np.sort(np.minimum(output, 2999)))  # prompts shrink first
    with pytest.raises(ValueError, match="> the length limit 3000"):
        load(trace="arxiv", traces_dir=folder, max_total_tokens=3000, over_length="error")


def test_embedded_over_length_and_filter(tmp_path):
    w = load(trace="arxiv", num_requests=5000, max_total_tokens=4096)  # embedded: no file
    prompt, output = lengths(w)
    assert len(w.requests) == 5000 and (prompt + output).max() <= 4096
    assert 0 < w.num_dropped < 500  # the copula occasionally crosses the real 4K cap
    w = load(trace="sharegpt", sharegpt_filter="vllm", num_requests=2000)
    prompt, output = lengths(w)
    assert len(w.requests) == 2000 and prompt.max() <= 1023 and (prompt + output).max() <= 2046
    assert w.num_dropped > 0


def test_csv_trace(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n1.0,10,5\n1.5,20,6\n4.0,30,7\n")
    w = load(trace="csv", trace_file=str(path))
    assert [(r.arrival_s, r.prompt_tokens, r.output_tokens) for r in w.requests] == [
        (0.0, 10, 5),
        (0.5, 20, 6),
        (3.0, 30, 7),
    ]


def test_hundred_thousand_requests_load(shared_traces_dir, tmp_path):
    # the load time itself is a benchmark figure (benchmarks/bench_load.py), not a timed test
    for where in (str(shared_traces_dir), None):  # the real file, the embedded model
        w = load(trace="splitwise-conv", traces_dir=where, rate=30.0, num_requests=100_000)
        assert len(w.requests) == 100_000
