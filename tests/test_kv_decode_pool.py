"""The O(1) decode pool against a brute-force recount, and KV capacity sizing."""

from __future__ import annotations

import numpy as np
import pytest

from bulletsim.core import Request, RequestSpec
from bulletsim.kvcache import KVCache, kv_capacity
from bulletsim.state import ServingState


def brute_force(st: ServingState):
    pool, bs = st.decode, st.kv.block_size
    ctx = sum(pool.context_of(r) for r in pool.members.values())
    blocks = sum(-(-pool.context_of(r) // bs) for r in pool.members.values())
    return ctx, blocks


def test_decode_pool_counters_match_brute_force():
    rng = np.random.default_rng(1)
    specs = [
        RequestSpec(i, 0.0, int(rng.integers(1, 40)), int(rng.integers(1, 30))) for i in range(60)
    ]
    st = ServingState(specs, KVCache(400, 8), reserve_fraction=0.0)
    st.admit_arrivals(0.0)
    now, finished = 0.0, 0
    while not st.all_done:
        # admit and fully prefill a few waiting requests (as a policy would)
        for _ in range(int(rng.integers(0, 4))):
            if st.waiting and st.can_admit(st.waiting[0]):
                r = st.waiting.popleft()
                st.admit(r, now)
        if st.prefilling:
            from bulletsim.core import PrefillChunk

            chunks = [PrefillChunk(r, 0, r.prefill_target_tokens) for r in list(st.prefilling)]
            now += 1.0
            st.complete_chunks(chunks, now)
        st.begin_decode_step(now)
        if st.decode.in_step:
            need_before = st.kv.used_blocks
            now += 1.0
            finished += len(st.end_decode_step(now))
            assert st.kv.used_blocks <= need_before
        ctx, blocks = brute_force(st)
        assert st.decode.ctx_tokens == ctx
        assert st.decode.member_blocks == blocks
        held_prefill = sum(r.num_blocks for r in st.prefilling)
        assert st.kv.used_blocks == blocks + held_prefill
        assert st.kv.used_blocks <= st.kv.capacity_blocks
        assert now < 10_000
    assert st.kv.used_blocks == 0
    assert all(r.generated_tokens == r.spec.output_tokens for r in st.requests)


def test_blocks_needed_next_step_predicts_growth():
    st = ServingState([RequestSpec(0, 0.0, 7, 20)], KVCache(100, 4))
    st.admit_arrivals(0.0)
    r = st.waiting.popleft()
    st.admit(r, 0.0)
    from bulletsim.core import PrefillChunk

    st.complete_chunks([PrefillChunk(r, 0, 7)], 1.0)
    grown = []
    for step in range(12):
        predicted = st.decode.blocks_needed_next_step()
        before = st.kv.used_blocks
        st.begin_decode_step(1.0 + step)
        grown.append(st.kv.used_blocks - before)
        assert grown[-1] == predicted
        st.end_decode_step(2.0 + step)
    # context 7 -> 8 needs no block (2 blocks hold 8); 8 -> 9 needs the 3rd; then every 4th
    assert grown == [0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]


def test_request_spec_rejects_bad_lengths():
    with pytest.raises(ValueError, match="prompt_tokens"):
        RequestSpec(0, 0.0, 0, 5)
    with pytest.raises(ValueError, match="arrival_s"):
        RequestSpec(0, -1.0, 3, 5)
    assert Request(RequestSpec(0, 0.0, 3, 5)).remaining_prefill_tokens == 0


def test_kv_capacity_llama8b_on_a100():
    from bulletsim.hardware import get_gpu
    from bulletsim.models import get_model

    g, m = get_gpu("a100"), get_model("llama-3.1-8b")
    cap = kv_capacity(g.memory_bytes, m.weight_bytes_per_gpu, m.kv_bytes_per_token_per_gpu)
    # 80 GiB * 0.9 - 16 GB weights - 2 GiB reserve ~= 55 GB at 128 KiB per token ~= 430k tokens
    assert 380_000 < cap.num_tokens < 460_000
    with pytest.raises(ValueError, match="no room"):
        kv_capacity(10 * 1024**3, 16 * 1024**3, 131072)
