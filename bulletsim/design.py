"""A design space: GPUs x models x SLO sets x workloads x policies, from one TOML file.

Each (GPU, model, SLO set) is a *cell*: an ordinary sweep (`SweepSpec`) of policies x
traces x rates with its capacity searches. All cells run at once on one executor (a thread
per cell drives its own sweep, so a cluster is kept busy while every search waits on its
own points); each cell's results are those `run_sweep` gives for it alone, so the files do
not depend on the executor or on how cells interleave.

The file (every table but [grid] optional; unknown keys are errors)::

    [grid]
    gpu = ["a100", "h200"]              # default ["a100"]
    model = ["llama-3.1-8b"]            # default ["llama-3.1-8b"]
    trace = ["sharegpt", "splitwise-code"]
    policy = ["bullet", "chunked-2048"]
    slo = ["paper", "tight"]            # "paper": each trace's default (Bullet Table 4)

    [slo.tight]                         # an SLO set: keys of the run config's [slo]
    tpot_ms = 100.0
    norm_ttft_ms_per_token = 2.0

    [sweep]                             # SweepSpec fields
    rates = [2.0, 4.0, 8.0]
    num_requests = 1000
    seeds = [0, 1, 2]

    [base]                              # any run-config key for every point
    latency = "roofline"
"""

from __future__ import annotations

import dataclasses
import re
import threading
import tomllib
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bulletsim.files import require_file
from bulletsim.sweep import DEFAULT_POLICIES, DEFAULT_TRACES, SweepSpec, run_sweep

AXES = ("gpu", "model", "slo", "trace", "policy")
DEFAULT_GPUS = ("a100",)
DEFAULT_MODELS = ("llama-3.1-8b",)
DEFAULT_SLO = "paper"  # the traces' own SLOs (config.TRACE_SLOS)
TABLES = ("grid", "slo", "sweep", "base")
# [sweep] keys: the SweepSpec field, and the kind of value it takes
SWEEP_KEYS = {
    "rates": float, "num_requests": int, "seeds": int, "early_stop": bool, "capacity": bool,
    "target_attainment": float, "rel_tol": float,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cell:
    """One (GPU, model, SLO set) of a design: its name and its sweep."""

    name: str
    gpu: str
    model: str
    slo: str
    spec: SweepSpec


@dataclass(frozen=True, slots=True)
class DesignSpec:
    """A grid over AXES; `slo_sets` maps an SLO-set name to [slo] overrides."""

    gpus: tuple[str, ...] = DEFAULT_GPUS
    models: tuple[str, ...] = DEFAULT_MODELS
    slos: tuple[str, ...] = (DEFAULT_SLO,)
    slo_sets: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    sweep: SweepSpec = SweepSpec()

    @classmethod
    def from_dict(cls, data: dict, where: str = "design") -> DesignSpec:
        """Build from the TOML tables; ValueError (one line, valid keys listed) on bad input."""
        _known(data, TABLES, where)
        grid = data.get("grid", {})
        _known(grid, AXES, f"{where} [grid]")
        sweep = data.get("sweep", {})
        _known(sweep, tuple(SWEEP_KEYS), f"{where} [sweep]")
        sets = data.get("slo", {})
        slos = _names(grid, "slo", (DEFAULT_SLO,))
        for name in slos:
            if name != DEFAULT_SLO and name not in sets:
                valid = ", ".join([DEFAULT_SLO, *sets])
                raise ValueError(f"{where}: SLO set {name!r} has no [slo.{name}]; valid: {valid}")
        for name, table in sets.items():
            if not isinstance(table, dict):
                raise ValueError(f"{where}: [slo.{name}] must be a table of [slo] keys")
        kw = {k: _typed(k, v, where) for k, v in sweep.items()}
        spec = SweepSpec(
            policies=_names(grid, "policy", DEFAULT_POLICIES),
            traces=_names(grid, "trace", DEFAULT_TRACES),
            base=data.get("base", {}),
            **kw,
        )
        _check_policy_sections(spec, where)
        return cls(
            gpus=_names(grid, "gpu", DEFAULT_GPUS),
            models=_names(grid, "model", DEFAULT_MODELS),
            slos=slos,
            slo_sets=tuple((k, tuple(sorted(v.items()))) for k, v in sorted(sets.items())),
            sweep=spec,
        )

    @classmethod
    def load(cls, path: str | Path) -> DesignSpec:
        p = Path(path)
        p = require_file(p, "design file")
        try:
            return cls.from_dict(tomllib.loads(p.read_text()), p.name)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{p.name}: {e}") from None

    def cells(self) -> list[Cell]:
        """Every (GPU, model, SLO set), each with its validated sweep; in grid order."""
        from bulletsim.config import merge_overrides

        sets = {k: dict(v) for k, v in self.slo_sets}
        out = []
        for gpu in self.gpus:
            for model in self.models:
                for slo in self.slos:
                    over = {"gpu": gpu, "model": model, "slo": sets.get(slo, {})}
                    base = merge_overrides(self.sweep.base, over)
                    spec = dataclasses.replace(self.sweep, base=base).validate()
                    name = _slug(f"{gpu}-{model}-{slo}")
                    out.append(Cell(name, gpu, model, slo, spec))
        if len({c.name for c in out}) != len(out):
            raise ValueError("design: two cells share a name; use distinct GPU/model/SLO names")
        return out


def _check_policy_sections(spec: SweepSpec, where: str) -> None:
    """[base.POLICY] tables must be for a policy of the grid and agree with its --policy
    specs, as `sweep`'s --set must (`policy_spec`); ValueError (one line) otherwise."""
    from bulletsim.policies.registry import unused_policy_sections
    from bulletsim.policy_spec import check_spec_agrees

    variants = spec.variants()
    policies = tuple(dict.fromkeys(v.policy for v in variants))
    for key in unused_policy_sections(spec.base, policies)[:1]:
        raise ValueError(
            f"{where}: [base.{key}] is for {key.lower()}, not a policy of the grid "
            f"({', '.join(policies)}), so its parameters would do nothing; add it to [grid] "
            "policy, or remove the table"
        )
    for text, v in zip(spec.policies, variants, strict=True):
        check_spec_agrees(text, v.policy, dict(v.params), spec.base, {}, f"{where} [base]")


def _known(table: Any, valid: tuple[str, ...], where: str) -> None:
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table")
    for key in table:
        if key not in valid:
            raise ValueError(f"{where}: unknown key {key!r}; valid: {', '.join(valid)}")


def _typed(key: str, value: Any, where: str) -> Any:
    """A [sweep] value checked against SWEEP_KEYS (rates and seeds are lists)."""
    kind = SWEEP_KEYS[key]
    many = key in ("rates", "seeds")
    items = value if many and isinstance(value, list) else [value]
    ok = all(
        isinstance(x, kind)
        and not (kind is not bool and isinstance(x, bool))
        or (kind is float and isinstance(x, int) and not isinstance(x, bool))
        for x in items
    )
    if not ok or (many and not isinstance(value, list)):
        what = f"a list of {kind.__name__}" if many else kind.__name__
        raise ValueError(f"{where} [sweep] {key} must be {what}, got {value!r}")
    if kind is float:
        items = [float(x) for x in items]
    return tuple(items) if many else items[0]


def _names(grid: dict, axis: str, default: tuple[str, ...]) -> tuple[str, ...]:
    values = grid.get(axis, list(default))
    if isinstance(values, str):
        values = [values]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"[grid] {axis} must be a non-empty list of names, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"[grid] {axis} lists a name twice: {values!r}")
    return tuple(values)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def run_design(
    cells: list[Cell],
    executor: Executor,
    progress: Callable[[str, int, int], None] | None = None,
    parallel: bool = True,
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """cell name -> (points, capacity) of its sweep; all cells share `executor`.

    `parallel=False` runs cells one after another (for an executor that runs tasks in the
    calling thread). `progress(message, done, total_known)` counts jobs over all cells.
    """
    lock = threading.Lock()
    counts = {c.name: (0, 0) for c in cells}

    def tick(cell: str) -> Callable[[str, int, int], None]:
        def update(msg: str, done: int, total: int) -> None:
            with lock:
                counts[cell] = (done, total)
                d, t = (sum(x) for x in zip(*counts.values(), strict=True))
                if progress:
                    progress(f"{cell}: {msg}", d, t)

        return update

    def one(c: Cell) -> tuple[pd.DataFrame, pd.DataFrame]:
        return run_sweep(c.spec, progress=tick(c.name), executor=executor)

    if not parallel or len(cells) == 1:
        return {c.name: one(c) for c in cells}
    with ThreadPoolExecutor(max_workers=len(cells), thread_name_prefix="cell") as threads:
        futures = {c.name: threads.submit(one, c) for c in cells}
        return {name: f.result() for name, f in futures.items()}
