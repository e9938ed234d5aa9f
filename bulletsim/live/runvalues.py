"""The values of a live run's tables that the re-simulation and the refit take on trust,
beyond `runcheck.check_contents`'s (phases, SM counts, request ids, arrivals).

iterations.parquet: `measured_s` a finite time > 0 s (the refit and the error tables would
drop the rest silently); `start_s <= end_s`, both finite; `host_s` finite and >= 0 (the
fake executor times its own loop too, so never NaN); `sm_clock_mhz` > 0 or NaN (no NVML
reading: the fake executor, or NVML failed); token counts whole numbers >= 0, a decode or
mixed iteration with >= 1 decode token, a prefill or mixed one with >= 1 prefill token and
sequence, `decode_ctx_tokens >= decode_tokens` (each decode token attends to itself at
least); `co_sms` 0 (no co-runner) to the GPU's SMs; a layer window of -1/-1 (the whole
step) or `0 <= layer_start < layer_end <= ` the model's layers.

requests.parquet: whole token counts, `generated_tokens` (where recorded) equal to
`output_tokens` (every committed run, preempted requests included: a live run serves each
request to the end), and finite times in order: arrival <= admitted <= first token <= finish.

Each fault is a ValueError, one line naming the file, the first bad row, how many there are
and what is valid.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

TOKEN_COLUMNS = ("prefill_tokens", "num_prefill_seqs", "decode_tokens", "decode_ctx_tokens")
FULL_STEP = -1  # layer_start = layer_end = -1: the iteration ran every layer (no window)
OPTIONAL_COUNTS = ("prefill_kv_tokens", "logits_tokens")  # counts some runs record
# measured_s (CUDA events, or the fake's prediction) against the run clock's end - start: the
# committed GPU runs agree within 4 us; 1 ms (plus 0.1%) leaves room for any clock rounding
SPAN_TOL_S = 1e-3


def show_value(x) -> str:
    """A value for a message: 7 for 7.0, else as Python prints it (nan, inf, 2.5)."""
    if isinstance(x, int | float) and float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.6g}" if isinstance(x, int | float) else str(x)


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col]).astype(np.float64)


def _whole(x: pd.Series) -> pd.Series:
    """True where `x` is a finite whole number (NaN, inf and 2.5 are not)."""
    return np.isfinite(x) & (x == np.floor(x))


def refuse_rows(f: Path, noun: str, names: pd.Series, bad: pd.Series, what, valid: str) -> None:
    """ValueError for the first row where `bad`: "<f>: <noun> <name> has <what(i)> (<n> of
    <rows> <noun>s); valid: <valid>"."""
    if not bad.any():
        return
    i = int(np.flatnonzero(bad.to_numpy())[0])
    raise ValueError(
        f"{f}: {noun} {names.iloc[i]} has {what(i)} ({int(bad.sum())} of {len(bad)} {noun}s); "
        f"valid: {valid}"
    )


def check_iteration_values(f: Path, num_sms: int, num_layers: int) -> None:
    """ValueError, one line, for a value of iterations.parquet `f` no live run writes (see the
    module doc); `num_sms`, `num_layers`: the GPU's and the model's (config.json's)."""
    it = pd.read_parquet(f)
    rows = pd.Series([f"row {i}" for i in range(len(it))])
    it = it.reset_index(drop=True)
    phase = it["phase"].astype(str)

    def one(col: str, bad: pd.Series, valid: str) -> None:
        x = _num(it, col)
        refuse_rows(f, "iteration", rows, bad, lambda i: f"{col} {show_value(x.iloc[i])}", valid)

    m = _num(it, "measured_s")
    one("measured_s", ~(np.isfinite(m) & (m > 0)), "a finite time > 0 s (the work's device time)")
    start, end = _num(it, "start_s"), _num(it, "end_s")
    for col, x in (("start_s", start), ("end_s", end)):
        one(col, ~np.isfinite(x), "a finite time in s")
    refuse_rows(f, "iteration", rows, start > end,
            lambda i: f"start_s {show_value(start.iloc[i])} > end_s {show_value(end.iloc[i])}",
            "start_s <= end_s")  # fmt: skip
    if "host_s" in it:
        h = _num(it, "host_s")
        one("host_s", ~(np.isfinite(h) & (h >= 0)), "a finite time >= 0 s (host CPU time)")
    if "sm_clock_mhz" in it:
        c = _num(it, "sm_clock_mhz")
        one("sm_clock_mhz", ~((np.isfinite(c) & (c > 0)) | c.isna()),
            "a clock > 0 MHz, or NaN where none was read (fake executor, no NVML)")  # fmt: skip
    for col in TOKEN_COLUMNS + tuple(c for c in OPTIONAL_COUNTS if c in it):
        x = _num(it, col)
        one(col, ~(_whole(x) & (x >= 0)), "a whole number >= 0")
    if "prefill_attn_pairs" in it:
        x = _num(it, "prefill_attn_pairs")
        one("prefill_attn_pairs", ~(np.isfinite(x) & (x >= 0)), "a count >= 0")
    n = _num(it, "num_sms")
    one("num_sms", ~_whole(n), "a whole number of SMs")
    span = end - start  # the run's clock and the CUDA events agree (committed runs: < 4 us)
    refuse_rows(f, "iteration", rows, (m - span).abs() > SPAN_TOL_S + 1e-3 * m,
            lambda i: f"measured_s {show_value(m.iloc[i])} against end_s - start_s "
                      f"{show_value(span.iloc[i])}",
            f"measured_s = end_s - start_s within {SPAN_TOL_S * 1e3:g} ms")  # fmt: skip
    for col, phases in (("decode_tokens", ("decode", "mixed")),
                        ("prefill_tokens", ("prefill", "mixed")),
                        ("num_prefill_seqs", ("prefill", "mixed"))):  # fmt: skip
        x = _num(it, col)
        refuse_rows(f, "iteration", rows, phase.isin(phases) & ~(x >= 1),
                lambda i, x=x, col=col: f"{col} {show_value(x.iloc[i])} in a {phase.iloc[i]} phase",
                f"{col} >= 1 in a {' or '.join(phases)} iteration")  # fmt: skip
    dt, ctx = _num(it, "decode_tokens"), _num(it, "decode_ctx_tokens")
    refuse_rows(f, "iteration", rows, ctx < dt,
            lambda i: f"decode_ctx_tokens {show_value(ctx.iloc[i])} < decode_tokens "
                      f"{show_value(dt.iloc[i])}",
            "decode_ctx_tokens >= decode_tokens (each decode token attends to itself)")  # fmt: skip
    co = _num(it, "co_sms")
    one("co_sms", ~(_whole(co) & co.between(0, num_sms)),
        f"0 (no co-runner) to {num_sms} (the SMs of config.json's gpu)")  # fmt: skip
    ls, le = _num(it, "layer_start"), _num(it, "layer_end")
    full = (ls == FULL_STEP) & (le == FULL_STEP)
    window = _whole(ls) & _whole(le) & (ls >= 0) & (ls < le) & (le <= num_layers)
    refuse_rows(f, "iteration", rows, ~(full | window),
            lambda i: f"layers {show_value(ls.iloc[i])} to {show_value(le.iloc[i])}",
            f"-1 to -1 (the whole step) or a window 0 <= layer_start < layer_end <= "
            f"{num_layers} (config.json's model's layers)")  # fmt: skip


def check_request_values(f: Path) -> None:
    """ValueError, one line, for a value of requests.parquet `f` no live run writes (see the
    module doc). Ids, token counts >= 1 and arrivals are `runcheck.check_contents`'s."""
    req = pd.read_parquet(f).reset_index(drop=True)
    ids = req["id"].map(show_value)
    for col in ("prompt_tokens", "output_tokens", "generated_tokens"):
        if col in req:
            x = _num(req, col)
            refuse_rows(f, "request", ids, ~_whole(x), lambda i, x=x, col=col:
                    f"{col} {show_value(x.iloc[i])}", "a whole number of tokens")  # fmt: skip
    if "generated_tokens" in req:
        gen, out = _num(req, "generated_tokens"), _num(req, "output_tokens")
        refuse_rows(f, "request", ids, gen != out,
                lambda i: f"generated_tokens {show_value(gen.iloc[i])} != output_tokens "
                          f"{show_value(out.iloc[i])}",
                "generated_tokens = output_tokens (a live run serves every request to its "
                "end)")  # fmt: skip
    order = ("arrival_s", "admitted_s", "first_token_s", "finish_s")
    for col in order[1:]:
        x = _num(req, col)
        refuse_rows(f, "request", ids, ~np.isfinite(x), lambda i, x=x, col=col:
                f"{col} {show_value(x.iloc[i])}", "a finite time in s")  # fmt: skip
    for a, b in pairwise(order):
        xa, xb = _num(req, a), _num(req, b)
        refuse_rows(f, "request", ids, xb < xa,
                lambda i, a=a, b=b, xa=xa, xb=xb: f"{b} {show_value(xb.iloc[i])} before {a} "
                                                  f"{show_value(xa.iloc[i])}",
                f"{a} <= {b}")  # fmt: skip
