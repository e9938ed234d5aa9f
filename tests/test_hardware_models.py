"""GPU and model registries: datasheet numbers, derived sizes, lookups and their errors."""

from __future__ import annotations

import pytest

from bulletsim.hardware import GPUS, get_gpu
from bulletsim.models import MODELS, get_model


def test_gpu_registry_datasheet_numbers():
    assert sorted(GPUS) == ["a100", "h100", "h20", "h200"]
    a100, h200 = GPUS["a100"], GPUS["h200"]
    assert (a100.num_sms, a100.peak_bf16_flops, a100.mem_bw_bytes_s) == (108, 312e12, 2.039e12)
    assert (h200.num_sms, h200.peak_bf16_flops, h200.mem_bw_bytes_s) == (132, 989e12, 4.8e12)
    assert GPUS["h20"].num_sms == 78 and GPUS["h100"].mem_bw_bytes_s == 3.35e12
    assert h200.green_ctx_granularity == 8 and a100.green_ctx_granularity == 2
    assert all(g.source and g.sms_per_tpc == 2 for g in GPUS.values())
    assert h200.memory_bytes > GPUS["h100"].memory_bytes


@pytest.mark.parametrize("alias", ["a100", "A100", "a100-80gb", "NVIDIA A100-SXM4-80GB"])
def test_get_gpu_aliases(alias):
    assert get_gpu(alias) is GPUS["a100"]


def test_get_gpu_torch_device_names():
    assert get_gpu("NVIDIA H100 80GB HBM3") is GPUS["h100"]
    assert get_gpu("NVIDIA H200") is GPUS["h200"] and get_gpu("h20") is GPUS["h20"]


def test_get_gpu_unknown_lists_valid():
    with pytest.raises(ValueError, match=r"unknown GPU 'v100'; valid: a100, h100, h20, h200"):
        get_gpu("v100")


def test_llama_8b_sizes():
    m = get_model("llama-3.1-8b")
    assert m.kv_bytes_per_token_per_gpu == 131072  # 2 * 32 layers * 8 heads * 128 * 2 B
    assert m.params == pytest.approx(8.03e9, rel=0.01)
    assert m.weight_bytes == pytest.approx(16.06e9, rel=0.01)
    assert m.weight_bytes_per_gpu == m.weight_bytes


def test_tp_shards_weights_and_kv():
    m70 = get_model("llama-3.1-70b")
    assert m70.tp == 8 and m70.params == pytest.approx(70.6e9, rel=0.01)
    assert m70.weight_bytes_per_gpu == m70.weight_bytes // 8
    assert m70.kv_bytes_per_token_per_gpu == 2 * 80 * 1 * 128 * 2
    assert get_model("llama-3.1-70b", tp=2).kv_bytes_per_token_per_gpu == 2 * 80 * 4 * 128 * 2


def test_qwen3_moe_shape():
    q = get_model("qwen3-235b-a22b")
    assert (q.num_layers, q.num_experts, q.experts_per_token) == (94, 128, 8)
    assert q.params == pytest.approx(235e9, rel=0.01)
    assert q.active_params == pytest.approx(22e9, rel=0.03)
    # 4 KV heads over 8 GPUs: each GPU keeps one replicated head.
    assert q.kv_heads_per_gpu == 1
    assert q.kv_bytes_per_token_per_gpu == 2 * 94 * 1 * 128 * 2


def test_get_model_errors():
    with pytest.raises(ValueError, match="unknown model 'gpt-5'; valid: llama-3.1-8b"):
        get_model("gpt-5")
    # Every kind of bad degree names the valid ones: not dividing the heads, zero, negative,
    # more GPUs than a node holds (8), and more than the 8-GPU node even where heads divide.
    for tp in (3, 0, -2, 16, 32):
        with pytest.raises(
            ValueError, match=rf"tp={tp} is not .* llama-3.1-8b .*valid: 1, 2, 4, 8$"
        ):
            get_model("llama-3.1-8b", tp=tp)
    assert get_model("llama-3.1-8b", tp=16, max_gpus=16).tp == 16  # a bigger node allows it
    with pytest.raises(ValueError, match="valid: 1, 2, 4$"):  # a 4-GPU node
        get_model("llama-3.1-70b", tp=8, max_gpus=4)
    assert get_model("LLaMA-3.1-8B", tp=2).tp == 2
    assert set(MODELS) == {
        "llama-3.1-8b",
        "llama-3.1-70b",
        "qwen3-235b-a22b",
        "qwen3-235b-a22b-ep8",
    }
