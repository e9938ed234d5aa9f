"""The live model's GPU pieces on a tiny Llama (GPU only; skipped without CUDA): the fused
RoPE + KV-write kernel against the unfused path, and `--weights DIR` loaded into the engine's
fused layout. The full-size versions run in `benchmarks/live_weights_check.py`."""

from __future__ import annotations

import pytest

from bulletsim.models import ModelSpec

pytestmark = pytest.mark.gpu

TINY = ModelSpec(
    name="tiny-llama",
    num_layers=2,
    hidden_size=256,
    num_heads=4,
    num_kv_heads=1,
    head_dim=64,
    intermediate_size=512,
    vocab_size=256,
    tp=1,
    max_context_tokens=4096,
    source="test",
)


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    return torch


def test_fused_rope_store_matches_the_unfused_kernels(torch):
    from bulletsim.live.gpu.model import LiveModel

    m = LiveModel(TINY, num_pages=64, page_size=16, num_slots=16)
    assert m.fused_rope_store  # the start-up check found them equal


def test_a_checkpoint_is_loaded_in_the_engine_layout(torch, tmp_path):
    from safetensors.torch import save_file

    from bulletsim.live.gpu.checkpoint import expected_shapes
    from bulletsim.live.gpu.model import LiveModel

    g = torch.Generator().manual_seed(3)
    shapes = expected_shapes(TINY)
    t = {n: torch.randn(*s, generator=g).to(torch.bfloat16) for n, s in shapes.items()}
    save_file(t, str(tmp_path / "model.safetensors"))
    m = LiveModel(TINY, num_pages=64, page_size=16, num_slots=16, weights_dir=tmp_path)
    p = "model.layers.1."
    qkv = torch.cat([t[p + f"self_attn.{x}_proj.weight"] for x in "qkv"])
    assert torch.equal(m.layers[1].wqkv.cpu(), qkv)
    gu = torch.cat([t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"]])
    assert torch.equal(m.layers[1].wgu.cpu(), gu)
    assert torch.equal(m.embed.cpu(), t["model.embed_tokens.weight"])
    assert torch.equal(m.base.lm_head.cpu(), t["lm_head.weight"])
    assert m.weights.startswith("checkpoint")
