"""Design spaces: TOML parsing and its errors, cell expansion, per-axis summary, same files."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.design import DesignSpec
from bulletsim.design_report import axis_summary

STUDY = """
[grid]
gpu = ["a100", "h200"]
trace = ["splitwise-code"]
policy = ["bullet", "chunked-1024"]
slo = ["paper", "tight"]

[slo.tight]
tpot_ms = 30.0

[sweep]
rates = [1, 3.0]
num_requests = 30
seeds = [3]
rel_tol = 0.3

[base]
latency = "roofline"
"""


def test_a_design_expands_into_one_sweep_per_gpu_model_slo(tmp_path):
    f = tmp_path / "study.toml"
    f.write_text(STUDY)
    cells = DesignSpec.load(f).cells()
    assert [c.name for c in cells] == [
        "a100-llama-3.1-8b-paper", "a100-llama-3.1-8b-tight",
        "h200-llama-3.1-8b-paper", "h200-llama-3.1-8b-tight",
    ]  # fmt: skip
    tight = cells[1].spec
    assert tight.base == {"latency": "roofline", "gpu": "a100", "model": "llama-3.1-8b",
                          "slo": {"tpot_ms": 30.0}}  # fmt: skip
    assert cells[0].spec.base["slo"] == {}  # "paper": the traces' own SLOs
    assert (tight.policies, tight.traces, tight.rates) == (
        ("bullet", "chunked-1024"), ("splitwise-code",), (1.0, 3.0),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[grd]\ngpu = ['a100']", "unknown key 'grd'; valid: grid, slo, sweep, base"),
        ("[grid]\ngpus = ['a100']", "unknown key 'gpus'; valid: gpu, model, slo, trace, policy"),
        ("[grid]\nslo = ['strict']", "SLO set 'strict' has no [slo.strict]; valid: paper"),
        ("[grid]\ngpu = []", "[grid] gpu must be a non-empty list of names"),
        ("[grid]\ngpu = ['a100', 'a100']", "[grid] gpu lists a name twice"),
        ("[sweep]\nrates = 4", "[sweep] rates must be a list of float, got 4"),
        ("[sweep]\nnum_requests = 1.5", "[sweep] num_requests must be int, got 1.5"),
        ("[sweep]\nseeds = [true]", "[sweep] seeds must be a list of int"),
        ("[sweep]\nworkers = 4", "unknown key 'workers'; valid: rates, num_requests"),
        ("[grid]\npolicy = ['bulet']", "'bulet'"),
        ("[grid]\nslo = ['x']\n[slo.x]\ntpot = 3", "unknown config key 'slo.tpot'"),
        ("[grid\n", "study.toml:"),
    ],
)
def test_design_errors_are_one_line(tmp_path, text, message):
    f = tmp_path / "study.toml"
    f.write_text(text)
    with pytest.raises(ValueError) as e:
        DesignSpec.load(f).cells()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_axis_summary_counts_wins_and_ties():
    rows = [  # two contexts (a100, h200); Bullet wins on a100, a tie on h200
        ("a100", "bullet", 6.0, 1.5), ("a100", "chunked", 4.0, math.nan),
        ("h200", "bullet", 9.0, 1.0), ("h200", "chunked", 9.0, math.nan),
    ]  # fmt: skip
    cap = pd.DataFrame(
        [{"gpu": g, "model": "m", "slo_set": "paper", "trace": "t", "label": lab,
          "capacity_req_s": c, "gain": gain} for g, lab, c, gain in rows]
    )  # fmt: skip
    ax = axis_summary(cap).set_index(["axis", "value"])
    assert ax.loc[("gpu", "a100"), ["best_policy", "contexts_won", "contexts"]].tolist() == [
        "bullet", 1, 1,
    ]  # fmt: skip
    assert ax.loc[("gpu", "h200"), "contexts_won"] == 0  # the tie wins nothing
    assert ax.loc[("policy", "bullet"), "contexts_won"] == 1
    assert ax.loc[("policy", "bullet"), "bullet_gain_geomean"] == pytest.approx(math.sqrt(1.5))
    assert ax.loc[("model", "m"), "capacity_mean_req_s"] == pytest.approx(7.0)
    assert sorted(set(ax.index.get_level_values(0))) == ["gpu", "model", "policy", "slo", "trace"]


def test_design_cli_files_do_not_depend_on_workers(tmp_path):
    from bulletsim.cli import app

    f = tmp_path / "study.toml"
    f.write_text(STUDY.replace('slo = ["paper", "tight"]', 'slo = ["tight"]'))
    outs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        res = CliRunner().invoke(app, ["design", str(f), "--workers", workers, "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "### by gpu" in res.output and "### by policy" in res.output
        outs[workers] = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert outs["1"] == outs["2"]
    names = {str(p) for p in outs["1"]}
    assert {"summary.md", "axes.csv", "capacity.csv", "points.csv", "design.json",
            "cells/h200-llama-3.1-8b-tight/capacity.csv"} <= names  # fmt: skip
    cap = pd.read_csv(tmp_path / "w1" / "capacity.csv")
    assert list(cap[["gpu", "slo_set"]].drop_duplicates().itertuples(index=False, name=None)) == [
        ("a100", "tight"), ("h200", "tight"),
    ]  # fmt: skip
    # a folder it did not write is refused before any work
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    res = CliRunner().invoke(app, ["design", str(f), "--out", str(foreign)])
    assert res.exit_code == 2 and "did not write" in res.output
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_axis_summary_counts_a_failed_row_apart():
    # pdmux failed on h200 (no capacity): its row is not a capacity, min = max = a100's
    cap = pd.DataFrame(
        [{"gpu": g, "model": "m", "slo_set": "paper", "trace": "t", "label": "pdmux",
          "capacity_req_s": c, "gain": math.nan} for g, c in (("a100", 5.0), ("h200", math.nan))]
    )  # fmt: skip
    ax = axis_summary(cap).set_index(["axis", "value"])
    row = ax.loc[("policy", "pdmux")]
    assert (row["rows"], row["rows_without_capacity"]) == (1, 1)
    assert row["capacity_min_req_s"] == row["capacity_max_req_s"] == 5.0
