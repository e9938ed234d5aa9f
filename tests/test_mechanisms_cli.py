"""Issue 16's command-line surface without a GPU: one-line errors that list the valid choices."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from calibrate.cli import register

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_calibrate_unknown_grid_lists_valid():
    res = runner.invoke(_app(), ["calibrate", "--gpu", "h200", "--grid", "huge"])
    assert res.exit_code == 2
    assert "unknown grid 'huge'; valid: standard, quick, mechanisms" in res.output


def test_selftest_unknown_target_lists_valid():
    res = runner.invoke(_app(), ["calibrate-selftest", "green"])
    assert res.exit_code == 2 and "no self-test for 'green'; valid: libsmctrl" in res.output


def test_selftest_without_library_is_one_line(monkeypatch):
    monkeypatch.delenv("LIBSMCTRL_PATH", raising=False)
    res = runner.invoke(_app(), ["calibrate-selftest", "libsmctrl"])
    assert res.exit_code == 2 and "libsmctrl not configured" in res.output
    assert "Traceback" not in res.output
