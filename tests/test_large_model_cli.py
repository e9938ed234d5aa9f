"""The large-model runs from a new user's seat (issue 13): `--latency profile` finds every
committed TP / EP profile or names where it looked and what exists; MoE routing is selectable
(`--set moe.routing=...`, validated); the header names the parallelism actually used; the
measured / derived provenance comes before the results."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.config import load_config
from bulletsim.core import WorkShape
from bulletsim.hardware import get_gpu
from bulletsim.latency.factory import build_latency
from bulletsim.latency.profile_format import PROFILE_DIR, installed_for_model
from bulletsim.models import get_model

runner = CliRunner()
ENV = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}
COMMITTED = [
    ("h200", "llama-3.1-70b", 2),
    ("h200", "llama-3.1-70b", 4),
    ("h200", "llama-3.1-70b", 8),
    ("a100", "llama-3.1-70b", 8),
    ("h100", "llama-3.1-70b", 8),
    ("h200", "qwen3-235b-a22b", 8),
    ("h20", "qwen3-235b-a22b", 8),
    ("h200", "qwen3-235b-a22b-ep8", 8),
    ("h20", "qwen3-235b-a22b-ep8", 8),
]


@pytest.mark.parametrize("gpu, model, tp", COMMITTED)
def test_latency_profile_finds_every_committed_large_model_profile(gpu, model, tp):
    assert (gpu, tp) in installed_for_model(model)
    lat = build_latency("profile", get_gpu(gpu), get_model(model, tp))
    assert lat.name.startswith(f"profile:{gpu}/{model}")


def test_a_missing_profile_names_where_it_looked_and_what_exists():
    with pytest.raises(FileNotFoundError) as e:
        build_latency("profile", get_gpu("a100"), get_model("qwen3-235b-a22b"))
    msg = str(e.value)
    assert "a100__qwen3-235b-a22b__tp8.json" in msg and str(PROFILE_DIR) in msg
    assert "other GPUs: h20 tp 8, h200 tp 8" in msg and "--latency roofline" in msg


def test_routing_is_selectable_validated_and_priced():
    over = {"model": "qwen3-235b-a22b-ep8", "gpu": "h200", "moe": {"routing": "ZIPF:0.6"}}
    skewed = load_config(None, over).model_spec()
    assert skewed.moe_routing == "zipf:0.6" and skewed.ep == 8
    uniform = load_config(None, {**over, "moe": {}}).model_spec()
    assert uniform.moe_routing == "uniform"
    # the latency model prices the busiest GPU's load: a skewed 4096-token prefill on EP 8
    # costs more than a uniform one (measured zipf / uniform 1.00..1.08; the model 1.24)
    t = 4096
    shape = WorkShape(
        prefill_tokens=t, prefill_attn_pairs=t * (t + 1) / 2, prefill_kv_tokens=t,
        num_prefill_seqs=1, logits_tokens=1,
    )  # fmt: skip
    gpu = get_gpu("h200")
    t_u = build_latency("roofline", gpu, uniform).predict(shape, 132)
    t_z = build_latency("roofline", gpu, skewed).predict(shape, 132)
    assert t_z > 1.02 * t_u


RUN = ("run", "--trace", "alpaca", "-n", "8", "-q", "--no-write", "--gpu", "h200")


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--model", "qwen3-235b-a22b", "--set", "moe.routing=zipf"), "valid: uniform, zipf:S"),
        (("--model", "qwen3-235b-a22b", "--set", "moe.routing=zipf:0"), "valid: uniform"),
        (("--model", "qwen3-235b-a22b", "--set", "moe.routing=normal"), "unknown routing"),
        # issue 13 item 9: a bad seed names moe.routing and the forms; ranges agree
        (
            ("--model", "qwen3-235b-a22b", "--set", "moe.routing=zipf:0.6:-1"),
            "moe.routing='zipf:0.6:-1': zipf seed must be >= 0, got -1; valid: uniform, zipf:S, "
            "zipf:S:SEED (S in (0, 4], SEED an integer >= 0)",
        ),
        (
            ("--model", "qwen3-235b-a22b", "--set", "moe.routing=zipf:-1"),
            "exponent must be in (0, 4], got -1; valid: uniform, zipf:S, zipf:S:SEED (S in (0, 4]",
        ),
        (("--model", "qwen3-235b-a22b", "--set", "moe.route=uniform"), "valid: routing"),
        (("--model", "llama-3.1-8b", "--set", "moe.routing=zipf:0.6"), "dense model"),
    ],
)
def test_bad_routing_is_one_line_exit_2(args, needle):
    res = runner.invoke(app, [*RUN, *args], env=ENV)
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert needle in lines[0]


def test_ep_run_header_names_ep_and_routing_and_provenance_precedes_results():
    res = runner.invoke(
        app, [*RUN, "--model", "qwen3-235b-a22b-ep8", "--set", "moe.routing=zipf:0.6"], env=ENV
    )
    assert res.exit_code == 0, res.output
    out = res.output
    assert "(tp=8 attention, ep=8 experts, zipf:0.6 routing)" in out
    assert "(tp=8)" not in out
    prov = out.index("tp=8 shard profile h200/qwen3-235b-a22b-ep8")
    assert "rescaled to zipf:0.6" in out[prov:]
    assert prov < out.index("TTFT (ms)") < out.index("throughput")


def test_dense_tp_run_prints_provenance_before_the_results(tmp_path):
    out_dir = tmp_path / "run"
    argv = ["run", "--trace", "alpaca", "-n", "8", "-q", "--gpu", "a100"]
    res = runner.invoke(app, [*argv, "--model", "llama-3.1-70b", "--out", str(out_dir)], env=ENV)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "(tp=8)," in out
    derived = out.index("derived profile a100/llama-3.1-70b")
    parts = out.index("tp=8 shard profile a100/llama-3.1-70b")
    assert derived < parts < out.index("TTFT (ms)") < out.index("results:")


def test_fidelity_names_the_layout_and_its_provenance_before_the_comparison():
    measured = str(Path(__file__).parent / "fixtures" / "measured" / "vllm_bench_serve.json")
    argv = ["fidelity", "--measured", measured, "--gpu", "h200", "--model", "qwen3-235b-a22b-ep8"]
    res = runner.invoke(app, argv, env=ENV)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "(tp=8 attention, ep=8 experts, uniform routing)" in out
    assert out.index("tp=8 shard profile h200/qwen3-235b-a22b-ep8") < out.index("┃ metric")


def test_one_default_tp_rule_for_built_in_models_and_model_configs():
    # issue 13 item 9: --tp's help states the rule; the registry follows it on every GPU, and
    # a --model-config of Qwen3-235B gets tp 8 like --model qwen3-235b-a22b (was tp 1)
    from pathlib import Path

    from bulletsim.config import RunConfig
    from bulletsim.hardware import GPUS
    from bulletsim.models import MODELS, default_tp

    for g in GPUS.values():
        for m in MODELS.values():
            assert default_tp(m, g.memory_bytes, g.gpus_per_node) == m.tp, (g.name, m.name)
    fix = Path(__file__).parent / "fixtures" / "model_configs"
    for name, tp in (("qwen3-235b-a22b.json", 8), ("llama-3.1-8b.json", 1)):
        assert RunConfig(gpu="h20", model_config=str(fix / name)).model_spec().tp == tp
