"""Loaders for the request-trace CSVs of two simulators: splitwise-sim and Vidur.

- splitwise-sim (Mutinex/splitwise-sim `traces/*.csv`): `request_id,request_type,
  application_id,arrival_timestamp,batch_size,prompt_size,token_size`; arrival_timestamp in
  seconds since the start, prompt_size and token_size are prompt and output tokens.
- Vidur (microsoft/vidur `TraceRequestGenerator`): `arrived_at,num_prefill_tokens,
  num_decode_tokens`; arrived_at in seconds since the start.
"""

from __future__ import annotations

from pathlib import Path

from bulletsim.workload.csv_columns import arrival_times, read_csv, sort_by_time, token_counts
from bulletsim.workload.table import TraceTable
from bulletsim.workload.timestamps import choose_unit, span_note, unit_scale

COLUMNS = {
    "splitwise-sim": ("arrival_timestamp", "prompt_size", "token_size"),
    "vidur": ("arrived_at", "num_prefill_tokens", "num_decode_tokens"),
}


def read_sim_csv(path: Path, fmt: str, unit: str | None = None) -> TraceTable:
    """A splitwise-sim or Vidur trace (`fmt`), sorted by arrival."""
    t_col, p_col, o_col = COLUMNS[fmt]
    df = read_csv(path, COLUMNS[fmt])
    use, why = choose_unit("s", unit, fmt)
    times = arrival_times(df, t_col, path) * unit_scale(use)
    prompt = token_counts(df, p_col, path)
    output = token_counts(df, o_col, path)
    order, note = sort_by_time(times)
    arrival = times[order] - times[order[0]]
    notes = [span_note(arrival, use, why), *([note] if note else [])]
    return TraceTable(prompt[order], output[order], arrival, str(path), tuple(notes))
