"""Real KV page ids for the requests a live engine runs, mirroring `KVCache`'s counts.

`KVCache` counts blocks; the GPU needs to know *which* pages hold a request's KV. `PageTable`
gives each request holding KV a row (`slot`) of a block table and hands out page ids from a
free stack as the request's context grows; a finished or preempted request gives its row and
pages back. Page 0 and the last slot are scratch (padded rows of CUDA-graph batches write
there), so a pool of N pages mirrors a cache of N - 1 blocks. numpy only (tested in CI).

Invariant: a request holds exactly blocks_for(tokens written) pages, which is never more than
`KVCache` charges it, so the mirror never runs out while the counts say there is room.
"""

from __future__ import annotations

import numpy as np

SCRATCH_PAGE = 0


class PageTable:
    def __init__(self, num_pages: int, page_size: int, num_slots: int, max_pages_per_seq: int):
        assert num_pages >= 2 and num_slots >= 2
        self.page_size = page_size
        self.num_pages = num_pages
        self.table = np.zeros((num_slots, max_pages_per_seq), dtype=np.int32)
        self.num_held = np.zeros(num_slots, dtype=np.int32)  # pages held per slot
        self._free_pages = list(range(num_pages - 1, SCRATCH_PAGE, -1))  # pop() -> 1, 2, ...
        self.scratch_slot = num_slots - 1
        self._free_slots = list(range(num_slots - 2, -1, -1))
        self.slot_of: dict[int, int] = {}  # request id -> slot
        self._epoch: dict[int, int] = {}  # request id -> preemption count at allocation
        self.peak_pages = 0

    @property
    def used_pages(self) -> int:
        return self.num_pages - 1 - len(self._free_pages)

    def slot(self, request_id: int, epoch: int) -> int:
        """The request's slot; a request preempted since it got one starts over."""
        s = self.slot_of.get(request_id)
        if s is not None and self._epoch[request_id] != epoch:
            self.release(request_id)
            s = None
        if s is None:
            if not self._free_slots:
                raise RuntimeError("page table out of slots (more running requests than rows)")
            s = self._free_slots.pop()
            self.slot_of[request_id] = s
            self._epoch[request_id] = epoch
        return s

    def ensure(self, slot: int, tokens: int) -> None:
        """Give `slot` enough pages for `tokens` tokens of context."""
        need = -(-tokens // self.page_size)
        have = int(self.num_held[slot])
        if need <= have:
            return
        if need > self.table.shape[1]:
            raise RuntimeError(f"{tokens} tokens exceed the block table's {self.table.shape[1]}")
        if need - have > len(self._free_pages):
            raise RuntimeError(f"KV page pool exhausted ({self.num_pages} pages)")
        for i in range(have, need):
            self.table[slot, i] = self._free_pages.pop()
        self.num_held[slot] = need
        self.peak_pages = max(self.peak_pages, self.used_pages)

    def ensure_many(self, slots: np.ndarray, tokens: np.ndarray) -> None:
        need = -(-tokens // self.page_size)
        for i in np.flatnonzero(need > self.num_held[slots]):
            self.ensure(int(slots[i]), int(tokens[i]))

    def release(self, request_id: int) -> None:
        s = self.slot_of.pop(request_id, None)
        if s is None:
            return
        del self._epoch[request_id]
        n = int(self.num_held[s])
        self._free_pages.extend(self.table[s, :n].tolist())
        self.num_held[s] = 0
        self._free_slots.append(s)

    def slots_tokens(self, slots: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Flat KV slot (page * page_size + offset) of token index `tokens` of each slot."""
        ps = self.page_size
        return self.table[slots, tokens // ps].astype(np.int64) * ps + tokens % ps

    def csr(self, slots: np.ndarray, kv_lens: np.ndarray) -> tuple[np.ndarray, ...]:
        """flashinfer's paged layout for sequences of `kv_lens` tokens: (indptr, indices,
        last_page_len), int32."""
        ps = self.page_size
        pages = -(-kv_lens // ps)
        indptr = np.zeros(len(slots) + 1, dtype=np.int32)
        np.cumsum(pages, out=indptr[1:])
        width = int(pages.max()) if len(pages) else 0
        rows = self.table[slots, :width]
        mask = np.arange(width)[None, :] < pages[:, None]
        indices = rows[mask].astype(np.int32)
        last = (kv_lens - (pages - 1) * ps).astype(np.int32)
        return indptr, indices, last
