"""The live engine's KV page mirror and batch metadata, driven by the fake executor (no GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from bulletsim.config import load_config
from bulletsim.live.fake import FakeExecutor
from bulletsim.live.gpu.batches import build_batch
from bulletsim.live.pages import SCRATCH_PAGE, PageTable
from bulletsim.live.run import live_run


def test_page_table_hands_out_distinct_pages_and_takes_them_back():
    pt = PageTable(num_pages=9, page_size=4, num_slots=4, max_pages_per_seq=8)
    a, b = pt.slot(1, 0), pt.slot(2, 0)
    pt.ensure(a, 9)  # 3 pages
    pt.ensure(b, 4)  # 1 page
    pages = set(pt.table[a, :3]) | set(pt.table[b, :1])
    assert len(pages) == 4 and SCRATCH_PAGE not in pages
    assert pt.used_pages == 4
    indptr, indices, last = pt.csr(np.array([a, b]), np.array([9, 4]))
    assert indptr.tolist() == [0, 3, 4] and last.tolist() == [1, 4]
    assert indices.tolist() == [*pt.table[a, :3], pt.table[b, 0]]
    assert pt.slots_tokens(np.array([a]), np.array([5]))[0] == pt.table[a, 1] * 4 + 1
    assert pt.slot(1, 1) == a or pt.used_pages == 1  # a preempted request starts over
    assert pt.used_pages == 1
    with pytest.raises(RuntimeError, match="exhausted"):
        pt.ensure(pt.slot(3, 0), 4 * 8)


class CheckingExecutor(FakeExecutor):
    """The fake executor plus the GPU executor's page bookkeeping and metadata per launch."""

    def begin(self, ctx, lanes):
        super().begin(ctx, lanes)
        kv = ctx.state.kv
        self.state = ctx.state
        self.pages = PageTable(kv.capacity_blocks + 1, kv.block_size, 4096, 4096)
        self.checked = 0
        ctx.state.observe(self)

    def on_admit(self, request, num_blocks, now_s):
        pass

    def on_preempt(self, request, now_s):
        self.pages.release(request.spec.id)

    def on_finish(self, request, now_s):
        self.pages.release(request.spec.id)

    def launch(self, launch):
        w = launch.work
        if (w.layers or (0, 0))[0] == 0:
            meta = build_batch(w, self.state, self.pages, 1000)
            assert meta.num_tokens == w.shape.total_tokens
            assert len(meta.logit_rows) == w.shape.logits_tokens
            assert (meta.kv_lens >= meta.q_lens).all()
            held = self.pages.num_held[meta.slots] * self.pages.page_size
            assert (held >= meta.kv_lens).all()
            assert self.pages.used_pages <= self.state.kv.used_blocks
            self.checked += 1
        super().launch(launch)


@pytest.mark.parametrize("policy", ["chunked", "bullet"])
def test_page_mirror_never_exceeds_the_kv_counts(policy):
    cfg = load_config(
        None,
        {
            "policy": policy,
            "gpu": "h200",
            "workload": {"trace": "splitwise", "num_requests": 80, "rate": 30.0},
            "kv": {"capacity_blocks": 700},
        },
    )
    ex = CheckingExecutor()
    res = live_run(cfg, ex)
    assert ex.checked > 30
    assert res.result.summary["kv_peak_used_blocks"] > 350  # the small cache is under pressure
    assert ex.pages.used_pages == 0  # every page came back
