"""Is a live run folder whole and of one run? (`rundir.check_live_run` calls these.)

`check_tables` reads only the Parquet footers: every column `bulletsim fidelity` and
`calibrate --from-live` read must be there with a numeric (or, for lanes and phases, text)
type. `check_one_run` then checks that the files belong together: the digests `bulletsim
live` records in live.json (`files`, sha256 of each table; runs written before it have
none), the GPU, model and policy config.json and summary.json name, the row counts
summary.json gives, the lanes the run's policy has, and summary.json's duration recomputed
from requests.parquet. `check_contents` then checks the values the re-simulation and the
refit take on trust: each iteration's phase (prefill, decode, mixed) and SM count (1 to the
GPU's), and each request's unique id, token counts (>= 1) and finite arrival time (>= 0 s),
then the other values the commands read (`runvalues`: times in order, token counts, layer
windows, co-runner SMs).
Each fault is a ValueError, one line naming the file and what does not match.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bulletsim.live.runvalues import refuse_rows, show_value

# (column, kind) each command reads; kind "num" (integer or float) or "text" (string or
# categorical). predicted_s, host_s and the exact-shape columns are optional (older runs).
REQUEST_COLUMNS = (
    ("id", "num"),
    ("arrival_s", "num"),
    ("prompt_tokens", "num"),
    ("output_tokens", "num"),
    ("admitted_s", "num"),
    ("first_token_s", "num"),
    ("finish_s", "num"),
)
ITERATION_COLUMNS = (
    ("lane", "text"),
    ("phase", "text"),
    ("start_s", "num"),
    ("end_s", "num"),
    ("num_sms", "num"),
    ("policy_sms", "num"),
    ("co_sms", "num"),
    ("prefill_tokens", "num"),
    ("num_prefill_seqs", "num"),
    ("decode_tokens", "num"),
    ("decode_ctx_tokens", "num"),
    ("layer_start", "num"),
    ("layer_end", "num"),
    ("measured_s", "num"),
)
TABLES = {"requests.parquet": REQUEST_COLUMNS, "iterations.parquet": ITERATION_COLUMNS}
# columns some runs lack (older runs, the fake executor) that must be numbers where present
OPTIONAL_NUMBERS = {
    "requests.parquet": ("generated_tokens", "num_preemptions"),
    "iterations.parquet": ("predicted_s", "host_s", "notice_lag_s", "sm_clock_mhz",
                           "prefill_attn_pairs", "prefill_kv_tokens", "logits_tokens",
                           "kv_used_blocks", "num_waiting", "num_running", "num_rescales"),
}  # fmt: skip
PHASES = ("prefill", "decode", "mixed")  # core.Phase: what a lane's iteration ran
# summary.json's duration_s against the one requests.parquet gives: equal but for float
# rounding when both come from the same run
REL_TOL = 1e-9


def _kind_ok(t, kind: str) -> bool:
    import pyarrow as pa

    if kind == "num":
        return pa.types.is_integer(t) or pa.types.is_floating(t)
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def check_tables(d: Path) -> dict[str, int]:
    """Rows of each table of run folder `d`; ValueError naming the file and the first missing
    column or the column of the wrong type."""
    import pyarrow.parquet as pq

    rows = {}
    for name, cols in TABLES.items():
        f = pq.ParquetFile(d / name)
        schema = f.schema_arrow
        missing = [c for c, _ in cols if c not in schema.names]
        if missing:
            raise ValueError(
                f"{d / name} has no column {', '.join(missing)} (a live run's {name} has "
                f"{', '.join(c for c, _ in cols)})"
            )
        optional = [(c, "num") for c in OPTIONAL_NUMBERS[name] if c in schema.names]
        for c, kind in (*cols, *optional):
            t = schema.field(c).type
            if not _kind_ok(t, kind):
                want = "a number" if kind == "num" else "text"
                raise ValueError(f"{d / name}: column {c} is {t}; valid: {want}")
        rows[name] = f.metadata.num_rows
    return rows


def file_digests(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    """sha256 (hex) of each named file in `folder`."""
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


def data_digests(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    """sha256 (hex) of each named table's data in `folder`: its column names and pandas'
    per-row hashes (index included), so a table saved again with the same data (other bytes:
    another writer, compression or row-group size) has the same digest."""
    import pandas as pd

    out = {}
    for n in names:
        df = pd.read_parquet(folder / n)
        h = hashlib.sha256("\0".join(map(str, df.columns)).encode())
        h.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
        out[n] = h.hexdigest()
    return out


def check_one_run(d: Path, summary: dict, config: dict, live: dict, num_layers: int) -> None:
    """ValueError, one line, unless config.json, summary.json, live.json and the two tables of
    run folder `d` come from one run (see the module doc) and hold values a live run writes
    (`check_contents`; `num_layers`: config.json's model's). The tables' columns must have
    been checked (`check_tables`)."""
    import pandas as pd

    for key in ("gpu", "model"):
        a, b = summary.get(key), config.get(key)
        if isinstance(a, str) and isinstance(b, str) and a.lower() != b.lower():
            raise ValueError(f"{d / 'summary.json'} says {key} {a}; {d / 'config.json'} says "
                             f"{b}: files of different runs in one folder?")  # fmt: skip
    label, policy = summary.get("policy"), config.get("policy")
    if isinstance(label, str) and isinstance(policy, str):
        if label != policy and not label.startswith(policy + "-"):
            raise ValueError(f"{d / 'summary.json'} is of policy {label}; {d / 'config.json'} "
                             f"says {policy}: files of different runs in one folder?")  # fmt: skip
    rows = check_tables(d)
    digests = live.get("files")
    if isinstance(digests, dict):
        now = file_digests(d, tuple(n for n in TABLES if n in digests))
        for n, h in now.items():
            if h != digests[n]:
                raise ValueError(
                    f"{d / n} is not the file this run wrote (its sha256 differs from the one "
                    f"{d / 'live.json'} records): files of different runs in one folder?"
                )
    it = pd.read_parquet(d / "iterations.parquet", columns=["lane", "measured_s"])
    if not len(it) or not (it["measured_s"] > 0).any():
        neg = int((it["measured_s"] < 0).sum()) if len(it) else 0
        why = f": {neg} of {len(it)} measured_s are negative" if neg else ""
        raise ValueError(f"live run {d} has no measured iterations "
                         f"({d / 'iterations.parquet'}{why})")  # fmt: skip
    for name, key in (("requests.parquet", "num_requests"), ("iterations.parquet",
                                                            "num_iterations")):  # fmt: skip
        want = summary.get(key)
        if isinstance(want, int) and rows[name] != want:
            raise ValueError(
                f"{d / name} has {rows[name]} rows; {d / 'summary.json'} says {key} = {want}: "
                "files of different runs in one folder?"
            )
    from bulletsim.policies.registry import lanes_of

    lanes = lanes_of(str(config.get("policy", "")))
    extra = sorted(set(it["lane"].astype(str)) - set(lanes or ()))
    if lanes is not None and extra:
        raise ValueError(
            f"{d / 'iterations.parquet'} has lanes {', '.join(extra)}; policy "
            f"{config.get('policy')} (config.json) has lanes {', '.join(lanes)}: files of "
            "different runs in one folder?"
        )
    check_contents(d, str(config.get("gpu", "")), num_layers)
    req = pd.read_parquet(d / "requests.parquet", columns=["arrival_s", "finish_s"])
    want = summary.get("duration_s")
    if len(req) and isinstance(want, float) and np.isfinite(want):
        got = float(req["finish_s"].max() - req["arrival_s"].min())
        if abs(got - want) > REL_TOL * max(abs(want), 1.0):
            raise ValueError(
                f"{d / 'requests.parquet'} spans {got:.6f} s from first arrival to last "
                f"finish; {d / 'summary.json'} says duration_s = {want:.6f}: files of "
                "different runs in one folder?"
            )


def _some(values, n: int = 3) -> str:
    """Up to `n` of `values` for a message, e.g. "foo, bar (and 4 more)"."""
    vals = [show_value(v) for v in values]
    more = f" (and {len(vals) - n} more)" if len(vals) > n else ""
    return ", ".join(vals[:n]) + more


def check_contents(d: Path, gpu: str, num_layers: int) -> None:
    """ValueError, one line naming the file, for a value of run folder `d`'s tables that no
    live run writes: an iteration phase not in `PHASES`, an SM count outside 1..the SMs of
    `gpu` (config.json's), a request id given twice, a request with fewer than one prompt or
    output token, or an arrival time that is not a finite time >= 0 s; then the rest
    (`runvalues`: times, token counts, layer windows of `num_layers`, co-runner SMs)."""
    import pandas as pd

    from bulletsim.hardware import get_gpu
    from bulletsim.live.runvalues import check_iteration_values, check_request_values

    f = d / "iterations.parquet"
    it = pd.read_parquet(f, columns=["phase", "num_sms"])
    phase = it["phase"].astype(str)
    bad = sorted(set(phase[~phase.isin(PHASES)]))
    if bad:
        raise ValueError(
            f"{f}: phase {_some(bad)} in {int((~phase.isin(PHASES)).sum())} of {len(it)} "
            f"iterations; valid: {', '.join(PHASES)}"
        )
    try:
        num_sms = get_gpu(gpu).num_sms
    except ValueError as e:
        raise ValueError(f"{d / 'config.json'}: {e}") from None
    sms = pd.to_numeric(it["num_sms"])
    out = ~sms.between(1, num_sms)  # NaN is out too
    if out.any():
        raise ValueError(
            f"{f}: num_sms {_some(sorted(set(sms[out].tolist())))} in {int(out.sum())} of "
            f"{len(it)} iterations; valid: 1 to {num_sms} (the SMs of config.json's gpu {gpu})"
        )
    f = d / "requests.parquet"
    req = pd.read_parquet(f, columns=["id", "arrival_s", "prompt_tokens", "output_tokens"])
    twice = req["id"][req["id"].duplicated()]
    if len(twice):
        raise ValueError(
            f"{f}: request id {_some(sorted(set(twice.tolist())))} given more than once; "
            "valid: each id once (one row per request)"
        )
    ids = req["id"].map(show_value)
    for col in ("prompt_tokens", "output_tokens"):
        x = pd.to_numeric(req[col])
        low = ~(x >= 1)  # NaN is low too
        refuse_rows(f, "request", ids, low, lambda i, x=x, c=col: f"{c} {show_value(x.iloc[i])}",
                    f"{col} >= 1")  # fmt: skip
    arr = pd.to_numeric(req["arrival_s"])
    bad_t = ~(np.isfinite(arr) & (arr >= 0))
    refuse_rows(f, "request", ids, bad_t, lambda i: f"arrival_s {show_value(arr.iloc[i])}",
                "a finite time >= 0 s")  # fmt: skip
    check_iteration_values(d / "iterations.parquet", num_sms, num_layers)
    check_request_values(f)
