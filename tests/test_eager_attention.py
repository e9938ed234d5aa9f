"""The live engine's eager prefill attention (paged FA2) priced by its measured factor over the
profile's kernel (`latency.eager_attention`), and the engine description a live run gives
the profile that re-prices it (`live.engine_exec`)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from bulletsim.core import WorkShape
from bulletsim.latency.eager_attention import (
    EagerPrefillAttention,
    live_engine_table,
    table_from_bench,
)
from bulletsim.latency.profile import PROFILE_DIR, ProfileLatency, read_profile
from bulletsim.live.engine_exec import common_engine_exec, run_engine_exec

ROOT = Path(__file__).parents[1]
BASE = PROFILE_DIR / "h200__llama-3.1-8b.json"
BENCH = ROOT / "results/live-h200/eager-attention-S4R1.json"
GPU_RUN = ROOT / "results/live-h200/runs-s4/splitwise-chunked-2048-r19-n500"
TABLE = {"new_tokens": [256, 1024], "prior_tokens": [0, 4096], "factor": [[1.0, 2.0], [3.0, 4.0]]}


def test_the_factor_is_bilinear_inside_and_clamped_outside():
    t = EagerPrefillAttention(TABLE)
    assert t.factor(256, 0) == 1.0 and t.factor(1024, 4096) == 4.0
    assert t.factor(512, 0) == pytest.approx(2.0)  # halfway in log2(new tokens)
    assert t.factor(256, 2048) == pytest.approx(1.5)  # halfway in prior tokens
    assert t.factor(512, 2048) == pytest.approx(2.5)
    assert t.factor(10, 0) == 1.0 and t.factor(10**6, 10**6) == 4.0  # clamped


@pytest.mark.parametrize(
    "change, msg",
    [
        ({"new_tokens": [1024, 256]}, "new_tokens must be strictly increasing"),
        ({"factor": [[1.0, 2.0]]}, "factor must be new_tokens x prior_tokens"),
        ({"factor": [[1.0, 0.0], [3.0, 4.0]]}, r"factor values must be in \(0, 100\)"),
        ({"prior_tokens": "0,4096"}, "must hold new_tokens, prior_tokens and a factor"),
    ],
)
def test_a_malformed_table_is_refused_in_one_line_naming_it(change, msg):
    with pytest.raises(ValueError, match=msg):
        EagerPrefillAttention(TABLE | change)
    doc = copy.deepcopy(read_profile(BASE))
    doc["exec"]["eager_prefill_attention"] = TABLE | change
    with pytest.raises(ValueError, match="exec.eager_prefill_attention"):
        ProfileLatency(doc)


def test_the_committed_table_is_the_committed_benchmark():
    table = live_engine_table("h200")
    assert table is not None and live_engine_table("a100") is None
    again = table_from_bench(json.loads(BENCH.read_text()), table["source"])
    assert again == table
    # what the benchmark found: the engine's kernel is slower at every measured cell
    assert min(min(r) for r in table["factor"]) > 1.2
    assert 0.95 < table["decode_rows_factor_median"] < 1.05


def test_only_prefill_attention_is_scaled(tmp_path):
    plain = ProfileLatency(read_profile(BASE))
    scaled = plain.with_exec({"eager_prefill_attention": TABLE})
    chunk = WorkShape(prefill_tokens=1024, prefill_attn_pairs=1024 * 4096 + 1024 * 1025 / 2,
                      prefill_kv_tokens=5120, num_prefill_seqs=1)  # fmt: skip
    n = 132
    attn = sum(plain._attn_prefill_parts(chunk, n))
    got = sum(scaled.time_split_s(chunk, n)) - sum(plain.time_split_s(chunk, n))
    assert got == pytest.approx(plain.num_layers * attn * (4.0 - 1.0), rel=1e-9)
    decode = WorkShape(decode_tokens=64, decode_ctx_tokens=64 * 2048, logits_tokens=64)
    assert scaled.predict(decode, n) == plain.predict(decode, n)


def test_a_gpu_run_names_its_engine_and_a_fake_run_none(tmp_path):
    ex = run_engine_exec(GPU_RUN)
    assert ex["decode_graph_buckets"][:3] == [8, 16, 32]
    assert ex["eager_prefill_attention"] == live_engine_table("h200")
    fake = shutil.copytree(GPU_RUN, tmp_path / "fake")
    live = json.loads((fake / "live.json").read_text())
    live["executor"] = {"executor": "fake", "measured": False}
    (fake / "live.json").write_text(json.dumps(live))
    assert run_engine_exec(fake) == {}
    with pytest.raises(
        ValueError, match="differ in live.json executor.decode_graph_buckets, executor.att"
    ):
        common_engine_exec([GPU_RUN, fake])
