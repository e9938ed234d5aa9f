"""The work each iteration of a live run did, as `WorkShape`s a latency model can price again.

A live run's `iterations.parquet` records the tokens of each iteration but (in runs made before
the live log carried them) not the attention pairs, KV tokens and lm_head rows a `WorkShape`
also needs. `iteration_work` rebuilds them by replaying the prefill progress of the requests:
requests start prefilling in admission order (FCFS, as chunked prefill and Bullet without
re-ordering do), each prefill iteration's `num_prefill_seqs` chunks take the oldest requests
with prompt tokens left, all but the last taking everything they have left and the last the
rest of the iteration's `prefill_tokens`; a later layer window of a batch repeats the batch of
its first window. An iteration whose tokens do not fit that replay (e.g. after a preemption,
or a re-ordered batch) gets an approximate shape (chunks of equal size, no cached context) and
`exact` False. Runs whose log has the shape columns are read as they are (`exact` True).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bulletsim.core import WorkShape

SHAPE_COLUMNS = ("prefill_attn_pairs", "prefill_kv_tokens", "logits_tokens")


@dataclass(frozen=True, slots=True)
class IterationWork:
    """One live iteration as a latency model sees it.

    `shape` is the work as the policy built it (a layer window has `num_layers` set, a full
    step None); `first_layer` is 0 for a full step or first window; `has_head` says the
    launch ran the final norm and lm_head (a full step, or a batch's last window, whose head
    a windowed policy prices as a tail); `exact` whether the shape was recorded or replayed
    exactly (see the module docstring).
    """

    shape: WorkShape
    first_layer: int
    has_head: bool
    exact: bool


def _chunks(pending: list[list[int]], num_seqs: int, tokens: int) -> list[tuple[int, int]] | None:
    """(start, size) chunks of the oldest `pending` [prefilled, target] entries that make up
    `tokens` over `num_seqs` sequences, advancing them; None (nothing advanced) if impossible."""
    out, left, i = [], tokens, 0
    while left > 0 and i < len(pending):
        done, target = pending[i]
        q = min(target - done, left)
        out.append((done, q))
        left -= q
        i += 1
    if left or len(out) != num_seqs:
        return None
    for k, (_, q) in enumerate(out):
        pending[k][0] += q
    while pending and pending[0][0] >= pending[0][1]:
        pending.pop(0)
    return out


def _approx_chunks(num_seqs: int, tokens: int) -> list[tuple[int, int]]:
    k = max(num_seqs, 1)
    base, extra = divmod(tokens, k)
    return [(0, base + (i < extra)) for i in range(k)]


def iteration_work(requests: pd.DataFrame, iterations: pd.DataFrame, num_layers: int) -> list:
    """`IterationWork` for every row of `iterations` (in its order) of a live run whose
    requests are `requests` (prompt_tokens, admitted_s, id); `num_layers` of the model."""
    it = iterations
    has_cols = all(c in it.columns for c in SHAPE_COLUMNS)
    order = requests.sort_values(["admitted_s", "id"])
    pending = [[0, int(p)] for p in order["prompt_tokens"].to_numpy()]
    targets_left = {}  # lane -> (chunks, completing) of the batch its windows repeat
    cols = {c: it[c].to_numpy() for c in it.columns if c not in ("phase",)}
    out = []
    for i in range(len(it)):
        lane = str(cols["lane"][i])
        p = int(cols["prefill_tokens"][i])
        k = int(cols["num_prefill_seqs"][i])
        d = int(cols["decode_tokens"][i])
        ctx = int(cols["decode_ctx_tokens"][i])
        ls, le = int(cols["layer_start"][i]), int(cols["layer_end"][i])
        layers = None if ls < 0 else le - ls
        first = max(ls, 0)
        has_head = ls < 0 or le == num_layers
        exact = True
        if has_cols:
            pairs = float(cols["prefill_attn_pairs"][i])
            kv = int(cols["prefill_kv_tokens"][i])
            logits = int(cols["logits_tokens"][i])
        else:
            if p and first > 0 and lane in targets_left:
                chunks, exact = targets_left[lane]
            elif p:
                chunks = _chunks(pending, k, p)
                if chunks is None:
                    chunks, exact = _approx_chunks(k, p), False
                targets_left[lane] = (chunks, exact)
            else:
                chunks = []
            pairs = float(sum(q * c + q * (q + 1) // 2 for c, q in chunks))
            kv = sum(c + q for c, q in chunks)
            logits = d + sum(1 for c, q in chunks if _completes(c, q, chunks, pending))
        shape = WorkShape(
            prefill_tokens=p,
            prefill_attn_pairs=pairs,
            prefill_kv_tokens=kv,
            num_prefill_seqs=k,
            decode_tokens=d,
            decode_ctx_tokens=ctx,
            num_layers=layers,
            logits_tokens=logits,
        )
        out.append(IterationWork(shape, first, has_head, exact))
    return out


def _completes(start: int, size: int, chunks, pending) -> bool:
    # Every chunk but the last completes its request by construction; the last does unless
    # its request is still pending (the head of the queue, partly prefilled).
    if (start, size) != chunks[-1]:
        return True
    return not (pending and pending[0][0] == start + size and pending[0][0] < pending[0][1])


def exact_share(work: list) -> float:
    """Share of iterations whose shape is exact (1.0 for an empty run)."""
    return float(np.mean([w.exact for w in work])) if work else 1.0
