"""Loader for the Azure LLM inference trace CSVs: 2023 (the Splitwise traces) and 2024."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bulletsim.workload.csv_columns import read_csv, sort_by_time, token_counts
from bulletsim.workload.table import TraceTable
from bulletsim.workload.timestamps import span_note

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def read_azure_csv(path: Path) -> TraceTable:
    """`TIMESTAMP,ContextTokens,GeneratedTokens` rows; times become seconds since the first.

    TIMESTAMP is an ISO-8601 wall-clock time: 2023 `YYYY-MM-DD HH:MM:SS.fffffff` (100 ns, no
    zone), 2024 `YYYY-MM-DD HH:MM:SS.ffffff+00:00` (a zone, fractional digits vary from row to
    row); times without a zone are taken as UTC. ContextTokens/GeneratedTokens are counts of
    the production GPT-family tokenizer. Rows with 0 generated tokens (the 2024 traces have
    them) are dropped and counted: no server run can reproduce them.
    """
    df = read_csv(path, COLUMNS, dtype={"TIMESTAMP": str})
    stamps = pd.to_datetime(df["TIMESTAMP"], format="ISO8601", utc=True, errors="coerce")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{path}: row {i + 1} (line {i + 2}) column TIMESTAMP = {df['TIMESTAMP'].iloc[i]!r}; "
            "expected YYYY-MM-DD HH:MM:SS[.fraction][+HH:MM]"
        )
    ns = (stamps - stamps.min()).dt.total_seconds().to_numpy() * 1e9
    prompt = token_counts(df, "ContextTokens", path)
    output = token_counts(df, "GeneratedTokens", path, minimum=0)
    keep = output > 0
    num_empty = int((~keep).sum())
    ns, prompt, output = ns[keep], prompt[keep], output[keep]
    if not len(ns):
        raise ValueError(f"{path}: every row has 0 GeneratedTokens")
    order, note = sort_by_time(ns)
    arrival_s = (ns[order] - ns[order[0]]) / 1e9
    notes = [span_note(arrival_s, "wall-clock time", "ISO-8601 TIMESTAMP column")]
    if note:
        notes.append(note)
    if num_empty:
        notes.append(f"dropped {num_empty} row(s) with 0 GeneratedTokens")
    return TraceTable(prompt[order], output[order], arrival_s, str(path), tuple(notes),
                      num_empty)  # fmt: skip
