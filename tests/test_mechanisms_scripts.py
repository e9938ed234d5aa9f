"""Issue 16's shell scripts and results helper (CPU): the device script's --help and unknown
stages (checked before anything is built), regenerate.sh's trace folder, capacity_table's
one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEVICE = ROOT / "calibrate" / "mechanisms_device_run.sh"
REGEN = ROOT / "results" / "mechanisms-h200" / "regenerate.sh"
TABLE = ROOT / "results" / "mechanisms-h200" / "capacity_table.py"


def sh(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def test_device_script_help_is_usage_and_exit_0(tmp_path):
    r = sh(str(DEVICE), "--help", env={**os.environ, "OUTDIR": str(tmp_path / "o")})
    assert r.returncode == 0 and r.stdout.startswith("usage: bash calibrate/mechanisms_")
    assert "LIBSMCTRL_SRC" in r.stdout and "masks | gemm | calib" in r.stdout
    assert not (tmp_path / "o").exists()  # nothing set up, nothing built


@pytest.mark.parametrize("args", [["masks", "bogus"], ["--verbose"], []])
def test_device_script_unknown_stage_is_exit_2_before_any_work(tmp_path, args):
    r = sh(str(DEVICE), *args, env={**os.environ, "OUTDIR": str(tmp_path / "o")})
    assert r.returncode == 2, r.stdout + r.stderr
    if args:
        assert r.stderr.strip() == (
            f"error: unknown stage '{args[-1]}'; valid: masks gemm calib mps mps-table "
            "mps-rerun (or --help)"
        )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("how", ["argument", "env"])
def test_regenerate_takes_the_trace_folder_from_argument_or_env(tmp_path, how):
    missing = str(tmp_path / "no-traces")
    env = {**os.environ, "BULLETSIM_TRACES_DIR": missing if how == "env" else str(tmp_path)}
    args = [missing] if how == "argument" else []
    r = sh(str(REGEN), *args, env=env, cwd=tmp_path)  # run from elsewhere
    assert r.returncode == 2
    assert r.stderr.strip().startswith(f"error: trace folder not found: {missing}")


@pytest.mark.parametrize(
    "arg, needle",
    [("@nope", "is not a folder"), ("@empty", "holds no sweep-<mechanism>/capacity.csv")],
)
def test_capacity_table_bad_folder_is_one_line(tmp_path, arg, needle):
    (tmp_path / "empty").mkdir()
    path = str(tmp_path / arg[1:])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, str(TABLE), path], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr


def test_capacity_table_reads_the_committed_sweeps():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, str(TABLE)], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert "| sharegpt | (chunked-2048) | 58.69 [56.26, 61.12] | 1 |" in r.stdout


@pytest.mark.skipif(
    Path("/tmp/smctrl-libsmctrl/libsmctrl.so").exists(), reason="a built libsmctrl is there"
)
def test_device_script_stops_at_a_failed_libsmctrl_build(tmp_path):
    env = {**os.environ, "OUTDIR": str(tmp_path / "o"), "LIBSMCTRL_SRC": str(tmp_path / "nx")}
    r = sh(str(DEVICE), "masks", env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "error: libsmctrl build from" in out and "LIBSMCTRL_SRC=PATH" in out
    assert "start selftest" not in out and "start " not in out  # no part ran after it
    assert not (tmp_path / "o" / "exit_codes.txt").exists()


@pytest.mark.parametrize("script", ["mechanisms-h200/regenerate.sh", "paper-a100/regenerate.sh",
                                    "large-models/regenerate.sh"])  # fmt: skip
def test_regenerate_refuses_a_trace_folder_without_the_files(tmp_path, script):
    """Issue 16: an empty folder regenerated committed results from the embedded models."""
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "TRACES": str(empty), "BULLETSIM_TRACES_DIR": ""}
    r = sh(str(ROOT / "results" / script), *([str(empty)] if "mech" in script else []), env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().startswith(f"error: --traces-dir {empty} holds no ")
    assert "sharegpt_v3_random1000.json.gz" in r.stderr and r.stderr.count("\n") == 1
