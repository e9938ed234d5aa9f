"""Held-out fidelity: refit the profile on some live runs, judge the simulator on the others.

`folds(runs, by)` splits live runs into groups (`by="workload"`: the run's trace; `by="load"`:
the rank of the rate it offered among the runs of its workload (`live.offered`: --rate, inf,
or the rate a Poisson process chose without one), so "load 1" is each workload's lowest; runs
that offered no rate, a replayed trace or a closed loop, are refused, and so are workloads
given at different numbers of rates, whose ranks could not line up; `load_groups` names each
group's rates, to print, since equal ranks need not be equal loads);
each fold judges one group with a profile refitted (`refit.refit_profile`) on every run of
the other groups, so no run is judged by a profile fitted on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bulletsim.live.offered import offered
from bulletsim.live.rundir import check_live_run, read_json_object

HELD_OUT = ("workload", "load")


@dataclass(frozen=True, slots=True)
class Fold:
    name: str  # the held-out group, e.g. "workload sharegpt"
    judge: tuple[Path, ...]
    fit: tuple[Path, ...]


def _describe(run: Path) -> tuple[str, float | None, str]:
    meta = read_json_object(check_live_run(run) / "config.json")
    label, rate = offered(meta)
    return meta["config"]["workload"]["trace"], rate, label


def group_of(runs: list[Path], by: str) -> dict[Path, str]:
    """The held-out group of every run; ValueError for an unknown `by`, or (`by="load"`) a
    run that offered no rate."""
    if by not in HELD_OUT:
        raise ValueError(f"unknown held-out split {by!r}; valid: {', '.join(HELD_OUT)}")
    info = {r: _describe(r) for r in runs}
    if by == "workload":
        return {r: f"workload {w}" for r, (w, _, _) in info.items()}
    none = [f"{r} ({label})" for r, (_, rate, label) in info.items() if rate is None]
    if none:
        raise ValueError(
            f"--held-out load: {', '.join(none)} offered no arrival rate to rank by; give "
            "runs made with --rate (or a Poisson rate), or use --held-out workload"
        )
    rates_of = {w: sorted({rate for ww, rate, _ in info.values() if ww == w})
                for w in sorted({w for w, _, _ in info.values()})}  # fmt: skip
    if len({len(v) for v in rates_of.values()}) > 1:
        each = "; ".join(
            f"{w} at {len(v)} ({', '.join(format(x, 'g') for x in v)} req/s)"
            for w, v in rates_of.items()
        )
        raise ValueError(
            f"--held-out load ranks each workload's rates, so every workload needs as many "
            f"distinct rates: {each}; give each workload the same number of rates, or use "
            "--held-out workload"
        )
    return {r: f"load {rates_of[w].index(rate) + 1}" for r, (w, rate, _) in info.items()}


def folds(runs: list[str | Path], by: str) -> list[Fold]:
    """One fold per group, in name order; ValueError when there are fewer than two groups
    (nothing would be held out)."""
    paths = [Path(r) for r in runs]
    groups = group_of(paths, by)
    names = sorted(set(groups.values()))
    if len(names) < 2:
        kinds = "workloads" if by == "workload" else "loads (arrival rates)"
        only = ", ".join(names) or "no group"
        raise ValueError(
            f"--held-out {by}: every run given is of {only}; held-out fidelity judges each "
            f"group by a profile fitted on the others, so it needs runs of at least two {kinds}"
        )
    return [
        Fold(
            n,
            tuple(p for p in paths if groups[p] == n),
            tuple(p for p in paths if groups[p] != n),
        )
        for n in names
    ]


def load_groups(runs: list[str | Path]) -> str:
    """One line naming the members of each `--held-out load` group by workload and rate,
    e.g. "load 1: sharegpt 38.1, splitwise 19 req/s; load 2: ...": equal ranks pair the rates
    given, which need not be equal fractions of each workload's capacity."""
    paths = [Path(r) for r in runs]
    groups = group_of(paths, "load")
    members: dict[str, list[str]] = {}
    for p in paths:
        workload, _, label = _describe(p)
        names = members.setdefault(groups[p], [])
        if f"{workload} {label}" not in names:
            names.append(f"{workload} {label}")
    return "; ".join(f"{g}: {', '.join(sorted(members[g]))} req/s" for g in sorted(members))
