"""Recompute the embedded default models from the real trace files.

`bulletsim traces build-defaults --from DIR` runs `build_defaults(DIR)`; it rewrites every
JSON under bulletsim/workload/data/ from the files in DIR (see PROVENANCE.md for their sources).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bulletsim.workload.alpaca import read_alpaca_tokens
from bulletsim.workload.arrival_profile import fit_arrival_profile
from bulletsim.workload.azure import read_azure_csv
from bulletsim.workload.embedded import DATA_DIR, SCHEMA
from bulletsim.workload.length_model import fit_length_model
from bulletsim.workload.length_table import read_length_table
from bulletsim.workload.sharegpt import read_sharegpt_tokens
from bulletsim.workload.table import TraceTable

COMMAND = "bulletsim traces build-defaults --from DIR"

# json name -> (real file, reader). The text datasets use their Llama-2 count tables.
SOURCES: dict[str, tuple[str, Callable[[Path], TraceTable]]] = {
    "splitwise-conv.json": ("AzureLLMInferenceTrace_conv.csv", read_azure_csv),
    "splitwise-code.json": ("AzureLLMInferenceTrace_code.csv", read_azure_csv),
    "sharegpt.json": ("sharegpt_v3_random1000_first_turn_tokens.csv", read_sharegpt_tokens),
    "sharegpt-sarathi.json": (
        "sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
        read_length_table,
    ),
    "alpaca.json": ("alpaca_data_tokens.csv", read_alpaca_tokens),
    "arxiv.json": ("arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv", read_length_table),
    "arxiv-long.json": (
        "arxiv_summarization_filtered_stats_llama2_tokenizer_pod.csv",
        read_length_table,
    ),
}


def _summary(values: np.ndarray) -> dict:
    q = np.quantile(values, [0.5, 0.9, 0.99])
    return {
        "mean": round(float(values.mean()), 2),
        "median": round(float(q[0]), 1),
        "p90": round(float(q[1]), 1),
        "p99": round(float(q[2]), 1),
        "max": int(values.max()),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks = [np.argsort(np.argsort(x, kind="stable"), kind="stable") for x in (a, b)]
    return float(np.corrcoef(ranks[0], ranks[1])[0, 1])


# json name -> readers of the same file's counts by other tokenizer families
FAMILY_READERS: dict[str, dict[str, Callable[[Path], TraceTable]]] = {
    "sharegpt.json": {"llama3": lambda p: read_sharegpt_tokens(p, "llama3")},
    "alpaca.json": {"llama3": lambda p: read_alpaca_tokens(p, "llama3")},
}


# Timestamped traces also get one length model per SEGMENT_S of the trace, so lengths follow
# the trace's drift and move with its rate: in the code trace, 600-853 s holds 517 requests
# (2.0 req/s, mean prompt 1,728 tokens) and 853-1,200 s 1,629 (4.7 req/s, 2,049 tokens); one
# model per 10 minutes gave that quiet stretch the busy one's long prompts, and on an H200
# the first 2,000 requests queued longer than the real file's. TTFT p90 of chunked / Bullet
# vs the real file, mean of embedded seeds 0-3 (tests/test_embedded_fidelity.py's setting):
# 600 s +50% / +36%, 120 s +11% / +2%, 60 s +11% / +2% (but 69 KB). A 2-minute stretch holds
# 80-600 requests: quantile tables at 65 points (SEGMENT_PROBS) are as fine as that supports.
SEGMENT_S = 120.0
SEGMENT_PROBS = np.linspace(0.0, 1.0, 65)


# A stretch with fewer requests than this shares one model with the stretches after it
# (the last group, with the one before): too few to fit quantiles and a copula on.
MIN_SEGMENT_REQUESTS = 40


def _segments(table: TraceTable) -> dict | None:
    """Length models per stretch of SEGMENT_S and `index`: the model of every stretch, in
    order (stretches too quiet for a model of their own share their neighbours')."""
    if table.arrival_s is None:
        return None
    t = table.arrival_s - table.arrival_s[0]
    seg = (t // SEGMENT_S).astype(np.int64)
    sizes = np.bincount(seg)
    index, groups, open_group = [], [], []
    for k in range(len(sizes)):
        open_group.append(k)
        index.append(len(groups))
        if sum(sizes[open_group]) >= MIN_SEGMENT_REQUESTS:
            groups.append(open_group)
            open_group = []
    if open_group:  # a short tail joins the last group
        if groups:
            groups[-1] += open_group
            index[-len(open_group) :] = [len(groups) - 1] * len(open_group)
        else:
            groups.append(open_group)
    models = []
    for g in groups:
        m = np.isin(seg, g)
        models.append(
            fit_length_model(
                table.prompt_tokens[m], table.output_tokens[m], SEGMENT_PROBS
            ).to_json()
        )
    return {"segment_s": SEGMENT_S, "index": index, "models": models}


def build_document(
    table: TraceTable, source: Path, by_family: dict[str, TraceTable] | None = None
) -> dict:
    """The JSON document of one embedded model, computed from a loaded real file."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    prompt, output = table.prompt_tokens, table.output_tokens
    arrivals = None if table.arrival_s is None else fit_arrival_profile(table.arrival_s)
    return {
        "schema": SCHEMA,
        "source": {
            "file": source.name,
            "sha256": digest,
            "rows": len(table) + table.num_empty,
            "rows_dropped": table.num_empty,
            "command": COMMAND,
        },
        "stats": {
            "prompt_tokens": _summary(prompt),
            "output_tokens": _summary(output),
            "spearman": round(_spearman(prompt, output), 4),
            "max_total_tokens": int((prompt + output).max()),
            "mean_rate": None if arrivals is None else round(arrivals.mean_rate, 4),
            "gap_cv": None if arrivals is None else round(arrivals.gap_cv, 4),
        },
        "lengths": fit_length_model(prompt, output).to_json(),
        "arrivals": None if arrivals is None else arrivals.to_json(),
        **(
            {"lengths_by_family": {
                k: fit_length_model(t.prompt_tokens, t.output_tokens).to_json()
                for k, t in by_family.items()
            }}
            if by_family
            else {}
        ),
        **({"lengths_by_segment": seg} if (seg := _segments(table)) else {}),
    }  # fmt: skip


def build_defaults(from_dir: Path, out_dir: Path = DATA_DIR) -> list[Path]:
    """Rewrite every embedded JSON from the real files in `from_dir`; returns what it wrote.

    FileNotFoundError (naming all missing files) before anything is written.
    """
    missing = [name for name, _ in SOURCES.values() if not (from_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{from_dir} lacks {', '.join(missing)}; get them with `bulletsim traces download`"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for json_name, (file_name, reader) in SOURCES.items():
        src = from_dir / file_name
        by_family = {k: r(src) for k, r in FAMILY_READERS.get(json_name, {}).items()}
        doc = build_document(reader(src), src, by_family)
        path = out_dir / json_name
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        tmp.replace(path)
        written.append(path)
    return written
