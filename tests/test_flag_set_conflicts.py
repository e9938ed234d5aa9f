"""A dedicated option and `--set` giving one key different values are refused (one line, exit
2) in run and sweep, and a repeated `--set` key too: neither silently wins (new-user finding:
run took --set tp=2 over --tp 4, sweep the other way round)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.config import check_flags_agree_with_sets, parse_sets

RUN = ["run", "--model", "llama-3.1-70b", "--gpu", "h200", "-n", "10", "--no-write"]
SWEEP = ["sweep", "--model", "llama-3.1-70b", "--gpu", "h200", "--policy", "chunked"]
SWEEP += ["--rates", "1,2", "-n", "20", "--seeds", "0", "--quiet"]


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ([*RUN, "--tp", "4", "--set", "tp=2"], "tp is given twice"),
        ([*RUN, "--rate", "3", "--set", "workload.rate=5"], "workload.rate is given twice"),
        (
            [*RUN, "--set", "tp=2", "--set", "tp=4"],
            "tp is given differently: --set tp=2; --set tp=4",
        ),
        ([*SWEEP, "--tp", "4", "--set", "tp=2", "--out", "never"], "tp is given twice"),
    ],
)
def test_conflicting_sources_are_refused(args, msg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert msg in r.output and r.output.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "never").exists()


def test_agreeing_sources_pass():
    check_flags_agree_with_sets({"tp": 4, "workload": {"rate": 3.0}}, parse_sets(["tp=4"]))
    check_flags_agree_with_sets({"tp": None}, parse_sets(["tp=2", "workload.rate=3"]))
    assert parse_sets(["tp=2", "tp=2"]) == {"tp": 2}
