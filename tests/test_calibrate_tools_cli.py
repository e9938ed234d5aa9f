"""Bad input to calibrate's `python -m calibrate.<tool>` scripts (issue 13, new-user findings):
missing, empty, corrupt or wrong input files, folders for files, files for folders, bad numbers
and a machine without a GPU (CPU-only torch, or no torch at all). Each must print exactly one
line starting with "error:", exit with code 2 (not 0 or 1), show no traceback and write
nothing. The tools run in-process through their `run_tool` front door, as `-m` runs them.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from bulletsim.latency.profile_format import PROFILE_DIR

COLL = PROFILE_DIR.parent / "collectives" / "h200__nccl-2gpu.json"
TP4 = PROFILE_DIR / "h200__llama-3.1-70b__tp4.json"
TP8 = PROFILE_DIR / "h200__llama-3.1-70b__tp8.json"
ROUND = Path(__file__).parents[1] / "results/large-models/qwen3-235b-a22b/device-r3"


def make_inputs(d: Path) -> None:
    d.mkdir()
    (d / "folder").mkdir()
    (d / "corrupt.json").write_text("{\n")
    (d / "empty.json").write_text("")
    (d / "list.json").write_text("[1, 2]\n")
    (d / "other.json").write_text('{"a": 1}\n')
    (d / "user.txt").write_text("keep\n")
    (d / "p70.json").write_text(TP4.read_text())
    (d / "p8.json").write_text((PROFILE_DIR / "h200__llama-3.1-8b.json").read_text())
    (d / "p70-8.json").write_text(TP8.read_text())
    (d / TP4.name).write_text(TP4.read_text())  # a user's measured TP-4 profile
    # a user's own files in the folders moe_fit writes (issue 13 fault 2)
    (d / "mf1" / "tp8").mkdir(parents=True)
    (d / "mf1" / "tp8" / "fit_summary.json").write_text('{"mine": 1}\n')
    (d / "mf2" / "ep8").mkdir(parents=True)
    (d / "mf2" / "ep8" / "samples_zipf.parquet").write_text("mine\n")
    (d / "mf3" / "ep8").mkdir(parents=True)
    (d / "mf3" / "ep8" / "h20__qwen3-235b-a22b-ep8__tp8.json").write_text(TP4.read_text())
    run = {"rank0": {"rows": []}, "world": 2, "date": "d", "timing_method": "t", "env": {}}
    (d / "run-empty.json").write_text(json.dumps({**run, "hidden": 8192, "nccl_log": {}}))
    row = {"op": "all_reduce", "bytes": 16384, "sms": 132, "ms": -1.0, "tokens": 1}
    run_neg = {**run, "rank0": {"rows": [row]}, "hidden": 8192, "nccl_log": {}}
    (d / "run-negative.json").write_text(json.dumps(run_neg))
    (d / "run-world1.json").write_text(json.dumps({**run_neg, "world": 1}))
    for name, meta, samples in (
        ("round-empty", {"model": "qwen3-235b-a22b", "gpu": "h200"}, ""),
        ("round-cols", {"model": "qwen3-235b-a22b", "gpu": "h200"}, '{"key": "a"}\n'),
        ("round-model", {"model": "gpt-5", "gpu": "h200"}, '{"key": "a"}\n'),
        ("round-nometa", {"gpu": "h200"}, ""),
    ):
        u = d / name / "tp8" / "uniform"
        u.mkdir(parents=True)
        (u / "meta.json").write_text(json.dumps(meta))
        (u / "samples.jsonl").write_text(samples)
    (d / "round-none").mkdir()


# (id, module, argv, text the error line must hold). "@x" is a file made by make_inputs.
CF, SP, DS, MF = (
    "calibrate.collectives_fit",
    "calibrate.shard_profile",
    "calibrate.derive_shard",
    "calibrate.moe_fit",
)
CASES = [
    ("cf-no-args", CF, [], "required: run, --out"),
    ("cf-missing", CF, ["@nope.json", "--out", "@o.json"], "collectives run not found"),
    ("cf-folder", CF, ["@folder", "--out", "@o.json"], "is a folder, not a file"),
    ("cf-corrupt", CF, ["@corrupt.json", "--out", "@o.json"], "is not valid JSON"),
    ("cf-empty", CF, ["@empty.json", "--out", "@o.json"], "is not valid JSON"),
    ("cf-list", CF, ["@list.json", "--out", "@o.json"], "JSON list, not an object"),
    ("cf-other", CF, ["@other.json", "--out", "@o.json"], "lacks 'rank0'"),
    ("cf-no-rows", CF, ["@run-empty.json", "--out", "@o.json"], "measured nothing"),
    ("cf-negative", CF, ["@run-negative.json", "--out", "@o.json"], "non-positive time"),
    ("cf-world-1", CF, ["@run-world1.json", "--out", "@o.json"], "world=1"),
    ("cf-out-folder", CF, ["@other.json", "--out", "@folder"], "is a folder; give a file"),
    ("cf-out-user-file", CF, ["@other.json", "--out", "@user.txt"], "exists and is not"),
    ("cf-report-file", CF, ["@other.json", "--out", "@o.json", "--report", "@user.txt"], "folder"),
    ("sp-missing", SP, ["@nope.json", "--collectives", str(COLL)], "profile not found"),
    ("sp-corrupt", SP, ["@corrupt.json", "--collectives", str(COLL)], "not valid JSON"),
    ("sp-not-profile", SP, ["@other.json", "--collectives", str(COLL)], "not a bulletsim"),
    ("sp-tp1", SP, ["@p8.json", "--collectives", str(COLL), "--out", "@x.json"], "tp=1"),
    ("sp-table-folder", SP, ["@p70.json", "--collectives", "@folder"], "is a folder"),
    ("sp-table-other", SP, ["@p70.json", "--collectives", "@other.json"], "lacks 'format'"),
    ("sp-table-profile", SP, ["@p70.json", "--collectives", "@p70.json"], "lacks 'bytes'"),
    ("sp-out-user", SP, ["@p70.json", "--collectives", str(COLL), "--out", "@user.txt"], "not a"),
    # fault 1: a profile's --out names another tp/GPU/model, or holds another measured profile
    (
        "sp-out-name-tp",
        SP,
        ["@p70-8.json", "--collectives", str(COLL), "--out", f"@{TP4.name}"],
        "name it h200__llama-3.1-70b__tp8.json",
    ),
    (
        "sp-out-name-new",
        SP,
        ["@p70-8.json", "--collectives", str(COLL), "--out", "@h200__llama-3.1-8b__tp8.json"],
        "is not this profile's",
    ),
    (
        "sp-out-other-measured",
        SP,
        ["@p70-8.json", "--collectives", str(COLL), "--out", "@p70.json"],
        "holds another profile (measured h200 / llama-3.1-70b tp=4",
    ),
    ("ds-bad-int", DS, ["--from-tp", "4", "--tp", "x"], "invalid int value"),
    ("ds-tp-16", DS, ["--from-tp", "4", "--tp", "16"], "valid: 1, 2, 4, 8"),
    ("ds-tp-3", DS, ["--from-tp", "4", "--tp", "3"], "valid: 1, 2, 4, 8"),
    ("ds-same", DS, ["--from-tp", "4", "--tp", "4"], "equals --from-tp"),
    ("ds-no-source", DS, ["--from-tp", "1", "--tp", "2"], "installed tp: 2, 4, 8"),
    ("ds-measured", DS, ["--from-tp", "4", "--tp", "8"], "is a measured profile"),
    ("ds-gpu", DS, ["--gpu", "b200", "--from-tp", "2", "--tp", "4"], "valid: a100"),
    ("mf-missing", MF, ["@nope", "--out", "@o"], "round folder not found"),
    ("mf-file", MF, ["@user.txt", "--out", "@o"], "is a file, not a folder"),
    ("mf-no-samples", MF, ["@round-none", "--out", "@o"], "no MoE samples"),
    ("mf-empty-samples", MF, ["@round-empty", "--out", "@o"], "no completed samples"),
    ("mf-columns", MF, ["@round-cols", "--out", "@o"], "lacks columns"),
    ("mf-model", MF, ["@round-model", "--out", "@o"], "unknown model 'gpt-5'"),
    ("mf-meta", MF, ["@round-nometa", "--out", "@o"], "lacks 'model'"),
    ("mf-out-file", MF, ["@round-empty", "--out", "@user.txt"], "is a file; give a folder"),
    ("mf-table", MF, ["@round-empty", "--out", "@o", "--collectives", "@corrupt.json"], "JSON"),
    ("mf-user-json", MF, [str(ROUND), "--out", "@mf1"], "fit_summary.json exists and was not"),
    ("mf-user-parquet", MF, [str(ROUND), "--out", "@mf2"], "samples_zipf.parquet exists and"),
    ("mf-user-profile", MF, [str(ROUND), "--out", "@mf3"], "h20__qwen3-235b-a22b-ep8__tp8.json"),
    ("ms-file", "calibrate.moe_summary", ["@user.txt"], "is a file, not a folder"),
    (
        "mc-layers",
        "calibrate.moe_calibrate",
        ["--job", "tp8", "--out", "@o", "--layers", "0"],
        "1..94",
    ),
    ("mc-job", "calibrate.moe_calibrate", ["--job", "nope", "--out", "@o"], "invalid choice"),
    ("mb-out-file", "calibrate.moe_bench", ["--part", "check", "--out", "@user.txt"], "a file"),
    ("sh-tp", "calibrate.shard_probe", ["--out", "@o", "--tp", "16"], "valid: 1, 2, 4, 8"),
]
# The GPU tools on a machine without one: what they need, in one line.
GPU_TOOLS = [
    ("calibrate.moe_bench", ["--part", "check", "--out", "@o"], "an NVIDIA GPU"),
    ("calibrate.moe_calibrate", ["--job", "tp8", "--out", "@o"], "an NVIDIA GPU"),
    ("calibrate.collectives", ["--out", "@o"], "an NVIDIA GPU"),
    ("calibrate.shard_probe", ["--out", "@o"], "an NVIDIA GPU"),
]


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


def run_tool_main(module: str, argv: list[str], root: Path, monkeypatch, capsys) -> str:
    """Run `python -m <module> argv` in-process; returns the stderr it printed."""
    from calibrate.tool_cli import run_tool

    mod = importlib.import_module(module)
    args = [str(root / a[1:]) if a.startswith("@") else a for a in argv]
    monkeypatch.setattr(sys, "argv", [module, *args])
    with pytest.raises(SystemExit) as exc:
        run_tool(getattr(mod, "cli", None) or mod.main)
    out = capsys.readouterr()
    assert exc.value.code == 2, (out.out, out.err)
    return out.err


@pytest.mark.parametrize("module, argv, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, monkeypatch, capsys, module, argv, needle
):
    root = tmp_path / "in"
    make_inputs(root)
    profiles = snapshot(PROFILE_DIR)
    before = snapshot(root)
    err = run_tool_main(module, argv, root, monkeypatch, capsys)
    lines = [x for x in err.strip().splitlines() if not x.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    assert snapshot(root) == before
    assert snapshot(PROFILE_DIR) == profiles  # derive_shard never replaces an installed file


@pytest.mark.parametrize("no_torch", [False, True], ids=["cpu-torch", "no-torch"])
@pytest.mark.parametrize("module, argv, needle", GPU_TOOLS, ids=[g[0] for g in GPU_TOOLS])
def test_gpu_tools_without_a_gpu_say_so_in_one_line(
    tmp_path, monkeypatch, capsys, module, argv, needle, no_torch
):
    if no_torch:
        monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    else:
        torch = pytest.importorskip("torch")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    root = tmp_path / "in"
    make_inputs(root)
    err = run_tool_main(module, argv, root, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert ("not installed" in lines[0]) == no_torch
    assert not (root / "o").exists()


def test_collectives_needs_two_gpus(monkeypatch):
    torch = pytest.importorskip("torch")
    from calibrate.tool_cli import require_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"needs >= 2 GPUs \(one process per GPU\); 1 visible"):
        require_gpu("calibrate.collectives", min_gpus=2)
    require_gpu("calibrate.moe_bench")  # one GPU is enough for the single-GPU tools


HELP_TOOLS = [
    CF,
    SP,
    DS,
    MF,
    "calibrate.moe_summary",
    "calibrate.moe_calibrate",
    "calibrate.moe_bench",
    "calibrate.collectives",
    "calibrate.shard_probe",
    "bulletsim.norm_latency",
]


@pytest.mark.parametrize("module", HELP_TOOLS)
def test_help_states_the_whole_first_paragraph(module, monkeypatch, capsys):
    """Issue 13 fault 9: --help printed the docstring's first line only, cut mid-sentence
    ("the mean over", "GPU and kernels,"); it is the whole first paragraph now."""
    from bulletsim.cli_errors import doc_summary

    mod = importlib.import_module(module)
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as exc:
        (getattr(mod, "cli", None) or mod.main)()
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    summary = doc_summary(mod.__doc__)
    assert summary.rstrip("`").endswith((".", ")", ".)")), summary
    assert summary in text
    if module in (DS, "bulletsim.norm_latency"):  # and says where it writes
        assert ("bulletsim/data/profiles/<gpu>__<model>__tp<tp>.json" in text) or (
            "OUT/points.csv" in text
        ), text


def test_derive_shard_attaches_the_target_tps_allreduce(tmp_path, monkeypatch, capsys):
    """Issue 13 fault 9: a derived shard profile carried no all-reduce (runs printed
    "all-reduce NOT priced"); it gets the measured table's ring transfer for its tp."""
    import calibrate.derive_shard as ds
    import calibrate.shard_profile  # noqa: F401  (its table default: the real data folder)
    from bulletsim.latency import profile_format

    src = PROFILE_DIR / "h200__qwen3-235b-a22b__tp8.json"
    (tmp_path / src.name).write_bytes(src.read_bytes())
    monkeypatch.setattr(profile_format, "PROFILE_DIR", tmp_path)
    monkeypatch.setattr(ds, "PROFILE_DIR", tmp_path)
    monkeypatch.setattr(
        sys, "argv", [DS, "--model", "qwen3-235b-a22b", "--from-tp", "8", "--tp", "4"]
    )
    ds.main()
    doc = json.loads((tmp_path / "h200__qwen3-235b-a22b__tp4.json").read_text())
    sec = doc["collectives"]["allreduce"]
    assert sec["tp"] == 4 and sec["kind"] == "derived" and "t_4(S, sms)" in sec["transfer"]
    assert doc["meta"]["kind"] == "derived" and "allreduce" in doc["meta"]["parts"]
    assert "all-reduce: derived" in capsys.readouterr().out


def test_ingest_sh_says_usage_and_refuses_a_round_with_nothing_to_copy(tmp_path):
    """Issue 13 fault 9: no args was a shell "parameter not set", a missing or empty round
    folder exit 0 having copied nothing; now usage / one error line and exit 2."""
    import shutil
    import subprocess

    sh = Path(__file__).parents[1] / "results/large-models/ingest.sh"
    (tmp_path / "empty").mkdir()
    for args, needle in (
        ([], "usage: sh results/large-models/ingest.sh"),
        ([str(tmp_path / "missing"), "R3"], "is not a folder"),
        ([str(tmp_path / "empty"), "R3"], "holds no round output"),
    ):
        r = subprocess.run(
            [shutil.which("sh") or "sh", str(sh), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "results").exists()
