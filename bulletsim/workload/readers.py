"""Dispatch from a trace format to the loader of its file."""

from __future__ import annotations

from pathlib import Path

from bulletsim.workload.alpaca import read_alpaca
from bulletsim.workload.azure import read_azure_csv
from bulletsim.workload.burstgpt import read_burstgpt
from bulletsim.workload.catalog import TraceInfo
from bulletsim.workload.custom import read_custom
from bulletsim.workload.formats import FORMAT_NAMES, detect_format
from bulletsim.workload.jsonl_traces import read_jsonl_trace
from bulletsim.workload.length_table import read_arrival_csv, read_length_table
from bulletsim.workload.sharegpt import read_sharegpt
from bulletsim.workload.sim_csv import read_sim_csv
from bulletsim.workload.table import TraceTable


def file_format(info: TraceInfo, path: Path, trace_format: str | None) -> str:
    """The format to read `path` as: given, detected (`auto`, and the `csv` trace), or the
    named trace's own."""
    fmt = trace_format or ("auto" if info.format == "csv" else info.format)
    if fmt not in FORMAT_NAMES:
        raise ValueError(f"trace_format: unknown {fmt!r}; valid: {', '.join(FORMAT_NAMES)}")
    return detect_format(path) if fmt == "auto" else fmt


def read_trace_file(
    info: TraceInfo,
    path: Path,
    tokenizer: str = "approx",
    *,
    trace_format: str | None = None,
    timestamp_unit: str | None = None,
    trace_model: str | None = None,
    output_len: int | None = None,
    family: str = "llama2",
    pairing: str = "first-two",
) -> TraceTable:
    """Load `path` (see `file_format`); text formats count tokens with `tokenizer`, or read
    the `family` columns of a real count table (ShareGPT pairs per `pairing`).

    `timestamp_unit` overrides the unit a format declares; `trace_model` selects BurstGPT's
    model column; `output_len` is the output length of custom-JSONL lines without one.
    """
    fmt = file_format(info, path, trace_format)
    if fmt in ("azure", "csv", "length-table", "splitwise-sim", "vidur") and _looks_like_json(path):
        raise ValueError(
            f"{path} holds JSON, but trace {info.name!r} reads it as {fmt} CSV; for ShareGPT or "
            "Alpaca JSON use --trace sharegpt or --trace alpaca "
            "(or --set workload.trace_format=auto)"
        )
    # formats whose timestamps are numbers in a declared unit; the others have ISO-8601
    # wall-clock times (azure) or no timestamps at all: an override there is an input error
    if timestamp_unit is not None and fmt not in NUMERIC_TIME_FORMATS:
        what = "ISO-8601 wall-clock times" if fmt == "azure" else "no timestamps"
        raise ValueError(
            f"--timestamp-unit {timestamp_unit}: the {fmt} format has {what}; it applies to "
            f"{', '.join(NUMERIC_TIME_FORMATS)}"
        )
    if fmt == "azure":
        try:
            return read_azure_csv(path)
        except ValueError as e:
            if "missing column" not in str(e):
                raise
            raise ValueError(
                f"{e} (a CSV of arrival_s,prompt_tokens,output_tokens is --trace csv)"
            ) from None
    if fmt == "burstgpt":
        return read_burstgpt(path, trace_model, timestamp_unit)
    if fmt in ("mooncake", "bailian"):
        return read_jsonl_trace(path, fmt, timestamp_unit)
    if fmt in ("splitwise-sim", "vidur"):
        return read_sim_csv(path, fmt, timestamp_unit)
    if fmt == "custom":
        return read_custom(path, tokenizer, output_len)
    if fmt == "sharegpt":
        return read_sharegpt(path, tokenizer, family, pairing)
    if fmt == "alpaca":
        return read_alpaca(path, tokenizer, family)
    if fmt == "length-table":
        return read_length_table(path)
    assert fmt == "csv", fmt
    return read_arrival_csv(path, timestamp_unit)


NUMERIC_TIME_FORMATS = ("burstgpt", "mooncake", "bailian", "splitwise-sim", "vidur", "csv")


def _looks_like_json(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] in (b"[", b"{")
