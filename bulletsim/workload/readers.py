"""Dispatch from a trace's format to the loader of its real file."""

from __future__ import annotations

from pathlib import Path

from bulletsim.workload.alpaca import read_alpaca
from bulletsim.workload.azure import read_azure_csv
from bulletsim.workload.catalog import TraceInfo
from bulletsim.workload.length_table import read_arrival_csv, read_length_table
from bulletsim.workload.sharegpt import read_sharegpt
from bulletsim.workload.table import TraceTable


def read_trace_file(info: TraceInfo, path: Path, tokenizer: str = "approx") -> TraceTable:
    """Load `path` as the format of trace `info` (text formats count tokens with `tokenizer`)."""
    if info.format == "azure":
        return read_azure_csv(path)
    if info.format == "sharegpt":
        return read_sharegpt(path, tokenizer)
    if info.format == "alpaca":
        return read_alpaca(path, tokenizer)
    if info.format == "length-table":
        return read_length_table(path)
    assert info.format == "csv", info.format
    return read_arrival_csv(path)
