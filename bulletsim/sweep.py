"""Policies x workloads x request rates, in parallel, plus each policy's capacity by search.

Every point is a pure function of (base config, policy variant, trace, seed, rate), so
results do not depend on the number of workers or the order points finish in. A sweep runs
the rate grid (first seed only: the curves), the zero-load ceiling of each (policy, trace),
and one `CapacitySearch` per (policy, trace, seed). Work is reused: the first seed's search
starts from the grid's bracket (the grid from its top rate down to the first that passes);
every later seed starts from the same policy's first-seed capacity with a narrow bracket
(`SEED_BRACKET_FACTOR`) and, as its second rate, the crossing predicted by the first seed's
slope of attainment near capacity; overloaded runs stop as soon as their misses decide them
(`early_stop`), and their attainment, extrapolated from when they stopped, still guides the
interpolation (never a decision). A policy's searches use only its own points, so its
capacities do not depend on which other policies share the sweep or their order (they did
before issue 17: later seeds' starts were scaled by the trace's first policy's seed ratio,
and attainment is not monotone in rate at small n, so the start changed the result). A
point's arrivals are Poisson at its rate from its seed, so neighbouring rates see the same
requests, only closer or further apart.
Past ~300 lines: the spec and the scheduler (`_Sweep`) that feeds the searches belong together.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bulletsim.capacity import CapacitySearch
from bulletsim.executors import TaskFailed, Tasks, make_executor
from bulletsim.sweep_capacity import capacity_table
from bulletsim.sweep_points import POINT_COLUMNS, point_overrides, run_point, run_zero_load

# A later seed's capacity is within a few percent of the first seed's at the request counts
# a capacity is worth searching at; 1.05 brackets it in one or two runs and bisects from 5%
# (the step widens when it does not: see CapacitySearch.expand).
SEED_BRACKET_FACTOR = 1.05

DEFAULT_POLICIES = ("bullet", "chunked-1024", "chunked-2048")
DEFAULT_TRACES = ("sharegpt",)


@dataclass(frozen=True, slots=True)
class PolicyVariant:
    """A policy with parameters under a label: "bullet", "chunked-1024", "bullet:reorder=true"."""

    label: str
    policy: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, text: str) -> PolicyVariant:
        """A `--policy` spec as run takes it (`policy_spec.parse_policy_spec`)."""
        from bulletsim.policy_spec import parse_policy_spec, spec_label

        _, policy, params = parse_policy_spec(text)
        return cls(spec_label(text), policy, tuple(sorted(params.items())))


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """What a sweep runs. `base` holds config overrides shared by every point."""

    policies: tuple[str, ...] = DEFAULT_POLICIES
    traces: tuple[str, ...] = DEFAULT_TRACES
    rates: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0)
    num_requests: int = 2000
    seeds: tuple[int, ...] = (0, 1, 2)
    early_stop: bool = True
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
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        if not self.rates:
            raise ValueError("rates: give at least one rate, e.g. --rates 2,4,8")
        if not 0 < self.target_attainment <= 1:  # NaN-safe, as every check here
            raise ValueError(
                f"target_attainment (--target): an attainment in (0, 1], got "
                f"{self.target_attainment}"
            )
        if not 0 < self.rel_tol < 1:
            raise ValueError(f"rel_tol (--rel-tol): in (0, 1), got {self.rel_tol}")
        if any(not 0 < r < math.inf for r in self.rates):
            raise ValueError(
                f"rates must be finite and > 0 req/s, got {list(self.rates)} (a burst at "
                "t = 0 is `bulletsim run --rate inf`)"
            )
        checked: dict = {}
        seen: dict[tuple, str] = {}  # (policy, its parameters) -> the first spec that runs it
        for v, text in zip(self.variants(), self.policies, strict=True):
            for t in self.traces:  # fail fast on bad names, traces and parameters
                cfg = load_config(None, point_overrides(self, v, t, 1.0, self.seeds[0]))
                _check_inputs(cfg, checked)
            key = (cfg.policy, _resolved(cfg))  # spelling, option order and defaults aside
            if key in seen:
                raise ValueError(
                    f"--policy {seen[key]} and --policy {text} run the same policy with the same "
                    f"parameters ({cfg.policy}); give each policy once"
                )
            seen[key] = text
        return self


def _resolved(cfg) -> str:
    """The policy's parameters as they run (a params class's `resolved(gpu)` where it has one:
    defaults that depend on the GPU filled, lists parsed), as comparable text."""
    import dataclasses

    from bulletsim.hardware import get_gpu

    params = cfg.params()
    resolve = getattr(params, "resolved", None)
    values = resolve(get_gpu(cfg.gpu)) if resolve else dataclasses.asdict(params)
    return repr(sorted(values.items()))


def _check_inputs(cfg, checked: dict) -> None:
    """What a point builds before simulating, built once before any job (a job that fails is
    retried, and a sweep with a failed job writes a folder): the workload from the trace's real
    file (a missing folder or file, a file that does not parse, a request that never fits the
    KV cache), the latency model (a missing profile) and the policy, as `run` builds them."""
    from bulletsim.hardware import get_gpu
    from bulletsim.latency.factory import build_latency
    from bulletsim.run import build_run

    key = (cfg.latency, cfg.gpu, cfg.model, cfg.tp, cfg.model_config,
           cfg.partition_mechanism(), cfg.profile)  # fmt: skip
    if key not in checked:
        checked[key] = build_latency(
            cfg.latency, get_gpu(cfg.gpu), cfg.model_spec(), cfg.partition_mechanism(),
            cfg.profile,
        )  # fmt: skip
    build_run(cfg, latency=checked[key])


def run_sweep(
    spec: SweepSpec,
    progress: Callable[[str, int, int], None] | None = None,
    executor: Executor | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(points, capacity) frames; `progress(message, done, total_known)` after each job.

    Jobs run on `executor` (`executors.make_executor`; default `spec.workers` local
    processes). A job that fails is retried (`executors.Tasks`), then kept as a points row
    whose `error` says why; its (policy, trace) gets no capacity. Results do not depend on
    the executor.
    """
    spec.validate()
    return _Sweep(spec, progress).run(executor)


class _Sweep:
    """The scheduler: runs grid, zero-load and search jobs, feeds each search its points.

    Jobs are handed to the executor in order of what unblocks most: zero-load ceilings,
    search points, then the grid from its highest rate down until the pair's first passing
    rate is known (which the first seed's search starts from), then the remaining grid
    points longest first (low rates: many small iterations). The order changes only when a
    job runs, never what it computes or what a search proposes: a search records only the
    points it waits for.
    """

    def __init__(self, spec: SweepSpec, progress: Callable[[str, int, int], None] | None):
        self.spec = spec
        self.progress = progress
        self.pairs = [(v, t) for t in spec.traces for v in spec.variants()]
        self.first = spec.seeds[0]
        self.results: dict[tuple[str, str, int, float], dict] = {}
        self.zero: dict[tuple[str, str], dict] = {}
        self.searches: dict[tuple[str, str, int], CapacitySearch] = {}
        self.waiting: dict[tuple[str, str, int], list[float]] = {}  # rates a search awaits
        self.finished: set[tuple[str, str, int]] = set()
        self.undefined: set[tuple[str, str]] = set()
        self.failed: set[tuple[str, str]] = set()  # (label, trace) with a job that failed
        self.queue: list[tuple[tuple, Callable, tuple]] = []
        self.total = 0

    def run(self, executor: Executor | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        spec = self.spec
        pool = executor or make_executor("local", spec.workers)
        # Every job goes to the pool as soon as it is known, in urgency order; the pool runs
        # them first come, first served. Holding jobs back to the pool's worker count (so
        # that later search points could overtake the grid) made the paper-setting sweep
        # slower on 2 quiet cores: 172 s wall vs 129 s for the code before it, at 240 vs
        # 255 s of CPU (long grid points were left for the end; measured 2026-12-01).
        self.slots = math.inf
        with pool if executor is None else nullcontext():
            self.tasks = Tasks(pool)
            for v, t in self.pairs:
                if spec.capacity:
                    self._enqueue(("zero", v.label, t), run_zero_load, spec, v, t, self.first)
                for rate in spec.rates:
                    self._point(v, t, self.first, rate, "grid")
            self._dispatch()
            while self.tasks:
                for key, row in self.tasks.wait():
                    self._collect(key, row)
                if spec.capacity:
                    while self._advance_searches():  # a finished search may unblock another
                        pass
                self._dispatch()
        points = pd.DataFrame(
            [self.results[k] for k in sorted(self.results)], columns=list(POINT_COLUMNS)
        )
        searches = {k: s for k, s in self.searches.items() if k[:2] not in self.failed}
        searches = searches if spec.capacity else {}
        zero = pd.DataFrame(list(self.zero.values()))
        return points, capacity_table(points, searches, zero, self.pairs, spec)

    def _enqueue(self, key: tuple, fn, *args) -> None:
        if key in self.tasks or any(k == key for k, _, _ in self.queue):
            return
        self.queue.append((key, fn, args))
        self.total += 1

    def _dispatch(self) -> None:
        """Submit queued jobs, most urgent first, until every slot is busy."""
        while self.queue and len(self.tasks) < self.slots:
            i = min(range(len(self.queue)), key=lambda j: self._urgency(self.queue[j][0]))
            key, fn, args = self.queue.pop(i)
            self.tasks.submit(key, fn, *args)

    def _urgency(self, key: tuple) -> tuple:
        if key[0] == "zero":
            return (0,)
        _, label, t, seed, rate, kind = key
        if kind == "search":
            return (1, seed, label, t, rate)
        if self._grid_bracket((label, t)) is None:  # still looking for the first pass
            return (2, -rate, label, t)
        return (3, rate, label, t)

    def _point(self, v: PolicyVariant, t: str, seed: int, rate: float, kind: str) -> None:
        if (v.label, t, seed, rate) not in self.results:
            key = ("point", v.label, t, seed, rate, kind)
            self._enqueue(key, _run, self.spec, v, t, seed, rate)

    def _collect(self, key: tuple, row: dict | TaskFailed) -> None:
        if isinstance(row, TaskFailed):
            return self._failed(key, row)
        if key[0] == "zero":
            self.zero[key[1:]] = row
            msg = f"{key[1]} {key[2]} zero load"
        else:
            _, label, t, seed, rate, kind = key
            self.results[(label, t, seed, rate)] = {**row, "kind": kind, "error": ""}
            msg = f"{label} {t} seed {seed} {rate:g} req/s"
        if self.progress:
            self.progress(msg, len(self.results) + len(self.zero), self.total)

    def _grid_bracket(self, pair: tuple[str, str]) -> list[float] | None:
        """The first seed's grid rates from the highest down to the first that passes (all
        of them if none does), once all of those have run; None before."""
        out = []
        for rate in sorted(self.spec.rates, reverse=True):
            row = self.results.get((*pair, self.first, rate))
            if row is None:
                return None
            out.append(rate)
            if _passes(row, self.spec.target_attainment):
                break
        return out

    def _advance_searches(self) -> bool:
        """Propose the next rate of every search whose awaited points have all run; True
        when a search finished (another may start from it).

        A search advances only then and records only those points, so the rates it proposes
        depend on results alone, not on timing. The first seed waits for its pair's
        zero-load ceiling and grid bracket; later seeds wait for the first seed's capacity,
        which they start from.
        """
        spec = self.spec
        num_finished = len(self.finished)
        for v, t in self.pairs:
            pair = (v.label, t)
            if pair not in self.zero or pair in self.failed:
                continue
            if self.zero[pair]["zero_load_attainment"] < spec.target_attainment:
                self.undefined.add(pair)
                continue
            for seed in spec.seeds:
                key = (v.label, t, seed)
                if key in self.finished:
                    continue
                s = self.searches.get(key) or self._new_search(key)
                if s is None:
                    continue
                awaited = self.waiting[key]
                if any((*key, rate) not in self.results for rate in awaited):
                    continue
                for rate in sorted(awaited):
                    row = self.results[(*key, rate)]
                    if rate not in s.evaluated:
                        s.record(rate, *_attainment(row))
                rate = s.propose()
                if rate is None:
                    self.finished.add(key)
                    self.waiting[key] = []
                else:
                    self.waiting[key] = [rate]
                    self._point(v, t, seed, rate, "search")
        return len(self.finished) > num_finished

    def _new_search(self, key: tuple[str, str, int]) -> CapacitySearch | None:
        spec = self.spec
        common = {
            "target": spec.target_attainment, "rel_tol": spec.rel_tol,
            # below a sixteenth of the grid the search stops: capacity reported as 0
            "min_req_s": min(spec.rates) / 16, "interpolate": True,
        }  # fmt: skip
        label, t, seed = key
        if seed == self.first:
            bracket = self._grid_bracket((label, t))
            if bracket is None:
                return None
            s = CapacitySearch(start_req_s=max(spec.rates), **common)
            self.waiting[key] = bracket
        else:
            first = (label, t, self.first)
            if first not in self.finished:
                return None
            s0 = self.searches[first]
            start = s0.capacity_req_s  # this policy's own: never another policy's result
            if start > 0:
                s = CapacitySearch(
                    start_req_s=start, factor=SEED_BRACKET_FACTOR, expand=True,
                    slope=s0.local_slope(), **common,
                )  # fmt: skip
            else:
                s = CapacitySearch(start_req_s=max(spec.rates), **common)
            self.waiting[key] = []
        self.searches[key] = s
        return s

    def _failed(self, key: tuple, failed: TaskFailed) -> None:
        """Keep a failed job as a points row (zero-load jobs at rate 0); stop its pair."""
        label, t = key[1], key[2]
        seed, rate, kind = key[3:] if key[0] == "point" else (self.first, 0.0, "zero-load")
        v = next(v for v, _ in self.pairs if v.label == label)
        self.failed.add((label, t))
        self.results[(label, t, seed, rate)] = {
            **dict.fromkeys(POINT_COLUMNS, math.nan),
            "label": label, "policy": v.policy, "trace": t, "seed": seed, "rate_req_s": rate,
            "kind": kind, "error": f"failed after {failed.attempts} attempts: {failed.error}",
        }  # fmt: skip
        if self.progress:
            msg = f"{label} {t} {kind} failed"
            self.progress(msg, len(self.results) + len(self.zero), self.total)


def _passes(row: dict, target: float) -> bool:
    return not row["stopped_early"] and row["slo_attainment"] >= target


def _attainment(row: dict) -> tuple[float, float]:
    """(attainment, estimate) of a point for `CapacitySearch.record`.

    A run stopped early failed by an unknown margin (NaN); its estimate assumes the misses
    kept coming at the rate they had when it stopped: 1 - (1 - bound) / arrived share.
    """
    if not row["stopped_early"]:
        return row["slo_attainment"], math.nan
    share = row["arrived_share_at_stop"]
    if not share > 0:
        return math.nan, math.nan
    return math.nan, 1.0 - (1.0 - row["slo_attainment"]) / share


def _run(spec: SweepSpec, v: PolicyVariant, t: str, seed: int, rate: float) -> dict:
    return run_point(spec, v, t, seed, rate)
