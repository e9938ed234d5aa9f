"""Held-out fidelity: refit the profile on some live runs, judge the simulator on the others.

`folds(runs, by)` splits live runs into groups (`by="workload"`: the run's trace; `by="load"`:
the rank of its rate among the runs of its workload, so "load 1" is each workload's lowest);
each fold judges one group with a profile refitted (`refit.refit_profile`) on every run of
the other groups, so no run is judged by a profile fitted on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bulletsim.live.rundir import check_live_run, read_json_object

HELD_OUT = ("workload", "load")


@dataclass(frozen=True, slots=True)
class Fold:
    name: str  # the held-out group, e.g. "workload sharegpt"
    judge: tuple[Path, ...]
    fit: tuple[Path, ...]


def _describe(run: Path) -> tuple[str, float | None]:
    cfg = read_json_object(check_live_run(run) / "config.json")["config"]
    return cfg["workload"]["trace"], cfg["workload"].get("rate")


def group_of(runs: list[Path], by: str) -> dict[Path, str]:
    """The held-out group of every run; ValueError for an unknown `by`."""
    if by not in HELD_OUT:
        raise ValueError(f"unknown held-out split {by!r}; valid: {', '.join(HELD_OUT)}")
    info = {}
    for r in runs:
        info[r] = _describe(r)
    if by == "workload":
        return {r: f"workload {w}" for r, (w, _) in info.items()}
    out = {}
    for w in sorted({w for w, _ in info.values()}):
        rates = sorted({rate or 0.0 for ww, rate in info.values() if ww == w})
        for r, (ww, rate) in info.items():
            if ww == w:
                out[r] = f"load {rates.index(rate or 0.0) + 1}"
    return out


def folds(runs: list[str | Path], by: str) -> list[Fold]:
    """One fold per group, in name order; ValueError when there are fewer than two groups
    (nothing would be held out)."""
    paths = [Path(r) for r in runs]
    groups = group_of(paths, by)
    names = sorted(set(groups.values()))
    if len(names) < 2:
        raise ValueError(
            f"--held-out {by}: the runs form {len(names)} group ({', '.join(names)}); "
            "held-out fidelity needs runs of at least two"
        )
    return [
        Fold(
            n,
            tuple(p for p in paths if groups[p] == n),
            tuple(p for p in paths if groups[p] != n),
        )
        for n in names
    ]
