"""The fit recovers known SRM parameters from synthetic samples (CPU only)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bulletsim.hardware import get_gpu
from bulletsim.latency.contention import ContentionParams
from bulletsim.latency.roofline import SRMParams
from bulletsim.models import get_model
from calibrate.fit import fit_profile, fit_srm, nonmonotonic_points
from calibrate.grids import QUICK, STANDARD
from calibrate.synthetic import synthetic_samples

GPU, MODEL = get_gpu("h200"), get_model("llama-3.1-8b")
META = {
    "gpu": "h200",
    "model": "llama-3.1-8b",
    "kind": "measured",
    "mechanism": "green-ctx",
    "granularity_sms": 8,
    "timing_method": "synthetic",
    "date": "2026-11-22",
}
TRUE = replace(
    SRMParams(),
    alpha={
        "gemm": 1.3,
        "attn_prefill": 1.9,
        "attn_decode": 1.6,
        "elementwise": 1.15,
        "allreduce": 1.25,
    },
    bw_knee_frac=0.4,
    layer_overhead_s=4e-6,
    contention=ContentionParams(floor=0.04, mem_per_share=0.25, compute_per_share=0.08),
)


@pytest.fixture(scope="module")
def standard_samples():
    return synthetic_samples(STANDARD, MODEL, GPU, TRUE, noise=0.02, seed=1)


def test_fit_recovers_alpha_and_knee(standard_samples):
    ops = standard_samples[
        (standard_samples["kind"] == "op") & (standard_samples["split"] == "train")
    ]
    params, info = fit_srm(ops, MODEL, GPU)
    for cls in ("gemm", "attn_prefill", "attn_decode", "elementwise"):
        assert params.alpha[cls] == pytest.approx(TRUE.alpha[cls], rel=0.03), cls
    assert params.bw_knee_frac == pytest.approx(TRUE.bw_knee_frac, abs=0.02)
    assert tuple(info["tile"]) == TRUE.gemm_tile_mn


def test_fit_recovers_contention(standard_samples):
    doc = fit_profile(standard_samples, MODEL, GPU, META)
    c = doc["srm"]["contention"]
    assert c["floor"] == pytest.approx(0.04, abs=0.01)
    assert c["mem_per_share"] == pytest.approx(0.25, abs=0.03)
    assert doc["fit"]["contention_fit"]["n"] == int((standard_samples["kind"] == "corun").sum())


def test_fit_profile_predicts_heldout(standard_samples):
    doc = fit_profile(standard_samples, MODEL, GPU, META)
    s = doc["fit"]["summary"]
    assert s["heldout_ops"]["median_pct"] < 3.0
    assert s["steps"]["decode"]["max_pct"] < 5.0
    assert s["steps"]["prefill"]["max_pct"] < 5.0
    assert doc["srm"]["layer_overhead_s"] == pytest.approx(4e-6, rel=0.05)
    # synthetic decode steps have no graph saving: the fit must find ~none
    assert doc["exec"]["decode_graph_saving_per_layer_s"] < 2e-6


def test_noiseless_fit_is_exact():
    df = synthetic_samples(QUICK, MODEL, GPU, TRUE, noise=0.0)
    ops = df[(df["kind"] == "op") & (df["split"] == "train")]
    params, info = fit_srm(ops, MODEL, GPU)
    assert params.alpha["gemm"] == pytest.approx(1.3, rel=1e-3)
    assert info["train_error"]["gemm"]["max_pct"] < 0.5


def test_nonmonotonic_points_flag_slower_with_more_sms():
    import pandas as pd

    df = pd.DataFrame(
        [
            {"op": "gate_up", "tokens": 4096, "num_sms": n, "time_s": t}
            for n, t in ((112, 1.30e-3), (120, 1.25e-3), (128, 1.34e-3), (132, 1.23e-3))
        ]
    )
    pts = nonmonotonic_points(df)
    assert pts == [
        {"op": "gate_up", "tokens": 4096, "sms_from": 120, "sms_to": 128, "slower_pct": 7.2}
    ]
