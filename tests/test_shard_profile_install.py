"""`calibrate.shard_profile` tells profiles apart by their fitted content, not by `meta.date`:
another fit of the same day is refused at --install (one line, exit 2, nothing written) unless
--replace, and at --out always; a re-run of the same fit (another all-reduce table) is not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import calibrate.shard_profile as sp
from bulletsim.latency.profile_format import PROFILE_DIR
from calibrate.tool_cli import run_tool

SRC = PROFILE_DIR / "h200__llama-3.1-70b__tp4.json"
COLL = PROFILE_DIR.parent / "collectives" / "h200__nccl-2gpu.json"


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """(input profile, installed folder, a fit of the same day: same meta, other numbers)."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    monkeypatch.setattr(sp, "PROFILE_DIR", folder)
    src = tmp_path / "in" / SRC.name
    src.parent.mkdir()
    src.write_text(SRC.read_text())
    other = json.loads(SRC.read_text())
    other["srm"]["alpha"]["gemm"] *= 1.1  # another fit; its meta (date included) is the same
    return src, folder, other


def tool(monkeypatch, capsys, *argv) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["calibrate.shard_profile", *map(str, argv)])
    try:
        run_tool(sp.main)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_another_fit_of_the_same_day_is_not_replaced_without_replace(setup, monkeypatch, capsys):
    src, folder, other = setup
    dst = folder / SRC.name
    dst.write_text(json.dumps(other))
    before = {p: p.read_bytes() for p in (src, dst)}
    code, _, err = tool(monkeypatch, capsys, src, "--collectives", COLL, "--install")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --install "), err
    assert "holds another profile" in err and "--replace" in err and "Traceback" not in err
    assert f"fit {sp.fitted_digest(other)}" in err
    assert {p: p.read_bytes() for p in (src, dst)} == before  # not even the input in place
    code, out, err = tool(monkeypatch, capsys, src, "--collectives", COLL, "--install", "--replace")
    assert code == 0, err
    installed = json.loads(dst.read_text())
    assert installed["srm"] == json.loads(src.read_text())["srm"] != other["srm"]
    assert f"replaced {dst}" in out and f"installed: {dst}" in out


def test_another_fit_of_the_same_day_is_never_written_over_at_out(setup, monkeypatch, capsys):
    src, _, other = setup
    target = src.parent / "mine.json"
    target.write_text(json.dumps(other))
    code, _, err = tool(monkeypatch, capsys, src, "--collectives", COLL, "--out", target)
    assert code == 2 and "holds another profile" in err, err
    assert json.loads(target.read_text()) == other


def test_a_rerun_of_the_same_fit_replaces_without_replace(setup, monkeypatch, capsys):
    src, folder, _ = setup
    dst = folder / SRC.name
    stale = json.loads(SRC.read_text())
    stale["collectives"]["allreduce"]["source"] = "an older table"  # what this tool writes
    dst.write_text(json.dumps(stale))
    code, out, err = tool(monkeypatch, capsys, src, "--collectives", COLL, "--install")
    assert code == 0, err
    assert json.loads(dst.read_text())["collectives"] == json.loads(src.read_text())["collectives"]


def test_replace_needs_install(setup, monkeypatch, capsys):
    src, _, _ = setup
    code, _, err = tool(monkeypatch, capsys, src, "--collectives", COLL, "--replace")
    assert code == 2 and "--replace applies only with --install" in err


def test_the_digest_ignores_what_attach_writes_and_nothing_else():
    doc = json.loads(SRC.read_text())
    same = {**doc, "collectives": {}, "meta": {**doc["meta"], "parts": {"x": 1}}}
    assert sp.fitted_digest(same) == sp.fitted_digest(doc)
    for change in ({"grid": {}}, {"meta": {**doc["meta"], "date": "2020-01-01"}}):
        assert sp.fitted_digest({**doc, **change}) != sp.fitted_digest(doc)


def test_a_non_profile_in_the_install_folder_is_not_replaced(setup, monkeypatch, capsys):
    src, folder, _ = setup
    (folder / SRC.name).write_text("my notes\n")
    code, _, err = tool(monkeypatch, capsys, src, "--collectives", COLL, "--install", "--replace")
    assert code == 2 and "not replaced" in err and str(folder / SRC.name) in err, err
    assert (folder / SRC.name).read_text() == "my notes\n"
    assert Path(src).read_text() == SRC.read_text()
