"""Loader for the BurstGPT trace CSV (HPMLL/BurstGPT, Wang et al., arXiv:2401.17644).

Columns `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`. Timestamp is
seconds since the start of the trace (the release's README), many requests share a second.
Model is `ChatGPT` or `GPT-4`; Log Type `Conversation log` or `API log`. Failed requests
have 0 response tokens: they are dropped and counted (the release also ships
`BurstGPT_without_fails_*.csv` with them removed).
"""

from __future__ import annotations

from pathlib import Path

from bulletsim.workload.csv_columns import arrival_times, read_csv, sort_by_time, token_counts
from bulletsim.workload.table import TraceTable
from bulletsim.workload.timestamps import choose_unit, span_note, unit_scale

COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens")


def read_burstgpt(path: Path, model: str | None = None, unit: str | None = None) -> TraceTable:
    """The rows of `model` (every row when None; ValueError listing the models otherwise)."""
    df = read_csv(path, COLUMNS, dtype={"Model": str})
    notes = []
    if model is not None:
        models = sorted(df["Model"].dropna().unique())
        if model not in models:
            raise ValueError(
                f"trace_model: {path} has no model {model!r}; valid: {', '.join(models)}"
            )
        df = df[df["Model"] == model].reset_index(drop=True)
        notes.append(f"kept the {len(df)} rows of model {model}")
    use, why = choose_unit("s", unit, "BurstGPT")
    times = arrival_times(df, "Timestamp", path) * unit_scale(use)
    prompt = token_counts(df, "Request tokens", path, minimum=0)
    output = token_counts(df, "Response tokens", path, minimum=0)
    keep = (output > 0) & (prompt > 0)
    num_failed = int((~keep).sum())
    times, prompt, output = times[keep], prompt[keep], output[keep]
    if not len(times):
        raise ValueError(f"{path}: no request with response tokens > 0")
    order, note = sort_by_time(times)
    arrival = times[order] - times[order[0]]
    notes.insert(0, span_note(arrival, use, why))
    if note:
        notes.append(note)
    if num_failed:
        notes.append(f"dropped {num_failed} failed request(s) (0 request or response tokens)")
    return TraceTable(prompt[order], output[order], arrival, str(path), tuple(notes),
                      num_failed)  # fmt: skip
