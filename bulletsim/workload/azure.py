"""Loader for the Azure LLM inference trace CSV (the Splitwise traces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bulletsim.workload.csv_columns import read_csv, sort_by_time, token_counts
from bulletsim.workload.table import TraceTable

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def read_azure_csv(path: Path) -> TraceTable:
    """`TIMESTAMP,ContextTokens,GeneratedTokens` rows; times become seconds since the first.

    TIMESTAMP is a wall-clock `YYYY-MM-DD HH:MM:SS.fffffff` (100 ns resolution, no zone).
    ContextTokens/GeneratedTokens are counts of the production GPT-family tokenizer.
    """
    df = read_csv(path, COLUMNS, dtype={"TIMESTAMP": str})
    stamps = pd.to_datetime(df["TIMESTAMP"], format="%Y-%m-%d %H:%M:%S.%f", errors="coerce")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{path}: row {i + 1} (line {i + 2}) column TIMESTAMP = {df['TIMESTAMP'].iloc[i]!r}; "
            "expected YYYY-MM-DD HH:MM:SS.fffffff"
        )
    ns = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    prompt = token_counts(df, "ContextTokens", path)
    output = token_counts(df, "GeneratedTokens", path)
    order, note = sort_by_time(ns)
    arrival_s = (ns[order] - ns[order[0]]) / 1e9
    return TraceTable(prompt[order], output[order], arrival_s, str(path), (note,) if note else ())
