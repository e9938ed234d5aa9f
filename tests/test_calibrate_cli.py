"""The calibration CLI without a GPU: clean one-line errors, derive on CPU, no torch import."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from bulletsim.latency.profile import ProfileLatency, read_profile
from calibrate.cli import register

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_importing_cli_does_not_import_torch():
    code = "import sys, calibrate.cli; print('torch' in sys.modules, 'triton' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_calibrate_without_cuda_is_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    # --no-install: the shipped h200 profile would be refused first (test_calibrate_fit_cli)
    res = runner.invoke(_app(), ["calibrate", "--gpu", "h200", "--no-install"])
    assert res.exit_code == 2
    assert "needs torch with CUDA" in res.output
    assert "Traceback" not in res.output


def test_calibrate_unknown_gpu_lists_valid():
    res = runner.invoke(_app(), ["calibrate", "--gpu", "v100"])
    assert res.exit_code == 2
    assert "valid:" in res.output and "h200" in res.output


def test_calibrate_libsmctrl_missing_library(monkeypatch, tmp_path):
    monkeypatch.delenv("LIBSMCTRL_PATH", raising=False)
    res = runner.invoke(_app(), ["calibrate", "--gpu", "h200", "--mechanism", "libsmctrl"])
    assert res.exit_code == 2 and "libsmctrl not configured" in res.output
    res = runner.invoke(
        _app(),
        [
            "calibrate",
            "--gpu",
            "h200",
            "--mechanism",
            "libsmctrl",
            "--libsmctrl",
            str(tmp_path / "libsmctrl.so"),
        ],
    )
    assert res.exit_code == 2 and "not found" in res.output


def test_derive_writes_a_labelled_derived_profile(tmp_path):
    res = runner.invoke(
        _app(), ["calibrate-derive", "--from", "h200", "--gpu", "a100", "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    doc = read_profile(tmp_path / "a100__llama-3.1-8b.json")
    assert doc["meta"]["kind"] == "derived"
    assert doc["meta"]["derived_from"]["gpu"] == "h200"
    assert max(doc["grid"]["sms"]) == 108
    assert all(n % 2 == 0 for n in doc["grid"]["sms"])  # Ampere TPC granularity
    assert ProfileLatency(doc).total_sms == 108


def test_derive_rejects_same_gpu(tmp_path):
    res = runner.invoke(
        _app(), ["calibrate-derive", "--from", "h200", "--gpu", "h200", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "both h200" in res.output


def test_derive_twice_gives_identical_files(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        res = runner.invoke(
            _app(),
            ["calibrate-derive", "--from", "h200", "--gpu", "h20", "--out", str(tmp_path / name)],
        )
        assert res.exit_code == 0, res.output
    f = "h20__llama-3.1-8b.json"
    assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_derive_unknown_gpu_is_exit_2(tmp_path):
    res = runner.invoke(
        _app(), ["calibrate-derive", "--from", "h200", "--gpu", "a1000", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "unknown GPU 'a1000'" in res.output
