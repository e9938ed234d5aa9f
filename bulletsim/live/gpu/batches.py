"""Host-side metadata of one launch: which rows are whose, where their KV goes, and the paged
layout flashinfer reads. numpy only; the executor copies it to the device in one transfer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bulletsim.core import Request, Work
from bulletsim.live.pages import SCRATCH_PAGE, PageTable
from bulletsim.state import ServingState


@dataclass(slots=True)
class BatchMeta:
    """Rows: decode members first (one token each), then prefill chunks."""

    requests: list[Request]
    num_decode: int
    slots: np.ndarray  # per sequence
    q_lens: np.ndarray  # per sequence
    kv_lens: np.ndarray  # per sequence, after this work
    positions: np.ndarray  # per token
    kv_slots: np.ndarray  # per token
    prompt_ids: np.ndarray  # per prefill token (pseudo-random ids; random weights anyway)
    logit_rows: np.ndarray  # token rows that emit a token
    logit_slots: np.ndarray  # their request slots

    @property
    def num_tokens(self) -> int:
        return int(self.q_lens.sum())


def decode_members(state: ServingState) -> tuple[list[Request], np.ndarray]:
    """The decode pool's members at step start and their contexts before the step."""
    pool = state.decode
    members = list(pool.members.values())
    ctx = np.fromiter((pool.context_of(r) for r in members), np.int64, len(members))
    return members, ctx


def build_batch(
    work: Work, state: ServingState, pages: PageTable, vocab: int, include_decode: bool = True
) -> BatchMeta:
    """Metadata for an eager batch: the decode step (if `work.decode`) and its chunks."""
    reqs: list[Request] = []
    if work.decode and include_decode:
        reqs, d_ctx = decode_members(state)
    else:
        d_ctx = np.zeros(0, np.int64)
    nd = len(reqs)
    c_start = np.fromiter((c.start_tokens for c in work.prefill), np.int64, len(work.prefill))
    c_len = np.fromiter((c.num_tokens for c in work.prefill), np.int64, len(work.prefill))
    reqs = reqs + [c.request for c in work.prefill]
    slots = np.fromiter(
        (pages.slot(r.spec.id, r.num_preemptions) for r in reqs), np.int64, len(reqs)
    )
    q_lens = np.concatenate([np.ones(nd, np.int64), c_len])
    kv_lens = np.concatenate([d_ctx + 1, c_start + c_len])
    pages.ensure_many(slots, kv_lens)
    starts = np.concatenate([d_ctx, c_start])
    tok_seq = np.repeat(np.arange(len(reqs)), q_lens)
    first_row = np.concatenate([[0], np.cumsum(q_lens)[:-1]]).astype(np.int64)
    positions = starts[tok_seq] + (np.arange(len(tok_seq)) - first_row[tok_seq])
    tok_slots = slots[tok_seq]
    kv_slots = pages.slots_tokens(tok_slots, positions)
    ids = np.asarray([r.spec.id for r in reqs], np.int64)[tok_seq]
    prompt_ids = ((ids * 1_000_003 + positions * 7919) % vocab)[nd:]
    done = [c.completes_prefill for c in work.prefill]
    last_rows = first_row + q_lens - 1
    emit = np.concatenate([np.ones(nd, bool), np.asarray(done, bool)])
    return BatchMeta(
        reqs,
        nd,
        slots,
        q_lens,
        kv_lens,
        positions,
        kv_slots,
        prompt_ids,
        last_rows[emit],
        slots[emit],
    )


def graph_step_inputs(
    pages: PageTable, members: list[Request], ctx: np.ndarray, bucket: int, out: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A decode step padded to `bucket` rows for its CUDA graph.

    Writes the graph's int64 inputs into out[: 3 * bucket] (request slots, positions, flat KV
    slots; padded rows: the scratch slot, position 0, the scratch page) and returns the
    flashinfer layout (indptr, indices, last_page_len) with one scratch page per padded row.
    Gives members the pages their new token needs.
    """
    n, b = len(members), bucket
    slots = np.fromiter((pages.slot(r.spec.id, r.num_preemptions) for r in members), np.int64, n)
    kv_lens = ctx + 1
    pages.ensure_many(slots, kv_lens)
    indptr, indices, last = pages.csr(slots, kv_lens)
    pad = b - n
    indptr = np.concatenate([indptr, indptr[-1] + 1 + np.arange(pad, dtype=np.int32)])
    indices = np.concatenate([indices, np.full(pad, SCRATCH_PAGE, np.int32)])
    last = np.concatenate([last, np.ones(pad, np.int32)])
    out[:b] = pages.scratch_slot
    out[:n] = slots
    out[b : 2 * b] = 0
    out[b : b + n] = ctx
    out[2 * b : 3 * b] = SCRATCH_PAGE * pages.page_size
    out[2 * b : 2 * b + n] = pages.slots_tokens(slots, ctx)
    return indptr, indices, last
