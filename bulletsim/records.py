"""Per-iteration and per-request records, kept as column lists and turned into frames once.

`iterations.parquet` (`ITERATION_COLUMNS`): one row per lane iteration; `num_sms` is the SM
count the work physically ran on (ended on, after `num_rescales` resizes).
`sm_timeline.parquet` (`SM_TIMELINE_COLUMNS`): one row per allocation change of a lane:
`time_s`, `lane`, `num_sms` (the SMs a launch at that allocation runs on, as
`iterations.parquet` counts them) and `policy_sms` (the split the policy decided). The two
differ only where the partition mechanism rounds: green contexts run a launch on the
partition the GPU engine makes (`live.green_lanes`: PDMux's 112/20 on 132 SMs runs as
108/24, and the latency model prices 108/24); libsmctrl and mps run what the policy asked.
`requests.parquet`: `request_frame` plus `metrics.add_request_metrics`'s columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from bulletsim.core import Request, Work
from bulletsim.state import ServingState

SM_TIMELINE_COLUMNS = ("time_s", "lane", "num_sms", "policy_sms")
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
    """One row per lane iteration (SimPy monitoring style: append rows, frame at the end)."""

    __slots__ = ("rows",)
    columns: tuple[str, ...] = ITERATION_COLUMNS  # a subclass adds its own after these
    categories: tuple[str, ...] = ("lane", "phase")

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self.rows)

    def append(
        self,
        lane: str,
        start_s: float,
        end_s: float,
        work: Work,
        num_sms: int,
        st: ServingState,
        rescales: int,
    ) -> None:
        """Record `work` as it ran (see `iteration_row`)."""
        self.rows.append(iteration_row(lane, start_s, end_s, work, num_sms, st, rescales))

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame.from_records(self.rows, columns=list(self.columns))
        if not len(df):
            return df.astype({c: "float64" for c in ("start_s", "end_s")})
        for c in self.categories:
            df[c] = df[c].astype("category")
        return df


def iteration_row(
    lane: str, start_s: float, end_s: float, work: Work, num_sms: int, st: ServingState,
    rescales: int,
) -> tuple:  # fmt: skip
    """One `ITERATION_COLUMNS` row: `work` as it ran, ending on `num_sms` SMs after `rescales`
    resizes, with the state's KV use and queue lengths at its end (both engines' logs)."""
    shape = work.shape
    layers = work.layers or (-1, -1)
    return (
        lane,
        start_s,
        end_s,
        num_sms,
        shape.phase,
        shape.prefill_tokens,
        shape.num_prefill_seqs,
        shape.decode_tokens,
        shape.decode_ctx_tokens,
        layers[0],
        layers[1],
        st.kv.used_blocks,
        len(st.waiting),
        st.num_running,
        rescales,
    )


def sm_timeline_frame(
    sm_log: Sequence[tuple[float, str, int]], physical_sms: Callable[[str, int], int]
) -> pd.DataFrame:
    """`SM_TIMELINE_COLUMNS` from an engine's `sm_log` ((time_s, lane, the policy's SMs) at
    every change) and its `physical_sms` rule (a lane with 0 SMs launches nothing: 0)."""
    rows = [(t, lane, physical_sms(lane, n) if n > 0 else 0, n) for t, lane, n in sm_log]
    return pd.DataFrame.from_records(rows, columns=list(SM_TIMELINE_COLUMNS))


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
