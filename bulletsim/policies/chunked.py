"""Chunked prefill on one lane with every SM (Sarathi-Serve / vLLM / SGLang baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from bulletsim.core import PrefillChunk, Work
from bulletsim.policies.base import PolicyContext
from bulletsim.policies.batching import prefill_shape

VARIANTS = ("mixed", "prefill-first")


@dataclass(frozen=True, slots=True)
class ChunkedParams:
    """Chunked prefill: prompts are cut into chunks that share a per-iteration token budget.

    `mixed`: decodes join every iteration, one budget token each (Sarathi-Serve, vLLM v1,
    SGLang --enable-mixed-chunk). `prefill-first`: a prefill chunk runs alone whenever one
    can be formed; decode runs only when no prefill waits (SGLang's default).

    chunk_size: per-iteration token budget (the Bullet paper compares 1024 and 2048).
    variant: mixed or prefill-first (above).
    max_running_requests: vLLM's max_num_seqs default (256).
    """

    chunk_size: int = 2048
    variant: str = "mixed"
    max_running_requests: int = 256

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(
                f"unknown chunked-prefill variant {self.variant!r}; valid: {', '.join(VARIANTS)}"
            )
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.max_running_requests < 1:
            raise ValueError(f"max_running_requests must be >= 1, got {self.max_running_requests}")


class ChunkedPrefill:
    lanes = ("main",)
    max_overlap_sms = 0

    def __init__(self, params: ChunkedParams | None = None) -> None:
        self.params = params or ChunkedParams()
        self.name = f"chunked-{self.params.chunk_size}" + (
            "" if self.params.variant == "mixed" else "-pf"
        )
        self.ctx: PolicyContext | None = None

    def bind(self, ctx: PolicyContext) -> None:
        self.ctx = ctx

    def allocation(self, lane: str) -> int:
        return self.ctx.total_sms

    def stays_idle(self, lane: str) -> bool:
        return False  # one lane: nothing else would wake it

    def _prefill_chunks(self, budget: int, now_s: float, admit: bool) -> list[PrefillChunk]:
        """FCFS chunks: first the admitted requests, then newly admitted ones."""
        st = self.ctx.state
        chunks: list[PrefillChunk] = []
        for r in st.prefilling:
            if budget <= 0:
                return chunks
            n = min(r.remaining_prefill_tokens, budget)
            chunks.append(PrefillChunk(r, r.prefilled_tokens, n))
            budget -= n
        max_running = self.params.max_running_requests
        while admit and budget > 0 and st.waiting and st.num_running < max_running:
            r = st.waiting[0]
            if not st.can_admit(r):
                break
            st.waiting.popleft()
            st.admit(r, now_s)
            n = min(r.remaining_prefill_tokens, budget)
            chunks.append(PrefillChunk(r, 0, n))
            budget -= n
        return chunks

    def next_work(self, lane: str, now_s: float) -> Work | None:
        st = self.ctx.state
        pool = st.decode
        budget = self.params.chunk_size
        decode = False
        preempted = 0
        members = pool.members
        if self.params.variant == "prefill-first":
            chunks = self._prefill_chunks(budget, now_s, admit=True)
            if not chunks and (members or pool.pending):
                preempted = st.begin_decode_step(now_s)
                decode = pool.in_step
        else:
            if members or pool.pending:
                preempted = st.begin_decode_step(now_s)
                decode = pool.in_step
                budget -= len(members)
            chunks = self._prefill_chunks(budget, now_s, admit=not preempted)
        if not chunks and not decode:
            return None
        num_decode = len(members) if decode else 0
        shape = prefill_shape(
            chunks,
            None,
            num_decode=num_decode,
            decode_ctx_tokens=(pool.ctx_tokens + num_decode) if decode else 0,
        )
        return Work("main", shape, self.ctx.total_sms, prefill=chunks, decode=decode)

    def on_work_done(self, work: Work, now_s: float) -> None:
        self.ctx.state.finish_work(work, now_s)
