"""All-reduce model: alpha-beta fit and ring transfer, the measured table, TP shard profiles
(lookup for tp > 1, measured vs derived labels, the all-reduce in predictions). CPU only."""

from __future__ import annotations

import math

import pytest

from bulletsim.core import WorkShape
from bulletsim.hardware import get_gpu
from bulletsim.latency.collectives import (
    AllReduceTable,
    AlphaBeta,
    fit_alpha_beta,
    rescale_section,
    section_for,
)
from bulletsim.models import get_model
from calibrate.collectives_fit import report_md, table_from_run

TRUE = AlphaBeta(alpha2_s=12e-6, bus_bw_bytes_s=350e9)
SIZES = [8192 * 2 * t for t in (1, 16, 256, 2048, 16384)]
SMS = [8, 32, 132]


def fake_run() -> dict:
    """A `collectives.json` whose all-reduce times follow TRUE, 3x slower on 8 SMs for
    large messages (as NCCL squeezed into a small partition would be)."""
    rows = []
    for b in SIZES:
        for s in SMS:
            slow = 1.0 + (2.0 if s == 8 else 0.0) * b / SIZES[-1]
            rows.append(
                {
                    "op": "all_reduce",
                    "bytes": b,
                    "tokens": b // 16384,
                    "sms": s,
                    "ms": 1e3 * TRUE.time_s(b, 2) * slow,
                }
            )
    rows.append({"op": "all_gather", "bytes": 2 * SIZES[0], "sms": 132, "ms": 0.02})
    return {
        "world": 2,
        "hidden": 8192,
        "date": "2026-11-30T23:00:00Z",
        "timing_method": "events",
        "env": {"NCCL_NVLS_ENABLE": "0"},
        "nccl_log": {"coll_channels": [24, 24]},
        "stream_check": [{}],
        "self_check": [{"ok": True}],
        "rank0": {
            "rows": rows,
            "device": "NVIDIA H200",
            "nccl_version": "2.27.7",
            "torch": "2.11",
            "ctas": [],
            "corun": [],
        },
    }


def test_alpha_beta_fit_recovers_the_model_and_transfers_by_the_ring_formula():
    model, err = fit_alpha_beta(SIZES, [TRUE.time_s(b, 2) for b in SIZES], 2)
    assert model.alpha2_s == pytest.approx(TRUE.alpha2_s, rel=1e-6)
    assert model.bus_bw_bytes_s == pytest.approx(TRUE.bus_bw_bytes_s, rel=1e-6)
    assert err["max_pct"] < 1e-3
    # n GPUs: (n-1) alpha_2 latency, 2(n-1)/n of the bytes over each GPU's links
    s = 2**27
    assert model.time_s(s, 8) == pytest.approx(7 * 12e-6 + 1.75 * s / 350e9, rel=1e-9)
    # a fit on 4-GPU data gives the same 2-GPU parameters back
    four, _ = fit_alpha_beta(SIZES, [TRUE.time_s(b, 4) for b in SIZES], 4)
    assert four.alpha2_s == pytest.approx(TRUE.alpha2_s, rel=1e-6)
    with pytest.raises(ValueError, match=">= 2 GPUs"):
        TRUE.time_s(s, 1)
    with pytest.raises(ValueError, match="positive"):
        fit_alpha_beta([1, 2], [0.0, 1.0])


def test_table_sections_label_measured_and_derived():
    table = table_from_run(fake_run())
    assert table["alpha_beta"]["bus_bw_bytes_s"] == pytest.approx(350e9, rel=1e-6)
    same = section_for(table, 2)
    assert same["kind"] == "measured" and "transfer" not in same
    assert same["time_s"] == table["time_s"]
    eight = section_for(table, 8)
    assert eight["kind"] == "derived" and "AB(8, S)" in eight["transfer"]
    i, j = SIZES.index(2**14 * 2048), SMS.index(8)
    want = table["time_s"][i][j] * TRUE.time_s(SIZES[i], 8) / TRUE.time_s(SIZES[i], 2)
    assert eight["time_s"][i][j] == pytest.approx(want, rel=1e-9)
    slower = rescale_section(eight, 300 / 450, "a100 / h200")
    assert slower["kind"] == "derived" and "B x 0.6667" in slower["transfer"]
    assert all(a > b for a, b in zip(slower["time_s"][-1], eight["time_s"][-1], strict=True))
    md = report_md(table)
    assert "Derived: ring transfer to 4 and 8 GPUs" in md and "| 16384 |" in md


def test_allreduce_table_interpolates_inside_and_follows_the_model_outside():
    sec = section_for(table_from_run(fake_run()), 2)
    t = AllReduceTable(sec)
    assert t.time_s(SIZES[2], 132) == pytest.approx(TRUE.time_s(SIZES[2], 2), rel=1e-9)
    # SM counts off the axis clamp to its edges; bytes beyond it scale by the model
    assert t.time_s(SIZES[2], 200) == t.time_s(SIZES[2], 132)
    big = 4 * SIZES[-1]
    assert t.time_s(big, 132) == pytest.approx(TRUE.time_s(big, 2), rel=1e-9)
    bad = dict(sec, time_s=[[0.0] * len(SMS)] * len(SIZES))
    with pytest.raises(ValueError, match="non-positive"):
        AllReduceTable(bad)


@pytest.fixture(scope="module")
def shard_doc() -> dict:
    """A synthetic TP-8 shard profile of Llama-3.1-70B (quick grid, known SRM)."""
    from bulletsim.latency.roofline import SRMParams
    from calibrate.fit import fit_profile
    from calibrate.grids import QUICK
    from calibrate.synthetic import synthetic_samples

    m, g = get_model("llama-3.1-70b", 8), get_gpu("h200")
    df = synthetic_samples(QUICK, m, g, SRMParams())
    meta = {
        "gpu": "h200",
        "model": m.name,
        "tp": 8,
        "kind": "measured",
        "num_sms": 132,
        "mechanism": "green-ctx",
        "granularity_sms": 8,
        "timing_method": "synthetic",
        "date": "2026-11-30",
    }
    return fit_profile(df, m, g, meta)


def test_shard_profile_adds_two_allreduces_per_layer(shard_doc):
    from bulletsim.latency.profile import ProfileLatency
    from calibrate.shard_profile import attach

    m, g = get_model("llama-3.1-70b", 8), get_gpu("h200")
    bare = ProfileLatency(shard_doc, g, m)
    doc = attach(shard_doc, table_from_run(fake_run()))
    assert doc["meta"]["parts"]["allreduce"].startswith("derived")
    assert doc["meta"]["parts"]["layer_kernels"].startswith("measured")
    full = ProfileLatency(doc, g, m)
    shape = WorkShape(decode_tokens=256, decode_ctx_tokens=256 * 512, logits_tokens=256)
    ar = full.allreduce.time_s(256 * 8192 * 2, 132)  # a measured size
    assert ar == pytest.approx(TRUE.time_s(256 * 8192 * 2, 8), rel=1e-6)
    gap = full.predict(shape, 132) - bare.predict(shape, 132)
    assert gap == pytest.approx(80 * 2 * ar, rel=1e-9)
    with pytest.raises(ValueError, match="tp=8, not tp=4"):
        ProfileLatency(doc, g, get_model("llama-3.1-70b", 4))


def test_profile_lookup_for_tp_and_the_labels_a_run_prints(shard_doc, tmp_path, monkeypatch):
    from bulletsim.latency import profile_format
    from bulletsim.latency.factory import build_latency, transfer_note
    from bulletsim.latency.profile import find_profile, write_profile
    from calibrate.derive import derive
    from calibrate.shard_profile import attach

    monkeypatch.setattr(profile_format, "PROFILE_DIR", tmp_path)
    doc = attach(shard_doc, table_from_run(fake_run()))
    write_profile(doc, tmp_path / "h200__llama-3.1-70b__tp8.json")
    a100_doc = derive(doc, get_gpu("a100"))
    assert a100_doc["collectives"]["allreduce"]["sms"] == [7, 26, 108]  # share of 108 SMs
    assert a100_doc["meta"]["tp"] == 8 and a100_doc["meta"]["kind"] == "derived"
    write_profile(a100_doc, tmp_path / "a100__llama-3.1-70b__tp8.json")
    assert find_profile("h200", "llama-3.1-70b", tp=8).name == "h200__llama-3.1-70b__tp8.json"
    assert find_profile("h200", "llama-3.1-70b", tp=4) is None
    assert find_profile("h200", "llama-3.1-70b") is None  # tp=1 is a different profile
    assert profile_format.installed_tps("h200", "llama-3.1-70b") == [8]
    m8 = get_model("llama-3.1-70b", 8)
    lat = build_latency("auto", get_gpu("h200"), m8)
    assert lat.name.startswith("profile:h200/llama-3.1-70b") and lat.allreduce is not None
    note = transfer_note("auto", get_gpu("h200"), m8)
    assert "layer kernels measured on one H200 at the TP-8 shard shapes" in note
    assert "all-reduce (2 per layer) derived from NCCL measured on 2 H200s" in note
    a100 = transfer_note("auto", get_gpu("a100"), m8)
    assert a100.startswith("derived profile a100/llama-3.1-70b")
    assert "layer kernels derived from H200 TP-8 shard measurements" in a100
    assert "B x 0.6667" in a100
    with pytest.raises(
        FileNotFoundError, match=r"at tp=4 \(installed for tp 8; other GPUs: a100 tp 8\)"
    ):
        build_latency("profile", get_gpu("h200"), get_model("llama-3.1-70b", 4))
    assert build_latency("auto", get_gpu("h200"), get_model("llama-3.1-70b", 4)).name == (
        "roofline"
    )
    assert not math.isnan(
        lat.predict(
            WorkShape(
                prefill_tokens=512,
                prefill_attn_pairs=512 * 513 / 2,
                prefill_kv_tokens=512,
                num_prefill_seqs=1,
                logits_tokens=1,
            ),
            64,
        )
    )


def test_norm_latency_mean_and_capacity_table():
    import pandas as pd

    from bulletsim.norm_latency import capacity_table, mean_norm_latency_s

    df = pd.DataFrame(
        {
            "arrival_s": [0.0, 1.0, 2.0],
            "finish_s": [2.0, 5.0, None],  # the third never finished: left out
            "output_tokens": [10, 20, 5],
        }
    )
    assert mean_norm_latency_s(df) == pytest.approx((0.2 + 0.2) / 2)
    rows = capacity_table({"bullet": [4.0, 4.4, 4.2], "chunked-2048": [2.0, 2.2, 2.1]}, 0.0)
    b = rows[0]
    assert b["capacity_req_s"] == pytest.approx(4.2) and b["vs"] == "chunked-2048"
    assert b["ratio"] == pytest.approx(2.0) and b["lo"] < 4.2 < b["hi"]
    assert "ratio" not in rows[1]


def test_shard_shape_transfer_reproduces_the_target_shard_of_the_same_roofline(shard_doc):
    """Samples drawn from one SRM at TP 4, moved to TP 8 by the SRM's shape ratio, predict
    what samples drawn at TP 8 give (up to the two fits' differences), and say derived."""
    from bulletsim.latency.profile import ProfileLatency
    from bulletsim.latency.roofline import SRMParams
    from calibrate.derive_shard import derive_tp
    from calibrate.fit import fit_profile
    from calibrate.grids import QUICK
    from calibrate.synthetic import synthetic_samples

    m4, g = get_model("llama-3.1-70b", 4), get_gpu("h200")
    meta = dict(shard_doc["meta"], tp=4)
    doc4 = fit_profile(synthetic_samples(QUICK, m4, g, SRMParams()), m4, g, meta)
    doc8 = derive_tp(doc4, 8)
    assert doc8["meta"]["kind"] == "derived" and doc8["meta"]["derived_from"]["tp"] == 4
    m8 = get_model("llama-3.1-70b", 8)
    got, want = ProfileLatency(doc8, g, m8), ProfileLatency(shard_doc, g, m8)
    for shape, n in (
        (WorkShape(decode_tokens=64, decode_ctx_tokens=64 * 2048, logits_tokens=64), 32),
        (WorkShape(prefill_tokens=2048, prefill_attn_pairs=2048 * 2049 / 2,
                   prefill_kv_tokens=2048, num_prefill_seqs=1, logits_tokens=1), 96),
    ):  # fmt: skip
        assert got.predict(shape, n) == pytest.approx(want.predict(shape, n), rel=0.05)
    with pytest.raises(ValueError, match="measured shard"):
        derive_tp(doc8, 2)


def test_kernel_limits_name_only_real_restrictions():
    from bulletsim.gpu.selection import GEMM_PATHS
    from bulletsim.latency.factory import ALL_GEMM_PATHS, kernel_limits

    assert set(GEMM_PATHS) == ALL_GEMM_PATHS
    meta = {"kernel_restrictions": {"gemm_paths": list(GEMM_PATHS), "decode_backend": "auto"}}
    assert kernel_limits(meta) == {}
    meta["kernel_restrictions"]["gemm_paths"] = ["cublas"]
    assert kernel_limits(meta) == {"gemm_paths": ["cublas"]}
    assert kernel_limits({"kernel_restrictions": None}) == {}


@pytest.mark.parametrize("gpu_name, tp", [("h200", 2), ("h200", 8), ("a100", 8), ("h20", 4)])
def test_roofline_prices_allreduce_by_the_committed_nccl_fit(gpu_name, tp):
    """Not a fixed latency: the ring model of the committed 2-GPU table, moved to n GPUs by the
    ring formula and to another GPU by its NVLink datasheet ratio (as the profiles' transfer)."""
    import json

    from bulletsim.latency.ops import linear_ops
    from bulletsim.latency.roofline import NCCL_TABLE, SRMParams, op_time_s

    table = json.loads(NCCL_TABLE.read_text())
    ab = AlphaBeta(**table["alpha_beta"])
    gpu = get_gpu(gpu_name)
    ratio = gpu.interconnect_bytes_s / get_gpu("h200").interconnect_bytes_s
    target = AlphaBeta(ab.alpha2_s, ab.bus_bw_bytes_s * ratio)
    model = get_model("llama-3.1-70b", tp)
    for tokens in (1, 64, 2048):
        ar = [op for op in linear_ops(model, tokens) if op.op_class == "allreduce"]
        assert len(ar) == 2
        buffer = tokens * model.hidden_size * 2
        want = target.time_s(buffer, tp)
        assert op_time_s(ar[0], 132, gpu, SRMParams()) == pytest.approx(want, rel=1e-9)
    # at the measured group (2 H200s) the fit stays near the measured whole-GPU cells
    if (gpu_name, tp) == ("h200", 2):
        col = table["sms"].index(max(table["sms"]))
        errs = [
            target.time_s(b, 2) / row[col] - 1
            for b, row in zip(table["bytes"], table["time_s"], strict=True)
        ]
        assert sorted(map(abs, errs))[len(errs) // 2] < 0.10  # median 7.6% (fit report)


def test_roofline_run_says_where_its_allreduce_comes_from():
    from bulletsim.latency.factory import transfer_note

    h200_2 = transfer_note("roofline", get_gpu("h200"), get_model("llama-3.1-70b", 2))
    assert "fitted to NCCL measured on 2 H200s" in h200_2 and "7.38 us" in h200_2
    a100_8 = transfer_note("roofline", get_gpu("a100"), get_model("llama-3.1-70b", 8))
    assert "derived (ring formula, n=8, a100 NVLink)" in a100_8 and "/ 174 GB/s" in a100_8
    assert transfer_note("roofline", get_gpu("h200"), get_model("llama-3.1-8b")) is None


def test_a_table_of_another_gpu_gets_the_derived_profiles_transfer(shard_doc):
    """Issue 13 fault 6: an H200 table attached to an A100 profile is moved by the same NVLink
    and SM-axis transfer `calibrate.derive` gives derived profiles, never attached as is."""
    from calibrate.derive import derive
    from calibrate.shard_profile import attach

    table = table_from_run(fake_run())
    assert table["gpu"] == "h200"
    via_h200 = derive(attach(shard_doc, table), get_gpu("a100"))  # derived A100 profile
    direct = attach(derive(shard_doc, get_gpu("a100")), table)  # H200 table on A100 kernels
    sec = direct["collectives"]["allreduce"]
    assert sec == via_h200["collectives"]["allreduce"]
    assert sec["sms"] == [7, 26, 108] and sec["kind"] == "derived"
    assert "B x 0.6667 (a100 / h200 NVLink datasheet)" in direct["meta"]["parts"]["allreduce"]
    assert "SM axis x 108/132" in direct["meta"]["parts"]["allreduce"]
