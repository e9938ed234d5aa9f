"""A loaded trace before arrivals and length rules: columns of numbers plus provenance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class TraceTable:
    """Per-request token counts (int64 arrays) and, where the trace has them, arrival times.

    `arrival_s` is seconds since the first request, sorted. `num_empty` counts rows of a
    text dataset whose prompt or output tokenized to zero tokens; they are already removed
    because no server can run them.
    """

    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    arrival_s: np.ndarray | None
    source: str
    notes: tuple[str, ...] = ()
    num_empty: int = 0
    # per row, the ids of the prompt's KV blocks (Mooncake/Bailian `hash_ids`), or None
    prefix_hash_ids: tuple[tuple, ...] | None = None

    def __post_init__(self) -> None:
        assert len(self.prompt_tokens) == len(self.output_tokens)
        assert self.arrival_s is None or len(self.arrival_s) == len(self.prompt_tokens)
        assert self.prefix_hash_ids is None or len(self.prefix_hash_ids) == len(self)

    def __len__(self) -> int:
        return len(self.prompt_tokens)

    def standing_in_for_text(self, sidecar_name: str) -> TraceTable:
        """This table, read from a real-count sidecar, noted as replacing tokenized text."""
        counts = self.notes[0].removesuffix(" token counts") if self.notes else "real"
        note = f"used the real {counts} counts in {sidecar_name} instead of tokenizing the text"
        return TraceTable(
            self.prompt_tokens, self.output_tokens, None, self.source,
            (note, *self.notes[1:]), self.num_empty,
        )  # fmt: skip

    def with_prefix_hash_ids(self, ids: tuple[tuple, ...]) -> TraceTable:
        """This table with per-row prefix block ids attached."""
        return TraceTable(
            self.prompt_tokens, self.output_tokens, self.arrival_s, self.source, self.notes,
            self.num_empty, ids,
        )  # fmt: skip

    def select(self, mask: np.ndarray) -> TraceTable:
        """The rows where `mask` is true, keeping everything else."""
        arrival = None if self.arrival_s is None else self.arrival_s[mask]
        ids = self.prefix_hash_ids
        if ids is not None:
            ids = tuple(x for x, keep in zip(ids, mask, strict=True) if keep)
        return TraceTable(
            self.prompt_tokens[mask],
            self.output_tokens[mask],
            arrival,
            self.source,
            self.notes,
            self.num_empty,
            ids,
        )


def drop_empty(
    prompt_tokens: np.ndarray, output_tokens: np.ndarray, source: str, notes: tuple[str, ...]
) -> TraceTable:
    """A TraceTable from text-derived counts, removing (and counting) zero-length rows."""
    keep = (prompt_tokens > 0) & (output_tokens > 0)
    num_empty = int((~keep).sum())
    if num_empty:
        notes = (*notes, f"dropped {num_empty} row(s) with an empty prompt or output")
    return TraceTable(
        prompt_tokens[keep].astype(np.int64),
        output_tokens[keep].astype(np.int64),
        None,
        source,
        notes,
        num_empty,
    )
