"""Shared fixtures. The real traces live outside the repo, in ../shared/traces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_traces_dir() -> Path:
    """The real trace files (never copied into the repo); skipped locally, fatal in CI."""
    path = Path(__file__).resolve().parents[2] / "shared" / "traces"
    if not path.is_dir():
        message = f"../shared/traces not found at {path}; the workload tests need the real files"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def no_long_work(monkeypatch):
    """Any live re-simulation or refit fails the test: the live commands' input checks must
    come before them (tests/test_live_run_consistency.py, test_live_rundir_errors.py)."""

    def boom(*a, **k):
        raise AssertionError("long work started before the inputs were checked")

    monkeypatch.setattr("bulletsim.live.refit.refit_profile", boom)
    monkeypatch.setattr("bulletsim.live.fidelity.resimulate_live", boom)


@pytest.fixture
def refused():
    """`refused(args, needle, env)`: run the bulletsim CLI with `args` and check a refusal of
    bad input: exit code 2, exactly one line, starting "error: " and holding `needle`, no
    traceback. Returns the line."""
    from typer.testing import CliRunner

    from bulletsim.cli import app

    def check(args, needle: str, env: dict | None = None) -> str:
        res = CliRunner().invoke(app, [str(a) for a in args], env=env)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2, res.output
        assert len(lines) == 1 and lines[0].startswith("error: "), res.output
        assert needle in lines[0], lines[0]
        assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
        return lines[0]

    return check
