"""Building blocks shared by the two-lane policies: unchunked prefill batches and shapes.

A prefill batch takes whole prompts FCFS (optionally re-ordered, see `reorder_head`) until a
token cap; a prompt longer than the cap forms a batch on its own, because nothing is chunked.
"""

from __future__ import annotations

from bulletsim.core import PrefillChunk, Request, WorkShape
from bulletsim.state import ServingState


def can_start_prefill(st: ServingState, max_running: int) -> bool:
    """True when the head of the waiting queue could be admitted now (O(1))."""
    return bool(st.waiting) and st.num_running < max_running and st.can_admit(st.waiting[0])


def form_batch(
    st: ServingState, now_s: float, max_tokens: int, max_running: int
) -> list[PrefillChunk]:
    """Admit whole prompts from the waiting queue until `max_tokens` (at least one prompt)."""
    chunks: list[PrefillChunk] = []
    total = 0
    while st.waiting and st.num_running < max_running:
        r = st.waiting[0]
        n = r.remaining_prefill_tokens
        if chunks and total + n > max_tokens:
            break
        if not st.can_admit(r):
            break
        st.waiting.popleft()
        st.admit(r, now_s)
        chunks.append(PrefillChunk(r, r.prefilled_tokens, n))
        total += n
    return chunks


def reorder_head(
    st: ServingState, now_s: float, window: int, token_time_s: float, ttft_limit
) -> bool:
    """Shortest-prompt-first among the first `window` waiting requests, if that is SLO-safe.

    Serving short prompts first lowers mean TTFT, but it delays the long ones: the new order
    is kept only when every request of the window still meets its TTFT deadline under a
    linear prediction (`token_time_s` seconds per prompt token, queued work served in order).
    Preempted requests (already generated tokens) keep their place at the front.
    """
    if window < 2 or len(st.waiting) < 2:
        return False
    head: list[Request] = []
    while st.waiting and len(head) < window and not st.waiting[0].generated_tokens:
        head.append(st.waiting.popleft())
    order = sorted(head, key=lambda r: (r.prefill_target_tokens, r.spec.arrival_s))
    t = now_s
    safe = True
    for r in order:
        t += r.prefill_target_tokens * token_time_s
        if t - r.spec.arrival_s > ttft_limit(r.spec.prompt_tokens):
            safe = False
            break
    chosen = order if safe else head
    st.waiting.extendleft(reversed(chosen))
    return safe and order != head


def prefill_shape(
    chunks: list[PrefillChunk],
    num_layers: int | None,
    *,
    num_decode: int = 0,
    decode_ctx_tokens: int = 0,
) -> WorkShape:
    """The shape of `chunks` over `num_layers` layers (None = a full step with lm_head),
    plus `num_decode` decode tokens attending to `decode_ctx_tokens` (a mixed batch)."""
    q_sum = pairs = kv_tokens = logits = 0
    for ch in chunks:
        q, c = ch.num_tokens, ch.start_tokens
        q_sum += q
        pairs += q * c + q * (q + 1) // 2
        kv_tokens += c + q
        logits += ch.completes_prefill
    return WorkShape(
        prefill_tokens=q_sum,
        prefill_attn_pairs=float(pairs),
        prefill_kv_tokens=kv_tokens,
        num_prefill_seqs=len(chunks),
        decode_tokens=num_decode,
        decode_ctx_tokens=decode_ctx_tokens,
        num_layers=num_layers,
        logits_tokens=logits + num_decode,
    )


def with_layers(shape: WorkShape, num_layers: int | None) -> WorkShape:
    """`shape` over `num_layers` layers: `dataclasses.replace` without its per-call field
    introspection, which shows in the windowed policies' per-iteration cost."""
    return WorkShape(
        prefill_tokens=shape.prefill_tokens,
        prefill_attn_pairs=shape.prefill_attn_pairs,
        prefill_kv_tokens=shape.prefill_kv_tokens,
        num_prefill_seqs=shape.num_prefill_seqs,
        decode_tokens=shape.decode_tokens,
        decode_ctx_tokens=shape.decode_ctx_tokens,
        num_layers=num_layers,
        logits_tokens=shape.logits_tokens,
    )


def decode_shape(st: ServingState, *, include_pending: bool = False) -> WorkShape:
    """One decode step over the pool (plus, for planning, the requests about to join)."""
    return decode_step_shape(*decode_totals(st, include_pending=include_pending))


def decode_totals(st: ServingState, *, include_pending: bool = False) -> tuple[int, int]:
    """(requests, context tokens) of the next decode step, before its new tokens."""
    pool = st.decode
    n = len(pool)
    ctx = pool.ctx_tokens
    if include_pending:
        for r in pool.pending:
            n += 1
            ctx += r.prefill_target_tokens
    return n, ctx


def decode_step_shape(num_requests: int, ctx_tokens: int) -> WorkShape:
    """A decode step of `num_requests` over `ctx_tokens` of context (see `decode_totals`).

    Mirrors chunked prefill: each member attends to its context plus the new token.
    """
    if num_requests == 0:
        return WorkShape()
    n = num_requests
    return WorkShape(decode_tokens=n, decode_ctx_tokens=ctx_tokens + n, logits_tokens=n)
