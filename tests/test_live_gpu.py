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


def _pdl_chain(torch, pdl: bool) -> list:
    """GEMM -> add+RMSNorm -> GEMM -> RoPE+KV write -> GEMM -> SiLU*mul in a CUDA graph
    (each small kernel right after the GEMM that writes its input), replayed 3 times."""
    from bulletsim.gpu import kernels as kn

    g = torch.Generator(device="cuda").manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, device="cuda", dtype=torch.bfloat16, generator=g)

    def e(*shape):
        return torch.zeros(*shape, device="cuda", dtype=torch.bfloat16)

    t, h, qh, kvh, d = 24, 256, 4, 1, 64
    w1, w2, wqkv, norm, x_in = r(2 * h, h), r(h, h), r((qh + 2 * kvh) * d, h), r(h), r(t, h)
    cos, sin = kn.rope_cache(64, d)
    pos = torch.arange(t, device="cuda")
    slots = torch.randperm(t, device="cuda", generator=g)  # the same slots in both chains
    x, res, hbuf, gu, act = e(t, h), e(t, h), e(t, h), e(t, 2 * h), e(t, h)
    qkv, q, kc, vc = e(t, wqkv.shape[0]), e(t, qh, d), e(t, kvh, d), e(t, kvh, d)

    def step():
        torch.mm(x_in, w2.t(), out=x)
        kn.add_rmsnorm(x, res, norm, hbuf, pdl=pdl)
        torch.mm(hbuf, wqkv.t(), out=qkv)
        kn.rope_store(qkv, pos, slots, cos, sin, q, kc, vc, qh, kvh, d, pdl=pdl)
        torch.mm(hbuf, w1.t(), out=gu)
        kn.silu_mul(gu, act, pdl=pdl)

    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        step()
    s.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=s):
        step()
    res.zero_()
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    return [b.clone() for b in (x, res, hbuf, q, kc, vc, act)]


def test_small_kernels_with_pdl_give_the_same_bits_in_a_graph(torch):
    """add+RMSNorm, RoPE+KV write and SiLU*mul launched with programmatic dependent launch
    (as in the decode graphs): the same outputs, bit for bit, as without PDL."""
    from bulletsim.gpu import kernels as kn

    if not kn.pdl_available():
        pytest.skip("no programmatic dependent launch here")
    for a, b in zip(_pdl_chain(torch, False), _pdl_chain(torch, True), strict=True):
        assert torch.equal(a, b)


def test_direct_launches_match_the_jit_bit_for_bit(torch):
    """The small kernels launched directly (`DirectLaunch`, after a key's first JIT call) give
    the same bits as the JIT's launch, at row counts of every specialisation class; a tensor
    of another alignment gets its own compiled variant, not the aligned one."""
    from bulletsim.gpu import kernels as kn

    g = torch.Generator(device="cuda").manual_seed(1)
    h = 256
    norm = torch.randn(h, device="cuda", dtype=torch.bfloat16, generator=g)
    before = kn._ADD_RMSNORM.direct
    for t in (1, 16, 37):
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16, generator=g)
        res = torch.randn(t, h, device="cuda", dtype=torch.bfloat16, generator=g)
        want_out, want_res = torch.empty_like(x), res.clone()
        kn._add_rmsnorm_kernel[(t,)](
            x, want_res, norm, want_out, h, 1e-5, HAS_RES=True, BLOCK=h, num_warps=8
        )
        for _ in range(2):  # the first call may compile through the JIT, the second is direct
            out, r2 = torch.empty_like(x), res.clone()
            kn.add_rmsnorm(x, r2, norm, out)
            assert torch.equal(out, want_out) and torch.equal(r2, want_res)
    assert kn._ADD_RMSNORM.error is None
    assert kn._ADD_RMSNORM.direct > before
    # a 2-byte offset view (not 16-byte aligned): a variant of its own, still correct
    buf = torch.randn(8 * h + 1, device="cuda", dtype=torch.bfloat16, generator=g)
    x = buf[1:].view(8, h)
    out, want = torch.empty_like(x), torch.empty_like(x)
    kn._add_rmsnorm_kernel[(8,)](x, x, norm, want, h, 1e-5, HAS_RES=False, BLOCK=h, num_warps=8)
    kn.add_rmsnorm(x, None, norm, out)
    kn.add_rmsnorm(x, None, norm, out)
    assert torch.equal(out, want)


def test_the_persistent_gemm_compiles_once_per_tile_config(torch):
    """Its row count and grid are unspecialised: row counts of every "== 1 / divisible by 16"
    class and grids of any size reuse the two tile configs' compiles (no mid-run compile)."""
    import triton

    from bulletsim.gpu.triton_matmul import persistent_matmul

    compiles = []
    triton.knobs.runtime.jit_cache_hook = lambda *a, **kw: compiles.append(kw.get("repr")) or False
    try:
        w = torch.randn(512, 256, device="cuda", dtype=torch.bfloat16)
        for rows in (1, 16, 37, 128, 200, 256):
            x = torch.randn(rows, 256, device="cuda", dtype=torch.bfloat16)
            y = torch.empty(rows, 512, device="cuda", dtype=torch.bfloat16)
            for sms in (8, 13, 132):
                persistent_matmul(x, w, y, sms)
                ref = (x.float() @ w.float().t()).to(torch.bfloat16)
                assert torch.allclose(y.float(), ref.float(), atol=0.1, rtol=0.02)
    finally:
        triton.knobs.runtime.jit_cache_hook = None
    assert len(compiles) <= 2
