"""Model shapes from Hugging Face config.json files (fixtures in tests/fixtures/model_configs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bulletsim.hf_config import model_from_hf_config
from bulletsim.models import MODELS

FIX = Path(__file__).parent / "fixtures" / "model_configs"
SHAPE = (
    "num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "vocab_size",
    "max_context_tokens", "num_experts", "experts_per_token", "moe_intermediate_size",
)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "builtin"),
    [("llama-3.1-8b.json", "llama-3.1-8b"), ("qwen3-235b-a22b.json", "qwen3-235b-a22b")],
)
def test_configs_of_builtin_models_give_the_builtin_shapes(name, builtin):
    ref = MODELS[builtin]
    got = model_from_hf_config(FIX / name, tp=ref.tp)
    assert {f: getattr(got, f) for f in SHAPE} == {f: getattr(ref, f) for f in SHAPE}
    assert (
        got.params == ref.params
        and got.kv_bytes_per_token_per_gpu == ref.kv_bytes_per_token_per_gpu
    )


# published parameter counts (model cards), billions: total, active
@pytest.mark.parametrize(
    ("name", "total_b", "active_b", "context"),
    [
        ("qwen2.5-7b.json", 7.61, 7.61, 32768),
        ("qwen2.5-0.5b.json", 0.49, 0.49, 32768),  # tied embeddings: one vocab matrix
        ("qwen3-8b.json", 8.19, 8.19, 40960),
        ("mistral-7b-v0.1.json", 7.24, 7.24, 32768),
        ("mixtral-8x7b.json", 46.7, 12.9, 32768),
    ],
)
def test_parameter_counts_match_the_model_cards(name, total_b, active_b, context):
    m = model_from_hf_config(FIX / name)
    assert m.params / 1e9 == pytest.approx(total_b, rel=0.01)
    assert m.active_params / 1e9 == pytest.approx(active_b, rel=0.01)
    assert m.max_context_tokens == context


def test_what_the_shape_cannot_express_is_refused():
    with pytest.raises(ValueError, match="shared expert .* is not modelled"):
        model_from_hf_config(FIX / "qwen1.5-moe-a2.7b.json")
    assert (
        "sliding_window 4096 ignored" in model_from_hf_config(FIX / "mistral-7b-v0.1.json").source
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"model_type": "gpt2"}, "model_type 'gpt2' is not supported; valid: llama"),
        ({"num_hidden_layers": None}, "num_hidden_layers must be a positive integer, got None"),
        ({"torch_dtype": "int4"}, "torch_dtype 'int4'; valid: bfloat16"),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path, edit, message):
    cfg = json.loads((FIX / "qwen3-8b.json").read_text()) | edit
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=message):
        model_from_hf_config(tmp_path / "config.json")


def test_not_a_config(tmp_path):
    (tmp_path / "tokenizer.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        model_from_hf_config(tmp_path / "tokenizer.json")
    with pytest.raises(FileNotFoundError, match="--model-config file not found"):
        model_from_hf_config(tmp_path / "nope.json")


def test_name_and_tp():
    m = model_from_hf_config(FIX / "mixtral-8x7b.json", tp=2)
    assert m.name == "mixtral-8x7b" and m.tp == 2
    assert dataclasses.replace(m, tp=1).weight_bytes_per_gpu == 2 * m.weight_bytes_per_gpu
