"""Issue 16, a new user's faults in `calibrate-fit` / `calibrate --install` (CPU): an install
never replaces an installed profile silently (and keeps what the fit does not produce), the
output folder's files of others are never overwritten, bad inputs are one line and exit 2
with nothing written, and samples measured under another mechanism than meta.json's are
refused."""

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

ROOT = Path(__file__).resolve().parent.parent
TP2 = ROOT / "results" / "large-models" / "device" / "tp2"
SHIPPED = profile_format.PROFILE_DIR / "h200__llama-3.1-70b__tp2.json"
runner = CliRunner()


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    """A profiles folder holding a copy of the shipped TP-2 profile (with collectives)."""
    d = tmp_path / "profiles"
    d.mkdir()
    shutil.copyfile(SHIPPED, d / SHIPPED.name)
    monkeypatch.setattr(profile_format, "PROFILE_DIR", d)
    monkeypatch.setattr(pipeline, "PROFILE_DIR", d)
    return d


@pytest.fixture
def g2(tmp_path):
    """The tester's copy: meta.json + samples.parquet of the TP-2 calibration."""
    d = tmp_path / "g2"
    d.mkdir()
    for name in ("meta.json", "samples.parquet"):
        shutil.copyfile(TP2 / name, d / name)
    return d


def fit(*args: str):
    res = runner.invoke(app, ["calibrate-fit", *map(str, args)])
    return res.exit_code, " ".join(res.output.split())


def one_error(code: int, out: str, *needles: str) -> None:
    assert code == 2, out
    assert out.startswith("error: ") and out.count("error:") == 1 and "Traceback" not in out
    for n in needles:
        assert n in out, (n, out)


def test_install_refuses_a_shipped_profile_then_replace_keeps_its_collectives(profiles, g2):
    dst = profiles / SHIPPED.name
    before = dst.read_bytes()
    code, out = fit(g2 / "samples.parquet", "--out", g2 / "out", "--install")
    one_error(code, out, str(dst), "already installed", "--replace", "--no-install")
    assert dst.read_bytes() == before and not (g2 / "out").exists()  # refused before any write
    code, out = fit(g2 / "samples.parquet", "--out", g2 / "out", "--install", "--replace")
    assert code == 0, out
    assert f"installed: {dst}" in out and "kept from it: collectives, meta.parts" in out
    new, old = json.loads(dst.read_text()), json.loads(before)
    assert new["collectives"] == old["collectives"]
    assert new["meta"]["parts"]["allreduce"] == old["meta"]["parts"]["allreduce"]
    assert new["fit"] != old["fit"] or new["srm"] == old["srm"]  # the refit's own sections
    assert (profiles / "h200__llama-3.1-70b__tp2.samples.parquet").is_file()
    assert not list(profiles.glob("*.tmp*")) and not list((g2 / "out").glob(".*"))
    # the output folder is the tool's own now: a second fit may replace its files
    assert fit(g2 / "samples.parquet", "--out", g2 / "out")[0] == 0


@pytest.mark.parametrize("name", ["report.md", "h200__llama-3.1-70b__tp2.json", "report.png"])
def test_a_users_file_in_the_output_folder_is_never_overwritten(g2, name):
    (g2 / name).write_text("my notes\n")
    code, out = fit(g2 / "samples.parquet")  # --out defaults to the samples' folder
    one_error(code, out, str(g2 / name), "not written by calibrate.pipeline")
    assert (g2 / name).read_text() == "my notes\n"
    assert sorted(p.name for p in g2.iterdir()) == sorted(["meta.json", "samples.parquet", name])


def test_a_different_meta_json_in_the_output_folder_is_refused(g2, tmp_path):
    other = tmp_path / "other.json"
    meta = json.loads((g2 / "meta.json").read_text())
    other.write_text(json.dumps({**meta, "date": "2020-01-01"}))
    code, out = fit(g2 / "samples.parquet", "--meta", other)
    one_error(code, out, str(g2 / "meta.json"), "differs from")


def _bad(case: str, tmp: Path, g2: Path) -> tuple[list, str, int]:
    """(arguments, the text the one error line must hold, the index of the argument it
    names) of each bad input."""
    s = g2 / "samples.parquet"
    if case == "empty jsonl":
        (tmp / "samples.jsonl").write_text("")
        return [tmp / "samples.jsonl", "--meta", g2 / "meta.json"], "holds no completed samples", 0
    if case == "empty parquet":
        pd.read_parquet(s).iloc[:0].to_parquet(tmp / "e.parquet")
        return [tmp / "e.parquet", "--meta", g2 / "meta.json"], "holds no completed samples", 0
    if case == "out is a file":
        (tmp / "f").write_text("x")
        return [s, "--out", tmp / "f"], "is a file; give a folder", 2
    if case == "meta without mechanism":
        meta = json.loads((g2 / "meta.json").read_text())
        del meta["mechanism"]
        (tmp / "m.json").write_text(json.dumps(meta))
        return [s, "--meta", tmp / "m.json"], "lacks mechanism", 2
    if case == "missing samples":
        return [tmp / "nope.parquet"], "samples file not found", 0
    if case == "samples is a folder":
        return [g2], "is a folder", 0
    if case == "samples is text":
        (tmp / "s.txt").write_text("hello\n")
        return [tmp / "s.txt"], "is not .jsonl or .parquet", 0
    if case == "samples not parquet":
        (tmp / "s.parquet").write_text("hello\n")
        return [tmp / "s.parquet", "--meta", g2 / "meta.json"], "cannot be read as parquet", 0
    if case == "garbage meta":
        (tmp / "f.txt").write_text("garbage\n")
        return [s, "--meta", tmp / "f.txt"], "is not JSON", 2
    if case == "meta names another mechanism":
        meta = json.loads((g2 / "meta.json").read_text())
        (tmp / "m.json").write_text(json.dumps({**meta, "mechanism": "libsmctrl"}))
        return [s, "--meta", tmp / "m.json", "--install"], "measured under green-ctx", 2
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["empty jsonl", "empty parquet", "out is a file", "meta without mechanism",
     "missing samples", "samples is a folder", "samples is text", "samples not parquet",
     "garbage meta", "meta names another mechanism"],
)  # fmt: skip
def test_bad_inputs_are_one_line_exit_2_and_nothing_is_written(tmp_path, g2, case, profiles):
    tmp = tmp_path / "in"
    tmp.mkdir()
    args, needle, named = _bad(case, tmp, g2)
    inputs = {p: p.stat().st_mtime_ns for p in [*tmp.iterdir(), *g2.iterdir()]}
    code, out = fit(*args, "--out", tmp_path / "out") if "--out" not in args else fit(*args)
    one_error(code, out, needle, str(args[named]))
    assert not (tmp_path / "out").exists()
    assert {p: p.stat().st_mtime_ns for p in [*tmp.iterdir(), *g2.iterdir()]} == inputs


def test_mechanism_none_has_no_install_name(tmp_path, g2, profiles):
    df = pd.read_parquet(g2 / "samples.parquet")
    df["mechanism"] = "none"
    df.to_parquet(g2 / "samples.parquet")
    meta = json.loads((g2 / "meta.json").read_text())
    (g2 / "meta.json").write_text(json.dumps({**meta, "mechanism": "none"}))
    code, out = fit(g2 / "samples.parquet", "--out", tmp_path / "o", "--install")
    one_error(code, out, "mechanism 'none' is not installed", "green-ctx, libsmctrl, mps")
    assert sorted(p.name for p in profiles.iterdir()) == [SHIPPED.name]


def test_calibrate_refuses_to_replace_an_installed_profile_before_the_gpu():
    """`bulletsim calibrate` installs by default: the shipped H200 profile is refused up
    front (on this CPU machine, before the missing-GPU error)."""
    res = runner.invoke(app, ["calibrate", "--gpu", "h200"])
    code, out = res.exit_code, " ".join(res.output.split())
    one_error(code, out, "h200__llama-3.1-8b.json is already installed", "--replace")
