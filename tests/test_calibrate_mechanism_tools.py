"""Issue 16's `python -m calibrate.*` tools on a new user's machine (CPU only): every bad input,
a missing GPU, libsmctrl or triton is one line `error: ...` and exit code 2 before anything is
written; files in --out that the tool did not write are never replaced; mechanism_compare
refuses samples of the wrong mechanism; the MPS tools leave no temporary folder behind."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path

import pytest

from calibrate.mechanism_compare import GREEN_DEFAULT

ROOT = Path(__file__).resolve().parents[1]
LIB_SAMPLES = ROOT / "results/mechanisms-h200/profile-libsmctrl/samples.parquet"
CHECK, GEMM, COMPARE, CORUN, WORKER = (
    "calibrate.libsmctrl_check",
    "calibrate.masked_gemm",
    "calibrate.mechanism_compare",
    "calibrate.mps_corun",
    "calibrate.mps_worker",
)


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    (d / "libsmctrl.so").write_text("stand-in: only its existence is checked first\n")
    (d / "adir").mkdir()
    (d / "empty.jsonl").write_text("")
    (d / "README.md").write_text("# not samples\n")
    (d / "user.txt").write_text("keep\n")
    for name in ("selftest.json", "masked_gemm.json", "mps_corun.json", "compare.md"):
        (d / "users" / name).parent.mkdir(exist_ok=True)
        (d / "users" / name).write_text('{"mine": 1}\n')
    (d / "userlog").mkdir()
    (d / "userlog" / "workers.log").write_text("my log\n")
    (d / "usercsv").mkdir()
    (d / "usercsv" / "per_point.csv").write_text("a,b\n1,2\n")
    return d


def run_main(module: str, argv: list[str], root: Path, monkeypatch, capsys) -> str:
    """`python -m module argv` in-process through its front door; the one error line."""
    from calibrate.tool_cli import run_tool

    mod = importlib.import_module(module)
    args = [str(root / a[1:]) if a.startswith("@") else a for a in argv]
    with pytest.raises(SystemExit) as exc:
        run_tool(lambda: sys.exit(mod.main(args)))
    out = capsys.readouterr()
    assert exc.value.code == 2, (out.out, out.err)
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    assert "Traceback" not in out.err
    return lines[0]


# (id, module, argv, text the line must hold); "@x" is a path under the inputs folder
CASES = [
    ("check-no-lib", CHECK, ["remask", "--out", "@o"], "libsmctrl not configured"),
    ("check-missing-lib", CHECK, ["selftest", "--libsmctrl", "/nonexist"], "not found"),
    ("check-lib-folder", CHECK, ["graph", "--libsmctrl", "@adir"], "is a folder, not a file"),
    ("check-no-gpu", CHECK, ["graph", "--libsmctrl", "@libsmctrl.so"], "an NVIDIA GPU"),
    ("check-part", CHECK, ["calibrate"], "invalid choice: 'calibrate'"),
    ("check-wd-0", CHECK, ["graph", "--watchdog-s", "0"], "positive, finite number"),
    ("check-wd-nan", CHECK, ["graph", "--watchdog-s", "nan"], "positive, finite number"),
    ("check-wd-neg", CHECK, ["graph", "--watchdog-s", "-1"], "positive, finite number"),
    ("check-out-file", CHECK, ["graph", "--out", "@user.txt"], "is a file; give a folder"),
    ("check-user-json", CHECK, ["selftest", "--out", "@users"], "was not written by"),
    ("gemm-no-lib", GEMM, ["--out", "@o"], "libsmctrl not configured"),
    ("gemm-no-gpu", GEMM, ["--out", "@o", "--libsmctrl", "@libsmctrl.so"], "an NVIDIA GPU"),
    ("gemm-tpcs", GEMM, ["--out", "@o", "--tpcs", "0,4"], "TPC counts >= 1"),
    ("gemm-restarts", GEMM, ["--out", "@o", "--max-restarts", "-1"], ">= 0"),
    ("gemm-user-json", GEMM, ["--out", "@users"], "masked_gemm.json exists and was not"),
    ("cmp-empty", COMPARE, ["@empty.jsonl", "--out", "@o"], "holds no calibration samples"),
    ("cmp-readme", COMPARE, ["@README.md", "--out", "@o"], "is not a samples file"),
    ("cmp-folder", COMPARE, ["@adir", "--out", "@o"], "is a folder, not a file"),
    ("cmp-missing", COMPARE, ["@nope.parquet", "--out", "@o"], "not found"),
    ("cmp-green-as-lib", COMPARE, [str(GREEN_DEFAULT), "--out", "@o"], "green-ctx, not lib"),
    (
        "cmp-lib-as-green",
        COMPARE,
        [str(LIB_SAMPLES), "--green", str(LIB_SAMPLES), "--out", "@o"],
        "libsmctrl, not green-ctx",
    ),
    ("cmp-out-file", COMPARE, [str(LIB_SAMPLES), "--out", "@user.txt"], "is a file"),
    ("cmp-user-md", COMPARE, [str(LIB_SAMPLES), "--out", "@users"], "compare.md exists"),
    ("cmp-user-csv", COMPARE, [str(LIB_SAMPLES), "--out", "@usercsv"], "per_point.csv exists"),
    ("corun-config", CORUN, ["--out", "@o", "--configs", "mps,bogus"], "valid: no-mps, mps"),
    ("corun-duration", CORUN, ["--out", "@o", "--duration-s", "0"], "positive, finite"),
    ("corun-no-lib", CORUN, ["--out", "@o", "--configs", "mps-mask"], "not configured"),
    ("corun-no-gpu", CORUN, ["--out", "@o", "--configs", "no-mps"], "an NVIDIA GPU"),
    ("corun-user-json", CORUN, ["--out", "@users", "--configs", "no-mps"], "mps_corun.json"),
    ("corun-user-log", CORUN, ["--out", "@userlog", "--configs", "no-mps"], "workers.log"),
    ("corun-mps-dir", CORUN, ["--out", "@o", "--mps-dir", "@user.txt"], "--mps-dir"),
    ("worker-sync", WORKER, ["--role", "decode", "--sync", "@nope"], "--sync folder not found"),
    ("worker-tpcs", WORKER, ["--role", "decode", "--sync", "@adir", "--tpcs", "4"], "FIRST:C"),
    ("worker-no-gpu", WORKER, ["--role", "decode", "--sync", "@adir"], "an NVIDIA GPU"),
]


@pytest.mark.parametrize("module, argv, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    inputs, monkeypatch, capsys, module, argv, needle
):
    monkeypatch.delenv("LIBSMCTRL_PATH", raising=False)
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = snapshot(inputs)
    line = run_main(module, argv, inputs, monkeypatch, capsys)
    assert needle in line, line
    assert snapshot(inputs) == before


@pytest.mark.parametrize("module", [CHECK, GEMM, CORUN])
def test_without_torch_the_gpu_tools_say_what_they_need(inputs, monkeypatch, capsys, module):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    argv = ["graph"] if module == CHECK else ["--configs", "no-mps"] if module == CORUN else []
    argv += ["--out", "@o", "--libsmctrl", "@libsmctrl.so"]
    line = run_main(module, argv, inputs, monkeypatch, capsys)
    assert "torch is not installed" in line
    assert not (inputs / "o").exists()


def test_masked_gemm_without_triton_says_so(inputs, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setitem(sys.modules, "triton", None)
    line = run_main(
        GEMM, ["--out", "@o", "--libsmctrl", "@libsmctrl.so"], inputs, monkeypatch, capsys
    )
    assert "needs triton" in line and not (inputs / "o").exists()


def test_compare_rewrites_its_own_files_only(tmp_path):
    from calibrate.mechanism_compare import main

    out = tmp_path / "o"
    assert main([str(LIB_SAMPLES), "--out", str(out)]) == 0
    first = snapshot(out)
    assert sorted(first) == ["compare.md", "per_point.csv"]
    assert first["compare.md"].startswith(b"<!-- written by calibrate.mechanism_compare -->\n")
    assert main([str(LIB_SAMPLES), "--out", str(out)]) == 0  # its own files: replaced
    assert snapshot(out) == first  # same inputs, byte-identical files
    # the committed comparison is what the tool writes from the committed samples
    committed = ROOT / "results/mechanisms-h200/profile-libsmctrl/compare"
    assert snapshot(committed) == first


def test_masked_gemm_log_header_is_skipped(tmp_path):
    from calibrate.masked_gemm import TOOL, read_log
    from calibrate.own_files import is_own_jsonl, jsonl_header

    log = tmp_path / "masked_gemm.jsonl"
    log.write_text(jsonl_header(TOOL) + '{"key":"o/cublas/tpcs1","status":"ok"}\n')
    assert is_own_jsonl(log, TOOL) and set(read_log(log)[0]) == {"o/cublas/tpcs1"}
    log.write_text('{"key":"o/cublas/tpcs1","status":"ok"}\n')  # no header: not ours
    assert not is_own_jsonl(log, TOOL)


def test_own_json_is_recognised_by_its_provenance_field(tmp_path):
    from calibrate.own_files import is_own_json, write_json_atomic

    p = tmp_path / "x.json"
    write_json_atomic(p, "calibrate.x", {"a": 1})
    assert json.loads(p.read_text()) == {"written_by": "calibrate.x", "a": 1}
    assert is_own_json(p, "calibrate.x") and not is_own_json(p, "calibrate.y")
    assert [q.name for q in tmp_path.iterdir()] == ["x.json"]  # no temporary left


# -- calibrate-selftest (the bulletsim command) -------------------------------------------------
@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_selftest_watchdog_is_checked_before_the_gpu(monkeypatch, value):
    from typer.testing import CliRunner

    from tests.test_mechanisms_cli import _app

    monkeypatch.delenv("LIBSMCTRL_PATH", raising=False)
    res = CliRunner().invoke(_app(), ["calibrate-selftest", "libsmctrl", "--watchdog-s", value])
    assert res.exit_code == 2 and "--watchdog-s" in res.output and "positive" in res.output
    assert "not configured" not in res.output  # the number was checked first


def test_selftest_library_folder_is_a_folder(tmp_path):
    from typer.testing import CliRunner

    from tests.test_mechanisms_cli import _app

    (tmp_path / "libsmctrl.so").write_text("x")
    res = CliRunner().invoke(
        _app(), ["calibrate-selftest", "libsmctrl", "--libsmctrl", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "is a folder, not a file (give the libsmctrl.so inside it)" in res.output


# -- MPS: temporary folders ---------------------------------------------------------------------
NO_PIPE_CONTROL = '#!/bin/sh\n[ "$1" = -d ] && exit 0\nread cmd; echo ok\n'


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    t = tmp_path / "tmp"
    t.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(t))
    return t


def test_mps_daemon_removes_its_own_folder_when_it_never_came_up(
    tmp_path, monkeypatch, private_tmp
):
    from bulletsim.gpu.mps import MpsDaemon, MpsUnavailable

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "nvidia-cuda-mps-control").write_text(NO_PIPE_CONTROL)
    (bindir / "nvidia-cuda-mps-control").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    d = MpsDaemon(start_timeout_s=0.3)
    assert d.base.parent == private_tmp and d.base.is_dir()
    with pytest.raises(MpsUnavailable, match="did not create"), d:
        pass
    assert list(private_tmp.iterdir()) == []
    mine = tmp_path / "mine"  # a folder the caller gave is the caller's: kept
    with pytest.raises(MpsUnavailable), MpsDaemon(mine, start_timeout_s=0.3):
        pass
    assert mine.is_dir()


def test_corun_removes_its_sync_folder_when_the_workers_fail(tmp_path, monkeypatch, private_tmp):
    from calibrate import mps_corun

    a = argparse.Namespace(duration_s=0.1, layers=1, libsmctrl=None, mps_dir=None, timeout_s=20)
    monkeypatch.setattr(mps_corun.sys, "executable", "/bin/false")  # workers die at once
    with open(tmp_path / "workers.log", "ab") as log:
        out = mps_corun.run_config("no-mps", None, a, log)
    assert out["status"].startswith("failed: no-mps: no ready_prefill (exited")
    assert list(private_tmp.iterdir()) == []


def test_calibrate_watchdog_is_checked_before_the_gpu(monkeypatch):
    from typer.testing import CliRunner

    from tests.test_mechanisms_cli import _app

    monkeypatch.delenv("LIBSMCTRL_PATH", raising=False)
    argv = ["calibrate", "--gpu", "h200", "--mechanism", "libsmctrl", "--watchdog-s", "nan"]
    res = CliRunner().invoke(_app(), argv)
    assert res.exit_code == 2 and "--watchdog-s nan: give a positive" in res.output
