"""What a sweep's capacity.md says it did (issue 13 items 7, 8): --no-capacity sweeps warn
nothing about capacities they never searched and say "not searched"."""

from __future__ import annotations

from typer.testing import CliRunner

from bulletsim.cli import app

ENV = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}
SWEEP = ("sweep", "--policy", "chunked", "--trace", "alpaca", "--rates", "1", "-n", "12",
         "--seeds", "0", "--workers", "1", "--no-plots", "-q")  # fmt: skip


def test_no_capacity_sweep_has_no_capacity_warnings(tmp_path):
    out = tmp_path / "s"
    res = CliRunner().invoke(app, [*SWEEP, "--no-capacity", "--out", str(out)], env=ENV)
    assert res.exit_code == 0, res.output
    md = (out / "capacity.md").read_text()
    assert "| chunked | not searched |" in md and "capacity not searched" in md
    assert "reaches" not in md and "Warnings" not in md and "reaches" not in res.output
    assert "reaches" not in (out / "warnings.txt").read_text()
