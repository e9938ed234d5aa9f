"""Capacity search on synthetic cases with known answers; sweep determinism; CLI outputs."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.capacity import CapacitySearch, find_capacity
from bulletsim.sweep import PolicyVariant, SweepSpec, run_sweep
from bulletsim.sweep_capacity import per_seed


@pytest.mark.parametrize("start", [0.5, 4.0, 100.0])
@pytest.mark.parametrize("true_cap", [0.37, 7.3, 18.3])
def test_capacity_search_finds_a_step(start, true_cap):
    calls = []

    def attainment(rate):
        calls.append(rate)
        return 0.97 if rate <= true_cap else 0.6

    s = find_capacity(attainment, CapacitySearch(start_req_s=start, rel_tol=0.01))
    assert true_cap / 1.01 <= s.capacity_req_s <= true_cap
    assert s.hi is not None and s.hi > true_cap
    assert len(calls) <= 20  # bracketing + bisection, not a grid
    assert len(set(calls)) == len(calls)


def test_capacity_search_on_a_smooth_curve_and_edge_cases():
    # attainment = 1 - (rate / 20)^4 crosses 90% at 20 * 0.1^(1/4) = 11.2468
    s = find_capacity(lambda r: 1 - (r / 20) ** 4, CapacitySearch(rel_tol=0.005))
    assert s.capacity_req_s == pytest.approx(20 * 0.1**0.25, rel=0.006)
    assert s.capacity_req_s <= 20 * 0.1**0.25
    assert find_capacity(lambda r: 0.0).capacity_req_s == 0.0  # fails at every rate
    seeded = CapacitySearch(rel_tol=0.05)
    seeded.seed({2.0: 1.0, 4.0: 0.95, 8.0: 0.5})
    assert (seeded.lo, seeded.hi) == (4.0, 8.0)
    assert seeded.propose() == pytest.approx(math.sqrt(32), rel=1e-5)


def test_noise_never_inverts_the_bracket():
    s = CapacitySearch()
    for rate, a in [(4.0, 0.95), (8.0, 0.5), (6.0, 0.95), (5.0, 0.85), (7.0, 0.93)]:
        s.record(rate, a)
        assert s.lo is None or s.hi is None or s.lo < s.hi
    assert s.hi == 5.0 and s.lo == 4.0


def test_policy_variant_parsing():
    v = PolicyVariant.parse("chunked-1024")
    assert (v.policy, dict(v.params)) == ("chunked", {"chunk_size": 1024})
    v = PolicyVariant.parse("bullet:reorder=true,window_layers=4")
    assert (v.policy, dict(v.params)) == ("bullet", {"reorder": True, "window_layers": 4})
    with pytest.raises(ValueError, match="valid:"):
        SweepSpec(policies=("bulet",)).validate()


SMALL = dict(
    policies=("bullet", "chunked-1024"),
    traces=("splitwise-code",),
    rates=(1.0, 3.0),
    num_requests=60,
    rel_tol=0.1,
    seeds=(3, 4),
    base={"latency": "roofline"},
)


def test_sweep_is_deterministic_across_worker_counts():
    p1, c1 = run_sweep(SweepSpec(**SMALL, workers=1))
    p2, c2 = run_sweep(SweepSpec(**SMALL, workers=2))
    pd.testing.assert_frame_equal(p1, p2)
    pd.testing.assert_frame_equal(c1, c2)
    assert set(p1["kind"]) == {"grid", "search"}
    assert set(p1[p1.kind == "grid"].seed) == {3}  # the curves use the first seed only
    for r in c1.itertuples(index=False):
        caps = []
        for seed in (3, 4):
            pts = p1[(p1.label == r.label) & (p1.trace == r.trace) & (p1.seed == seed)]
            passing = pts[pts.slo_attainment >= 0.9].rate_req_s
            failing = pts[pts.slo_attainment < 0.9].rate_req_s
            cap = passing.max() if len(passing) else 0.0
            assert failing.min() / cap - 1 <= 0.1 + 1e-9
            # an early-stopped point failed for certain, and says so with a bound < target
            assert (pts[pts.stopped_early].slo_attainment < 0.9).all()
            caps.append(cap)
        assert r.capacity_per_seed == ";".join(f"{c:.6g}" for c in caps)
        assert r.capacity_req_s == pytest.approx(sum(caps) / 2)
        assert r.capacity_lo < r.capacity_req_s < r.capacity_hi
    # a later seed starts from its own policy's first-seed capacity, never another policy's
    own0 = per_seed(c1.iloc[1])[0]
    second = p1[(p1.label == "chunked-1024") & (p1.seed == 4) & (p1.kind == "search")]
    assert second.rate_req_s.iloc[0] == own0, (own0, list(second.rate_req_s))


def test_a_policys_results_do_not_depend_on_the_other_policies_or_their_order():
    spec = {**SMALL, "policies": ("chunked-1024", "bullet"), "workers": 1}
    p1, c1 = run_sweep(SweepSpec(**SMALL, workers=1))
    p2, c2 = run_sweep(SweepSpec(**spec))
    p3, c3 = run_sweep(SweepSpec(**{**spec, "policies": ("bullet",)}))
    for label in ("bullet", "chunked-1024"):
        a = p1[p1.label == label].reset_index(drop=True)
        b = p2[p2.label == label].reset_index(drop=True)
        assert a.to_csv(index=False) == b.to_csv(index=False)
        rows = [c[c.label == label].reset_index(drop=True) for c in (c1, c2)]
        pd.testing.assert_frame_equal(*rows, check_exact=True)
    alone = p3.reset_index(drop=True)
    assert p1[p1.label == "bullet"].reset_index(drop=True).to_csv() == alone.to_csv()


def test_sweep_cli_writes_tables_plots_and_timeline(tmp_path):
    from bulletsim.cli import app
    from bulletsim.sweep_report import load_sweep

    out = tmp_path / "sw"
    args = ["sweep", "--policy", "bullet", "--policy", "chunked-2048", "--trace", "sharegpt",
            "--rates", "2,6", "-n", "40", "--latency", "roofline", "--rel-tol", "0.2",
            "--seeds", "0,1", "--workers", "1", "--out", str(out), "-q"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    sw = load_sweep(out)
    assert list(sw["capacity"]["label"]) == ["bullet", "chunked-2048"]
    md = (out / "capacity.md").read_text()
    assert "| bullet (libsmctrl) |" in md and "| chunked-2048 |" in md  # the mechanism shown
    # the context a reader needs: GPU, model, latency model, workload source, SLO, n, seeds
    for text in ("GPU a100", "model llama-3.1-8b", "latency model roofline", "40 requests",
                 "seeds 0,1", "TTFT <= 3 ms/token, TPOT <= 150 ms", "sharegpt: "):  # fmt: skip
        assert text in md and text in res.output, text
    assert "capacity interval" in (out / "warnings.txt").read_text()  # 40 requests: too few
    for name in ("attainment_vs_rate", "latency_vs_rate", "sm_timeline", "sm_timeline_zoom"):
        assert (out / f"{name}.png").is_file() and (out / f"{name}.svg").is_file()
    assert sw["timeline"] is not None
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temporaries
    bad = CliRunner().invoke(app, ["sweep", "--policy", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "valid:" in bad.output


def test_interpolating_search_needs_fewer_runs_on_a_smooth_curve():
    # attainment falls linearly through 90% at 7.3 req/s
    def f(r):
        return 0.9 - 0.05 * (r - 7.3) / 7.3

    grid = {r: f(r) for r in (1.0, 2.0, 4.0, 8.0, 16.0)}
    runs = {}
    for interp in (False, True):
        s = CapacitySearch(rel_tol=0.01, interpolate=interp)
        s.seed(grid)
        s = find_capacity(f, s)
        assert 7.3 / 1.01 <= s.capacity_req_s <= 7.3 and s.hi / s.lo - 1 <= 0.01
        runs[interp] = len(s.evaluated) - len(grid)
    assert runs[True] < runs[False]


def test_stopped_runs_estimates_and_a_known_slope_save_runs():
    # attainment falls linearly in log rate through 90% at 7.3 req/s; runs below 90% are
    # "stopped early": NaN, with an estimate of what they would have reached
    slope = -0.5

    def f(r):
        return 0.9 + slope * math.log(r / 7.3)

    def runs(with_estimates: bool, with_slope: bool) -> int:
        s = CapacitySearch(start_req_s=7.0, factor=1.05, expand=True, rel_tol=0.01,
                           interpolate=True, slope=slope if with_slope else None)  # fmt: skip
        while (rate := s.propose()) is not None:
            a = f(rate)
            if a >= 0.9:
                s.record(rate, a)
            else:
                s.record(rate, math.nan, a if with_estimates else math.nan)
        assert 7.3 / 1.01 <= s.capacity_req_s <= 7.3 and s.hi / s.lo - 1 <= 0.01
        return len(s.evaluated)

    plain, estimated, guided = runs(False, False), runs(True, False), runs(True, True)
    assert estimated < plain and guided < plain
    assert guided <= 3  # the start, the predicted crossing, one step to close


def test_local_slope_fits_the_points_near_capacity():
    s = CapacitySearch(rel_tol=0.01)
    for r in (6.0, 7.0, 7.2, 7.4, 8.0, 30.0):  # 30 req/s: far, left out
        s.record(r, 0.9 - 0.5 * math.log(r / 7.3) if r < 30 else 0.0)
    assert s.local_slope() == pytest.approx(-0.5)


def test_auto_length_reruns_with_the_n_the_checks_ask_for(tmp_path):
    from bulletsim.cli import app
    from bulletsim.sweep_report import load_sweep

    out = tmp_path / "sw"
    args = ["sweep", "--policy", "chunked-2048", "--trace", "sharegpt", "--rates", "4,8",
            "-n", "30", "--latency", "roofline", "--rel-tol", "0.2", "--seeds", "0,1",
            "--workers", "1", "--out", str(out), "-q", "--no-plots", "--no-timeline",
            "--auto-length", "--max-requests", "80"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    warnings = (out / "warnings.txt").read_text().splitlines()
    assert warnings[0].startswith("--auto-length: -n 30 -> ")
    final = load_sweep(out)["spec"]["num_requests"]
    assert 30 < final <= 80 and f"{final} requests per point" in res.output
    assert set(load_sweep(out)["points"]["num_requests"]) == {final}
    bad = CliRunner().invoke(app, [*args[:-2], "--max-requests", "10"])
    assert bad.exit_code == 2 and "--max-requests 10 is below -n 30" in bad.output


def test_expanding_search_never_overflows_however_many_rates_it_has_seen():
    """Issue 16: `sweep -n 60 --rates 2,4` raised OverflowError: the expanding step was
    factor ** 2 ** (rates seen - 1), past a float's range after ~11 rates."""
    from bulletsim.capacity import CapacitySearch

    for lo_side in (True, False):
        s = CapacitySearch(start_req_s=4.0, factor=1.2, expand=True, slope=-1e-9)
        for i in range(40):  # all passing (hi unknown) or all failing (lo unknown)
            s.record(1.0 + i * 0.01, 1.0 if lo_side else 0.0)
        nxt = s.propose()
        assert nxt is None or s.min_req_s <= nxt <= s.max_req_s
    one = CapacitySearch(start_req_s=4.0, factor=1.2, expand=True, slope=-1e-9)
    one.record(4.0, 1.0)  # the slope's guess from one rate: exp of a huge ratio, clamped
    assert 4.0 < one.propose() <= 4.0 * 1.2
