"""The SM-scaling roofline: kernel costs, SM scaling, waves, contention, fast == slow path."""

from __future__ import annotations

import dataclasses

import pytest

from bulletsim.core import CoRunner, WorkShape
from bulletsim.hardware import get_gpu
from bulletsim.latency.base import LatencyModel
from bulletsim.latency.ops import experts_touched, gemm, head_ops, layer_ops
from bulletsim.latency.roofline import (
    DEFAULT_ALPHA,
    RooflineLatency,
    SRMParams,
    op_time_s,
    wave_efficiency,
)
from bulletsim.models import get_model

LLAMA = get_model("llama-3.1-8b")
H200 = get_gpu("h200")


def prefill(q: int, cached: int = 0, layers: int | None = None) -> WorkShape:
    return WorkShape(
        prefill_tokens=q,
        prefill_attn_pairs=q * cached + q * (q + 1) / 2,
        prefill_kv_tokens=cached + q,
        num_prefill_seqs=1,
        num_layers=layers,
        logits_tokens=1,
    )


def decode(batch: int, ctx: int) -> WorkShape:
    return WorkShape(decode_tokens=batch, decode_ctx_tokens=batch * ctx, logits_tokens=batch)


def test_prefill_flops_are_two_params_per_token_plus_attention():
    shape = prefill(2048)
    ops = [op for op in layer_ops(LLAMA, shape) if op.op_class != "attn_prefill"]
    total = LLAMA.num_layers * sum(o.flops for o in ops) + sum(
        o.flops for o in head_ops(LLAMA, shape)
    )
    # lm_head runs on one row only, so the embedding and lm_head params (1.05 B) drop out.
    non_embedding = LLAMA.params - 2 * LLAMA.vocab_size * LLAMA.hidden_size
    assert total == pytest.approx(2 * non_embedding * 2048, rel=0.03)
    attn = [op for op in layer_ops(LLAMA, shape) if op.op_class == "attn_prefill"][0]
    assert attn.flops == pytest.approx(4 * (2048 * 2049 / 2) * 128 * 32)


def test_decode_reads_weights_and_kv_once():
    shape = decode(64, 1024)
    ops = layer_ops(LLAMA, shape)
    weights = sum(o.bytes for o in ops if o.op_class == "gemm") * LLAMA.num_layers
    # GEMM bytes = weights once + 64 rows of activations in and out (~2% at batch 64).
    assert weights == pytest.approx(LLAMA.weight_bytes - 2 * 128256 * 4096 * 2, rel=0.03)
    kv = [o for o in ops if o.name == "attn_decode"][0].bytes * LLAMA.num_layers
    assert kv == pytest.approx(64 * 1024 * LLAMA.kv_bytes_per_token_per_gpu, rel=0.01)


def test_tp_adds_two_allreduces_and_moe_reads_touched_experts():
    ops = layer_ops(get_model("llama-3.1-70b"), decode(8, 100))
    ar = [o for o in ops if o.name == "allreduce"]
    assert len(ar) == 2 and ar[0].bytes == pytest.approx(2 * 7 / 8 * 8 * 8192 * 2)
    assert experts_touched(1, 128, 8) == pytest.approx(8)
    assert 120 < experts_touched(64, 128, 8) < 128
    qwen = get_model("qwen3-235b-a22b")
    names = [o.name for o in layer_ops(qwen, decode(1, 100))]
    # The router is priced inside moe_gate_up, so the MoE kernels keep the dense MLP's
    # positions (qkv, o, gate_up, down, norm_rope_act): what a profile's grids index.
    assert names[:5] == ["qkv", "o", "moe_gate_up", "moe_down", "norm_rope_act"]


def test_batch1_decode_is_memory_bound_at_weight_bandwidth():
    model = RooflineLatency(H200, LLAMA)
    t = model.predict(decode(1, 128), 132)
    ideal = LLAMA.weight_bytes / H200.mem_bw_bytes_s  # 3.3 ms at the datasheet rate
    assert ideal * 1.2 < t < ideal * 2.0
    assert all(
        op_time_s(o, 132, H200, model.params)
        == pytest.approx(DEFAULT_ALPHA[o.op_class] * o.bytes / H200.mem_bw_bytes_s)
        for o in layer_ops(LLAMA, decode(1, 128))
    )


def test_prefill_scales_with_sms_and_decode_saturates_past_knee():
    model = RooflineLatency(H200, LLAMA)
    p32, p64, p128 = (model.predict(prefill(4096), n) for n in (32, 64, 128))
    assert p32 / p64 == pytest.approx(2.0, rel=0.1) and p64 / p128 == pytest.approx(2.0, rel=0.1)
    knee = round(model.params.bw_knee_frac * 132)
    d_knee, d_full = model.predict(decode(64, 2048), knee + 8), model.predict(decode(64, 2048), 132)
    assert d_knee == pytest.approx(d_full, rel=0.01)
    assert model.predict(decode(64, 2048), knee // 2) > 1.7 * d_full


def test_wave_quantization_steps():
    params = SRMParams()
    op = gemm("x", 1024, 1024, 4096, 2)  # 8 x 8 = 64 tiles of 128 x 128
    assert wave_efficiency(op, 64, params) == 1.0
    assert wave_efficiency(op, 63, params) == pytest.approx(64 / 126)
    assert op_time_s(op, 63, H200, params) > 1.9 * op_time_s(op, 64, H200, params)
    assert op_time_s(op, 64, H200, params) == pytest.approx(op_time_s(op, 100, H200, params))


def test_contention_slows_decode_more_than_prefill():
    model = RooflineLatency(H200, LLAMA)
    d_alone = model.predict(decode(64, 2048), 40)
    d_co = model.predict(decode(64, 2048), 40, CoRunner("prefill", 92))
    p_alone = model.predict(prefill(4096), 92)
    p_co = model.predict(prefill(4096), 92, CoRunner("decode", 40))
    assert d_co / d_alone > p_co / p_alone > 1.0
    assert p_co / p_alone < 1.08  # prefill holding > 60% of SMs slows < 8% (Bullet paper)
    # Both lanes on every SM: each gets half of them.
    assert model.predict(prefill(4096), 132, CoRunner("decode", 132)) > 1.8 * model.predict(
        prefill(4096), 132
    )


@pytest.mark.parametrize(
    "shape",
    [
        prefill(2048),
        prefill(512, cached=3000, layers=4),
        decode(1, 10),
        decode(200, 1500),
        dataclasses.replace(prefill(1000, cached=200), decode_tokens=48, decode_ctx_tokens=90_000),
    ],
)
@pytest.mark.parametrize("model_name", ["llama-3.1-8b", "llama-3.1-70b", "qwen3-235b-a22b"])
@pytest.mark.parametrize("co_runner", [None, CoRunner("prefill", 80)])
def test_memoized_predict_equals_per_op_sum(shape, model_name, co_runner):
    model = RooflineLatency(H200, get_model(model_name))
    for n in (16, 56, 132, 56):  # the repeat hits the memo
        fast = model.predict(shape, n, co_runner)
        assert fast == pytest.approx(sum(model.predict_ops(shape, n, co_runner).values()), rel=1e-9)


def test_layer_window_is_k_layers_without_step_overhead():
    model = RooflineLatency(H200, LLAMA)
    one = model.predict(prefill(1024, layers=1), 132)
    assert model.predict(prefill(1024, layers=8), 132) == pytest.approx(8 * one)
    full = model.predict(prefill(1024), 132)
    assert full > 32 * one + model.params.step_overhead_s
    assert model.predict(WorkShape(), 132) == 0.0


def test_magnitudes_llama_8b():
    a100 = RooflineLatency(get_gpu("a100"), LLAMA)
    assert 0.015 < a100.predict(decode(64, 1500), 108) < 0.025  # ~15-25 ms per step
    tokens_s = 8192 / a100.predict(prefill(8192), 108)
    assert 8_000 < tokens_s < 16_000
    h100 = RooflineLatency(get_gpu("h100"), LLAMA)
    assert a100.predict(decode(64, 1500), 108) > 1.4 * h100.predict(decode(64, 1500), 132)
    assert 2.0 < (8192 / h100.predict(prefill(8192), 132)) / tokens_s < 3.5


def test_errors_and_protocol():
    model = RooflineLatency(H200, LLAMA)
    assert isinstance(model, LatencyModel)
    assert model.describe()["kind"] == "roofline" and model.num_layers == 32
    for bad in (0, 133):
        with pytest.raises(ValueError, match=r"num_sms must be in 1\.\.132"):
            model.predict(decode(1, 1), bad)
    with pytest.raises(ValueError, match="alpha needs exactly the op classes gemm"):
        SRMParams(alpha={"gemm": 1.0})
    with pytest.raises(ValueError, match="bw_knee_frac"):
        SRMParams(bw_knee_frac=0.0)
