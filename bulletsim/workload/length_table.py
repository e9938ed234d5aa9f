"""Loaders for per-request length tables and the plain 3-column arrival CSV.

Length tables are the vidur/sarathi format `num_prefill_tokens,num_decode_tokens,...`
(ShareGPT-8k, arXiv-4K, arXiv POD); counts may be written as floats (`7564.0`) if integral.
"""

from __future__ import annotations

from pathlib import Path

from bulletsim.workload.csv_columns import (
    arrival_times,
    read_csv,
    require_columns,
    sort_by_time,
    token_counts,
)
from bulletsim.workload.table import TraceTable
from bulletsim.workload.timestamps import choose_unit, span_note, unit_scale

LENGTH_COLUMNS = ("num_prefill_tokens", "num_decode_tokens")
CSV_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")
# vidur's processed traces name the same three columns differently; accept them too.
VIDUR_COLUMNS = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")


def read_length_table(path: Path) -> TraceTable:
    """`num_prefill_tokens,num_decode_tokens[,num_total_tokens,pd_ratio]`, no timestamps."""
    df = read_csv(path, LENGTH_COLUMNS)
    prompt = token_counts(df, "num_prefill_tokens", path)
    output = token_counts(df, "num_decode_tokens", path)
    return TraceTable(prompt, output, None, str(path))


def read_arrival_csv(path: Path, unit: str | None = None) -> TraceTable:
    """`arrival_s,prompt_tokens,output_tokens` (or vidur's `arrived_at,...` names).

    Arrival times are seconds (the column name says so; `unit` overrides), made relative to
    the first request and sorted if needed.
    """
    df = read_csv(path, ())  # which header names it uses decides the required columns
    columns = VIDUR_COLUMNS if VIDUR_COLUMNS[0] in df.columns else CSV_COLUMNS
    require_columns(df, path, columns)
    use, why = choose_unit("s", unit, "csv")
    arrival = arrival_times(df, columns[0], path) * unit_scale(use)
    prompt = token_counts(df, columns[1], path)
    output = token_counts(df, columns[2], path)
    order, note = sort_by_time(arrival)
    arrival = arrival[order] - arrival[order[0]]
    notes = (span_note(arrival, use, why), *([note] if note else []))
    return TraceTable(prompt[order], output[order], arrival, str(path), notes)
