"""MoE pricing: routing distributions, the busiest GPU's expected load, the roofline's MoE
kernels (hand-checked numbers) and the grouped-GEMM reference checker (CPU torch, tiny)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bulletsim.core import WorkShape
from bulletsim.hardware import get_gpu
from bulletsim.latency.moe import (
    SKEWED,
    UNIFORM,
    Routing,
    expected_tiles,
    expert_load,
    expert_pick_probs,
    parse_routing,
)
from bulletsim.latency.ops import linear_ops, moe_ops
from bulletsim.latency.roofline import RooflineLatency
from bulletsim.models import get_model

QWEN = get_model("qwen3-235b-a22b")
QWEN_EP = get_model("qwen3-235b-a22b-ep8")


def test_qwen3_shapes_match_the_hf_config_fixture():
    from pathlib import Path

    from bulletsim.hf_config import model_from_hf_config

    cfg = Path(__file__).parent / "fixtures" / "model_configs" / "qwen3-235b-a22b.json"
    hf = model_from_hf_config(cfg, tp=8)
    shape = "num_layers hidden_size num_heads num_kv_heads head_dim vocab_size"
    for f in (*shape.split(), "num_experts", "experts_per_token", "moe_intermediate_size"):
        assert getattr(hf, f) == getattr(QWEN, f), f
    assert (QWEN_EP.ep, QWEN_EP.moe_shards, QWEN.moe_shards) == (8, 1, 8)


def test_ep_must_match_tp():
    with pytest.raises(ValueError, match="ep=4 must be 1 or tp=8"):
        replace(QWEN, ep=4)
    with pytest.raises(ValueError, match="be its ep=8.*valid: 8"):
        get_model("qwen3-235b-a22b-ep8", tp=4)


def test_routing_parse_and_errors():
    assert parse_routing("uniform") is UNIFORM
    assert parse_routing("zipf:0.6") == SKEWED and SKEWED.name == "zipf:0.6"
    assert parse_routing("ZIPF:1.5:7") == Routing("zipf", 1.5, 7)
    for bad in ("zipf", "zipf:x", "pareto:1", "zipf:0", "zipf:9"):
        with pytest.raises(ValueError, match="routing|exponent"):
            parse_routing(bad)


def test_sampling_is_seeded_distinct_per_token_and_skewed():
    ids = SKEWED.sample(500, 128, 8, np.random.default_rng(3))
    again = SKEWED.sample(500, 128, 8, np.random.default_rng(3))
    assert (ids == again).all() and ids.shape == (500, 8)
    assert all(len(set(row)) == 8 for row in ids.tolist())  # k distinct experts per token
    c_uni = UNIFORM.counts(4000, 128, 8, np.random.default_rng(0))
    c_zipf = SKEWED.counts(4000, 128, 8, np.random.default_rng(0))
    assert c_uni.sum() == c_zipf.sum() == 32000
    # uniform: max/mean near 1 (binomial spread); zipf:0.6: several times the mean
    assert c_uni.max() / c_uni.mean() < 1.3 < 3.0 < c_zipf.max() / c_zipf.mean()


def test_pick_probs():
    assert expert_pick_probs(UNIFORM, 128, 8) == pytest.approx(np.full(128, 1 / 16))
    pi = expert_pick_probs(SKEWED, 128, 8)
    assert pi.sum() == pytest.approx(8) and pi.max() <= 1.0
    assert 5 < pi.max() / pi.mean() < 9  # documented in moe.py: ~6.9x


def test_expected_tiles_exact_small_cases():
    # one token, 8 of 128 experts: each expert has one row with probability 1/16 -> 8 tiles
    assert expected_tiles(1, np.full(128, 1 / 16), 128) == pytest.approx(8.0)
    # p = 1: every expert has exactly T rows -> ceil(T / B) tiles each
    assert expected_tiles(300, np.ones(3), 128) == pytest.approx(9.0)


def test_tp_load_is_exact_and_ep_load_matches_monte_carlo():
    one = expert_load(1, 128, 8, 1, UNIFORM)
    # one row per touched expert: the smallest row tile (16) pads each of the 8 experts
    assert (one.copies, one.experts_touched, one.padded_rows, one.tile_m) == pytest.approx(
        (8, 8, 8 * 16, 16)
    )
    assert expert_load(1, 128, 8, 1, UNIFORM, tile_m=128).padded_rows == pytest.approx(1024)
    # 8192 tokens: 512 rows per expert -> the largest tile
    assert expert_load(8192, 128, 8, 1, UNIFORM).tile_m == 128
    rng = np.random.default_rng(5)
    for routing in (UNIFORM, SKEWED):
        for t in (64, 1024):
            mc = np.mean(
                [routing.counts(t, 128, 8, rng).reshape(8, 16).sum(1).max() for _ in range(80)]
            )
            load = expert_load(t, 128, 8, 8, routing)
            assert load.copies == pytest.approx(mc, rel=0.04), (routing.name, t)
            assert load.mean_copies == t
    # imbalance: the busiest of 8 EP GPUs, uniform vs zipf:0.6 at 2048 tokens
    assert 1.0 < expert_load(2048, 128, 8, 8, UNIFORM).imbalance < 1.06
    assert expert_load(2048, 128, 8, 8, SKEWED).imbalance > 1.2


def test_moe_ops_hand_checked_decode_of_one_token():
    """T = 1 on TP 8: 8 copies, 8 experts touched, each padded to one 16-row tile; the
    router reads its 128 x 4096 weight. Every number below is by hand."""
    gate_up, down = moe_ops(QWEN, 1)
    h, i = 4096, 1536 // 8
    assert gate_up.bytes == 2 * (8 * h * 2 * i + 8 * (h + 2 * i)) + 2 * (h * 128 + h + 128)
    assert gate_up.flops == 2.0 * 8 * 16 * h * 2 * i + 2.0 * h * 128
    assert (gate_up.gemm_mnk, gate_up.gemm_groups) == ((16, 2 * i, h), 8)
    assert down.bytes == 2 * (8 * i * h + 8 * (i + 2 * h) + h)
    names = [o.name for o in linear_ops(QWEN, 1)]
    assert names[:5] == ["qkv", "o", "moe_gate_up", "moe_down", "norm_rope_act"]


def test_ep_reads_whole_experts_and_prices_imbalance():
    dec = WorkShape(decode_tokens=1, decode_ctx_tokens=1000, logits_tokens=1)
    # EP, one token: the busiest GPU touches one whole expert on average (16 local of 128),
    # plus the replicated router's 128 x 4096 weight
    gate_up = moe_ops(QWEN_EP, 1)[0]
    assert gate_up.bytes == pytest.approx(2 * 4096 * 3072 + 2 * 4096 * 128, rel=0.01)
    h20 = get_gpu("h20")
    pre = WorkShape(prefill_tokens=4096, prefill_attn_pairs=4096 * 4097 / 2,
                    prefill_kv_tokens=4096, num_prefill_seqs=1, logits_tokens=1)  # fmt: skip
    uni = RooflineLatency(h20, QWEN_EP).predict_ops(pre, 78)
    skew = RooflineLatency(h20, replace(QWEN_EP, moe_routing="zipf:0.6")).predict_ops(pre, 78)
    ratio = (skew["moe_gate_up"] + skew["moe_down"]) / (uni["moe_gate_up"] + uni["moe_down"])
    load_ratio = (
        expert_load(4096, 128, 8, 8, SKEWED).padded_rows
        / expert_load(4096, 128, 8, 8, UNIFORM).padded_rows
    )
    assert ratio == pytest.approx(load_ratio, rel=0.05) and ratio > 1.2
    assert skew["qkv"] == uni["qkv"]  # attention is not routed
    assert RooflineLatency(h20, QWEN).predict(dec, 78) > 0


def test_grouped_reference_checker_on_cpu():
    torch = pytest.importorskip("torch")
    from calibrate import moe_kernels as mk

    g = torch.Generator().manual_seed(0)
    counts = [3, 0, 5, 1]
    a = torch.randn(9, 32, generator=g).to(torch.bfloat16)
    w = torch.randn(4, 16, 32, generator=g).to(torch.bfloat16)
    ref = mk.grouped_reference(a, w, counts)
    assert ref.shape == (9, 16)
    assert torch.allclose(ref[3:8], a[3:8].float() @ w[2].float().t())
    out = torch.full((9, 16), float("nan")).to(torch.bfloat16)
    assert mk.rel_err(mk.grouped_loop(a, w, counts, out), ref) < 1e-2
    wrong = mk.grouped_loop(a, w.flip(0), counts, out.clone())  # experts swapped
    assert mk.rel_err(wrong, ref) > 0.5
    assert mk.rel_err(torch.full_like(ref, float("nan")), ref) == float("inf")
    expert = torch.tensor([2, 0, 3, 2, 2, 0, 2, 2, 0])
    order, cnt, ends = mk.align(expert, 4)
    assert cnt.tolist() == [3, 0, 5, 1] and ends.tolist() == [3, 3, 8, 9]
    assert expert[order].tolist() == sorted(expert.tolist())
    tile_e, tile_row = mk.tile_schedule(cnt, ends, 9 // 2 + 4, 2)
    assert tile_e.tolist() == [0, 0, 2, 2, 2, 3, -1, -1]
    assert tile_row.tolist()[:6] == [0, 2, 3, 5, 7, 8]
    if mk.has_torch_grouped_mm():
        try:
            got = mk.grouped_torch(a, w, ends)
        except RuntimeError as e:  # a CPU build without the grouped kernel
            pytest.skip(f"torch._grouped_mm on CPU: {e}")
        assert mk.rel_err(got, ref) < 1e-2


def test_moe_block_reference_combines_weighted_experts():
    torch = pytest.importorskip("torch")
    from calibrate import moe_kernels as mk

    g = torch.Generator().manual_seed(1)
    h = torch.randn(3, 8, generator=g)
    wgu = torch.randn(2, 4, 8, generator=g)
    wd = torch.randn(2, 8, 2, generator=g)
    token, expert = torch.tensor([0, 0, 2]), torch.tensor([0, 1, 1])
    weight = torch.tensor([0.25, 0.75, 1.0])
    out = mk.moe_reference(h, token, expert, weight, wgu, wd)

    def ffn(x, e):
        gate, up = (x @ wgu[e].t()).chunk(2, -1)
        return (torch.nn.functional.silu(gate) * up) @ wd[e].t()

    assert torch.allclose(out[0], 0.25 * ffn(h[0], 0) + 0.75 * ffn(h[0], 1), atol=1e-5)
    assert torch.equal(out[1], torch.zeros(8))  # token 1 was routed nowhere on this GPU
    assert torch.allclose(out[2], ffn(h[2], 1), atol=1e-5)


def _synthetic_qwen_profile() -> dict:
    """A Qwen3 EP-8 profile fitted on synthetic samples from the default SRM (uniform)."""
    from bulletsim.latency.roofline import SRMParams
    from calibrate.fit import fit_profile
    from calibrate.moe_calibrate import SMOKE_GRID
    from calibrate.synthetic import synthetic_samples

    h200 = get_gpu("h200")
    df = synthetic_samples(SMOKE_GRID, QWEN_EP, h200, SRMParams())
    meta = {
        "gpu": "h200",
        "model": QWEN_EP.name,
        "tp": 8,
        "kind": "measured",
        "mechanism": "green-ctx",
        "granularity_sms": 8,
        "timing_method": "synthetic",
        "date": "2026-11-30",
        "moe": {"routing": "uniform"},
    }
    return fit_profile(df, QWEN_EP, h200, meta)


def test_profile_measured_uniform_predicts_a_skewed_routing():
    from bulletsim.latency.profile import ProfileLatency

    doc = _synthetic_qwen_profile()
    h200 = get_gpu("h200")
    skew_model = replace(QWEN_EP, moe_routing="zipf:0.6")
    uni, skew = ProfileLatency(doc, h200, QWEN_EP), ProfileLatency(doc, h200, skew_model)
    assert "moe_rerouted" not in uni.meta and skew.meta["moe_rerouted"]["predicting"] == "zipf:0.6"
    assert doc["meta"].get("moe_rerouted") is None  # the input document is not modified
    t = 4096  # beyond the grid's 1024 tokens: the edge is scaled by the SRM, rerouted alike
    shape = WorkShape(prefill_tokens=t, prefill_attn_pairs=t * (t + 1) / 2,
                      prefill_kv_tokens=t, num_prefill_seqs=1, logits_tokens=1)  # fmt: skip
    params = uni.params
    from bulletsim.latency.roofline import op_time_s

    for name, k in (("gate_up", 2), ("down", 3)):
        srm_ratio = op_time_s(linear_ops(skew_model, t)[k], 32, h200, params) / op_time_s(
            linear_ops(QWEN_EP, t)[k], 32, h200, params
        )
        got = skew.op_time(name, shape, 32) / uni.op_time(name, shape, 32)
        # EP, compute-bound: the busiest GPU's copies grow with the skew (~1.3x)
        assert got == pytest.approx(srm_ratio, rel=1e-6) and got > 1.15
    assert skew.op_time("qkv", shape, 32) == uni.op_time("qkv", shape, 32)
    # inside the grid (1024 tokens, 132 SMs) the measured cell is scaled by the same ratio
    small = WorkShape(prefill_tokens=1024, prefill_attn_pairs=1024 * 1025 / 2,
                      prefill_kv_tokens=1024, num_prefill_seqs=1, logits_tokens=1)  # fmt: skip
    op_s, op_u = linear_ops(skew_model, 1024)[2], linear_ops(QWEN_EP, 1024)[2]
    ratio = op_time_s(op_s, 132, h200, params) / op_time_s(op_u, 132, h200, params)
    got = skew.op_time("gate_up", small, 132) / uni.op_time("gate_up", small, 132)
    assert got == pytest.approx(ratio, rel=1e-6)


@pytest.mark.parametrize("dense", [True, False])
def test_moe_block_pipeline_on_cpu_matches_the_reference(dense):
    """align -> grouped gate_up -> SiLU*mul -> grouped down -> combine (the GPU block's torch
    path, SiLU in torch here) against the per-expert float32 reference; EP (`dense=False`)
    keeps only the copies of experts 0..1 of 4, as the busiest GPU would."""
    torch = pytest.importorskip("torch")
    from calibrate import moe_kernels as mk

    if not mk.has_torch_grouped_mm():
        pytest.skip("torch without _grouped_mm")
    g = torch.Generator().manual_seed(2)
    t, k, e, hid, inter = 6, 2, 4, 32, 16
    ids = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(t)])  # [T, k]
    tok, choice = torch.nonzero(torch.ones(t, k, dtype=torch.bool), as_tuple=True)
    expert, slot = ids.flatten(), tok * k + choice
    if not dense:
        keep = expert < 2
        tok, expert, slot = tok[keep], expert[keep], slot[keep]
    weight = torch.rand(len(tok), generator=g)
    h = torch.randn(t, hid, generator=g).to(torch.bfloat16)
    wgu = (torch.randn(e, 2 * inter, hid, generator=g) * hid**-0.5).to(torch.bfloat16)
    wd = (torch.randn(e, hid, inter, generator=g) * inter**-0.5).to(torch.bfloat16)
    order, _, ends = mk.align(expert, e)
    try:
        gu = mk.grouped_torch(h.index_select(0, tok.index_select(0, order)), wgu, ends)
    except RuntimeError as err:
        pytest.skip(f"torch._grouped_mm on CPU: {err}")
    gate, up = gu.float().chunk(2, -1)
    act = (torch.nn.functional.silu(gate) * up).to(torch.bfloat16)
    y = mk.grouped_torch(act, wd, ends)
    full = torch.full((t * k, hid), float("nan")).to(torch.bfloat16)
    out = torch.full((t, hid), float("nan")).to(torch.bfloat16)
    mk.combine(y, order, slot, weight, full, out, t, k, dense)
    ref = mk.moe_reference(h, tok, expert, weight, wgu, wd)
    assert mk.rel_err(out, ref) < 2e-2


def test_moe_fit_pipeline_on_synthetic_samples(tmp_path):
    """Samples drawn from a known SRM (uniform for the fit, zipf:0.6 held back) -> the EP 8
    profile, its H20 transfer, and the skew check: rerouting recovers the skewed times the
    uniform profile misses."""
    import json

    from bulletsim.latency.profile_format import read_profile
    from bulletsim.latency.roofline import SRMParams
    from calibrate.moe_calibrate import SKEW_GRID, SMOKE_GRID
    from calibrate.moe_fit import fit_layout
    from calibrate.synthetic import synthetic_samples

    h200 = get_gpu("h200")
    src = tmp_path / "ep8"
    for routing, grid, sub in (("uniform", SMOKE_GRID, "uniform"), ("zipf:0.6", SKEW_GRID, "zipf")):
        df = synthetic_samples(grid, replace(QWEN_EP, moe_routing=routing), h200, SRMParams())
        (src / sub).mkdir(parents=True)
        with open(src / sub / "samples.jsonl", "w") as f:
            for rec in df.to_dict("records"):
                f.write(json.dumps({k: v for k, v in rec.items() if v == v}) + "\n")
        meta = {"gpu": "h200", "model": QWEN_EP.name, "kind": "measured", "date": "2026-11-30",
                "mechanism": "green-ctx", "granularity_sms": 8, "timing_method": "synthetic",
                "moe": {"routing": routing}}  # fmt: skip
        (src / sub / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    summary = fit_layout(src, out, install=False)
    measured = read_profile(out / "h200__qwen3-235b-a22b-ep8__tp8.json")
    derived = read_profile(out / "h20__qwen3-235b-a22b-ep8__tp8.json")
    assert measured["meta"]["tp"] == 8 and derived["meta"]["kind"] == "derived"
    check = summary["routing_check"]
    for op in ("gate_up", "down"):
        assert check["rerouted"][op]["median_pct"] < check["as_measured"][op]["median_pct"]
    assert check["skew_ratio_error"]["n"] > 0 and check["skew_ratio_error"]["median_pct"] < 5


def test_installed_qwen3_profiles_say_what_each_gpu_holds():
    from bulletsim.latency.factory import build_latency, transfer_note

    h20 = get_gpu("h20")
    for model, experts in ((QWEN, "128 experts x 192"), (QWEN_EP, "16 experts x 1536")):
        lat = build_latency("auto", h20, model)
        assert lat.name == f"profile:h20/{model.name} (derived, green-ctx)"
        note = transfer_note("auto", h20, model)
        assert experts in note and "derived" in note and "all-reduce" in note


def test_committed_qwen3_fit_reproduces_and_reruns_in_place(tmp_path):
    """Issue 13 fault 5: the documented regenerate step (moe_fit on the committed device-r3
    samples with the committed NCCL table) gives the committed TP-8 files, byte for byte; a
    second run into the same folder replaces only its own (marked) files."""
    import json
    import shutil
    from pathlib import Path

    from calibrate.moe_fit import TOOL, check_targets, fit_layout
    from calibrate.own_files import is_own_parquet
    from calibrate.shard_profile import read_table

    d = Path(__file__).parents[1] / "results/large-models/qwen3-235b-a22b"
    table = read_table(
        Path(__file__).parents[1] / "bulletsim/data/collectives/h200__nccl-2gpu.json"
    )
    src = tmp_path / "round" / "tp8"
    shutil.copytree(d / "device-r3" / "tp8", src)
    out = tmp_path / "out"
    for _ in range(2):
        check_targets(src.parent, out, ["tp8"], install=False)
        fit_layout(src, out / "tp8", install=False, collectives=table)
    for name in (
        "fit_summary.json",
        "h200__qwen3-235b-a22b__tp8.json",
        "h20__qwen3-235b-a22b__tp8.json",
    ):
        # every key and string as committed; floats to 1e-6: scipy's least_squares stops a few
        # ulps to 1e-8 apart across numpy/scipy releases (numpy 2.4 / scipy 1.17 moved them)
        got, want = (json.loads((p / "tp8" / name).read_text()) for p in (out, d))
        assert_json_close(got, want, name)
    assert is_own_parquet(out / "tp8" / "samples_uniform.parquet", TOOL)


def test_moe_fit_install_never_drops_an_installed_profiles_sections(tmp_path, monkeypatch, capsys):
    """An installed Qwen3 profile is replaced only with --replace, and then keeps what this fit
    does not make (here: its collectives section, when no --collectives is given); a new-user
    tester's finding: --install had dropped the all-reduce, and runs priced none. The install
    is `calibrate.install.install`'s, the one every calibrate tool installs through."""
    import json
    import shutil
    from pathlib import Path

    import pytest

    import calibrate.install
    from calibrate.moe_fit import TOOL, check_targets, fit_layout

    calls = []
    real_install = calibrate.install.install

    def spy(doc, path, samples, replace, folder, name=None):
        calls.append((path.name, samples, folder))
        return real_install(doc, path, samples, replace, folder, name)

    monkeypatch.setattr(calibrate.install, "install", spy)

    d = Path(__file__).parents[1] / "results/large-models/qwen3-235b-a22b"
    src = tmp_path / "round" / "tp8"
    shutil.copytree(d / "device-r3" / "tp8", src)
    folder = tmp_path / "profiles"
    folder.mkdir()
    name = "h200__qwen3-235b-a22b__tp8.json"
    installed = json.loads((d / "tp8" / name).read_text())
    assert "collectives" in installed and installed["meta"]["written_by"] == TOOL
    (folder / name).write_text(json.dumps(installed))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="already installed.*--replace"):
        check_targets(src.parent, out, ["tp8"], install=True, folder=folder)
    check_targets(src.parent, out, ["tp8"], install=True, replace=True, folder=folder)
    fit_layout(src, out / "tp8", install=True, collectives=None, folder=folder)
    after = json.loads((folder / name).read_text())
    assert after["collectives"] == installed["collectives"]
    assert "collectives" not in json.loads((out / "tp8" / name).read_text())
    h20 = "h20__qwen3-235b-a22b__tp8.json"
    assert calls == [(name, None, folder), (h20, None, folder)]
    lines = capsys.readouterr().out.splitlines()
    assert f"replaced {folder / name} (kept from it: collectives, meta.parts)" in lines
    assert f"installed: {folder / name}" in lines and f"installed: {folder / h20}" in lines


def assert_json_close(got, want, where: str, rel: float = 1e-6) -> None:
    """`got` equals `want` key for key and string for string; floats within `rel`."""
    import math

    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            assert_json_close(got[k], want[k], f"{where}.{k}", rel)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_json_close(g, w, f"{where}[{i}]", rel)
    elif isinstance(want, float) and not isinstance(got, bool):
        assert math.isclose(got, want, rel_tol=rel, abs_tol=1e-300), f"{where}: {got} vs {want}"
    else:
        assert got == want, f"{where}: {got!r} vs {want!r}"
