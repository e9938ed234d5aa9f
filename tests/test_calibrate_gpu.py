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
