"""Loaders for JSON-lines request traces: Mooncake and Qwen-Bailian.

- Mooncake (kvcache-ai/Mooncake `FAST25-release/traces/*.jsonl`): one object per line,
  `{"timestamp", "input_length", "output_length", "hash_ids"}`; timestamp in milliseconds
  since the start of the trace.
- Qwen-Bailian (alibaba-edu/qwen-bailian-usagetraces-anon): `{"chat_id", "parent_chat_id",
  "timestamp", "input_length", "output_length", "type", "turn", "hash_ids"}`; timestamp in
  seconds since the start of the trace.

`hash_ids` are the ids of the prompt's KV blocks (equal ids = a shared prefix); they are
kept on the table (`TraceTable.prefix_hash_ids`) for prefix-cache work, not used yet.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from bulletsim.workload.csv_columns import sort_by_time
from bulletsim.workload.table import TraceTable
from bulletsim.workload.text_records import open_text
from bulletsim.workload.timestamps import choose_unit, span_note, unit_scale

DECLARED_UNITS = {"mooncake": "ms", "bailian": "s"}


def _count(obj: dict, key: str, line: int, path: Path, minimum: int) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v) or v < minimum:
        raise ValueError(
            f"{path}: line {line}: {key} = {v!r}; expected an integer token count >= {minimum}"
        )
    return int(v)


def read_jsonl_trace(path: Path, fmt: str, unit: str | None = None) -> TraceTable:
    """A Mooncake or Qwen-Bailian trace (`fmt`); rows with 0 output tokens dropped, counted."""
    use, why = choose_unit(DECLARED_UNITS[fmt], unit, fmt)
    times, prompts, outputs, hashes = [], [], [], []
    num_empty = 0
    with open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {line_no}: not JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}: line {line_no}: expected a JSON object")
            t = obj.get("timestamp")
            if (
                isinstance(t, bool)
                or not isinstance(t, int | float)
                or not math.isfinite(t)
                or t < 0
            ):
                raise ValueError(
                    f"{path}: line {line_no}: timestamp = {t!r}; expected a number >= 0 ({use})"
                )
            prompt = _count(obj, "input_length", line_no, path, 1)
            output = _count(obj, "output_length", line_no, path, 0)
            ids = obj.get("hash_ids", [])
            if not isinstance(ids, list):
                raise ValueError(f"{path}: line {line_no}: hash_ids must be a list of block ids")
            if output == 0:
                num_empty += 1
                continue
            times.append(float(t))
            prompts.append(prompt)
            outputs.append(output)
            hashes.append(tuple(ids))
    if not times:
        raise ValueError(f"{path}: no request line with output_length > 0")
    arr = np.asarray(times) * unit_scale(use)
    order, note = sort_by_time(arr)
    arrival = arr[order] - arr[order[0]]
    notes = [span_note(arrival, use, why)]
    if note:
        notes.append(note)
    if num_empty:
        notes.append(f"dropped {num_empty} request(s) with output_length 0")
    table = TraceTable(np.asarray(prompts, np.int64)[order], np.asarray(outputs, np.int64)[order],
                       arrival, str(path), tuple(notes), num_empty)  # fmt: skip
    return table.with_prefix_hash_ids(tuple(hashes[i] for i in order))
