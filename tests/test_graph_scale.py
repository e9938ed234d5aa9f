"""Live-fitted factors of decode graph steps per (SMs, bucket) (`latency.graph_scale`): the
table's checks, the profile's use of it, and the refit recovering known factors from
synthetic live runs (CPU only: fake executor)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bulletsim.core import WorkShape
from bulletsim.latency.graph_scale import (
    MIN_ITERATIONS,
    check_scale_table,
    factors,
    fit_factors,
    to_doc,
)
from bulletsim.latency.profile import ProfileLatency, read_profile
from bulletsim.latency.profile_format import validate
from bulletsim.live.refit import refit_profile, repriced
from tests.test_live_refit import BASE, _write_run, true_profile

BUCKETS = [8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512]
TRUE_FACTORS = {132: {16: 1.2, 32: 0.9}}


def test_a_table_reads_and_writes_back():
    t = check_scale_table({"132": {"48": 1.08, "96": 0.94}, "8": {"32": 1}}, "t")
    assert t == {132: {48: 1.08, 96: 0.94}, 8: {32: 1.0}}
    assert check_scale_table(to_doc(t), "t") == t


@pytest.mark.parametrize(
    "bad, msg",
    [
        ([1.0], "must map SM counts"),
        ({"x": {"8": 1.0}}, "SM count keys must be positive integers"),
        ({"0": {"8": 1.0}}, "SM count keys must be positive integers"),
        ({"132": {"-8": 1.0}}, "batch rows keys must be positive integers"),
        ({"132": {"\u00b2": 1.0}}, "batch rows keys must be positive integers"),
        ({"132": [1.0]}, "must map batch rows to factors"),
        ({"132": {"8": 3.0}}, "must be a factor in [0.5, 2]"),
        ({"132": {"8": float("nan")}}, "must be a factor"),
        ({"132": {"8": True}}, "must be a factor"),
    ],
)
def test_a_bad_table_is_a_one_line_error(bad, msg):
    with pytest.raises(ValueError, match=msg.replace("[", r"\[")) as e:
        check_scale_table(bad, "exec.decode_graph_bucket_scale")
    assert "\n" not in str(e.value)


def test_factors_apply_to_graph_steps_by_padded_rows_only():
    table = {132: {48: 1.1}, 64: {16: 0.9}}
    graph = np.array([True, True, True, False, True])
    sms = np.array([132, 132, 64, 132, 132])
    rows = np.array([33, 49, 9, 40, 48])
    got = factors(table, graph, sms, rows, BUCKETS)
    # 33 and 48 rows pad to 48; 49 pads to 64 (no factor); an eager step is never scaled
    assert got.tolist() == [1.1, 1.0, 0.9, 1.0, 1.1]
    assert factors(table, graph, sms, rows, []).tolist() == [1.0] * 5


def test_fit_factors_recovers_the_kernel_factor_per_key_with_enough_steps():
    rng = np.random.default_rng(0)
    # rows per bucket: 8 <- 1-8 (40 steps), 16 <- 9-16 (MIN_ITERATIONS - 1: too few),
    # 32 <- 17-32 (40), 48 <- 33-48 (40); each bucket's factor differs
    counts_by_bucket = {8: 40, 16: MIN_ITERATIONS - 1, 32: 40, 48: 40}
    true_by_bucket = {8: 1.25, 16: 1.5, 32: 0.8, 48: 1.0}
    low = {8: 1, 16: 9, 32: 17, 48: 33}
    rows = np.concatenate([rng.integers(low[b], b + 1, c) for b, c in counts_by_bucket.items()])
    true = np.concatenate([np.full(c, true_by_bucket[b]) for b, c in counts_by_bucket.items()])
    n = len(rows)
    sms = np.full(n, 132)
    kern = rng.uniform(5e-3, 8e-3, n)
    rest = np.full(n, 1e-3)
    measured = true * kern + rest
    graph = np.ones(n, bool)
    table, counts = fit_factors(graph, sms, rows, BUCKETS, kern, rest, measured)
    assert counts == {"132": {str(b): c for b, c in counts_by_bucket.items()}}
    assert table.keys() == {132} and table[132].keys() == {8, 32, 48}  # 16: too few steps
    for b in (8, 32, 48):
        assert table[132][b] == pytest.approx(true_by_bucket[b], rel=1e-9)
    # eager steps and steps without kernel time are not counted; factors are clipped
    eager = graph.copy()
    eager[:5] = False
    no_kernel = kern.copy()
    no_kernel[5:10] = 0.0
    assert fit_factors(eager, sms, rows, BUCKETS, no_kernel, rest, measured)[1]["132"]["8"] == 30
    t_hi, _ = fit_factors(graph, sms, rows, BUCKETS, kern, rest, 5 * kern + rest)
    assert set(t_hi[132].values()) == {2.0}
    # too few steps for any key: nothing fitted; no buckets: nothing at all
    few = np.zeros(n, bool)
    few[: MIN_ITERATIONS - 1] = True
    assert fit_factors(few, sms, np.full(n, 40), BUCKETS, kern, rest, measured)[0] == {}
    assert fit_factors(graph, sms, rows, [], kern, rest, measured) == ({}, {})


@pytest.fixture(scope="module")
def base_doc() -> dict:
    d = read_profile(BASE)
    d["exec"]["decode_graph_buckets"] = BUCKETS
    return d


def _with_factors(doc: dict, table=TRUE_FACTORS) -> dict:
    d = copy.deepcopy(doc)
    d["exec"]["decode_graph_bucket_scale"] = to_doc(table)
    return d


def test_the_profile_scales_a_graph_steps_kernels_by_its_buckets_factor(base_doc):
    plain, scaled = ProfileLatency(base_doc), ProfileLatency(_with_factors(base_doc))
    for rows, f in ((9, 1.2), (16, 1.2), (17, 0.9), (32, 0.9), (33, 1.0)):
        s = WorkShape(decode_tokens=rows, decode_ctx_tokens=rows * 1000, logits_tokens=rows)
        over = plain.overhead_s(s)
        assert scaled.predict(s, 132) - over == pytest.approx(f * (plain.predict(s, 132) - over))
        assert scaled.predict(s, 64) == plain.predict(s, 64)  # no factor for 64 SMs
    mixed = WorkShape(prefill_tokens=100, decode_tokens=16, decode_ctx_tokens=16000)
    assert scaled.predict(mixed, 132) == plain.predict(mixed, 132)


def test_a_profile_with_a_bad_table_is_refused(base_doc):
    d = _with_factors(base_doc)
    d["exec"]["decode_graph_bucket_scale"] = {"132": {"16": 9.0}}
    with pytest.raises(ValueError, match="decode_graph_bucket_scale"):
        validate(d, "p")


@pytest.fixture(scope="module")
def factor_runs(base_doc, tmp_path_factory):
    """Fake runs whose 'device' has graph-step factors per bucket on 132 SMs (chunked and
    Bullet on two workloads, as `test_live_refit`'s runs, which identify every term)."""
    root = tmp_path_factory.mktemp("graph-scale")
    lat = ProfileLatency(_with_factors(true_profile(base_doc)))
    bullet = {"bullet": {"mechanism": "green-ctx"}}
    return [
        _write_run(root / "c-lo", "chunked", "splitwise", 8.0, lat, n=120),
        _write_run(root / "c-hi", "chunked", "sharegpt", 30.0, lat, n=120),
        _write_run(root / "b-lo", "bullet", "splitwise", 12.0, lat, **bullet),
        _write_run(root / "b-hi", "bullet", "sharegpt", 40.0, lat, **bullet),
    ]


def test_the_refit_recovers_the_factors_of_synthetic_runs(base_doc, factor_runs):
    new, report = refit_profile(base_doc, factor_runs)
    got = check_scale_table(new["exec"]["decode_graph_bucket_scale"], "refit")[132]
    counts = report["decode_graph_bucket_scale"]["iterations"]["132"]
    assert {8, 16, 32, 48} <= set(got)  # enough steps in these buckets
    # the fitted terms absorb part of the buckets' mean (a global scale and per-bucket factors
    # are not separable), so the factors are right relative to the unscaled buckets
    assert got[16] / got[8] == pytest.approx(1.2, rel=0.01)
    assert got[32] / got[48] == pytest.approx(0.9, rel=0.01)
    assert got[8] == pytest.approx(got[48], rel=0.01)
    for b in got:
        assert counts[str(b)] >= MIN_ITERATIONS
    # priced with the refitted profile, its own runs' decode steps are right to within 1%
    errs = repriced(new, factor_runs[0])
    decode = errs[(errs["phase"] == "decode") & (errs["sms"] == "all")].iloc[0]
    assert decode["median_abs_pct"] < 1.0
    # without factors in the fit, the same steps are off by several percent
    d = copy.deepcopy(new)
    d["exec"].pop("decode_graph_bucket_scale")
    errs0 = repriced(d, factor_runs[0])
    assert (
        errs0[(errs0["phase"] == "decode") & (errs0["sms"] == "all")].iloc[0]["p90_abs_pct"] > 5.0
    )


@pytest.mark.parametrize(
    "table, msg",
    [
        ({"999": {"16": 1.1}}, "SM count 999 exceeds the GPU's 132"),
        ({"132": {"50": 1.1}}, "batch rows [50] are not decode-graph sizes"),
    ],
)
def test_factors_no_step_could_use_are_refused(base_doc, table, msg):
    d = _with_factors(base_doc)
    d["exec"]["decode_graph_bucket_scale"] = table
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]")) as e:
        validate(d, "p")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("drop", ["exec", "saving"])
def test_a_profile_without_its_exec_section_is_refused(base_doc, drop):
    """A calibrated profile always has exec (its graph saving; a refit's kernel scales):
    without it decode steps would be priced very differently, silently."""
    d = copy.deepcopy(base_doc)
    if drop == "exec":
        del d["exec"]
    else:
        del d["exec"]["decode_graph_saving_per_layer_s"]
    with pytest.raises(ValueError, match="exec"):
        validate(d, "p")
