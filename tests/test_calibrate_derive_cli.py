"""calibrate-derive never replaces what is not a derived profile (a user's file, a measured
profile) and refuses a file as --out: one line, exit 2 (new-user findings); re-deriving its
own derived profile in place works."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bulletsim.cli import app

DERIVE = ["calibrate-derive", "--gpu", "a100", "--out"]


def test_derive_refuses_what_it_did_not_derive(tmp_path):
    r = CliRunner()
    mine = tmp_path / "a100__llama-3.1-8b.json"
    mine.write_text("mine\n")
    res = r.invoke(app, [*DERIVE, str(tmp_path)])
    assert res.exit_code == 2 and "not a derived profile" in res.output, res.output
    assert mine.read_text() == "mine\n"
    measured = json.loads(
        (app_root() / "bulletsim/data/profiles/h200__llama-3.1-8b.json").read_text()
    )
    mine.write_text(json.dumps(measured))
    res = r.invoke(app, [*DERIVE, str(tmp_path)])
    assert res.exit_code == 2 and "holds a measured profile" in res.output, res.output
    afile = tmp_path / "f"
    afile.write_text("x")
    res = r.invoke(app, [*DERIVE, str(afile)])
    assert res.exit_code == 2 and "is a file" in res.output and afile.read_text() == "x"


def test_derive_rederives_its_own_profile(tmp_path):
    r = CliRunner()
    for _ in range(2):
        res = r.invoke(app, [*DERIVE, str(tmp_path)])
        assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "a100__llama-3.1-8b.json").read_text())["meta"]["kind"] == (
        "derived"
    )


def app_root():
    from pathlib import Path

    return Path(__file__).parents[1]
