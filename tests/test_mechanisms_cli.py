"""Issue 16's command-line surface without a GPU: one-line errors that list the valid choices."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from calibrate.cli import register

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_calibrate_unknown_grid_lists_valid():
    res = runner.invoke(_app(), ["calibrate", "--gpu", "h200", "--grid", "huge"])
    assert res.exit_code == 2
    assert "unknown grid 'huge'; valid: standard, quick, mechanisms" in res.output


def test_selftest_unknown_target_lists_valid():
    res = runner.invoke(_app(), ["calibrate-selftest", "green"])
    assert res.exit_code == 2 and "no self-test for 'green'; valid: libsmctrl" in res.output


def test_selftest_without_library_is_one_line(monkeypatch):
    monkeypatch.delenv("LIBSMCTRL_PATH", raising=False)
    res = runner.invoke(_app(), ["calibrate-selftest", "libsmctrl"])
    assert res.exit_code == 2 and "libsmctrl not configured" in res.output
    assert "Traceback" not in res.output


def test_masked_gemm_log_turns_a_dead_worker_into_a_hang(tmp_path):
    from calibrate.masked_gemm import read_log, summarize

    log = tmp_path / "masked_gemm.jsonl"
    log.write_text(
        '{"key":"o/cublas/tpcs1","status":"pending"}\n'
        '{"key":"o/cublas/tpcs1","status":"ok","rel_err":0.001}\n'
        '{"key":"o/cublas/tpcs2","status":"pending"}\n'
        '{"key":"o/cublas/tpcs4","sta'  # cut off by the dying worker
    )
    done, pending = read_log(log)
    assert set(done) == {"o/cublas/tpcs1"} and pending == {"o/cublas/tpcs2"}
    s = summarize(log, (1, 2, 4))
    assert s["hung"] == ["o/cublas/tpcs2"] and s["measured"] == 1
