"""Per-iteration and per-request records, kept as column lists and turned into frames once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bulletsim.core import Request, Work
from bulletsim.state import ServingState

ITERATION_COLUMNS = (
    "lane",
    "start_s",
    "end_s",
    "num_sms",
    "phase",
    "prefill_tokens",
    "num_prefill_seqs",
    "decode_tokens",
    "decode_ctx_tokens",
    "layer_start",
    "layer_end",
    "kv_used_blocks",
    "num_waiting",
    "num_running",
    "num_rescales",
)


class IterationLog:
    """One row per lane iteration (SimPy monitoring style: append to lists, frame at the end)."""

    __slots__ = ITERATION_COLUMNS

    def __init__(self) -> None:
        for c in ITERATION_COLUMNS:
            setattr(self, c, [])

    def __len__(self) -> int:
        return len(self.start_s)

    def append(
        self, lane: str, start_s: float, end_s: float, work: Work, st: ServingState, rescales: int
    ) -> None:
        shape = work.shape
        self.lane.append(lane)
        self.start_s.append(start_s)
        self.end_s.append(end_s)
        self.num_sms.append(work.num_sms)
        self.phase.append(shape.phase)
        self.prefill_tokens.append(shape.prefill_tokens)
        self.num_prefill_seqs.append(shape.num_prefill_seqs)
        self.decode_tokens.append(shape.decode_tokens)
        self.decode_ctx_tokens.append(shape.decode_ctx_tokens)
        layers = work.layers
        self.layer_start.append(layers[0] if layers else -1)
        self.layer_end.append(layers[1] if layers else -1)
        self.kv_used_blocks.append(st.kv.used_blocks)
        self.num_waiting.append(len(st.waiting))
        self.num_running.append(st.num_running)
        self.num_rescales.append(rescales)

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame({c: getattr(self, c) for c in ITERATION_COLUMNS})
        for c in ("lane", "phase"):
            df[c] = df[c].astype("category") if len(df) else df[c].astype(str)
        return df


def request_frame(requests: Sequence[Request]) -> pd.DataFrame:
    """Per-request timestamps and counts, ordered by request id."""
    rs = sorted(requests, key=lambda r: r.spec.id)
    return pd.DataFrame(
        {
            "id": np.fromiter((r.spec.id for r in rs), np.int64, len(rs)),
            "arrival_s": np.fromiter((r.spec.arrival_s for r in rs), np.float64, len(rs)),
            "prompt_tokens": np.fromiter((r.spec.prompt_tokens for r in rs), np.int64, len(rs)),
            "output_tokens": np.fromiter((r.spec.output_tokens for r in rs), np.int64, len(rs)),
            "generated_tokens": np.fromiter((r.generated_tokens for r in rs), np.int64, len(rs)),
            "admitted_s": np.fromiter((r.admitted_s for r in rs), np.float64, len(rs)),
            "first_token_s": np.fromiter((r.first_token_s for r in rs), np.float64, len(rs)),
            "finish_s": np.fromiter((r.finish_s for r in rs), np.float64, len(rs)),
            "num_preemptions": np.fromiter((r.num_preemptions for r in rs), np.int64, len(rs)),
        }
    )
