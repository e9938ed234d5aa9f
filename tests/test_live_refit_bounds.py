"""`calibrate --from-live` on runs whose measured host time bounds the host launch terms
below the fit's usual starting points (the single chunked-prefill and pdmux runs of
results/live-h200 did: scipy refused the start), and bounds that meet (CPU only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.config import load_config
from bulletsim.latency.profile import PROFILE_DIR, ProfileLatency, read_profile
from bulletsim.live.fake import FakeExecutor
from bulletsim.live.refit import base_terms, fit_terms, host_launch_bounds, neutral, price_run
from bulletsim.live.run import live_run
from bulletsim.results import write_results

BASE = PROFILE_DIR / "h200__llama-3.1-8b.json"
LOW_LAUNCH_S = 5e-6  # the lowest starting point the fit tries for launch_s besides 0


def _run_with_host_time(out: Path, policy: str, host_s: float) -> Path:
    """A fake live run that claims a GPU host measured `host_s` CPU seconds per iteration."""
    over = {"policy": policy, "gpu": "h200", "workload": {"trace": "splitwise",
            "num_requests": 40, "rate": 10.0}, "bullet": {"mechanism": "green-ctx"}}  # fmt: skip
    cfg = load_config(None, over)
    res = live_run(cfg, FakeExecutor(granularity_sms=8), latency=ProfileLatency(read_profile(BASE)))
    write_results(res.result, out, extra_json={"live.json": res.live})
    live = json.loads((out / "live.json").read_text())
    live["executor"]["measured"] = True
    (out / "live.json").write_text(json.dumps(live))
    it = pd.read_parquet(out / "iterations.parquet")
    it["host_s"] = host_s
    it.to_parquet(out / "iterations.parquet")
    return out


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("planted")
    return {p: _run_with_host_time(root / p, p, 1e-3) for p in ("chunked", "bullet")}


def test_a_single_layer_count_bounds_each_host_term_by_the_whole(planted):
    p = price_run(neutral(read_profile(BASE)), planted["chunked"])
    assert set(np.unique(p.layers[~p.graph])) == {32}  # full steps only
    bounds, line = host_launch_bounds(p, 13)
    assert line["level_ms"] == pytest.approx(1.0) and line["layers"] == 32
    assert bounds["eager_fixed_s"][1] == pytest.approx(1e-3)
    assert bounds["launch_s"][1] == pytest.approx(1e-3 / (13 * 32))
    assert bounds["launch_s"][1] < LOW_LAUNCH_S  # the planted fault: below the usual start


@pytest.mark.parametrize("policy", ["chunked", "bullet"])
def test_from_live_fits_inside_bounds_below_the_usual_start(planted, tmp_path, policy):
    out = tmp_path / "refit.json"
    args = ["calibrate", "--from-live", str(planted[policy]), "--profile", str(BASE),
            "--out", str(out)]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    p = price_run(neutral(read_profile(BASE)), planted[policy])
    bounds, _ = host_launch_bounds(p, 13)
    assert bounds["launch_s"][1] < LOW_LAUNCH_S
    host = read_profile(out)["host"]
    for k in ("launch_s", "eager_fixed_s"):
        assert 0.0 <= host[k] <= bounds[k][1] * (1 + 1e-9), k


def test_a_term_whose_bounds_meet_is_held_there(planted):
    doc = read_profile(BASE)
    pl = neutral(doc)
    p = price_run(pl, planted["chunked"])
    start = base_terms(doc) | {"launch_s": 15e-6}  # above its upper bound below
    bounds = {"launch_s": (0.0, 1e-6), "eager_fixed_s": (2e-4, 2e-4)}
    fitted, names = fit_terms(p, start, pl.graph_saving_s, 13, pl.num_layers, bounds)
    assert "eager_fixed_s" not in names and fitted["eager_fixed_s"] == 2e-4
    assert "launch_s" in names and 0.0 <= fitted["launch_s"] <= 1e-6
    with pytest.raises(AssertionError, match="lower bound"):
        fit_terms(p, start, pl.graph_saving_s, 13, pl.num_layers, {"launch_s": (1e-6, 0.0)})
