"""Issue 16 (tester's faults 1 and 3): a profile's identity includes the SM partition mechanism
it was measured under; runs pick, name and caveat it; sweeps label the mechanism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import bulletsim.latency.profile_format as profile_format
import calibrate.pipeline as pipeline
from bulletsim.cli import app
from bulletsim.hardware import get_gpu
from bulletsim.latency.factory import build_latency
from bulletsim.latency.profile import PROFILE_DIR, profile_filename
from bulletsim.models import get_model

ROOT = Path(__file__).resolve().parent.parent
LIB_DIR = ROOT / "results" / "mechanisms-h200" / "profile-libsmctrl"
LIB_PROFILE = LIB_DIR / "h200__llama-3.1-8b.libsmctrl.json"
GREEN = PROFILE_DIR / "h200__llama-3.1-8b.json"
ENV = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}
RUN = ("run", "--trace", "alpaca", "-n", "12", "-q", "--gpu", "h200", "--policy", "bullet")
runner = CliRunner()


def test_file_names_carry_the_mechanism():
    assert profile_filename("h200", "llama-3.1-8b") == "h200__llama-3.1-8b.json"
    assert profile_filename("h200", "llama-3.1-8b", 1, "green") == "h200__llama-3.1-8b.json"
    assert profile_filename("h200", "m", 8, "libsmctrl") == "h200__m__tp8.libsmctrl.json"
    assert profile_filename("h200", "m", 1, "mps") == "h200__m.mps.json"


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    """A profiles folder holding a copy of the shipped green-context H200 profile."""
    d = tmp_path / "profiles"
    d.mkdir()
    shutil.copyfile(GREEN, d / GREEN.name)
    monkeypatch.setattr(profile_format, "PROFILE_DIR", d)
    monkeypatch.setattr(pipeline, "PROFILE_DIR", d)
    return d


def test_installing_a_libsmctrl_fit_leaves_the_green_profile(profiles, tmp_path):
    """The tester's reproduction: `calibrate-fit <copy>/samples.parquet --install` replaced
    the green profile, and `--mechanism green` runs were then priced by libsmctrl kernels."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("samples.parquet", "meta.json"):
        shutil.copyfile(LIB_DIR / name, copy / name)
    green_bytes = (profiles / GREEN.name).read_bytes()
    res = runner.invoke(
        app, ["calibrate-fit", str(copy / "samples.parquet"), "--out", str(tmp_path / "x"),
              "--install"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (profiles / GREEN.name).read_bytes() == green_bytes
    assert (profiles / "h200__llama-3.1-8b.libsmctrl.json").is_file()
    assert (profiles / "h200__llama-3.1-8b.libsmctrl.samples.parquet").is_file()
    gpu, model = get_gpu("h200"), get_model("llama-3.1-8b")
    assert build_latency("profile", gpu, model, "green-ctx").mechanism == "green-ctx"
    assert build_latency("profile", gpu, model, None).mechanism == "green-ctx"  # chunked
    assert build_latency("auto", gpu, model, "libsmctrl").mechanism == "libsmctrl"
    assert build_latency("auto", gpu, model, "mps").mechanism == "green-ctx"  # none for mps


def test_a_profile_of_another_mechanism_is_never_replaced(profiles):
    lib = json.loads(LIB_PROFILE.read_text())
    legacy = profiles / GREEN.name  # an older layout: a libsmctrl profile under the plain name
    legacy.write_text(json.dumps(lib))
    with pytest.raises(ValueError, match="measured under libsmctrl; a green-ctx profile does"):
        pipeline.check_install(legacy, "green-ctx")
    with pytest.raises(ValueError, match="is already installed .* add --replace"):
        pipeline.check_install(legacy, "libsmctrl")  # the same mechanism: never silently
    pipeline.check_install(legacy, "libsmctrl", replace=True)  # a re-install, asked for
    pipeline.check_install(profiles / "absent.json", "green-ctx")


def test_runs_name_the_profile_and_caveat_a_mismatch(tmp_path):
    out = tmp_path / "lib"
    res = runner.invoke(app, [*RUN, "--profile", str(LIB_PROFILE), "--out", str(out)], env=ENV)
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    assert s["latency_model"] == "profile:h200/llama-3.1-8b (measured, libsmctrl)"
    assert s["profile_mechanism"] == "libsmctrl" and s["mechanism_caveat"] is None
    assert s["policy"] == "bullet-libsmctrl"
    out = tmp_path / "green"
    argv = [*RUN, "--profile", str(LIB_PROFILE), "--mechanism", "green", "--out", str(out)]
    res = runner.invoke(app, argv, env=ENV)
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    assert "measured under libsmctrl" in s["mechanism_caveat"]
    assert "caveat: the run partitions SMs with green-ctx" in " ".join(res.output.split())
    res = runner.invoke(app, [*RUN, "--no-write", "--mechanism", "mps"], env=ENV)
    assert "an upper bound for MPS" in " ".join(res.output.split())
    assert "(measured, green-ctx)" in res.output


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--profile", "/nonexistent/p.json"], "/nonexistent/p.json"),
        (["--profile", str(LIB_PROFILE), "--latency", "roofline"], "does not go with"),
        (
            ["--profile", str(LIB_PROFILE), "--gpu", "a100"],
            "not 'a100' (the run's --gpu; give --gpu h200",
        ),
    ],
)
def test_bad_profile_is_one_line(extra, says):
    res = runner.invoke(app, [*RUN, "--no-write", *extra], env=ENV)
    assert res.exit_code == 2 and says in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1


def test_sweep_labels_the_mechanism_and_profile(tmp_path):
    out = tmp_path / "sw"
    argv = ["sweep", "--policy", "bullet", "--policy", "chunked-2048", "--trace", "alpaca",
            "--rates", "4", "-n", "30", "--seeds", "0", "--gpu", "h200", "--mechanism", "mps",
            "--workers", "1", "--no-timeline", "--no-plots", "-q", "--out", str(out)]  # fmt: skip
    res = runner.invoke(app, argv, env=ENV)
    assert res.exit_code == 0, res.output
    cap = pd.read_csv(out / "capacity.csv").set_index("label")
    assert cap.loc["bullet", "policy"] == "bullet-mps"
    assert cap.loc["bullet", "mechanism"] == "mps" and cap.loc["bullet", "remask_us"] == 0.47
    assert cap.loc["bullet", "profile_mechanism"] == "green-ctx"
    assert cap["mechanism"].isna()["chunked-2048"]
    md = (out / "capacity.md").read_text()
    assert "| bullet (mps) |" in md and "| chunked-2048 |" in md
    assert "latency model profile:h200/llama-3.1-8b (measured, green-ctx)" in md
    assert "- bullet: caveat: the run partitions SMs with mps" in md
