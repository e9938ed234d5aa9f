"""The workload flags of `bulletsim run` end to end: synthetic lengths, the closed-loop client,
--model-config with its context limit, tokenizer files by content."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()
BASE = ["run", "--gpu", "h200", "--latency", "roofline", "-q"]


def _ok(*args: str) -> str:
    out = runner.invoke(app, [*BASE, *args])
    assert out.exit_code == 0, out.output
    return out.output


def _error(*args: str) -> str:
    out = runner.invoke(app, [*BASE, "--no-write", *args])
    assert out.exit_code == 2 and out.output.count("\n") == 1, out.output
    return out.output


def test_random_and_fixed_lengths():
    out = _ok("--trace", "random", "--input-len", "512", "--output-len", "64", "--range-ratio",
              "0.5", "-n", "50", "--rate", "4", "--no-write")  # fmt: skip
    assert "prompt 256..768, output 32..96 tokens" in out
    out = _ok("--trace", "random", "--input-len", "512", "--output-len", "64", "--range-ratio",
              "0.5", "--range-convention", "sglang", "-n", "50", "--rate", "4",
              "--no-write")  # fmt: skip
    assert "prompt 256..512, output 32..64 tokens" in out
    assert "50 requests" in _ok("--trace", "fixed", "--input-len", "100", "--output-len", "10",
                                "-n", "50", "--rate", "inf", "--no-write")  # fmt: skip
    assert "needs input_len and output_len" in _error("--trace", "random", "-n", "5", "--rate", "1")
    assert "has no arrival times: give rate" in _error(
        "--trace", "fixed", "--input-len", "8", "--output-len", "8", "-n", "5"
    )
    assert "range_ratio: must be in [0, 1)" in _error(
        "--trace", "random", "--input-len", "8", "--output-len", "8", "-n", "5", "--rate", "1",
        "--range-ratio", "1",
    )  # fmt: skip


def test_closed_loop_from_the_command_line(tmp_path):
    out_dir = tmp_path / "run"
    out = _ok("--trace", "fixed", "--input-len", "256", "--output-len", "32", "-n", "40",
              "--max-concurrency", "4", "--out", str(out_dir))  # fmt: skip
    assert "client: at most 4 requests in flight (closed loop)" in out
    req = pd.read_parquet(out_dir / "requests.parquet")
    assert (req["arrival_s"].iloc[:4] == 0.0).all() and (req["arrival_s"].iloc[4:] > 0).all()
    for t in req["arrival_s"]:
        assert ((req["arrival_s"] <= t) & (req["finish_s"] > t)).sum() <= 4
    assert "think_s: applies only with max_concurrency" in _error(
        "--trace", "fixed", "--input-len", "8", "--output-len", "8", "-n", "5", "--rate", "1",
        "--think-time", "1",
    )  # fmt: skip


def test_model_config_shape_and_context_limit():
    qwen3 = str(FIX / "model_configs" / "qwen3-8b.json")
    out = _ok("--trace", "fixed", "--input-len", "1000", "--output-len", "10", "-n", "5",
              "--rate", "1", "--model-config", qwen3, "--no-write")  # fmt: skip
    assert "h200 / qwen3-8b (tp=1), latency model: roofline" in out
    # 40,900 + 100 tokens > the 40,960-token context: every request dropped
    err = _error("--trace", "fixed", "--input-len", "40900", "--output-len", "100", "-n", "5",
                 "--rate", "1", "--model-config", qwen3)  # fmt: skip
    assert "every request is over the model's context of 40960 tokens" in err
    moe = str(FIX / "model_configs" / "qwen1.5-moe-a2.7b.json")
    err = _error("--trace", "fixed", "--input-len", "8", "--output-len", "8", "-n", "5", "--rate",
                 "1", "--model-config", moe)  # fmt: skip
    assert "shared expert" in err


def test_tokenizer_files_by_content():
    pytest.importorskip("tokenizers")
    hf = FIX / "tokenizers" / "tiny_tokenizer.json"
    args = ["--trace", "csv", "--trace-file", str(FIX / "traces" / "sharegpt.jsonl"),
            "--arrival", "poisson", "--rate", "1", "--no-write"]  # fmt: skip
    out = _ok(*args, "--tokenizer", f"hf:{hf}")
    assert "(sha256 " in out
    err = _error(*args, "--tokenizer", f"tiktoken:{hf}")
    assert (
        "is a Hugging Face tokenizer.json, not a tiktoken BPE rank file; use tokenizer=hf:" in err
    )
