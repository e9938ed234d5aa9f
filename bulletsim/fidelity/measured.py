"""A benchmark client's per-request results, read from its result file, and format detection.

Both vLLM (`--append-result`) and SGLang (`--output-file`, always appended) can hold several
runs in one file, one JSON object per line; `result_index` picks one (default: the only one).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bulletsim.fidelity.observed import Observed, itl_stats_ms

MEASURED_FORMATS = ("auto", "vllm", "sglang")


@dataclass(frozen=True, slots=True)
class MeasuredRun:
    """Completed requests of one benchmark run and how the client sent them.

    `requests`: columns `id` (0..n-1 in send order), `arrival_s` (seconds after the first
    send; NaN when the file has no send times), `prompt_tokens`, `output_tokens`, `ttft_s`,
    `e2e_s`; failed requests are already removed (`num_failed`).
    `itl_s`: every inter-token gap of the completed requests, pooled (seconds).
    `request_rate`: the client's rate in req/s (inf = all at once); `burstiness`: the gamma
    shape of its inter-arrival gaps (1 = Poisson); `max_concurrency`: the client's limit on
    requests in flight (None = none). `reported`: the file's own summary figures (ms, req/s).
    """

    tool: str
    source: str
    requests: pd.DataFrame
    itl_s: np.ndarray
    duration_s: float
    request_rate: float
    burstiness: float
    max_concurrency: int | None
    num_failed: int
    reported: dict[str, float]
    notes: tuple[str, ...] = ()
    model_id: str | None = None  # the served model as the file names it (vLLM's model_id)

    @property
    def has_send_times(self) -> bool:
        return bool(len(self.requests)) and not self.requests["arrival_s"].isna().any()

    def observed(self) -> Observed:
        """This run as one side of a fidelity comparison."""
        return Observed(f"measured ({self.tool})", self.requests, itl_stats_ms(self.itl_s),
                        self.duration_s)  # fmt: skip


def read_json_objects(path: Path) -> list[dict]:
    """Every top-level JSON object in `path` (one file may hold several appended runs)."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file ({e.reason})") from None
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            break
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{path}: not JSON at line {e.lineno} column {e.colno}: {e.msg}"
            ) from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: expected a JSON object per result, got {type(obj).__name__}")
        out.append(obj)
    if not out:
        raise ValueError(f"{path}: empty file")
    return out


def pick_result(objs: list[dict], index: int | None, path: Path) -> dict:
    """The object `index` selects (negative counts from the end); with one object, that one."""
    if index is None:
        if len(objs) > 1:
            raise ValueError(
                f"{path}: holds {len(objs)} appended benchmark results; choose one with "
                f"--result-index 0..{len(objs) - 1} (or -1 for the last)"
            )
        return objs[0]
    if not -len(objs) <= index < len(objs):
        raise ValueError(
            f"--result-index {index}: {path} holds {len(objs)} result(s), valid 0..{len(objs) - 1}"
        )
    return objs[index]


def detect_tool(obj: dict, path: Path) -> str:
    """'vllm' or 'sglang' from the keys each tool writes (see the readers' docstrings)."""
    backend = str(obj.get("backend", "")).lower()
    if backend.startswith("sglang") or path.suffix == ".jsonl":
        return "sglang"  # SGLang names itself and appends JSONL lines; vLLM writes one JSON
    if "model_id" in obj or "endpoint_type" in obj or "latencies" in obj:
        return "vllm"
    if "total_output_tokens_retokenized" in obj or "dataset_name" in obj:
        return "sglang"
    raise ValueError(
        f"{path}: not a vLLM `bench serve --save-result` or SGLang `bench_serving` result "
        "(none of model_id, endpoint_type, dataset_name); use --measured-format vllm|sglang"
    )


def completed_requests(
    obj: dict, ins: list, outs: list, ttfts: list, itls: list, path: Path
) -> tuple[list[tuple[int, int, int, float, list[float]]], int, int]:
    """The requests of a result that streamed a token, as (index, prompt tokens, output tokens,
    TTFT s, its ITLs s), with the counts left out: failed (non-empty `errors`) and those that
    succeeded without a streamed token (nothing to time). One-line errors name the row."""
    errors = obj.get("errors") or [""] * len(ins)
    done, num_failed, num_no_token = [], 0, 0
    for i in range(len(ins)):
        if errors[i]:
            num_failed += 1
            continue
        out = number(outs[i], "output_lens", i, path, integer=True)
        ttft = number(ttfts[i], "ttfts", i, path)
        if out == 0 or ttft == 0:
            num_no_token += 1
            continue
        if not isinstance(itls[i], list):
            raise ValueError(f"{path}: request {i}: itls must be a list of seconds")
        own = [number(g, "itls", i, path) for g in itls[i]]
        prompt = number(ins[i], "input_lens", i, path, integer=True)
        done.append((i, int(prompt), int(out), ttft, own))
    return done, num_failed, num_no_token


def left_out_notes(num_failed: int, num_no_token: int) -> list[str]:
    """What `completed_requests` left out, as notes (none when nothing was)."""
    notes = []
    if num_failed:
        notes.append(f"{num_failed} failed request(s) left out (non-empty errors)")
    if num_no_token:
        notes.append(f"{num_no_token} request(s) without a streamed token left out")
    return notes


def per_request_lists(obj: dict, keys: tuple[str, ...], path: Path, hint: str) -> list[list]:
    """The per-request lists `keys` of a result, all of one length; one-line errors."""
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(
            f"{path}: no per-request results ({', '.join(missing)} missing): the file holds "
            f"only aggregates, which cannot be re-simulated; {hint}"
        )
    lists = [obj[k] for k in keys]
    for k, v in zip(keys, lists, strict=True):
        if not isinstance(v, list):
            raise ValueError(f"{path}: {k} must be a list, got {type(v).__name__}")
    n = len(lists[0])
    for k, v in zip(keys, lists, strict=True):
        if len(v) != n:
            raise ValueError(f"{path}: {k} has {len(v)} entries but {keys[0]} has {n}")
    return lists


def number(v, what: str, i: int, path: Path, *, integer: bool = False) -> float:
    """A finite non-negative number at request `i`; one-line error otherwise."""
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    if not ok or (integer and v != int(v)):
        kind = "a non-negative integer" if integer else "a finite number >= 0"
        raise ValueError(f"{path}: request {i}: {what} must be {kind}, got {v!r}")
    return float(v)


def rate_of(obj: dict, path: Path) -> float:
    """The client's request rate: a number, or inf (saved as "inf" or Infinity)."""
    r = obj.get("request_rate", "inf")
    if r in ("inf", float("inf")) or r is None:
        return float("inf")
    if not isinstance(r, int | float) or not r > 0:
        raise ValueError(f"{path}: request_rate must be > 0 or 'inf', got {r!r}")
    return float(r)


ROW_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens", "ttft_s", "e2e_s")


def build_run(
    tool: str,
    obj: dict,
    path: Path,
    rows: list[tuple],
    gaps: list[float],
    num_failed: int,
    notes: list[str],
    reported: dict[str, float],
) -> MeasuredRun:
    """A MeasuredRun from completed `rows` (ROW_COLUMNS; arrival = absolute send time or NaN)
    and the run-level fields of `obj` (`duration`, `request_rate`, `burstiness`,
    `max_concurrency`), sorted by send time (stable, so file order breaks ties)."""
    if not rows:
        raise ValueError(f"{path}: no completed request ({num_failed} failed)")
    df = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    df["arrival_s"] -= df["arrival_s"].min()
    df = df.sort_values("arrival_s", kind="stable").reset_index(drop=True)
    df.insert(0, "id", np.arange(len(df), dtype=np.int64))
    conc = obj.get("max_concurrency")
    if conc is not None and not (
        isinstance(conc, int) and not isinstance(conc, bool) and conc >= 1
    ):
        raise ValueError(
            f"{path}: max_concurrency must be a positive integer or null, got {conc!r}"
        )
    burst = obj.get("burstiness", 1.0)
    if not isinstance(burst, int | float) or not burst > 0:
        raise ValueError(f"{path}: burstiness must be > 0, got {burst!r}")
    duration = obj.get("duration")
    if not isinstance(duration, int | float) or not duration > 0:
        raise ValueError(f"{path}: duration (s) must be a number > 0, got {duration!r}")
    model_id = obj.get("model_id") or obj.get("model")
    return MeasuredRun(tool, str(path), df, np.asarray(gaps, dtype=np.float64), float(duration),
                       rate_of(obj, path), float(burst), conc, num_failed, reported,
                       tuple(notes), model_id if isinstance(model_id, str) else None)  # fmt: skip
