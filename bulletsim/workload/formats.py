"""Trace file formats: names, what each holds, and detection from a file's content.

`--trace-format NAME` chooses one; `auto` (the default for `trace=csv`, a file of your own)
detects it from the CSV header or the keys of the first JSON record, never from the name.
Timestamps are in the unit each format declares (see traces/README.md) unless
`timestamp_unit` overrides it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from bulletsim.workload.text_records import open_text


@dataclass(frozen=True, slots=True)
class TraceFormat:
    name: str
    description: str
    has_timestamps: bool


TRACE_FORMATS: dict[str, TraceFormat] = {
    f.name: f
    for f in (
        TraceFormat("azure", "Azure LLM inference trace CSV, 2023 or 2024", True),
        TraceFormat("burstgpt", "BurstGPT CSV (Timestamp, Model, Request/Response tokens)", True),
        TraceFormat("mooncake", "Mooncake JSONL (timestamp ms, input/output_length)", True),
        TraceFormat("bailian", "Qwen-Bailian JSONL (timestamp s, input/output_length)", True),
        TraceFormat(
            "splitwise-sim", "splitwise-sim CSV (arrival_timestamp, prompt/token_size)", True
        ),
        TraceFormat("vidur", "Vidur CSV (arrived_at, num_prefill/decode_tokens)", True),
        TraceFormat("csv", "plain CSV arrival_s, prompt_tokens, output_tokens", True),
        TraceFormat("length-table", "CSV num_prefill_tokens, num_decode_tokens (no times)", False),
        TraceFormat("custom", "vLLM/SGLang custom JSONL: prompt + output length", False),
        TraceFormat("sharegpt", "ShareGPT JSON or JSONL conversations", False),
        TraceFormat("alpaca", "Alpaca JSON or JSONL (instruction, input, output)", False),
    )
}
FORMAT_NAMES = ("auto", *TRACE_FORMATS)

# CSV header columns that identify a format, most specific first
_CSV_SIGNATURES = (
    ("azure", {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}),
    ("burstgpt", {"Timestamp", "Request tokens", "Response tokens"}),
    ("splitwise-sim", {"arrival_timestamp", "prompt_size", "token_size"}),
    ("vidur", {"arrived_at", "num_prefill_tokens", "num_decode_tokens"}),
    ("length-table", {"num_prefill_tokens", "num_decode_tokens"}),
    ("csv", {"arrival_s", "prompt_tokens", "output_tokens"}),
)
# JSON keys of the first record that identify a format
_JSON_SIGNATURES = (
    ("bailian", {"chat_id", "timestamp", "input_length", "output_length"}),
    ("mooncake", {"timestamp", "input_length", "output_length"}),
    ("sharegpt", {"conversations"}),
    ("sharegpt", {"messages"}),
    ("alpaca", {"instruction", "output"}),
    ("custom", {"prompt"}),
)


def _first_json_record(text: str) -> dict | None:
    s = text.lstrip()
    if s.startswith("["):
        s = s[1:].lstrip()
    try:
        obj, _ = json.JSONDecoder().raw_decode(s)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def detect_format(path: Path) -> str:
    """The format of `path` from its content; ValueError listing the formats otherwise."""
    try:
        with open_text(path) as f:
            head = f.read(1 << 20)
    except (UnicodeDecodeError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: not a text file ({exc})") from None
    if head.lstrip()[:1] in ("[", "{"):
        rec = _first_json_record(head)
        keys = set(rec) if rec else set()
        for name, sig in _JSON_SIGNATURES:
            if sig <= keys:
                return name
        found = ", ".join(sorted(keys)) or "no object"
    else:
        header = next(csv.reader(io.StringIO(head)), [])
        cols = {c.strip() for c in header}
        for name, sig in _CSV_SIGNATURES:
            if sig <= cols:
                return name
        found = ", ".join(header) or "an empty file"
    raise ValueError(
        f"{path}: cannot tell its trace format (found {found}); give --trace-format, one of "
        f"{', '.join(TRACE_FORMATS)} (traces/README.md lists their columns)"
    )
