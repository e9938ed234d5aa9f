"""Policies x workloads x request rates, in parallel, plus each policy's capacity by search.

Every point is a pure function of (base config, policy variant, trace, rate), so results
do not depend on the number of workers or the order points finish in: a sweep schedules
the grid, then runs one `CapacitySearch` per (policy, trace) side by side, feeding each the
attainments of its own points. A point's arrivals are Poisson at its rate from the same
seed, so neighbouring rates see the same requests, only closer together or further apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bulletsim.capacity import CapacitySearch

# Short names for the variants the Bullet paper compares.
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "chunked-1024": ("chunked", {"chunk_size": 1024}),
    "chunked-2048": ("chunked", {"chunk_size": 2048}),
    "chunked-8192": ("chunked", {"chunk_size": 8192}),
}
DEFAULT_POLICIES = ("bullet", "chunked-1024", "chunked-2048")
DEFAULT_TRACES = ("sharegpt",)
POINT_COLUMNS = (
    "label", "policy", "trace", "rate_req_s", "kind", "num_requests", "slo_attainment",
    "ttft_attainment", "tpot_attainment", "goodput_req_s", "throughput_req_s",
    "output_throughput_tok_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms",
    "tpot_p90_ms", "tpot_p99_ms", "num_preemptions", "workload_source", "latency_model",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PolicyVariant:
    """A policy with parameters under a label: "bullet", "chunked-1024", "bullet:reorder=true"."""

    label: str
    policy: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, text: str) -> PolicyVariant:
        from bulletsim.cli import parse_sets

        name, _, rest = text.partition(":")
        policy, params = ALIASES.get(name, (name, {}))
        params = dict(params)
        if rest:
            sets = parse_sets([f"{policy}.{kv}" for kv in rest.split(",")])
            params.update(sets[policy])
        return cls(text, policy, tuple(sorted(params.items())))


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """What a sweep runs. `base` holds config overrides shared by every point."""

    policies: tuple[str, ...] = DEFAULT_POLICIES
    traces: tuple[str, ...] = DEFAULT_TRACES
    rates: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0)
    num_requests: int = 1000
    capacity: bool = True
    target_attainment: float = 0.9
    rel_tol: float = 0.02
    workers: int = 1
    base: dict[str, Any] = field(default_factory=dict)

    def variants(self) -> list[PolicyVariant]:
        return [PolicyVariant.parse(p) for p in self.policies]

    def validate(self) -> SweepSpec:
        from bulletsim.config import load_config

        if not self.policies or not self.traces:
            raise ValueError("a sweep needs at least one policy and one trace")
        if self.num_requests < 2:
            raise ValueError(f"num_requests must be >= 2, got {self.num_requests}")
        if any(not r > 0 for r in self.rates):
            raise ValueError(f"rates must be > 0 req/s, got {list(self.rates)}")
        for v in self.variants():  # fail fast on bad names, traces and parameters
            for t in self.traces:
                load_config(None, point_overrides(self, v, t, 1.0))
        return self


def point_overrides(spec: SweepSpec, v: PolicyVariant, trace: str, rate: float) -> dict:
    from bulletsim.config import merge_overrides

    over = merge_overrides(spec.base, {"policy": v.policy, v.policy: dict(v.params)})
    return merge_overrides(
        over,
        {
            "workload": {
                "trace": trace, "arrival": "poisson", "rate": rate,
                "num_requests": spec.num_requests,
            }
        },
    )  # fmt: skip


def run_point(spec: SweepSpec, v: PolicyVariant, trace: str, rate: float) -> dict:
    """Simulate one point and flatten its summary into a table row."""
    from bulletsim.config import load_config
    from bulletsim.simulate import simulate

    s = simulate(load_config(None, point_overrides(spec, v, trace, rate))).summary
    return {
        "label": v.label, "policy": s["policy"], "trace": trace, "rate_req_s": rate,
        "num_requests": s["num_requests"], "slo_attainment": s["slo_attainment"],
        "ttft_attainment": s["ttft_attainment"], "tpot_attainment": s["tpot_attainment"],
        "goodput_req_s": s["goodput_req_s"], "throughput_req_s": s["throughput_req_s"],
        "output_throughput_tok_s": s["output_throughput_tok_s"],
        **{f"ttft_{q}_ms": s["ttft_ms"][q] for q in ("p50", "p90", "p99")},
        **{f"tpot_{q}_ms": s["tpot_ms"][q] for q in ("p50", "p90", "p99")},
        "num_preemptions": s["num_preemptions"], "workload_source": s["workload_source"],
        "latency_model": s["latency_model"],
    }  # fmt: skip


class _Inline(Executor):
    """Runs tasks in this process (workers=1): no pickling, easy to profile."""

    def submit(self, fn, /, *args, **kwargs):
        from concurrent.futures import Future

        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 (delivered through the future)
            f.set_exception(e)
        return f


def run_sweep(
    spec: SweepSpec, progress: Callable[[str, int, int], None] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(points, capacity) frames; `progress(message, done, total_known)` after each point."""
    spec.validate()
    pairs = [(v, t) for t in spec.traces for v in spec.variants()]
    results: dict[tuple[str, str, float], dict] = {}
    searches = {
        (v.label, t): CapacitySearch(
            target=spec.target_attainment, rel_tol=spec.rel_tol,
            start_req_s=max(spec.rates) if spec.rates else 4.0,
            # below a sixteenth of the grid the search stops: capacity reported as 0
            min_req_s=min(spec.rates) / 16 if spec.rates else 1e-3,
        )
        for v, t in pairs
    }  # fmt: skip
    pool: Executor = (
        ProcessPoolExecutor(max_workers=spec.workers) if spec.workers > 1 else _Inline()
    )
    with pool:
        pending = {}

        def submit(v: PolicyVariant, t: str, rate: float, kind: str) -> None:
            key = (v.label, t, rate)
            if key in results or any(k == key for k, _ in pending.values()):
                return
            pending[pool.submit(run_point, spec, v, t, rate)] = (key, kind)

        for v, t in pairs:
            for rate in spec.rates:
                submit(v, t, rate, "grid")
        waiting_search = set(searches) if spec.capacity else set()
        total = len(pending)
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for f in sorted(done, key=lambda f: pending[f][0]):
                key, kind = pending.pop(f)
                results[key] = {**f.result(), "kind": kind}
                if progress:
                    progress(f"{key[0]} {key[1]} {key[2]:g} req/s", len(results), total)
            # A search advances only when none of its own points are in flight, so the
            # rates it proposes depend on its results alone, not on timing.
            busy = {(k[0], k[1]) for k, _ in pending.values()}
            for v, t in pairs:
                pair = (v.label, t)
                if pair not in waiting_search or pair in busy:
                    continue
                s = searches[pair]
                for (lab, tr, rate), row in sorted(results.items()):
                    if (lab, tr) == pair and rate not in s.evaluated:
                        s.record(rate, row["slo_attainment"])
                rate = s.propose()
                if rate is None:
                    waiting_search.discard(pair)
                    continue
                submit(v, t, rate, "search")
                total += 1
    points = pd.DataFrame([results[k] for k in sorted(results)], columns=list(POINT_COLUMNS))
    return points, capacity_table(points, searches if spec.capacity else {}, pairs)


def capacity_table(points: pd.DataFrame, searches: dict, pairs: list) -> pd.DataFrame:
    """Per (policy, trace): capacity, and the metrics of the run at that rate."""
    rows = []
    for v, t in pairs:
        s = searches.get((v.label, t))
        cap = s.capacity_req_s if s is not None else math.nan
        row = {"label": v.label, "trace": t, "capacity_req_s": cap}
        at = points[(points.label == v.label) & (points.trace == t) & (points.rate_req_s == cap)]
        for col in ("slo_attainment", "goodput_req_s", "throughput_req_s",
                    "output_throughput_tok_s", "ttft_p90_ms", "tpot_p90_ms"):  # fmt: skip
            row[f"{col}_at_capacity"] = float(at[col].iloc[0]) if len(at) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)
