"""A live run folder whose files do not fit together, or runs that must not be fitted
together, are refused by `fidelity` and `calibrate --from-live` with one line and exit code
2 (CPU only; fake-executor live runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.config import load_config
from bulletsim.latency.profile import PROFILE_DIR, read_profile
from bulletsim.live.fake import FakeExecutor
from bulletsim.live.refit import repriced
from bulletsim.live.run import live_run
from bulletsim.live.runcheck import ITERATION_COLUMNS, REQUEST_COLUMNS
from bulletsim.results import write_results

BASE = str(PROFILE_DIR / "h200__llama-3.1-8b.json")
REAL = Path(__file__).parents[1] / "results/live-h200/runs/sharegpt-chunked-2048-r38.1-n500"


def _run(out: Path, policy: str, trace: str = "splitwise") -> Path:
    cfg = load_config(None, {"policy": policy, "gpu": "h200", "workload": {
        "trace": trace, "num_requests": 20, "rate": 10.0}})  # fmt: skip
    res = live_run(cfg, FakeExecutor())
    write_results(res.result, out, extra_json={"live.json": res.live}, digests_in="live.json")
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("runs")
    return {p: _run(tmp / p, p) for p in ("chunked", "bullet")}


def _invoke(cmd: str, runs: list, tmp: Path, *extra: str) -> tuple[int, str]:
    runs = [str(r) for r in runs]
    if cmd == "fidelity":
        args = ["fidelity", *runs, "--profile", BASE, *extra]
    else:
        args = ["calibrate", "--from-live", *runs, "--profile", BASE, "--out", str(tmp / "x.json")]
    r = CliRunner().invoke(app, args)
    return r.exit_code, r.output


def _one_line_error(code: int, out: str, *names: str) -> None:
    assert code == 2, out
    assert out.startswith("error: ") and len(out.strip().splitlines()) == 1, out
    for n in names:
        assert n in out, out


def _copy(src: Path, tmp: Path, name: str) -> Path:
    d = tmp / name
    shutil.copytree(src, d)
    return d


def _forget_digests(d: Path) -> None:
    """As a run written before live.json recorded its tables' digests."""
    live = json.loads((d / "live.json").read_text())
    live.pop("files")
    (d / "live.json").write_text(json.dumps(live))


# -- fake runs beside GPU runs in a refit --------------------------------------------------


@pytest.mark.skipif(not REAL.is_dir(), reason="committed H200 run not in this checkout")
@pytest.mark.parametrize("cmd", ["fidelity", "calibrate"])
def test_a_refit_refuses_fake_runs_beside_gpu_runs(runs, tmp_path, no_long_work, cmd):
    extra = ("--held-out", "workload") if cmd == "fidelity" else ()
    code, out = _invoke(cmd, [REAL, runs["chunked"]], tmp_path, *extra)
    _one_line_error(code, out, "fake executor", str(runs["chunked"]), str(REAL), "only GPU runs")


def test_a_refit_on_fake_runs_only_says_it_fits_predicted_times(runs, tmp_path):
    code, out = _invoke("calibrate", [runs["chunked"], runs["bullet"]], tmp_path)
    assert code == 0, out
    assert "fit is of the latency model's predicted times" in out
    doc = json.loads((tmp_path / "x.json").read_text())
    assert "predicted times" in doc["meta"]["live_refit"]["note"]


# -- the tables' columns -----------------------------------------------------------------


COLUMNS = [("requests.parquet", c) for c, _ in REQUEST_COLUMNS] + [
    ("iterations.parquet", c) for c, _ in ITERATION_COLUMNS
]


@pytest.mark.parametrize("cmd", ["fidelity", "calibrate"])
@pytest.mark.parametrize(("name", "col"), COLUMNS)
def test_a_missing_column_is_named_before_any_work(runs, tmp_path, no_long_work, cmd, name, col):
    d = _copy(runs["chunked"], tmp_path, "dropped")
    df = pd.read_parquet(d / name)
    df.drop(columns=[col]).to_parquet(d / name, index=False)
    code, out = _invoke(cmd, [d], tmp_path)
    _one_line_error(code, out, f"{d / name} has no column {col}")


@pytest.mark.parametrize(("name", "col"), [("requests.parquet", "arrival_s"),
                                           ("iterations.parquet", "measured_s"),
                                           ("iterations.parquet", "lane")])  # fmt: skip
def test_a_column_of_the_wrong_type_is_named(runs, tmp_path, no_long_work, name, col):
    d = _copy(runs["chunked"], tmp_path, "typed")
    df = pd.read_parquet(d / name)
    df[col] = 1.5 if col == "lane" else df[col].astype(str)
    df.to_parquet(d / name, index=False)
    code, out = _invoke("fidelity", [d], tmp_path)
    _one_line_error(code, out, f"{d / name}: column {col} is")


# -- files of different runs in one folder ---------------------------------------------------


@pytest.mark.parametrize("digests", [True, False], ids=["digests", "older-run"])
@pytest.mark.parametrize("name", ["iterations.parquet", "requests.parquet"])
@pytest.mark.parametrize("cmd", ["fidelity", "calibrate"])
def test_a_table_of_another_run_is_refused(runs, tmp_path, no_long_work, cmd, name, digests):
    d = _copy(runs["bullet"], tmp_path, "mixed")
    shutil.copy(runs["chunked"] / name, d / name)  # same 20 requests, another policy's run
    if not digests:
        _forget_digests(d)
    code, out = _invoke(cmd, [d], tmp_path)
    _one_line_error(code, out, str(d / name), "different runs")


def test_lanes_of_another_policy_are_named(runs, tmp_path, no_long_work):
    d = _copy(runs["bullet"], tmp_path, "lanes")
    shutil.copy(runs["chunked"] / "iterations.parquet", d / "iterations.parquet")
    _forget_digests(d)
    summary = json.loads((d / "summary.json").read_text())
    summary["num_iterations"] = len(pd.read_parquet(d / "iterations.parquet"))
    (d / "summary.json").write_text(json.dumps(summary))
    code, out = _invoke("fidelity", [d], tmp_path)
    _one_line_error(code, out, "has lanes main; policy bullet", "prefill, decode")


@pytest.mark.parametrize("name", ["config.json", "summary.json"])
def test_config_and_summary_of_different_runs_are_refused(runs, tmp_path, no_long_work, name):
    d = _copy(runs["bullet"], tmp_path, "jsons")
    shutil.copy(runs["chunked"] / name, d / name)
    code, out = _invoke("fidelity", [d], tmp_path)
    _one_line_error(code, out, "different runs", "chunked")


@pytest.mark.parametrize("cmd", ["fidelity", "calibrate"])
def test_no_iterations_is_said_alike_by_both(runs, tmp_path, no_long_work, cmd):
    d = _copy(runs["chunked"], tmp_path, "empty")
    it = pd.read_parquet(d / "iterations.parquet")
    it.iloc[:0].to_parquet(d / "iterations.parquet", index=False)
    _forget_digests(d)
    code, out = _invoke(cmd, [d], tmp_path)
    _one_line_error(code, out, f"live run {d} has no measured iterations")


@pytest.mark.parametrize("cmd", ["fidelity", "calibrate"])
def test_negative_measured_times_are_named(runs, tmp_path, no_long_work, cmd):
    d = _copy(runs["chunked"], tmp_path, "negative")
    it = pd.read_parquet(d / "iterations.parquet")
    it["measured_s"] = -it["measured_s"].abs() - 1e-3
    it.to_parquet(d / "iterations.parquet", index=False)
    _forget_digests(d)
    code, out = _invoke(cmd, [d], tmp_path)
    _one_line_error(code, out, "has no measured iterations", f"{len(it)} of {len(it)} measured_s "
                    "are negative")  # fmt: skip


@pytest.mark.parametrize("value, msg", [
    ("gpu", "executor must be an object, got str"),
    ({"executor": "fake", "measured": "no"}, "executor.measured must be true or false, got 'no'"),
])  # fmt: skip
def test_a_malformed_executor_section_is_named(runs, tmp_path, no_long_work, value, msg):
    d = _copy(runs["chunked"], tmp_path, "executor")
    live = json.loads((d / "live.json").read_text())
    if isinstance(value, dict):
        value = live["executor"] | value
    live["executor"] = value
    (d / "live.json").write_text(json.dumps(live))
    code, out = _invoke("calibrate", [d], tmp_path)
    _one_line_error(code, out, msg)


def test_fidelity_without_a_profile_says_which_predictions_its_iterations_use(runs):
    r = CliRunner().invoke(app, ["fidelity", str(runs["chunked"])])
    assert r.exit_code == 0, r.output
    assert "per-iteration errors are of the predictions the live run recorded" in r.output
    r = CliRunner().invoke(app, ["fidelity", str(runs["chunked"]), "--profile", BASE])
    assert "per-iteration errors are of the predictions" not in r.output


def test_committed_runs_pass_the_checks():
    from bulletsim.live.rundir import check_live_run

    committed = sorted((Path(__file__).parents[1] / "results/live-h200").glob("runs*/*/"))
    for d in committed:
        check_live_run(d)


# -- host gap rows of a run without measured gaps -------------------------------------------


def _with_host(base: dict) -> dict:
    kinds = ("batch", "graph", "window")
    return base | {"host": {"launch_s": 0.0, "eager_fixed_s": 0.0, "kernels_per_layer": 7,
                            "gap_s": dict.fromkeys(kinds, 1e-4),
                            "gap_per_seq_s": dict.fromkeys(kinds, 0.0),
                            "gap_per_token_s": dict.fromkeys(kinds, 0.0)}}  # fmt: skip


@pytest.mark.parametrize("measured", [False, True], ids=["fake", "zero-gaps"])
def test_gap_rows_are_left_out_when_no_gaps_were_measured(runs, tmp_path, measured):
    d = _copy(runs["bullet"], tmp_path, "gaps")
    if measured:  # a GPU run whose gaps are ~0 s
        live = json.loads((d / "live.json").read_text())
        live["executor"]["measured"] = True
        (d / "live.json").write_text(json.dumps(live))
    rows = repriced(_with_host(read_profile(BASE)), d)
    assert not rows["phase"].str.startswith("gap").any(), rows
    assert "host gaps are ~0 s (median below 1 us)" in rows.attrs["note"]
    assert ("fake executor" in rows.attrs["note"]) is not measured
