"""Workloads: real LLM-serving traces, their loaders, arrivals and embedded defaults.

Map of the package (one noun per file):
    config.py          WorkloadConfig, the recipe, and its validation
    catalog.py         the named traces: format, files, public URLs, licences
    resolve.py         where real files are looked for (trace_file, traces_dir, cache)
    require.py         `python -m bulletsim.workload.require DIR TRACE...` (scripts' check)
    formats.py         the trace file formats and their detection from content
    readers.py         format -> loader
    azure.py           Azure LLM inference trace CSV, 2023 (Splitwise conv/code) and 2024
    burstgpt.py        BurstGPT CSV
    jsonl_traces.py    Mooncake and Qwen-Bailian JSONL traces
    sim_csv.py         splitwise-sim and Vidur trace CSVs
    custom.py          vLLM/SGLang custom JSONL (prompt + output length)
    sharegpt.py        ShareGPT JSON/JSONL (role-aware) and the vLLM/SGLang filters
    alpaca.py          Alpaca JSON/JSONL (input, system, history) and its token table
    length_table.py    vidur/sarathi length tables and the plain arrival CSV
    text_records.py    records of JSON arrays / JSON lines with their locations
    timestamps.py      declared timestamp units and the span/rate note
    csv_columns.py     validated CSV columns with row-level errors
    tokenizer.py       token counters: approx, sentencepiece, tiktoken
    tokenizer_files.py tokenizer files by content hash, kind sniffing (sentencepiece, tiktoken, HF)
    synthetic.py       random (vLLM / SGLang range-ratio rules) and fixed lengths
    table.py           TraceTable, a loaded file before arrivals and length rules
    length_rules.py    ShareGPT filter + max_total_tokens (drop / clip / error)
    conventions.py     named counting conventions (tokenizer family, BOS, chat template,
                       filter, pairing, arxiv-long), printed with every run
    arrivals.py        trace timestamps, Poisson, gamma, rate-profile arrivals
    length_model.py    quantile tables + empirical copula of (prompt, output)
    arrival_profile.py a trace's count per second, replayed (burstiness kept at 1 s)
    embedded.py        the embedded default models under data/
    build_defaults.py  recomputes data/*.json from the real files
    download.py        fetches the real files from their public sources
    workload.py        Workload, the public result
    loader.py          load_workload
    cli.py             `bulletsim traces list | download | build-defaults`
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bulletsim.workload.catalog import TRACE_NAMES
from bulletsim.workload.config import WorkloadConfig

if TYPE_CHECKING:
    from bulletsim.workload.loader import load_workload
    from bulletsim.workload.workload import Workload

__all__ = ["TRACE_NAMES", "Workload", "WorkloadConfig", "load_workload"]


def __getattr__(name: str):
    # numpy/pandas load only when a workload is built, not when the CLI registers commands.
    if name == "load_workload":
        from bulletsim.workload.loader import load_workload

        return load_workload
    if name == "Workload":
        from bulletsim.workload.workload import Workload

        return Workload
    raise AttributeError(f"module 'bulletsim.workload' has no attribute {name!r}")
