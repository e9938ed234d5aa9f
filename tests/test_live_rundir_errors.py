"""Live run folders given to `fidelity` and `calibrate --from-live` are vetted before any
simulation or fit, and every output is checked before: one line naming the folder and the
file, exit code 2 (CPU only; a fake-executor live run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.config import load_config
from bulletsim.latency.profile import PROFILE_DIR
from bulletsim.live.fake import FakeExecutor
from bulletsim.live.run import live_run
from bulletsim.live.rundir import LIVE_FILES
from bulletsim.results import write_results

BASE = str(PROFILE_DIR / "h200__llama-3.1-8b.json")


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "good"
    cfg = load_config(None, {"policy": "chunked", "gpu": "h200",
                             "workload": {"num_requests": 20, "rate": 10.0}})  # fmt: skip
    res = live_run(cfg, FakeExecutor())
    write_results(res.result, out, extra_json={"live.json": res.live}, digests_in="live.json")
    return out


def _broken(tmp: Path, good: Path, how: str) -> Path:
    """A copy of `good` broken one way (`how`: a LIVE_FILES name = that file removed; or
    corrupt-<file>)."""
    d = tmp / f"run-{how}"
    shutil.copytree(good, d)
    if how in LIVE_FILES:
        (d / how).unlink()
    else:
        name = how.removeprefix("corrupt-")
        (d / name).write_bytes(b"\x00garbage" if name.endswith(".parquet") else b"{not json")
    return d


def _invoke(cmd: str, runs: list[str], tmp: Path) -> tuple[int, str]:
    if cmd == "fidelity":
        args = ["fidelity", *runs, "--profile", BASE]
    else:
        args = ["calibrate", "--from-live", *runs, "--profile", BASE, "--out", str(tmp / "x.json")]
    r = CliRunner().invoke(app, args)
    return r.exit_code, r.output


CASES = [(f, f) for f in LIVE_FILES] + [
    ("corrupt-live.json", "live.json is not valid JSON"),
    ("corrupt-config.json", "config.json is not valid JSON"),
    ("corrupt-iterations.parquet", "iterations.parquet is not a readable Parquet file"),
    ("corrupt-requests.parquet", "requests.parquet is not a readable Parquet file"),
]


@pytest.mark.parametrize("cmd", ["fidelity", "calibrate"])
@pytest.mark.parametrize(("how", "msg"), CASES)
def test_a_broken_run_folder_is_refused_before_any_work(good, tmp_path, no_long_work, cmd, how,
                                                        msg):  # fmt: skip
    bad = _broken(tmp_path, good, how)
    # the broken folder comes last: nothing is simulated or fitted for the good one first
    code, out = _invoke(cmd, [str(good), str(bad)], tmp_path)
    assert code == 2, out
    assert out.startswith("error: ") and len(out.strip().splitlines()) == 1, out
    assert msg in out and str(bad) in out
    if how in LIVE_FILES:
        assert f"no {how}" in out


@pytest.mark.parametrize("cmd", ["fidelity", "calibrate"])
def test_path_faults_say_what_the_path_is(good, tmp_path, no_long_work, cmd):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    sim = tmp_path / "sim"
    shutil.copytree(good, sim)
    (sim / "summary.json").write_text('{"engine": "sim"}')
    for path, msg in [
        (tmp_path / "nothing", "does not exist"),
        (a_file, "is a file, not a folder"),
        (sim, "is not a live run"),
    ]:
        code, out = _invoke(cmd, [str(path)], tmp_path)
        assert code == 2 and msg in out and len(out.strip().splitlines()) == 1, out
    code, out = _invoke(cmd, [str(good), str(good) + "/"], tmp_path)
    assert code == 2 and "given twice" in out, out


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["calibrate", "--from-live", "{run}", "--out", "/proc/bulletsim-x.json"], "cannot write"),
        (["calibrate", "--from-live", "{run}", "--out", "{tmp}/no/x.json"], "does not exist"),
        (["calibrate", "--from-live", "{run}", "--out", "{tmp}/f.txt/x.json"], "not a folder"),
        (["fidelity", "{run}", "--table", "/proc/bulletsim-t.md"], "cannot write"),
        (["fidelity", "{run}", "--table", "{tmp}/no/t.md"], "does not exist"),
        (["fidelity", "{run}", "--held-out", "policy"], "valid: workload, load"),
        (["fidelity", "{run}", "--policy-profile", BASE], "goes with --profile"),
        (["fidelity", "{run}", "--gpu", "h100"], "--gpu: for --measured FILE only"),
        (
            [
                "calibrate",
                "--from-live",
                "{run}",
                "--gpu",
                "h100",
                "--quick",
                "--out",
                "{tmp}/x.json",
            ],
            "--gpu, --quick: not with --from-live",
        ),
        (["fidelity", "{run}", "--seed", "1", "--set", "a=1"], "--seed, --set: for --measured"),
        (
            [
                "fidelity",
                "--measured",
                "{tmp}/f.txt",
                "--table",
                "{tmp}/t.md",
                "--held-out",
                "load",
            ],
            "--table, --held-out: for live run directories only",
        ),
        (
            ["fidelity", "{run}", "--profile", BASE, "--policy-profile", "{tmp}/no.json"],
            "not found",
        ),
    ],
)
def test_outputs_and_options_are_checked_before_any_work(good, tmp_path, no_long_work, args, msg):
    (tmp_path / "f.txt").write_text("x")
    r = CliRunner().invoke(app, [a.format(run=good, tmp=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    assert msg in r.output and len(r.output.strip().splitlines()) == 1, r.output
