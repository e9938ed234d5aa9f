"""Results folders: never destructive, checked before simulating, distinct per config (issue 7,
items 1, 2 and the Ctrl-C / determinism parts of 8)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.outdir import MARKER, SCHEMA

runner = CliRunner()
ENV = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}
FAST = ("--trace", "alpaca", "-n", "20", "-q")  # embedded model, ~0.1 s of simulation


def invoke(*args: str):
    return runner.invoke(app, list(args), env=ENV)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def first_line(res) -> str:
    return res.output.strip().splitlines()[0]


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_out_naming_a_user_folder_fails_before_simulating_and_keeps_it(cwd):
    (cwd / "p" / "src").mkdir(parents=True)
    (cwd / "p" / "src" / "main.py").write_text("a\n")
    res = invoke("run", *FAST, "--out", "p")
    assert res.exit_code == 2
    assert first_line(res) == (
        f"error: --out p: folder exists and bulletsim did not write it (no {MARKER} marker); "
        "choose a new or empty folder"
    )
    assert "SLO attainment" not in res.output  # refused before the simulation
    assert tree(cwd) == {"p/src/main.py": b"a\n"}


def test_out_naming_a_file_fails_and_leaves_the_file(cwd):
    (cwd / "notes.txt").write_text("keep me")
    res = invoke("run", *FAST, "--out", "notes.txt")
    assert res.exit_code == 2
    assert (
        first_line(res) == "error: --out notes.txt: exists and is not a folder; choose another path"
    )
    assert tree(cwd) == {"notes.txt": b"keep me"}


@pytest.mark.parametrize("out", ["", ".", "..", "/"])
def test_out_empty_or_current_or_parent_folder_is_refused(cwd, out):
    res = invoke("run", *FAST, "--out", out)
    assert res.exit_code == 2
    assert first_line(res).startswith(f"error: --out{' ' + out if out else ':'}")
    assert list(cwd.iterdir()) == []


def test_out_under_a_file_is_refused_before_simulating(cwd):
    (cwd / "f").write_text("x")
    res = invoke("run", *FAST, "--out", "f/run")
    assert res.exit_code == 2
    assert "not a writable folder" in first_line(res) and "SLO attainment" not in res.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder_is_refused_before_simulating(cwd):
    ro = cwd / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = invoke("run", *FAST, "--out", "ro/run")
    finally:
        ro.chmod(0o755)
    assert res.exit_code == 2 and "not a writable folder" in first_line(res)


def test_a_run_folder_is_replaced_whole_and_marked(cwd):
    assert invoke("run", *FAST, "--out", "r").exit_code == 0
    marker = json.loads((cwd / "r" / MARKER).read_text())
    assert marker["schema"] == SCHEMA and marker["kind"] == "run"
    assert sorted(marker["files"]) == sorted(
        ["config.json", "iterations.parquet", "requests.parquet", "sm_timeline.parquet",
         "summary.json"]
    )  # fmt: skip
    res = invoke("run", *FAST, "--out", "r", "--seed", "5")
    assert res.exit_code == 0, res.output
    assert json.loads((cwd / "r" / "config.json").read_text())["config"]["seed"] == 5
    assert sorted(p.name for p in cwd.iterdir()) == ["r"]  # no temporary sibling left


def test_a_file_added_to_a_run_folder_blocks_replacing_it(cwd):
    assert invoke("run", *FAST, "--out", "r").exit_code == 0
    (cwd / "r" / "my-notes.md").write_text("mine")
    before = tree(cwd)
    res = invoke("run", *FAST, "--out", "r")
    assert res.exit_code == 2
    assert first_line(res) == (
        "error: --out r: holds files bulletsim did not write (my-notes.md); move them or "
        "choose another folder"
    )
    assert tree(cwd) == before


def test_a_sweep_folder_is_not_replaced_by_a_run(cwd):
    (cwd / "s").mkdir()
    (cwd / "s" / MARKER).write_text(json.dumps({"schema": SCHEMA, "kind": "sweep", "files": []}))
    res = invoke("run", *FAST, "--out", "s")
    assert res.exit_code == 2
    assert first_line(res) == (
        "error: --out s: holds a bulletsim sweep results folder, not a run; choose another path"
    )


def test_default_names_differ_when_the_config_differs_and_same_config_says_replaced(cwd):
    runs = cwd / "results" / "runs"
    for extra in (
        (),
        ("--latency", "roofline"),
        ("--set", "kv.block_size=32"),
        ("--tpot-ms", "99"),
    ):
        res = invoke("run", *FAST, *extra)
        assert res.exit_code == 0, res.output
    names = sorted(p.name for p in runs.iterdir())
    assert len(names) == 4, names
    assert all(n.startswith("alpaca-chunked-2048-a100-llama-3.1-8b-s0-") for n in names)
    res = invoke("run", *FAST, "--latency", "roofline")
    assert res.exit_code == 0
    assert first_line(res).startswith("note: replacing the earlier run of this same config in ")
    assert len(list(runs.iterdir())) == 4


def test_default_name_changes_with_num_requests(cwd):
    assert invoke("run", "--trace", "alpaca", "-n", "20", "-q").exit_code == 0
    assert invoke("run", "--trace", "alpaca", "-n", "21", "-q").exit_code == 0
    assert len(list((cwd / "results" / "runs").iterdir())) == 2


def test_ctrl_c_during_simulation_says_nothing_was_written(cwd, monkeypatch):
    import bulletsim.simulate as simulate_module

    def interrupted(cfg, **kwargs):
        kwargs["progress"](7, 20)
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate_module, "simulate", interrupted)
    res = invoke("run", *FAST, "--out", "r")
    assert res.exit_code == 130
    assert first_line(res) == (
        "interrupted: simulation stopped (7/20 requests finished); nothing was written"
    )
    assert list(cwd.iterdir()) == []


def test_ctrl_c_while_writing_keeps_the_earlier_run(cwd, monkeypatch):
    assert invoke("run", *FAST, "--out", "r").exit_code == 0
    before = tree(cwd)
    from bulletsim import results

    def interrupted(df, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "_write_parquet", interrupted)
    res = invoke("run", *FAST, "--out", "r", "--seed", "3")
    assert res.exit_code == 130
    assert res.output.strip().splitlines()[-1] == "interrupted while writing: r left as it was"
    assert tree(cwd) == before


def test_sweep_reusing_its_folder_keeps_no_old_files(cwd):
    common = ("sweep", "-n", "20", "--rates", "4", "--no-capacity", "--workers", "1", "-q")
    res = invoke(*common, "--policy", "chunked-2048", "--out", "sw")
    assert res.exit_code == 0, res.output
    assert (cwd / "sw" / "sm_timeline.svg").is_file()
    res = invoke(*common, "--policy", "chunked", "--chunk-size", "1024", "--out", "sw",
                 "--no-plots", "--no-timeline")  # fmt: skip
    assert res.exit_code == 0, res.output
    names = {p.name for p in (cwd / "sw").iterdir()}
    assert {MARKER, "points.csv", "sweep.json"} <= names
    assert "timeline" not in names and not any(n.endswith((".svg", ".png")) for n in names)
    marker = json.loads((cwd / "sw" / MARKER).read_text())
    assert set(marker["files"]) == names - {MARKER}
    assert "chunked-1024" in (cwd / "sw" / "points.csv").read_text()
    (cwd / "sw" / "extra.txt").write_text("mine")
    res = invoke(*common, "--out", "sw")
    assert res.exit_code == 2 and "extra.txt" in first_line(res)


def test_plots_are_byte_identical_across_runs(cwd):
    for name in ("a", "b"):
        res = invoke("run", *FAST, "--out", name, "--plots")
        assert res.exit_code == 0, res.output
    a, b = tree(cwd / "a"), tree(cwd / "b")
    assert "sm_timeline.svg" in a and "sm_timeline.png" in a
    assert a == b


def test_plot_from_the_run_result_equals_the_plot_from_its_folder(cwd):
    # `run --plots` draws from the RunResult; `plot_run` redraws from the written folder
    from bulletsim.plots import plot_run

    res = invoke("run", *FAST, "--policy", "bullet", "--out", "a", "--plots")
    assert res.exit_code == 0, res.output
    drawn = (cwd / "a" / "sm_timeline.svg").read_bytes()
    plot_run(cwd / "a")
    assert (cwd / "a" / "sm_timeline.svg").read_bytes() == drawn
    assert b"stroke-dasharray" in drawn  # the GPU's SM line is drawn in both


LIVE = ("live", "--executor", "fake", "--trace", "alpaca", "-n", "8", "--rate", "10", "-q")


def test_files_written_from_a_live_run_are_kept_when_its_folder_is_replaced(cwd):
    assert invoke(*LIVE, "--out", "l").exit_code == 0
    res = invoke("fidelity", "l", "--table", "l/fidelity.md")
    assert res.exit_code == 0, res.output
    res = invoke("calibrate", "--from-live", "l", "--out", "l/refit.json")
    assert res.exit_code == 0, res.output
    derived = {n: (cwd / "l" / n).read_bytes() for n in ("fidelity.md", "refit.json")}
    for command in (("run", *FAST), LIVE):  # a simulator run, then a live run, replace it
        res = invoke(*command, "--out", "l")
        assert res.exit_code == 0, res.output
        assert (
            "note: keeping fidelity.md, refit.json in l (bulletsim fidelity tables / refitted "
            "profiles, not the run's own files)"
        ) in res.output.splitlines()
        assert {n: (cwd / "l" / n).read_bytes() for n in derived} == derived
        listed = json.loads((cwd / "l" / MARKER).read_text())["files"]
        assert not set(derived) & set(listed)  # still not the run's own: kept, never listed
    assert "live.json" in listed
    assert sorted(p.name for p in cwd.iterdir()) == ["l"]  # no temporary sibling left


def _measured(folder: Path) -> None:
    """Make the fake live run in `folder` read as one measured on a GPU (live.json)."""
    live = json.loads((folder / "live.json").read_text())
    live["executor"]["measured"] = True
    (folder / "live.json").write_text(json.dumps(live))


@pytest.mark.parametrize("command", [("run", *FAST), LIVE], ids=["run", "live"])
def test_a_folder_holding_a_gpu_live_run_is_refused_and_left_as_it_was(cwd, command):
    assert invoke(*LIVE, "--out", "g").exit_code == 0
    _measured(cwd / "g")
    before = tree(cwd)
    res = invoke(*command, "--out", "g")
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == (
        "error: g holds a GPU live run (measurements that cannot be made again): choose "
        "another --out, or move it away yourself"
    )
    assert "SLO attainment" not in res.output  # refused before the run
    assert tree(cwd) == before


_REMOVE = object()


def _edit_executor(key: str, value: object, executor: str | None = None):
    def edit(folder: Path) -> None:
        live = json.loads((folder / "live.json").read_text())
        if value is _REMOVE:
            del live["executor"][key]
        else:
            live["executor"][key] = value
        if executor is not None:
            live["executor"]["executor"] = executor
        (folder / "live.json").write_text(json.dumps(live))

    return edit


def _truncate_live_json(folder: Path) -> None:
    text = (folder / "live.json").read_text()
    (folder / "live.json").write_text(text[: len(text) // 2])


def _delete_live_json(folder: Path) -> None:
    (folder / "live.json").unlink()


def _iterations_only(folder: Path) -> None:
    """Leave only the marker and iterations.parquet (which has measured_s)."""
    for p in folder.iterdir():
        if p.name not in (MARKER, "iterations.parquet"):
            p.unlink()


def _summary_only(folder: Path) -> None:
    """Leave only the marker and summary.json (whose engine names a live run)."""
    for p in folder.iterdir():
        if p.name not in (MARKER, "summary.json"):
            p.unlink()


UNREADABLE = "; its live.json is unreadable"
NO_LIVE_JSON = "; it has no live.json, and its summary.json or iterations.parquet is a live run's"
TAMPERED = [
    ("measured-string-true", _edit_executor("measured", "true", "gpu"), ""),
    ("measured-1", _edit_executor("measured", 1, "gpu"), ""),
    ("measured-removed", _edit_executor("measured", _REMOVE, "gpu"), ""),
    ("measured-false-on-gpu", _edit_executor("measured", False, "gpu"), ""),
    ("truncated", _truncate_live_json, UNREADABLE),
    ("deleted", _delete_live_json, NO_LIVE_JSON),
    ("only-iterations-parquet", _iterations_only, NO_LIVE_JSON),
    # a third tester's: a GPU run's executor edited to look fake still names its device, and
    # one stripped of live.json and iterations.parquet still has summary.json's live engine
    ("fake-with-a-device", _edit_executor("device", "NVIDIA H200", "fake"), ""),
    ("only-summary-json", _summary_only, NO_LIVE_JSON),
]


@pytest.mark.parametrize(("tamper", "why"), [t[1:] for t in TAMPERED], ids=[t[0] for t in TAMPERED])
def test_a_live_run_not_shown_to_be_fake_is_refused_and_left_as_it_was(cwd, tamper, why):
    """Fails closed: only a live.json that parses and says executor "fake", measured false lets
    a live run folder be replaced (a copied GPU run edited, truncated or stripped of it not)."""
    assert invoke(*LIVE, "--out", "g").exit_code == 0
    _measured(cwd / "g")
    tamper(cwd / "g")
    before = tree(cwd)
    res = invoke("run", *FAST, "--out", "g")
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1] == (
        f"error: g holds a GPU live run (measurements that cannot be made again{why}): choose "
        "another --out, or move it away yourself"
    )
    assert "SLO attainment" not in res.output  # refused before the run
    assert tree(cwd) == before


def test_a_fake_live_run_folder_is_still_replaced(cwd):
    assert invoke(*LIVE, "--out", "f").exit_code == 0
    assert json.loads((cwd / "f" / "live.json").read_text())["executor"]["measured"] is False
    res = invoke("run", *FAST, "--out", "f")
    assert res.exit_code == 0, res.output
    assert not (cwd / "f" / "live.json").exists()
    assert "note: keeping" not in res.output


def test_ctrl_c_while_carrying_kept_files_leaves_the_folder_as_it_was(cwd, monkeypatch):
    import shutil

    from bulletsim.outdir import staged_dir

    assert invoke(*LIVE, "--out", "l").exit_code == 0
    assert invoke("calibrate", "--from-live", "l", "--out", "l/refit.json").exit_code == 0
    before = tree(cwd)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copy2", interrupted)
    with pytest.raises(KeyboardInterrupt), staged_dir("l", "run") as tmp:
        (tmp / "summary.json").write_text("{}")
    assert tree(cwd) == before
    assert sorted(p.name for p in cwd.iterdir()) == ["l"]


def test_a_kept_file_with_the_name_of_a_new_run_file_fails_and_changes_nothing(cwd):
    from bulletsim.outdir import staged_dir

    assert invoke(*LIVE, "--out", "l").exit_code == 0
    assert invoke("calibrate", "--from-live", "l", "--out", "l/extra.json").exit_code == 0
    before = tree(cwd)
    clash = "extra.json .a bulletsim fidelity table / refitted profile kept from the folder. has"
    with pytest.raises(ValueError, match=clash), staged_dir("l", "run") as tmp:
        (tmp / "extra.json").write_text("{}")
    assert tree(cwd) == before


def test_the_kept_note_is_printed_only_once_the_folder_was_replaced(cwd, monkeypatch):
    """A run that fails the name-clash check keeps nothing, so it must not say it keeps files."""
    import bulletsim.results

    assert invoke(*LIVE, "--out", "l").exit_code == 0
    assert invoke("calibrate", "--from-live", "l", "--out", "l/extra.json").exit_code == 0
    before = tree(cwd)
    write = bulletsim.results.write_run_files

    def write_with_extra(res, folder, *args, **kwargs):
        write(res, folder, *args, **kwargs)
        (folder / "extra.json").write_text("{}")

    monkeypatch.setattr(bulletsim.results, "write_run_files", write_with_extra)
    res = invoke("run", *FAST, "--out", "l")
    assert res.exit_code == 2, res.output
    assert "has the name of a file this run writes" in res.output.strip().splitlines()[-1]
    assert "note: keeping" not in res.output
    assert tree(cwd) == before
