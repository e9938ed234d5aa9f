"""The command line: help, offline default, real files, every workload, errors, determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app

runner = CliRunner()
TRACES = (
    "splitwise",
    "splitwise-conv",
    "splitwise-code",
    "sharegpt",
    "sharegpt-sarathi",
    "alpaca",
    "arxiv",
    "arxiv-long",
)


def invoke(*args: str, env: dict | None = None):
    base_env = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}
    return runner.invoke(app, list(args), env={**base_env, **(env or {})})


def test_run_help_documents_every_option():
    res = invoke("run", "--help")
    assert res.exit_code == 0
    text = re.sub(r"\x1b\[[0-9;]*m", "", res.output)
    import inspect

    from bulletsim.cli import run

    for name, p in inspect.signature(run).parameters.items():
        flag = "--" + name.rstrip("_").replace("_", "-")
        assert flag in text, f"{flag} missing from `bulletsim run --help`"
        assert p.annotation is not None


def test_offline_default_runs_and_says_so(tmp_path):
    out = tmp_path / "run"
    res = invoke("run", "--trace", "splitwise", "-n", "300", "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    assert "embedded" in res.output.lower()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["workload_is_embedded_default"] is True
    assert summary["num_requests"] == 300
    for f in ("config.json", "requests.parquet", "iterations.parquet", "sm_timeline.parquet"):
        assert (out / f).is_file()


def test_real_file_is_used_when_present(tmp_path, shared_traces_dir):
    out = tmp_path / "run"
    res = invoke(
        "run",
        "--trace",
        "splitwise",
        "-n",
        "300",
        "--traces-dir",
        str(shared_traces_dir),
        "--out",
        str(out),
        "-q",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["workload_is_embedded_default"] is False
    assert "AzureLLMInferenceTrace_conv.csv" in summary["workload_source"]


@pytest.mark.parametrize("trace", TRACES)
def test_every_named_workload_runs(trace, tmp_path):
    res = invoke("run", "--trace", trace, "-n", "150", "--no-write", "-q")
    assert res.exit_code == 0, res.output
    assert "SLO attainment" in res.output


def _sharegpt_run(out: Path, seed: int):
    return invoke(
        "run", "--trace", "sharegpt", "-n", "400", "--arrival", "poisson", "--rate", "8",
        "--seed", str(seed), "--out", str(out), "-q",
    )  # fmt: skip


def test_same_seed_gives_identical_files(tmp_path):
    dirs = []
    for name in ("a", "b"):
        d = tmp_path / name
        res = _sharegpt_run(d, 3)
        assert res.exit_code == 0, res.output
        dirs.append(d)
    files = sorted(p.name for p in dirs[0].iterdir())
    assert files == sorted(p.name for p in dirs[1].iterdir())
    for f in files:
        assert (dirs[0] / f).read_bytes() == (dirs[1] / f).read_bytes(), f
    other = tmp_path / "c"
    assert _sharegpt_run(other, 4).exit_code == 0
    assert (other / "requests.parquet").read_bytes() != (dirs[0] / "requests.parquet").read_bytes()


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--gpu", "b200"), "a100"),
        (("--model", "gpt-5"), "llama-3.1-8b"),
        (("--trace", "nope"), "splitwise"),
        (("--policy", "magic"), "chunked"),
        (("--rate", "0", "--arrival", "poisson"), "rate"),
        (("--rate", "-3", "--arrival", "poisson"), "rate"),
        (("--latency", "psychic"), "roofline"),
        (("--variant", "sideways"), "prefill-first"),
        (("--chunk-size", "0"), "chunk_size"),
        (("--set", "chunked.turbo=1"), "chunk_size"),
        (("--set", "chunked.chunk_size='big'"), "int"),
        (("--kv-blocks", "10"), "KV"),
        (("--tpot-ms", "-1"), "tpot_ms"),
    ],
)
def test_bad_input_is_one_line_error(args, needle):
    res = invoke("run", "-n", "50", "--no-write", "-q", *args)
    assert res.exit_code == 2, res.output
    err = res.output.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), res.output
    assert needle in err[0]
    assert "Traceback" not in res.output


def _csv(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "t.csv"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text",
    [
        "arrival_s,prompt_tokens,output_tokens\n0.0,10,5\n0.5,abc,5\n",
        "arrival_s,prompt_tokens\n0.0,10\n",
        "arrival_s,prompt_tokens,output_tokens\n0.0,-10,5\n",
        "",
    ],
    ids=["non-numeric", "missing-column", "negative", "empty"],
)
def test_malformed_csv_is_one_line_error(tmp_path, text):
    p = _csv(tmp_path, text)
    res = invoke("run", "--trace", "csv", "--trace-file", str(p), "--no-write", "-q")
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output


def test_csv_trace_and_toml_config(tmp_path):
    p = _csv(tmp_path, "arrival_s,prompt_tokens,output_tokens\n0.0,100,5\n0.1,200,3\n1.0,50,2\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '# a commented config\npolicy = "chunked"\ngpu = "h100"\n'
        f'[workload]\ntrace = "csv"\ntrace_file = "{p}"\n[chunked]\nchunk_size = 512\n'
    )
    out = tmp_path / "r"
    res = invoke("run", "--config", str(cfg), "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    assert s["num_requests"] == 3 and s["gpu"] == "h100" and s["policy"] == "chunked-512"
    bad = tmp_path / "bad.toml"
    bad.write_text("gpu = 'h100'\ncolour = 'blue'\n")
    res = invoke("run", "--config", str(bad), "--no-write", "-q")
    assert res.exit_code == 2 and "colour" in res.output and "policy" in res.output


def test_interrupted_write_leaves_no_complete_looking_dir(tmp_path, monkeypatch):
    from bulletsim import results
    from bulletsim.config import load_config
    from bulletsim.run import simulate

    res = simulate(load_config(None, {"workload": {"trace": "alpaca", "num_requests": 50}}))
    calls = {"n": 0}
    real = results._write_parquet

    def flaky(df, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(df, path)

    monkeypatch.setattr(results, "_write_parquet", flaky)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        results.write_results(res, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
