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


def test_sweep_tp_is_validated_like_run():
    res = CliRunner().invoke(app, [*SWEEP, "--no-capacity", "--model", "llama-3.1-70b",
                                   "--tp", "3"], env=ENV)  # fmt: skip
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "tp=3" in lines[0] and "valid: 1, 2, 4, 8" in lines[0]


def test_sweep_outputs_name_tp_ep_routing_and_provenance(tmp_path):
    import pandas as pd

    out = tmp_path / "s"
    args = ["--no-capacity", "--gpu", "h20", "--model", "qwen3-235b-a22b", "--tp", "8", "--set",
            "moe.routing=zipf:0.6", "--out", str(out)]  # fmt: skip
    res = CliRunner().invoke(app, [*SWEEP, *args], env=ENV)
    assert res.exit_code == 0, res.output
    md = (out / "capacity.md").read_text()
    assert "model qwen3-235b-a22b (tp=8, ep=1, zipf:0.6 routing)" in md
    assert "latency provenance: derived profile h20/qwen3-235b-a22b" in md
    assert "all-reduce (2 per layer) derived" in md
    cap = pd.read_csv(out / "capacity.csv").iloc[0]
    assert (cap.tp, cap.ep, cap.moe_routing) == (8, 1, "zipf:0.6")
    assert "tp=8 shard profile" in cap.latency_provenance
