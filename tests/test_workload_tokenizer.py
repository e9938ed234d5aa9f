"""The approx tokenizer against real Llama-2 counts, and the pluggable tokenizer specs."""

from __future__ import annotations

import gzip
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from bulletsim.workload.tokenizer import APPROX_WEIGHTS, approx_counts, fit_approx, make_counter


@pytest.fixture(scope="module")
def sharegpt_pairs(shared_traces_dir):
    with gzip.open(shared_traces_dir / "sharegpt_v3_random1000.json.gz", "rt") as f:
        entries = {e["id"]: e["conversations"] for e in json.load(f)}
    counts = pd.read_csv(shared_traces_dir / "sharegpt_v3_random1000_first_turn_tokens.csv")
    texts = [entries[i][k]["value"] for i in counts.id for k in (0, 1)]
    real = counts[["prompt_tokens_llama2", "output_tokens_llama2"]].to_numpy().ravel()
    return texts, real


def test_approx_matches_llama2_on_sharegpt(sharegpt_pairs):
    texts, real = sharegpt_pairs
    approx = approx_counts(texts)
    assert approx.sum() / real.sum() == pytest.approx(1.0, abs=0.02)
    big = real >= 10
    per_text = np.abs(approx[big] / real[big] - 1)
    assert np.median(per_text) < 0.09 and np.quantile(per_text, 0.9) < 0.2


def test_fit_recovers_the_shipped_weights_direction(sharegpt_pairs):
    texts, real = sharegpt_pairs
    coef = fit_approx(texts, real.astype(float), np.ones(len(real)))
    # Fitted on ShareGPT alone; the shipped weights also fit Alpaca, so only roughly equal.
    assert coef[0] == pytest.approx(APPROX_WEIGHTS[0], rel=0.3)
    assert coef[2] == pytest.approx(APPROX_WEIGHTS[2], rel=0.3)


def test_approx_is_deterministic_and_counts_empty_as_zero():
    texts = ["Hello world!", "", "   ", "x"]
    assert approx_counts(texts).tolist() == approx_counts(texts).tolist()
    counts = approx_counts(texts)
    assert counts[1] == 0 and counts[2] == 0 and counts[3] == 1 and counts[0] >= 3


def test_tokenizer_specs(tmp_path):
    assert make_counter("approx") is approx_counts
    with pytest.raises(FileNotFoundError, match="tokenizer file not found: .*missing.model"):
        make_counter(f"sentencepiece:{tmp_path / 'missing.model'}")
    with pytest.raises(ValueError, match="valid: approx, sentencepiece:<path>, tiktoken:<path>"):
        make_counter("bpe:x")


@pytest.mark.parametrize("kind", ["sentencepiece", "tiktoken"])
def test_missing_package_is_a_one_line_error(tmp_path, kind):
    if importlib.util.find_spec(kind) is not None:
        pytest.skip(f"{kind} is installed")
    model = tmp_path / "tokenizer.model"
    # the first bytes of each kind (a ModelProto field 1; a base64 token and its rank)
    model.write_bytes(b"\x0a\x03abc" if kind == "sentencepiece" else b"YQ== 0\n")
    with pytest.raises(ValueError, match=f"{kind} is not installed"):
        make_counter(f"{kind}:{model}")
