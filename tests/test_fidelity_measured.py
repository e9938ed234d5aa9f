"""vLLM and SGLang benchmark result files (fixtures shaped as the tools write them) through the
readers and `bulletsim fidelity --measured`, with every figure worked out by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.config import RunConfig
from bulletsim.fidelity.reader import read_measured
from bulletsim.fidelity.resimulate import measured_workload, resimulate

FIX = Path(__file__).parent / "fixtures" / "measured"
VLLM, SGLANG = FIX / "vllm_bench_serve.json", FIX / "sglang_bench_serving.jsonl"
runner = CliRunner()


def test_vllm_reader_by_hand():
    # requests: 0 (12 in, 4 out, TTFT 50 ms, E2E 120 ms), 1 (30, 3, 70, 130), 2 failed,
    # 3 (8, 1, 120, 120); sent at 1000.0, 1000.5, (1001.0), 1001.25
    run = read_measured(VLLM)
    assert run.tool == "vllm" and run.num_failed == 1
    r = run.requests
    assert r["prompt_tokens"].tolist() == [12, 30, 8]
    assert r["output_tokens"].tolist() == [4, 3, 1]
    assert r["arrival_s"].tolist() == [0.0, 0.5, 1.25]
    assert r["ttft_s"].tolist() == [0.05, 0.07, 0.12]
    assert run.itl_s.tolist() == [0.02, 0.02, 0.03, 0.02, 0.04]
    assert (run.request_rate, run.burstiness, run.max_concurrency) == (2.0, 1.0, None)
    obs = run.observed()
    # TPOT: (0.12 - 0.05) / 3 = 23.33 ms and (0.13 - 0.07) / 2 = 30 ms; ITL mean 130 / 5 = 26
    assert obs.tpot_s.dropna().tolist() == pytest.approx([0.07 / 3, 0.03])
    assert obs.itl_ms["mean"] == pytest.approx(26.0)
    assert obs.itl_ms["p50"] == pytest.approx(20.0)
    # the file's own summary agrees with what was read back from its per-request lists
    assert r["ttft_s"].mean() * 1e3 == pytest.approx(run.reported["mean_ttft_ms"]) == 80.0
    assert r["e2e_s"].mean() * 1e3 == pytest.approx(run.reported["mean_e2el_ms"])
    assert obs.tpot_s.mean() * 1e3 == pytest.approx(run.reported["mean_tpot_ms"])


def test_sglang_reader_picks_an_appended_run():
    with pytest.raises(ValueError, match="holds 2 appended benchmark results; choose one"):
        read_measured(SGLANG)
    first = read_measured(SGLANG, result_index=0)
    assert first.tool == "sglang" and first.max_concurrency == 2
    assert first.request_rate == float("inf")  # written as Infinity by json.dumps
    assert not first.has_send_times
    # E2E = TTFT + sum(ITL): 0.03 + 0.03, 0.05 + 0.04, 0.04 + 0.06
    assert first.requests["e2e_s"].tolist() == pytest.approx([0.06, 0.09, 0.10])
    assert first.requests["e2e_s"].mean() * 1e3 == pytest.approx(
        first.reported["mean_e2e_latency_ms"]
    )
    last = read_measured(SGLANG, result_index=-1)
    assert last.requests["prompt_tokens"].tolist() == [16, 24] and last.request_rate == 4.0
    with pytest.raises(ValueError, match="--result-index 5: .* holds 2 result"):
        read_measured(SGLANG, result_index=5)


def test_arrivals_of_a_resimulation():
    wl, _ = measured_workload(read_measured(VLLM), seed=0)
    assert [s.arrival_s for s in wl.requests] == [0.0, 0.5, 1.25]  # replayed send times
    wl, notes = measured_workload(read_measured(SGLANG, result_index=0), seed=0)
    assert [s.arrival_s for s in wl.requests] == [0.0] * 3 and "inf" in notes[-2]
    wl, notes = measured_workload(read_measured(SGLANG, result_index=1), seed=0)
    assert wl.requests[0].arrival_s == 0.0 < wl.requests[1].arrival_s
    assert "not the same draws" in notes[-1]


def test_resimulated_requests_match_row_by_row():
    cfg = RunConfig(gpu="h200", latency="roofline").validate()
    res, c = resimulate(read_measured(SGLANG, result_index=0), cfg)
    assert len(res.requests) == 3
    # closed loop of 2: the third request is sent when the first one finishes
    first_finish = sorted(res.requests["finish_s"])[0]
    assert res.requests["arrival_s"].tolist() == pytest.approx([0.0, 0.0, first_finish])
    assert set(c.per_request) == {
        "ttft_abs_rel_error_p50_pct", "ttft_abs_rel_error_p90_pct",
        "e2e_abs_rel_error_p50_pct", "e2e_abs_rel_error_p90_pct",
    }  # fmt: skip
    assert c.row("ttft_ms", "mean").measured == pytest.approx(40.0)  # (30 + 50 + 40) / 3
    assert c.row("throughput_req_s").measured == pytest.approx(15.0)  # 3 / 0.2 s


@pytest.mark.parametrize(("path", "index"), [(VLLM, None), (SGLANG, 0)])
def test_cli_fidelity(path, index):
    args = ["fidelity", "--measured", str(path), "--gpu", "h200", "--latency", "roofline"]
    if index is not None:
        args += ["--result-index", str(index)]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "TTFT mean (ms)" in out.output and "SLO attainment" in out.output
    model_note = "the file names no model: simulating llama-3.1-8b"
    if path == VLLM:
        model_note = "model meta-llama/Llama-3.1-8B-Instruct taken from the result file"
    assert model_note in out.output
    measured_ttft = "80.00" if path == VLLM else "40.00"
    line = next(ln for ln in out.output.splitlines() if "TTFT mean (ms)" in ln)
    assert measured_ttft in line


def _write(tmp_path: Path, obj) -> Path:
    p = tmp_path / "result.json"
    p.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return p


def _vllm() -> dict:
    return json.loads(VLLM.read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("input_lens"), r"\(input_lens missing\).*--save-detailed"),
        (lambda d: d["ttfts"].pop(), "ttfts has 3 entries but input_lens has 4"),
        (lambda d: d["ttfts"].__setitem__(1, "abc"), "request 1: ttfts must be a finite number"),
        (lambda d: d["output_lens"].__setitem__(0, 2.5), "request 0: output_lens must be a non"),
        (lambda d: d["itls"].__setitem__(1, 0.5), "request 1: itls must be a list"),
        (lambda d: d.__setitem__("duration", 0), "duration .* must be a number > 0"),
        (lambda d: d.__setitem__("max_concurrency", 0), "max_concurrency must be a positive"),
        (lambda d: d.__setitem__("errors", ["x"] * 4), "no completed request"),
    ],
)  # fmt: skip
def test_malformed_vllm_results_are_one_line_errors(tmp_path, mutate, message):
    d = _vllm()
    mutate(d)
    path = _write(tmp_path, d)
    with pytest.raises(ValueError, match=message):
        read_measured(path)
    out = runner.invoke(app, ["fidelity", "--measured", str(path)])
    assert out.exit_code == 2 and out.output.count("\n") == 1, out.output
    assert out.output.startswith("error: ")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("vllm_no_details.json", "only aggregates.*--save-detailed"),
        ("sglang_no_details.jsonl", "only aggregates.*--output-details"),
    ],
)
def test_files_without_per_request_lengths(name, message):
    out = runner.invoke(app, ["fidelity", "--measured", str(FIX / name)])
    assert out.exit_code == 2 and out.output.count("\n") == 1
    assert re.search(message, out.output), out.output
    assert "input_lens" in out.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("{not json", "not JSON at line 1"),
        ("[1, 2]", "expected a JSON object"),
        ('{"foo": 1}', "not a vLLM .* or SGLang"),
    ],
)
def test_not_a_result_file(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_measured(_write(tmp_path, text))


def test_missing_file_and_bad_format_name(tmp_path):
    out = runner.invoke(app, ["fidelity", "--measured", str(tmp_path / "nope.json")])
    assert out.exit_code == 2 and "--measured file not found" in out.output
    out = runner.invoke(app, ["fidelity", "--measured", str(VLLM), "--measured-format", "trt"])
    assert out.exit_code == 2 and "valid: auto, vllm, sglang" in out.output


def test_an_sglang_result_with_e2e_latencies_is_still_sglang(tmp_path):
    # SGLang names its backend and appends JSONL; a `latencies` key (vLLM writes one too)
    # must not turn it into a vLLM result, which would simulate another policy
    obj = json.loads(SGLANG.read_text().splitlines()[0])
    obj["latencies"] = [0.06, 0.09, 0.10]
    for name in ("r.jsonl", "r.json"):
        (tmp_path / name).write_text(json.dumps(obj) + "\n")
        assert read_measured(tmp_path / name).tool == "sglang"
    assert read_measured(VLLM).tool == "vllm"
