"""Loader for vLLM's and SGLang's "custom" JSONL datasets: a prompt and an output length per line.

vLLM `bench serve --dataset-name custom` reads `{"prompt": "..."}` per line and takes the
output length from `--custom-output-len`; files made for replay also carry it per line. Here
each line needs `prompt` (a string) and an output length from `output_tokens` (or
`output_len`, `max_tokens`), else the workload's `output_len`. No timestamps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bulletsim.workload.table import TraceTable, drop_empty
from bulletsim.workload.text_records import read_records
from bulletsim.workload.tokenizer import make_counter, tokenizer_label

OUTPUT_KEYS = ("output_tokens", "output_len", "max_tokens")


def read_custom(path: Path, tokenizer: str = "approx", output_len: int | None = None) -> TraceTable:
    """Token counts of each line; a null or non-string prompt is rejected and counted."""
    prompts: list[str] = []
    outputs: list[int] = []
    num_rejected = 0
    for where, rec in read_records(path):
        if not isinstance(rec, dict):
            raise ValueError(
                f'{path}: {where}: expected an object {{"prompt": ..., "output_tokens": ...}}'
            )
        if "prompt" not in rec:
            raise ValueError(
                f"{path}: {where}: no 'prompt' key; keys are {', '.join(rec) or 'none'}"
            )
        key = next((k for k in OUTPUT_KEYS if k in rec), None)
        out = rec[key] if key else output_len
        if out is None:
            raise ValueError(
                f"{path}: {where}: no output length ({', '.join(OUTPUT_KEYS)}) and no output_len "
                "given for the workload"
            )
        if isinstance(out, bool) or not isinstance(out, int) or out < 1:
            raise ValueError(
                f"{path}: {where}: {key or 'output_len'} = {out!r}; expected an integer >= 1"
            )
        if not isinstance(rec["prompt"], str):
            num_rejected += 1
            continue
        prompts.append(rec["prompt"])
        outputs.append(out)
    if not prompts:
        raise ValueError(f"{path}: no line with a string prompt")
    notes = [f"tokenizer {tokenizer_label(tokenizer)}"]
    if num_rejected:
        notes.append(f"rejected {num_rejected} line(s) whose prompt is null or not a string")
    table = drop_empty(make_counter(tokenizer)(prompts), np.asarray(outputs, np.int64),
                       str(path), tuple(notes))  # fmt: skip
    return TraceTable(table.prompt_tokens, table.output_tokens, None, table.source, table.notes,
                      table.num_empty + num_rejected)  # fmt: skip
