"""GPU code paths (green contexts, %smid probe, kernels vs references). Skipped without a GPU."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_green_pairs_are_disjoint_and_probed():
    from bulletsim.gpu.green import GreenContextPool
    from bulletsim.gpu.probe import SmidProbe

    pool = GreenContextPool()
    probe = SmidProbe()
    for n in pool.pair_sizes()[:: max(1, len(pool.pair_sizes()) // 4)]:
        a, b = pool.pair(n)
        ia, ib = probe.probe_concurrent([a.stream, b.stream])
        assert len(ia) == a.num_sms and len(ib) == b.num_sms
        assert not set(ia) & set(ib)


def test_layer_kernels_match_reference():
    from bulletsim.gpu.check import check_layer
    from bulletsim.gpu.llama import LlamaModel
    from bulletsim.models import get_model

    m = LlamaModel(get_model("llama-3.1-8b"), num_layers=2, kv_pool_bytes=2e9)
    check_layer(m, m.prefill_batch([256, 256]))
    check_layer(m, m.decode_batch(8, 300))


def test_every_gemm_path_is_correct_and_selection_records_it():
    from bulletsim.gpu.gemm import PartitionGemm
    from bulletsim.gpu.green import GreenContextPool
    from bulletsim.gpu.selection import GEMM_PATHS

    pool = GreenContextPool()
    x = torch.randn(512, 1024, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(2048, 1024, device="cuda", dtype=torch.bfloat16) * 1024**-0.5
    out = torch.empty(512, 2048, device="cuda", dtype=torch.bfloat16)
    gemm = PartitionGemm(pool.total_sms, unit_sms=pool.granularity)
    gemm.num_sms = 64
    chosen = gemm.select("o", x, w, out, pool.get(64).stream)
    ch = gemm.table.get("o", (512,), 64)
    assert chosen == ch.kernel and set(ch.times_ms) == set(GEMM_PATHS)
    assert all(e is not None and e < 1e-2 for e in ch.rel_errs.values())
    assert gemm.path_for("o", 512) == chosen


def test_decode_backends_agree_on_a_partition():
    from bulletsim.gpu.green import GreenContextPool
    from bulletsim.gpu.llama import LlamaModel
    from bulletsim.models import get_model

    pool = GreenContextPool()
    m = LlamaModel(get_model("llama-3.1-8b"), num_layers=1, kv_pool_bytes=2e9)
    b = m.decode_batch(16, 500)
    m.use_partition(b, pool.get(32), select=True)
    ch = m.attn_table.get("attn_decode", (16, 500), 32)
    ok = [n for n, e in ch.rel_errs.items() if e is not None and e < 1e-2]
    assert "triton-splitk" in ok and ch.kernel in ok
