"""ShareGPT loader and the vLLM / SGLang benchmark filters.

Convention (vLLM `benchmark_serving`, SGLang `bench_serving`): keep conversations with >= 2
messages; message 0 is the prompt and message 1 the output, whoever spoke them (about a third
of V3 first pairs are gpt -> human). Token counts in the workload exclude BOS; the filters
add it back because vLLM and SGLang count with the HF tokenizer's BOS.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from bulletsim.workload.csv_columns import read_csv, token_counts
from bulletsim.workload.table import TraceTable, drop_empty
from bulletsim.workload.tokenizer import make_counter

TOKENS_COLUMNS = ("prompt_tokens_llama2", "output_tokens_llama2")
SIDECAR_SUFFIX = "_first_turn_tokens.csv"


def open_text(path: Path):
    """Open a text file that may be gzipped (decided by the magic bytes, not the name)."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gzipped else open(path, encoding="utf-8")


def read_json(path: Path) -> object:
    """Parsed JSON of a plain or gzipped file; ValueError naming the file if it is not JSON."""
    try:
        with open_text(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def sidecar_path(json_path: Path) -> Path:
    """Where the Llama-2 token-count table of a ShareGPT JSON sits, e.g. `x_first_turn_...`."""
    stem = json_path.name.removesuffix(".gz").removesuffix(".json")
    return json_path.with_name(stem + SIDECAR_SUFFIX)


def read_sharegpt_tokens(path: Path) -> TraceTable:
    """A first-turn token table (`prompt_tokens_llama2,output_tokens_llama2,...`)."""
    df = read_csv(path, TOKENS_COLUMNS)
    prompt = token_counts(df, "prompt_tokens_llama2", path, minimum=0)
    output = token_counts(df, "output_tokens_llama2", path, minimum=0)
    return drop_empty(prompt, output, str(path), ("Llama-2 token counts",))


def read_sharegpt(path: Path, tokenizer: str = "approx") -> TraceTable:
    """First (prompt, output) pair of each ShareGPT conversation, as token counts.

    With the `approx` tokenizer, a Llama-2 count table next to the JSON (see `sidecar_path`)
    is preferred: real counts beat an approximation. A `.csv` path is read as such a table.
    """
    if path.suffix == ".csv":
        return read_sharegpt_tokens(path)
    sidecar = sidecar_path(path)
    if tokenizer == "approx" and sidecar.is_file():
        return read_sharegpt_tokens(sidecar).standing_in_for_text(sidecar.name)
    entries = read_json(path)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON array of conversations, got {type(entries)}")
    prompts: list[str] = []
    outputs: list[str] = []
    for i, entry in enumerate(entries):
        messages = entry.get("conversations") if isinstance(entry, dict) else None
        if not isinstance(messages, list):
            raise ValueError(
                f"{path}: entry {i} has no 'conversations' list; expected "
                '{"conversations": [{"from": ..., "value": ...}, ...]}'
            )
        if len(messages) < 2:
            continue
        try:
            prompts.append(str(messages[0]["value"]))
            outputs.append(str(messages[1]["value"]))
        except (KeyError, TypeError):
            raise ValueError(
                f"{path}: entry {i}: messages 0 and 1 need a 'value' with the text"
            ) from None
    if not prompts:
        raise ValueError(f"{path}: no conversation with >= 2 messages")
    skipped = len(entries) - len(prompts)
    notes = [f"tokenizer {tokenizer}"]
    if skipped:
        notes.append(f"skipped {skipped} conversations with fewer than 2 messages")
    count = make_counter(tokenizer)
    return drop_empty(count(prompts), count(outputs), str(path), tuple(notes))


def sharegpt_keep(prompt: np.ndarray, output: np.ndarray, name: str) -> np.ndarray:
    """Mask of requests a benchmark's ShareGPT filter keeps (counts exclude BOS).

    vllm: drop prompt < 4, output < 4, prompt > 1024 or prompt + output > 2048;
    sglang: drop prompt < 2 or output < 2; none: keep all. Both count BOS in each length.
    """
    p, o = prompt + 1, output + 1
    if name == "vllm":
        return (p >= 4) & (o >= 4) & (p <= 1024) & (p + o <= 2048)
    if name == "sglang":
        return (p >= 2) & (o >= 2)
    if name == "none":
        return np.ones(len(prompt), bool)
    raise ValueError(f"sharegpt_filter: unknown {name!r}; valid: vllm, sglang, none")
