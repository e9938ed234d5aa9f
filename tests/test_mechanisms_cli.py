"""Issue 16's command-line surface without a GPU: one-line errors that list the valid choices."""

from __future__ import annotations

import pytest
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


# -- `--mechanism` on the simulator ------------------------------------------------------------
def _sim_app():
    from bulletsim.cli import app

    return app


ENV = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}
RUN = ("run", "--trace", "alpaca", "-n", "20", "-q", "--no-write", "--gpu", "h200")


def test_run_unknown_mechanism_lists_valid():
    res = runner.invoke(_sim_app(), [*RUN, "--policy", "bullet", "--mechanism", "tpc"], env=ENV)
    assert res.exit_code == 2
    assert (
        "unknown SM partition mechanism 'tpc'; valid: green (= green-ctx), libsmctrl, mps, none"
        in (res.output)
    )


def test_run_mechanism_needs_a_partitioning_policy():
    res = runner.invoke(_sim_app(), [*RUN, "--policy", "chunked", "--mechanism", "green"], env=ENV)
    assert res.exit_code == 2
    assert "--mechanism applies only to bullet" in res.output
    assert "chunked runs one lane on every SM" in res.output


def test_sweep_mechanism_needs_a_partitioning_policy():
    argv = ["sweep", "-n", "20", "--rates", "4", "--no-capacity", "--workers", "1", "-q"]
    argv += ["--policy", "chunked-2048", "--mechanism", "green"]
    res = runner.invoke(_sim_app(), argv, env=ENV)
    assert res.exit_code == 2 and "--mechanism applies only to bullet" in res.output
    assert "chunked runs one lane on every SM" in res.output


def test_mechanism_sets_the_name_only_and_set_of_another_key_keeps_it():
    from bulletsim.config import load_config, merge_overrides, parse_sets
    from bulletsim.run_options import mechanism_overrides, mechanism_sections

    assert mechanism_sections("Green") == {"bullet": {"mechanism": "green-ctx"}}
    over = mechanism_overrides("Green", parse_sets(["bullet.remask_us=7.5"]))
    cfg = load_config(None, merge_overrides(over, {"policy": "bullet", "gpu": "h200"}))
    assert cfg.params().remask_us == 7.5 and cfg.params().mechanism == "green-ctx"


def test_compare_joins_equal_points_only(tmp_path):
    import pandas as pd

    from calibrate.mechanism_compare import GREEN_DEFAULT, join, main, op_table

    green = pd.read_parquet(GREEN_DEFAULT)
    lib = green[green["num_sms"].isin([32, 132])].copy()
    lib.loc[lib["op"] == "qkv", "time_s"] *= 1.25
    lib.loc[lib["kind"] == "corun", "time_s"] *= 2.0  # twice the interference, same alone time
    j = join(lib, green)
    assert set(j["num_sms"]) == {32, 132} and len(j) == len(lib)
    t = op_table(j)
    assert (
        t.loc[("prefill", "qkv"), 32].startswith("1.250 (")
        and t.loc[("decode", "o"), 132][:5] == "1.000"
    )
    co = j[j["kind"] == "corun"]
    assert ((co["slowdown_libsmctrl"] / co["slowdown_green"]).round(6) == 2.0).all()
    lib["mechanism"] = "libsmctrl"  # the tool refuses green samples given as libsmctrl's
    lib.to_parquet(tmp_path / "lib.parquet")
    assert main([str(tmp_path / "lib.parquet"), "--out", str(tmp_path / "o")]) == 0
    assert "| decode | attn_decode |" in (tmp_path / "o" / "compare.md").read_text()
    with pytest.raises(FileNotFoundError, match="libsmctrl samples not found"):
        main([str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "o")])


def test_live_gpu_refuses_a_mechanism_it_cannot_make():
    argv = ["live", "--executor", "gpu", "--policy", "bullet", "--mechanism", "libsmctrl"]
    res = runner.invoke(_sim_app(), [*argv, "--trace", "alpaca", "-n", "5", "--no-write"], env=ENV)
    assert res.exit_code == 2
    assert "partitions SMs with green contexts only; valid live: green, none" in res.output
