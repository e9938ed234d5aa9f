"""Per-(SMs, padded batch) corrections of decode steps replayed as CUDA graphs, fitted live.

A profile prices a decode graph's GEMMs at the padded batch (`graph_buckets`) by
interpolating the kernels it timed on its grid of row counts; the live engine's graph of a
bucket runs the GEMM path chosen for *that* row count, which the grid may not hold. On the
H200 the live decode steps of the 12 runs of session S5 (`results/live-h200/runs-s5/`,
both workloads, chunked prefill and Bullet) priced by a profile refitted on the other
workload's runs were off by bucket, the same way on both workloads: 33-48 rows 6-13% dearer
than priced, 65-96 rows 5-11% cheaper, 49-64 and 129-256 within 3% (full GPU; results/
live-h200/NOTES.md, session S5). `bulletsim calibrate --from-live` fits one factor per (SMs,
bucket) on the graph iterations of its runs (the median of measured over modelled kernel
time, from `MIN_ITERATIONS` iterations up, after the other terms were fitted: a correction
of their residuals), and the profile's
`exec.decode_graph_bucket_scale` = {"<SMs>": {"<bucket rows>": factor}} multiplies the
kernel seconds of a decode-only step padded to that bucket on that many SMs
(`ProfileLatency`); any other step, or a key the table lacks, is priced as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bulletsim.latency.graph_buckets import padded_rows

MIN_ITERATIONS = 30  # graph steps a (SMs, bucket) needs before a factor is fitted for it
SCALE_RANGE = (0.5, 2.0)  # a factor outside is a corrupt file (the H200's: 0.90-1.15)
MAX_KEYS = 4096
EXEC_KEY = "decode_graph_bucket_scale"  # the table's key in a profile's exec section

Table = dict[int, dict[int, float]]  # {SMs: {padded batch rows: factor}}


def check_scale_table(value: object, where: str) -> Table:
    """`value` ({"<SMs>": {"<rows>": factor}}) as {SMs: {rows: factor}}; ValueError (one
    line naming `where`) for keys that are not positive integers, factors outside
    `SCALE_RANGE` or not finite, or more than `MAX_KEYS` entries."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must map SM counts to {{batch rows: factor}}, got {value!r}")
    out: Table = {}
    count = 0
    for sms, inner in value.items():
        n = _key(sms, where, "SM count")
        if not isinstance(inner, dict):
            raise ValueError(f"{where}[{sms!r}] must map batch rows to factors, got {inner!r}")
        row: dict[int, float] = {}
        for rows, f in inner.items():
            r = _key(rows, where, "batch rows")
            lo, hi = SCALE_RANGE
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not lo <= f <= hi:
                raise ValueError(
                    f"{where}[{sms!r}][{rows!r}] must be a factor in [{lo:g}, {hi:g}], got {f!r}"
                )
            row[r] = float(f)
            count += 1
        out[n] = row
    if count > MAX_KEYS:
        raise ValueError(f"{where}: at most {MAX_KEYS} factors, got {count}")
    return out


def table_of(exec_: dict | None) -> Table:
    """The checked table of a profile's exec section (empty without one); ValueError as
    `check_scale_table`."""
    return check_scale_table((exec_ or {}).get(EXEC_KEY, {}), f"exec.{EXEC_KEY}")


def factor(table: Table, num_sms: int, padded: int) -> float:
    """The factor of a graph decode step of `padded` rows (its bucket) on `num_sms` SMs; 1
    when the table lacks the key."""
    return table.get(num_sms, {}).get(padded, 1.0)


def check_scale_keys(table: Table, num_sms: int, buckets: Sequence[int] | None, where: str) -> None:
    """ValueError (one line naming `where`) for a factor no step could use: an SM count
    above the GPU's `num_sms`, or batch rows that are not one of `buckets` (the engine's
    capture sizes, when the profile names them)."""
    for n, row in table.items():
        if n > num_sms:
            raise ValueError(f"{where}: SM count {n} exceeds the GPU's {num_sms}")
        if buckets:
            odd = sorted(set(row) - set(buckets))
            if odd:
                raise ValueError(f"{where}[{n}]: batch rows {odd} are not decode-graph sizes "
                                 f"(exec.decode_graph_buckets: {list(buckets)})")  # fmt: skip


def _key(k: object, where: str, what: str) -> int:
    s = str(k)
    # ASCII only: str.isdigit() also accepts "²", which int() then refuses with its own error
    if isinstance(k, bool) or not (s.isascii() and s.isdigit()) or int(s) < 1:
        raise ValueError(f"{where}: {what} keys must be positive integers, got {k!r}")
    return int(s)


def to_doc(table: Table) -> dict[str, dict[str, float]]:
    """The table as a profile stores it (string keys, sorted)."""
    return {
        str(n): {str(r): round(f, 6) for r, f in sorted(row.items())}
        for n, row in sorted(table.items())
    }


def factors(
    table: Table, graph: np.ndarray, num_sms: np.ndarray, rows: np.ndarray, buckets: Sequence[int]
) -> np.ndarray:
    """Per iteration: the table's factor for its (SMs, padded rows) when `graph` (a decode
    step replayed as a CUDA graph), else 1. All arrays have one entry per iteration; `rows`
    are the step's sequences (decode tokens), padded here to `buckets`."""
    out = np.ones(len(graph))
    if not table or not buckets:
        return out
    for i in np.flatnonzero(graph):
        out[i] = factor(table, int(num_sms[i]), padded_rows(int(rows[i]), buckets))
    return out


def fit_factors(
    graph: np.ndarray,
    num_sms: np.ndarray,
    rows: np.ndarray,
    buckets: Sequence[int],
    kernel_s: np.ndarray,
    rest_s: np.ndarray,
    measured_s: np.ndarray,
) -> tuple[Table, dict[str, dict[str, int]]]:
    """(table, iterations per key as {"<SMs>": {"<rows>": n}}) from graph iterations: per
    (SMs, padded rows) with at least `MIN_ITERATIONS` of them, the median of (measured -
    rest) / kernel, where the modelled time is kernel + rest (the factor multiplies the
    kernel part only), clipped to `SCALE_RANGE`. Arrays: one entry per iteration, times in
    seconds; iterations with no kernel time are left out. Empty without buckets."""
    table: Table = {}
    counts: dict[str, dict[str, int]] = {}
    if not buckets:
        return table, counts
    idx = np.flatnonzero(graph & (kernel_s > 0))
    keys: dict[tuple[int, int], list[int]] = {}
    for i in idx:
        keys.setdefault((int(num_sms[i]), padded_rows(int(rows[i]), buckets)), []).append(i)
    lo, hi = SCALE_RANGE
    for (n, b), members in sorted(keys.items()):
        counts.setdefault(str(n), {})[str(b)] = len(members)
        if len(members) < MIN_ITERATIONS:
            continue
        m = np.asarray(members)
        f = float(np.median((measured_s[m] - rest_s[m]) / kernel_s[m]))
        if math.isfinite(f):
            table.setdefault(n, {})[b] = min(hi, max(lo, f))
    return table, counts
