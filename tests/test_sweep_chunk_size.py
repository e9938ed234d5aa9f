"""`sweep --chunk-size N` sets the size of the chunked specs that name none and keeps their
other options, as `run --chunk-size` does; a size below 1, a sweep with no chunked policy and a
spec naming another size are refused in one line naming the policies (defaults included)."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.sweep import PolicyVariant
from bulletsim.sweep_cli import _with_chunk_size

runner = CliRunner()
SWEEP = ("sweep", "--trace", "alpaca", "-n", "20", "--rates", "4", "--seeds", "0",
         "--no-capacity", "--workers", "1", "-q", "--no-plots", "--no-timeline")  # fmt: skip


@pytest.mark.parametrize(
    "spec, want",
    [
        ("chunked:variant=prefill-first", {"chunk_size": 512, "variant": "prefill-first"}),
        ("chunked:max_running_requests=8", {"chunk_size": 512, "max_running_requests": 8}),
        ("chunked", {"chunk_size": 512}),
        ("chunked:chunk_size=512,variant=mixed", {"chunk_size": 512, "variant": "mixed"}),
    ],
)
def test_chunk_size_keeps_the_other_options(spec, want):
    (text,) = _with_chunk_size((spec,), 512)
    assert dict(PolicyVariant.parse(text).params) == want


def test_sweep_runs_both_variants_at_the_given_size(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, [*SWEEP, "--policy", "chunked", "--policy",
                              "chunked:variant=prefill-first", "--chunk-size", "512",
                              "--out", "s"])  # fmt: skip
    assert res.exit_code == 0, res.output
    labels = list(pd.read_csv(tmp_path / "s" / "points.csv")["label"])
    assert labels == ["chunked-512", "chunked-512:variant=prefill-first"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--policy", "bullet", "--chunk-size", "1024"), "include no chunked policy"),
        (
            ("--policy", "chunked", "--chunk-size", "-5"),
            "--chunk-size: a chunk size in tokens >= 1",
        ),
        (("--chunk-size", "512"), "the default policies (bullet, chunked-1024, chunked-2048)"),
    ],
)
def test_refused_in_one_line(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, [*SWEEP, *args, "--out", "s"])
    assert res.exit_code == 2, res.output
    assert needle in res.output and res.output.count("\n") == 1, res.output
    assert not (tmp_path / "s").exists()
