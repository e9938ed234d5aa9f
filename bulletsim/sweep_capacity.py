"""A sweep's capacity table: per (policy, trace) a point, an interval over seeds, and checks.

Capacity of one seed = the highest rate its search found passing (`capacity.py`). Over seeds:
the mean and a 95% Student-t interval (`intervals.py`). Ratios of a Bullet variant to the
best baseline are paired by seed (geometric mean, t-interval of the log ratios). The checks
turn into warnings (`capacity_warnings`): an undefined capacity (zero-load ceiling below the
target), an interval wider than +-`MAX_HALF_WIDTH_REL` (with the n that would narrow it, an
estimate), and a run at capacity that was not in steady state (`steady_state.py`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bulletsim.intervals import mean_interval, ratio_interval, requests_needed, seeds_needed
from bulletsim.steady_state import MIN_COMPLETED_SHARE
from bulletsim.sweep_points import LAYOUT_COLUMNS, MECHANISM_COLUMNS

MAX_HALF_WIDTH_REL = 0.10  # the "+-10%": an interval wider than that is flagged
AT_CAPACITY = (
    "slo_attainment", "goodput_req_s", "throughput_req_s", "throughput_steady_req_s",
    "offered_rate_req_s", "output_throughput_tok_s", "ttft_p90_ms", "tpot_p90_ms",
)  # fmt: skip


def is_bullet(label: str) -> bool:
    return label.startswith("bullet")


def capacity_table(
    points: pd.DataFrame, searches: dict, zero: pd.DataFrame, pairs: list, spec: Any
) -> pd.DataFrame:
    """One row per (policy, trace): capacity point/interval, ceiling, steady-state checks."""
    rows = []
    for v, t in pairs:
        row: dict[str, Any] = {"label": v.label, "trace": t}
        row.update(_mechanism(points, v.label, t))
        z = zero[(zero["label"] == v.label) & (zero["trace"] == t)] if len(zero) else zero
        for col in ("zero_load_attainment", "zero_load_lo", "zero_load_hi"):
            row[col] = float(z[col].iloc[0]) if len(z) else math.nan
        defined = not (row["zero_load_attainment"] < spec.target_attainment)
        caps = [searches[(v.label, t, s)].capacity_req_s for s in spec.seeds
                if (v.label, t, s) in searches]  # fmt: skip
        iv = mean_interval(caps, spec.rel_tol) if defined and caps else mean_interval([])
        row.update(
            {
                "capacity_defined": defined if spec.capacity else math.nan,
                "capacity_req_s": iv.point, "capacity_lo": iv.lo, "capacity_hi": iv.hi,
                "half_width_rel": iv.half_width_rel, "num_seeds": iv.num_seeds,
                "capacity_per_seed": ";".join(f"{c:.6g}" for c in caps) if defined else "",
                "requests_needed": requests_needed(iv, spec.num_requests, MAX_HALF_WIDTH_REL),
                "seeds_needed": seeds_needed(iv, MAX_HALF_WIDTH_REL),
            }
        )  # fmt: skip
        at = _at_capacity(points, v.label, t, dict(zip(spec.seeds, caps, strict=False)))
        for col in AT_CAPACITY:
            row[f"{col}_at_capacity"] = float(at[col].mean()) if len(at) else math.nan
        row["steady_at_capacity"] = bool(len(at) and at["steady"].astype(bool).all())
        row["n_for_drain"] = (
            int(at["n_for_drain"].max())
            if len(at) and at["n_for_drain"].notna().all()
            else spec.num_requests
        )
        row["min_completed_share"] = float(at["completed_share"].min()) if len(at) else math.nan
        row["queue_growing_at_capacity"] = bool(len(at) and at["queue_growing"].astype(bool).any())
        rows.append(row)
    cap = pd.DataFrame(rows)
    if len(cap):
        cap = _add_gain(cap, spec.rel_tol)
    return cap


def _mechanism(points: pd.DataFrame, label: str, trace: str) -> dict:
    """`policy` (as runs name it, mechanism included), MECHANISM_COLUMNS and LAYOUT_COLUMNS
    of a (label, trace): the same at every point of it."""
    mine = points[(points["label"] == label) & (points["trace"] == trace)]
    mine = (
        mine[mine["error"].map(lambda e: not (isinstance(e, str) and e))]
        if "error" in mine
        else mine
    )
    cols = ("policy", *MECHANISM_COLUMNS, *LAYOUT_COLUMNS)
    if not len(mine):
        return dict.fromkeys(cols, "")
    first = mine.iloc[0]
    return {c: first[c] if c in mine else "" for c in cols}


def _at_capacity(points: pd.DataFrame, label: str, trace: str, caps: dict) -> pd.DataFrame:
    """The points run at each seed's own capacity rate."""
    mine = points[(points["label"] == label) & (points["trace"] == trace)]
    keep = np.zeros(len(mine), bool)
    for seed, cap in caps.items():
        keep |= ((mine["seed"] == seed) & (mine["rate_req_s"] == cap)).to_numpy()
    return mine[keep]


def per_seed(row: Any) -> list[float]:
    """A capacity row's per-seed capacities (empty when undefined)."""
    text = row["capacity_per_seed"] if isinstance(row, dict | pd.Series) else row
    return [float(x) for x in str(text).split(";")] if isinstance(text, str) and text else []


def _add_gain(cap: pd.DataFrame, rel_tol: float) -> pd.DataFrame:
    """Per row: capacity vs the best non-Bullet policy of its trace, paired by seed; the
    interval is widened by the search resolution `rel_tol` (`intervals`)."""
    cap = cap.copy()
    cap["gain_vs"] = ""
    for col in ("gain", "gain_lo", "gain_hi"):
        cap[col] = math.nan
    for _trace, g in cap.groupby("trace", sort=False):
        base = g[~g["label"].map(is_bullet) & (g["capacity_req_s"] > 0)]
        if not len(base):
            continue
        ref = base.loc[base["capacity_req_s"].idxmax()]
        for i in g.index:
            mine = per_seed(cap.loc[i])
            if len(mine) != len(per_seed(ref)):
                continue
            iv = ratio_interval(mine, per_seed(ref), rel_tol)
            cap.loc[i, ["gain", "gain_lo", "gain_hi"]] = [iv.point, iv.lo, iv.hi]
            cap.at[i, "gain_vs"] = ref["label"]
    return cap


def ratio_table(cap: pd.DataFrame, rel_tol: float) -> pd.DataFrame:
    """Every Bullet variant against every baseline of the same trace, paired by seed, the
    interval widened by the search resolution `rel_tol`."""
    rows = []
    for trace, g in cap.groupby("trace", sort=False):
        for _, b in g[g["label"].map(is_bullet)].iterrows():
            for _, o in g[~g["label"].map(is_bullet)].iterrows():
                a, c = per_seed(b), per_seed(o)
                if not a or len(a) != len(c):
                    continue
                iv = ratio_interval(a, c, rel_tol)
                rows.append(
                    {"trace": trace, "policy": b["label"], "baseline": o["label"],
                     "ratio": iv.point, "ratio_lo": iv.lo, "ratio_hi": iv.hi,
                     "num_seeds": iv.num_seeds}
                )  # fmt: skip
    cols = ["trace", "policy", "baseline", "ratio", "ratio_lo", "ratio_hi", "num_seeds"]
    return pd.DataFrame(rows, columns=cols)


def length_needed(cap: pd.DataFrame, spec: Any) -> tuple[int, list[str]]:
    """Requests per point that the checks of `capacity_warnings` ask for, and why.

    The largest of: `requests_needed` where an interval is wider than +-MAX_HALF_WIDTH_REL,
    `n_for_drain` where the drain is too large a share, and twice the current n where a
    run at capacity completed too little of the offered rate or its queue still grew (a
    longer run shows whether it settles). `spec.num_requests` when nothing asks for more.
    All are estimates (see `intervals`, `steady_state`).
    """
    n, why = spec.num_requests, []
    for r in cap.itertuples(index=False):
        if not (r.capacity_req_s > 0) or r.zero_load_attainment < spec.target_attainment:
            continue
        name = f"{r.label} on {r.trace}"
        if r.half_width_rel > MAX_HALF_WIDTH_REL and r.requests_needed > spec.num_requests:
            why.append(f"{name}: interval +-{_pct_above(r.half_width_rel, MAX_HALF_WIDTH_REL)}%")
            n = max(n, int(r.requests_needed))
        if r.min_completed_share < MIN_COMPLETED_SHARE or r.queue_growing_at_capacity:
            why.append(f"{name}: not in steady state at capacity")
            n = max(n, 2 * spec.num_requests)
        if r.n_for_drain > spec.num_requests:
            why.append(f"{name}: drain too large a share")
            n = max(n, int(r.n_for_drain))
    return n, why


def capacity_warnings(cap: pd.DataFrame, spec: Any) -> list[str]:
    """One line per problem a reader must know before trusting a capacity; none when the
    sweep searched no capacity (--no-capacity: only the grid's rates ran)."""
    if not spec.capacity:
        return []
    out = []
    pct = f"{100 * spec.target_attainment:g}%"
    if len(spec.seeds) < 2:
        out.append("one seed: capacities have no interval; use --seeds 0,1,2 (or more)")
    for r in cap.itertuples(index=False):
        name = f"{r.label} on {r.trace}"
        if r.zero_load_attainment < spec.target_attainment:
            out.append(
                f"{name}: capacity undefined: even at zero load only "
                f"{100 * r.zero_load_attainment:.1f}% of requests meet the SLO (< {pct})"
            )
            continue
        if spec.capacity and math.isnan(r.capacity_req_s):
            out.append(f"{name}: no capacity: a job failed (see the error column of points.csv)")
            continue
        if not r.capacity_req_s > 0:
            out.append(f"{name}: no rate down to {min(spec.rates) / 16:g} req/s reaches {pct}")
            continue
        if r.half_width_rel > MAX_HALF_WIDTH_REL:
            out.append(
                f"{name}: capacity interval [{r.capacity_lo:.2f}, {r.capacity_hi:.2f}] req/s "
                f"= +-{_pct_above(r.half_width_rel, MAX_HALF_WIDTH_REL)}% of "
                f"{r.capacity_req_s:.2f}, wider than +-{100 * MAX_HALF_WIDTH_REL:g}%; about "
                f"-n {r.requests_needed} "
                f"(or {r.seeds_needed} seeds) would narrow it to that (estimate)"
            )
        if not r.steady_at_capacity:
            why = []
            if r.min_completed_share < MIN_COMPLETED_SHARE:
                why.append(f"completed {100 * r.min_completed_share:.1f}% of offered")
            if r.queue_growing_at_capacity:
                why.append("queue still growing at the end")
            if why:  # the queue builds up: a longer run would see more of it
                why.append(f"re-run with -n {2 * spec.num_requests} or more to check")
            if r.n_for_drain > spec.num_requests:
                why.append(f"drain too large a share; -n {r.n_for_drain} needed")
            out.append(
                f"{name}: a run at capacity is not in steady state "
                f"({'; '.join(why) or 'too few requests'}); do not trust this capacity"
            )
    return out


def _pct_above(x: float, limit: float) -> str:
    """`x` as a percentage with the fewest decimals (up to 4) that show it above `limit`
    (10.03 is "10.03", not a "10.0" that reads as equal to a 10% limit)."""
    for digits in range(1, 5):
        text = f"{100 * x:.{digits}f}"
        if float(text) > 100 * limit:
            return text
    return f"{100 * x:.4f}"
