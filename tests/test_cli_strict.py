"""Issue 7, items 3-8: settings checked whichever policy runs, physical limits, degenerate
inputs that must run, errors that help, one vocabulary for names, honest output."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app

runner = CliRunner()
ENV = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}


def invoke(*args: str):
    return runner.invoke(app, list(args), env=ENV)


def first_line(res) -> str:
    return res.output.strip().splitlines()[0]


def csv_file(tmp_path: Path, rows: list[tuple], name: str = "t.csv") -> str:
    p = tmp_path / name
    lines = ["arrival_s,prompt_tokens,output_tokens"] + [",".join(map(str, r)) for r in rows]
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def run_json(tmp_path: Path, *args: str) -> tuple[dict, object]:
    out = tmp_path / "r"
    res = invoke("run", *args, "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    return json.loads((out / "summary.json").read_text()), res


# --- item 3: every setting checked, whichever policy runs --------------------------------


def test_typo_in_a_section_the_policy_does_not_use_is_an_error():
    res = invoke("run", "-n", "20", "--no-write", "-q", "--set", "bullet.window_layer=4")
    assert res.exit_code == 2
    assert first_line(res) == (
        "error: unknown config key 'bullet.window_layer'; valid: mechanism, max_prefill_tokens, "
        "window_layers, tpot_target_frac, max_running_requests, reorder, reorder_window, "
        "wave_search_units, merge_windows, handoff_ms, remask_us, predict_us"
    )


def test_set_section_to_a_value_is_a_one_line_error_not_a_type_error():
    res = invoke("run", "-n", "20", "--no-write", "-q", "--set", "bullet=3")
    assert res.exit_code == 2
    assert first_line(res).startswith("error: bullet must be a table of parameters (")
    assert first_line(res).endswith("got 3")


def test_over_length_without_a_limit_is_stated(tmp_path):
    path = csv_file(tmp_path, [(0, 100, 10), (1, 200, 5)])
    res = invoke("run", "--trace", "csv", "--trace-file", path, "--over-length", "clip")
    assert res.exit_code == 0
    assert first_line(res) == (
        "note: over_length=clip applies to the model's context of 131072 tokens: no "
        "max_total_tokens"
    )


# --- item 4: the model's context is enforced, and counted --------------------------------


def test_prompt_over_the_model_context_is_dropped_and_counted(tmp_path):
    path = csv_file(tmp_path, [(0, 100, 10), (0.5, 200_000, 10), (1.0, 50, 5)])
    s, res = run_json(tmp_path, "--trace", "csv", "--trace-file", path)
    assert s["num_requests"] == 2 and s["num_over_length"] == 1 and s["num_dropped"] == 1
    assert s["length_limit_tokens"] == 131072
    assert (
        "note: dropped 1 requests whose prompt + output exceed the model's context of 131072 tokens"
    ) in res.output


def test_qwen_context_is_smaller_and_max_total_tokens_smaller_still(tmp_path):
    path = csv_file(tmp_path, [(0, 100, 10), (0.5, 50_000, 10), (1.0, 5000, 5)])
    common = ("run", "--trace", "csv", "--trace-file", path, "--no-write", "-q")
    res = invoke(*common, "--model", "qwen3-235b-a22b")
    assert "exceed the model's context of 40960 tokens" in res.output
    res = invoke(*common, "--max-total-tokens", "4096")
    assert "note: dropped 2 requests whose prompt + output exceed max_total_tokens 4096" in (
        res.output
    )


def test_over_length_error_and_clip(tmp_path):
    path = csv_file(tmp_path, [(0, 100, 10), (0.5, 200_000, 10)])
    res = invoke("run", "--trace", "csv", "--trace-file", path, "--over-length", "error", "-q")
    assert res.exit_code == 2
    assert first_line(res).startswith("error: request 1: prompt 200000 + output 10 tokens > the")
    s, _ = run_json(tmp_path, "--trace", "csv", "--trace-file", path, "--over-length", "clip")
    assert s["num_clipped"] == 1 and s["num_requests"] == 2 and s["num_over_length"] == 0


# --- item 5: degenerate but legal inputs run ----------------------------------------------


def test_rate_inf_puts_every_request_at_t0_and_says_the_rate_is_infinite(tmp_path):
    s, res = run_json(tmp_path, "--trace", "alpaca", "-n", "30", "--rate", "inf")
    assert s["offered_rate_req_s"] is None  # inf is not JSON
    assert s["offered_rate_note"] == "infinite: every request arrives at once"
    assert "offered inf (infinite: every request arrives at once)" in res.output
    req = pd.read_parquet(tmp_path / "r" / "requests.parquet")
    assert (req["arrival_s"] == 0).all() and len(req) == 30


def test_gamma_cv_inf_is_the_same_burst(tmp_path):
    s, _ = run_json(tmp_path, "--trace", "alpaca", "-n", "30", "--arrival", "gamma",
                    "--rate", "5", "--cv", "inf")  # fmt: skip
    assert s["offered_rate_note"] == "infinite: every request arrives at once"


def test_same_second_rows_and_lengths_only_csv_with_rate(tmp_path):
    path = csv_file(tmp_path, [(0, 100, 10), (0, 200, 3), (0, 50, 5)])
    s, _ = run_json(tmp_path, "--trace", "csv", "--trace-file", path)
    assert s["num_requests"] == 3 and s["offered_rate_note"].startswith("infinite")
    s, _ = run_json(tmp_path, "--trace", "csv", "--trace-file", path, "--rate", "5", "-n", "6")
    assert s["num_requests"] == 6 and s["offered_rate_req_s"] > 0


def test_one_request_run_reports_undefined_rate_and_named_nan_cells(tmp_path):
    path = csv_file(tmp_path, [(0, 100, 1)])
    s, res = run_json(tmp_path, "--trace", "csv", "--trace-file", path)
    assert s["num_requests"] == 1 and s["offered_rate_req_s"] is None
    assert "offered n/a (undefined: fewer than 2 requests)" in res.output
    assert s["tpot_ms"]["p50"] is None
    assert re.search(r"TPOT \(ms\)\s+│\s+n/a", res.output)
    assert "n/a: no samples (TPOT and ITL need requests with 2+ output tokens" in res.output


def test_a_billion_requests_are_refused_with_the_memory_needed():
    res = invoke("run", "-n", "1000000000", "--no-write", "-q")
    assert res.exit_code == 2
    assert re.fullmatch(
        r"error: 1,000,000,000 requests would need about 2,794 GiB of memory \(~3 kB per "
        r"request\); this machine has [\d,]+ GiB; ask for fewer \(-n\) or split the run",
        first_line(res),
    )


# --- item 6: errors that help -------------------------------------------------------------


def test_sentencepiece_file_that_is_not_a_model(tmp_path, monkeypatch):
    class Processor:  # what sentencepiece raises on a file that is not a model
        def __init__(self, model_file):
            raise RuntimeError("Internal: could not parse ModelProto from " + model_file)

    monkeypatch.setitem(sys.modules, "sentencepiece", types.SimpleNamespace(
        SentencePieceProcessor=Processor))  # fmt: skip
    bogus = tmp_path / "tokenizer.model"
    bogus.write_text("not a model")
    data = tmp_path / "sg.json"
    data.write_text(json.dumps([{"id": "a", "conversations": [
        {"from": "human", "value": "hello there"}, {"from": "gpt", "value": "hi"}]}]))  # fmt: skip
    res = invoke("run", "--trace", "sharegpt", "--trace-file", str(data), "--tokenizer",
                 f"sentencepiece:{bogus}", "--no-write", "-q")  # fmt: skip
    assert res.exit_code == 2
    assert first_line(res).startswith(f"error: tokenizer: {bogus} is not a")
    assert "SentencePiece model" in first_line(res) or "sentencepiece model" in first_line(res)
    assert len(res.output.strip().splitlines()) == 1


def test_json_given_to_the_default_csv_trace_is_not_echoed(tmp_path):
    data = tmp_path / "big.json"
    data.write_text(json.dumps([{"id": str(i), "text": "word " * 50} for i in range(200)]))
    res = invoke("run", "--trace-file", str(data), "--no-write", "-q")
    assert res.exit_code == 2
    assert first_line(res) == (
        f"error: {data} holds JSON, but trace 'splitwise' reads it as azure CSV; for "
        "ShareGPT or Alpaca JSON use --trace sharegpt or --trace alpaca (or --set "
        "workload.trace_format=auto)"
    )


def test_sweep_without_capacity_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("sweep", "--policy", "chunked-2048", "--no-capacity", "-n", "20", "--rates", "4",
                 "--workers", "1", "-q", "--out", "sw", "--no-plots", "--no-timeline")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == "sweep: sw"


# --- item 7: one vocabulary -----------------------------------------------------------------


def test_run_takes_chunked_n_and_chunk_size_alike(tmp_path):
    a, _ = run_json(tmp_path, "--trace", "alpaca", "-n", "20", "--policy", "chunked-1024")
    b, _ = run_json(tmp_path, "--trace", "alpaca", "-n", "20", "--policy", "Chunked",
                    "--chunk-size", "1024")  # fmt: skip
    assert a["policy"] == b["policy"] == "chunked-1024"
    assert a == b


def test_sweep_takes_chunked_n_and_chunk_size_alike(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ("sweep", "-n", "20", "--rates", "4", "--no-capacity", "--workers", "1", "-q",
              "--no-plots", "--no-timeline")  # fmt: skip
    assert invoke(*common, "--policy", "chunked-1024", "--out", "a").exit_code == 0
    res = invoke(*common, "--policy", "CHUNKED", "--chunk-size", "1024", "--out", "b")
    assert res.exit_code == 0, res.output
    a = pd.read_csv(tmp_path / "a" / "points.csv")
    b = pd.read_csv(tmp_path / "b" / "points.csv")
    assert list(a["label"]) == list(b["label"]) == ["chunked-1024"]
    assert a.drop(columns="label").equals(b.drop(columns="label"))


@pytest.mark.parametrize(
    "model", ["llama3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", "Llama-3.1-8B", "LLAMA-3.1-8B"]
)
def test_model_aliases(model, tmp_path):
    s, _ = run_json(tmp_path, "--trace", "alpaca", "-n", "10", "--model", model)
    assert s["model"] == "llama-3.1-8b"


@pytest.mark.parametrize("gpu", ["h200", "H200", "nvidia-h200", "NVIDIA H200"])
def test_gpu_aliases_and_calibrate_uses_the_same_table(gpu, tmp_path):
    from bulletsim.hardware import gpu_key
    from calibrate.gpu_names import gpu_key_from_device_name

    s, _ = run_json(tmp_path, "--trace", "alpaca", "-n", "10", "--gpu", gpu)
    assert s["gpu"] == "h200" == gpu_key(gpu) == gpu_key_from_device_name(gpu)


def test_names_are_case_insensitive(tmp_path):
    s, _ = run_json(tmp_path, "--trace", "Alpaca", "-n", "10", "--policy", "BULLET",
                    "--latency", "RoofLine", "--set", "bullet.mechanism=Green-Ctx")  # fmt: skip
    assert s["policy"] == "bullet-green-ctx" and s["latency_model"].startswith("roofline")


def test_policies_lists_whole_sentences():
    res = invoke("policies")
    assert res.exit_code == 0
    heads = [line for line in res.output.splitlines() if not line.startswith(" ")]
    assert len(heads) >= 5
    for line in heads:
        assert line.rstrip().endswith((".", ")")), line
    assert heads[0].startswith("chunked: Chunked prefill: prompts are cut into chunks")


def test_run_help_shows_every_default():
    res = runner.invoke(app, ["run", "--help"], env={**ENV, "COLUMNS": "250"})
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m|[│╭╮╰╯─]", " ", res.output).split())
    for default in ("a100", "llama-3.1-8b", "2048", "0", "chunked", "splitwise", "auto",
                    "per trace, Bullet paper Table 4: 150 ShareGPT"):  # fmt: skip
        assert f"(default: {default})" in text, default
    from bulletsim.config import RunConfig
    from bulletsim.policies.chunked import ChunkedParams

    cfg = RunConfig()
    assert (cfg.gpu, cfg.model, cfg.seed, cfg.policy, cfg.latency) == (
        "a100", "llama-3.1-8b", 0, "chunked", "auto"
    )  # fmt: skip
    assert ChunkedParams().chunk_size == 2048


# --- item 8: honest output ------------------------------------------------------------------


def test_piped_output_is_not_wrapped():
    res = invoke("run", "--trace", "alpaca", "-n", "10", "--no-write", "-q")
    note = next(line for line in res.output.splitlines() if "real file not found" in line)
    assert note.endswith("fetches the real file") and len(note) > 120


def test_plain_progress_lines_on_stderr_when_piped(monkeypatch, capsys):
    from bulletsim import progress

    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    with progress.progress("simulating") as tick:
        tick("simulating", 5, 10)
    err = capsys.readouterr().err
    assert re.fullmatch(r"simulating: 5/10 done, \d+ s\n", err)


def test_length_limit_is_not_mentioned_when_nothing_went_over():
    res = invoke("run", "--trace", "alpaca", "-n", "30", "--no-write", "-q")
    assert res.exit_code == 0 and "length limit" not in res.output
    assert "over max_total_tokens" not in res.output


def test_kv_peak_in_summary_agrees_with_the_iteration_table(tmp_path):
    s, res = run_json(tmp_path, "--trace", "alpaca", "-n", "40", "--rate", "20")
    it = pd.read_parquet(tmp_path / "r" / "iterations.parquet")
    assert s["kv_peak_used_blocks_at_iteration_end"] == int(it["kv_used_blocks"].max())
    assert s["kv_peak_used_blocks"] >= s["kv_peak_used_blocks_at_iteration_end"]
    assert (
        f"KV peak {s['kv_peak_used_blocks']}/{s['kv_capacity_blocks']} blocks (iterations."
        f"parquet, used at iteration ends: peak {s['kv_peak_used_blocks_at_iteration_end']})"
    ) in res.output
