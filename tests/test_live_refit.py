"""`bulletsim calibrate --from-live`: the refit recovers known terms from synthetic live runs,
held-out folds, and its error paths (CPU only: live runs on the fake executor)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.config import load_config
from bulletsim.latency.profile import PROFILE_DIR, ProfileLatency, read_profile
from bulletsim.live.fake import FakeExecutor
from bulletsim.live.fidelity_folds import folds
from bulletsim.live.refit import (
    TERMS,
    base_terms,
    model_time,
    neutral,
    price_run,
    refit_profile,
)
from bulletsim.live.run import live_run
from bulletsim.results import write_results

BASE = PROFILE_DIR / "h200__llama-3.1-8b.json"
# The "true" engine of the synthetic runs: every term away from the base profile's.
TRUE = {
    "kernel_scale_memory": 0.8,
    "kernel_scale_compute": 1.1,
    "floor": 0.05,
    "mem_per_share": 0.3,
    "compute_per_share": 0.15,
    "layer_overhead_s": 20e-6,
    "graph_layer_overhead_s": 8e-6,
    "step_overhead_s": 1e-3,
    "launch_s": 15e-6,
    "eager_fixed_s": 0.5e-3,
    "eager_overlap_exp": 2.0,
}
GAPS = {"batch": 1.2e-3, "window": 0.3e-3, "graph": 0.6e-3}
PER_SEQ = {"batch": 8e-6, "window": 0.0, "graph": 6e-6}
PER_TOKEN = {"batch": 0.2e-6, "window": 0.0, "graph": 0.0}


def true_profile(base: dict) -> dict:
    d = copy.deepcopy(base)
    d["exec"]["kernel_scale"] = {"memory": TRUE["kernel_scale_memory"],
                                 "compute": TRUE["kernel_scale_compute"]}  # fmt: skip
    d["srm"]["layer_overhead_s"] = TRUE["layer_overhead_s"]
    d["srm"]["step_overhead_s"] = TRUE["step_overhead_s"]
    saving = TRUE["layer_overhead_s"] - TRUE["graph_layer_overhead_s"]
    d["exec"]["decode_graph_saving_per_layer_s"] = saving
    for k in ("floor", "mem_per_share", "compute_per_share"):
        d["srm"]["contention"][k] = TRUE[k]
    d["host"] = {"launch_s": TRUE["launch_s"], "eager_fixed_s": TRUE["eager_fixed_s"],
                 "eager_overlap_exp": TRUE["eager_overlap_exp"], "gap_s": GAPS,
                 "gap_per_seq_s": PER_SEQ, "gap_per_token_s": PER_TOKEN}  # fmt: skip
    return d


def _write_run(out: Path, policy: str, trace: str, rate: float, lat, n: int = 80, **extra):
    over = {"policy": policy, "gpu": "h200", "workload": {"trace": trace, "num_requests": n,
            "rate": rate}} | extra  # fmt: skip
    cfg = load_config(None, over)
    res = live_run(cfg, FakeExecutor(granularity_sms=8), latency=lat)
    write_results(res.result, out, extra_json={"live.json": res.live})
    return out


@pytest.fixture(scope="module")
def base() -> dict:
    return read_profile(BASE)


@pytest.fixture(scope="module")
def runs(base, tmp_path_factory) -> list[Path]:
    """Fake live runs whose 'device' is the true profile: chunked and Bullet on two workloads,
    Bullet at the higher load of each."""
    root = tmp_path_factory.mktemp("live")
    lat = ProfileLatency(true_profile(base))
    bullet = {"bullet": {"mechanism": "green-ctx"}}
    return [
        _write_run(root / "c-lo", "chunked", "splitwise", 8.0, lat),
        _write_run(root / "c-hi", "chunked", "sharegpt", 30.0, lat),
        _write_run(root / "b-lo", "bullet", "splitwise", 12.0, lat, **bullet),
        _write_run(root / "b-hi", "bullet", "sharegpt", 40.0, lat, **bullet),
    ]


def test_the_model_formula_is_the_simulators_prediction(base, runs):
    # Priced with the terms the fake ran with, a chunked run's modelled iterations are the
    # prediction the live loop recorded (the fake's measured time), to rounding.
    doc = true_profile(base)
    pl = neutral(doc)
    p = price_run(pl, runs[0])
    t = model_time(base_terms(doc), p, pl.graph_saving_s, 13, pl.num_layers)
    assert p.exact.all()
    np.testing.assert_allclose(t, p.measured_s, rtol=1e-9)


def test_the_refit_recovers_known_terms_from_synthetic_live_runs(base, runs):
    new, report = refit_profile(base, runs)
    got = report["terms_after"]
    assert report["fitted"] == list(TERMS)  # Bullet's co-runs make contention fittable
    for k, v in TRUE.items():
        # a few re-maskings are inferred wrongly (4.1 us each), so close, not exact
        assert got[k] == pytest.approx(v, rel=0.01), k
    for k, v in GAPS.items():
        # waits for an arrival shorter than BACK_TO_BACK_S look like long host gaps
        assert new["host"]["gap_s"][k] == pytest.approx(v, rel=0.02), k
        assert new["host"]["gap_per_seq_s"][k] == pytest.approx(PER_SEQ[k], abs=1e-6), k
        assert new["host"]["gap_per_token_s"][k] == pytest.approx(PER_TOKEN[k], abs=2e-8), k
    after = {(r["phase"], r["sms"]): r["median_abs_pct"] for r in report["residuals_after"]}
    assert max(after.values()) < 0.2
    assert new["meta"]["live_refit"]["runs"] == [str(r) for r in runs]
    ProfileLatency(new)  # a valid profile


def test_contention_is_kept_without_co_run_iterations(base, runs):
    _, report = refit_profile(base, runs[:2])  # chunked only: one lane, never co-run
    assert set(report["not_fitted"]) == {"floor", "mem_per_share", "compute_per_share"}
    assert report["terms_after"]["floor"] == report["terms_before"]["floor"]


def test_held_out_folds_never_judge_a_run_by_its_own_fit(runs):
    by_wl = folds(runs, "workload")
    assert [f.name for f in by_wl] == ["workload sharegpt", "workload splitwise"]
    assert {p.name for p in by_wl[0].judge} == {"c-hi", "b-hi"}
    assert {p.name for p in by_wl[0].fit} == {"c-lo", "b-lo"}
    by_load = folds(runs, "load")  # the rank of the rate within its workload
    assert [(f.name, sorted(p.name for p in f.judge)) for f in by_load] == [
        ("load 1", ["c-hi", "c-lo"]),
        ("load 2", ["b-hi", "b-lo"]),
    ]
    for f in by_load:
        assert not set(f.judge) & set(f.fit) and len(f.judge) + len(f.fit) == len(runs)
    with pytest.raises(ValueError, match="at least two"):
        folds(runs[:1], "workload")
    with pytest.raises(ValueError, match="valid: workload, load"):
        folds(runs, "policy")


def test_fidelity_held_out_by_workload_names_what_each_profile_was_fitted_on(runs, tmp_path):
    table = tmp_path / "t.md"
    args = ["fidelity", str(runs[0]), str(runs[1]), "--profile", str(BASE)]
    r = CliRunner().invoke(app, [*args, "--held-out", "workload", "--table", str(table)])
    assert r.exit_code == 0, r.output
    lines = table.read_text().splitlines()
    assert "profile fitted on" in lines[0] and len(lines) == 4
    assert "workload: the 1 run not in workload sharegpt" in lines[3]


def test_calibrate_from_live_writes_a_profile_fidelity_knows(base, runs, tmp_path):
    out = tmp_path / "refit.json"
    args = ["calibrate", "--from-live", str(runs[2]), "--profile", str(BASE), "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert read_profile(out)["meta"]["live_refit"]["runs"] == [str(runs[2])]
    r = CliRunner().invoke(app, args)  # a profile it wrote may be replaced
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["fidelity", str(runs[2]), "--profile", str(out)])
    assert r.exit_code == 0 and "is one of the runs the profile was refitted on" in r.output


@pytest.mark.parametrize(
    ("extra", "msg"),
    [
        ([], "--from-live needs live run directories"),
        (["{run}"], "--from-live needs --out FILE.json"),
        (["{run}", "--out", "{tmp}"], "is a folder"),
        (["{run}", "--out", "{tmp}/mine.json"], "is not a profile `calibrate --from-live` wrote"),
        (["{tmp}/nothing", "--out", "{tmp}/x.json"], "does not exist"),
        (["{empty}", "--out", "{tmp}/x.json"], "has no measured iterations"),
        (["{run}", "--out", "{tmp}/x.json", "--profile", "{a100}"], "the profile is for"),
        (["{run}", "--out", "{tmp}/x.json", "--profile", "{tmp}/no.json"], "not found"),
    ],
)
def test_calibrate_from_live_bad_input_is_one_line_exit_2(runs, tmp_path, extra, msg):
    (tmp_path / "mine.json").write_text('{"mine": 1}\n')
    empty = tmp_path / "empty"
    empty.mkdir()
    src = runs[0]
    for name in ("config.json", "summary.json", "live.json", "requests.parquet"):
        (empty / name).write_bytes((src / name).read_bytes())
    import pandas as pd

    it = pd.read_parquet(src / "iterations.parquet")
    it.iloc[:0].to_parquet(empty / "iterations.parquet")
    subs = {"run": str(src), "tmp": str(tmp_path), "empty": str(empty),
            "a100": str(PROFILE_DIR / "a100__llama-3.1-8b.json")}  # fmt: skip
    args = ["calibrate", "--from-live", *[a.format(**subs) for a in extra]]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert msg in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert (tmp_path / "mine.json").read_text() == '{"mine": 1}\n'


def test_fidelity_reprices_iterations_and_host_gaps_under_a_profile(base, runs):
    from bulletsim.live.refit import repriced

    t = repriced(true_profile(base), runs[1])  # the chunked run, under its own engine's terms
    gaps = t[t["phase"].str.startswith("gap ")]
    assert set(gaps["phase"]) == {"gap batch", "gap graph"} and (gaps["median_abs_pct"] < 1).all()
    steps = t[~t["phase"].str.startswith("gap ")]
    assert (steps["median_abs_pct"] < 1e-6).all()
    off = repriced(base, runs[1])  # the base profile has no host terms: no gap rows
    assert not off["phase"].str.startswith("gap ").any() and (off["median_abs_pct"] > 1).any()


def test_measured_host_time_bounds_the_host_launch_terms(base, runs):
    # what the loop's CPU measured per eager iteration (here 2 ms + 0.3 ms per layer) is an
    # upper bound of the enqueueing terms; a fake run's own host times bound nothing
    from bulletsim.live.refit import host_launch_bounds

    p = price_run(neutral(base), runs[2])
    assert np.isnan(p.host_s).all()  # the fake executor measures no GPU host
    assert host_launch_bounds(p, 13) == ({}, {})
    p.host_s = np.where(p.graph, 1e-3, 2e-3 + 0.3e-3 * p.layers)
    bounds, line = host_launch_bounds(p, 13)
    assert line == pytest.approx({"fixed_ms": 2.0, "per_layer_ms": 0.3}, rel=1e-3)
    assert bounds["launch_s"][1] == pytest.approx(0.3e-3 / 13, rel=1e-3)
    assert bounds["eager_fixed_s"][1] == pytest.approx(2e-3, rel=1e-3)
