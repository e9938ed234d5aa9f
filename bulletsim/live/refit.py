"""A correction of the latency model fitted on live iterations (`bulletsim calibrate-live`).

Two terms, both medians over the iterations of the runs it is fitted on:

- `scale[(phase, SM group)]` = measured / predicted for the same work on the same SMs beside
  the same co-runner (so it absorbs the kernels the engine really runs, e.g. tensor-core
  decode, launch-bound eager steps, and co-run contention as it occurred);
- `gap_s[phase]` = the host time between a lane's back-to-back iterations (committing one
  step and preparing the next; the engine does not overlap them), added to every launch
  (a full step or a layer window).

`CorrectedLatency` applies it on top of any latency model: t' = scale * t + gap. It is a
correction fitted on live data, not a refit of the profile's own parameters; fidelity
should be judged on live runs other than the ones it was fitted on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bulletsim.core import CoRunner, WorkShape
from bulletsim.files import require_file
from bulletsim.live.rundir import SM_BINS, read_live_run

# A lane idle longer than this had no work waiting (not a host gap). The rule cannot tell a
# shorter wait for an arrival from a host gap, so at high arrival rates it overestimates the
# gap a little (on the fake executor, which has no host gaps, it finds up to ~0.5 ms).
BACK_TO_BACK_S = 0.002


def sm_group(num_sms: int) -> str:
    """The SM-count group label `iteration_errors` uses, e.g. "(96, 131]"."""
    for lo, hi in zip(SM_BINS[:-1], SM_BINS[1:], strict=True):
        if lo < num_sms <= hi:
            return f"({lo}, {hi}]"
    return "all"


@dataclass(frozen=True, slots=True)
class LiveCorrection:
    scale: dict[str, float]  # "phase|group" -> measured / predicted (median)
    gap_s: dict[str, float]  # phase -> host gap per iteration (median, s)
    fitted_on: tuple[str, ...] = ()
    num_iterations: dict[str, int] = field(default_factory=dict)

    def factor(self, phase: str, num_sms: int) -> float:
        s = self.scale
        return s.get(f"{phase}|{sm_group(num_sms)}", s.get(f"{phase}|all", 1.0))

    def to_dict(self) -> dict:
        return {
            "kind": "live correction (median measured/predicted per phase and SM group, "
            "median host gap per phase)",
            "scale": dict(sorted(self.scale.items())),
            "gap_s": dict(sorted(self.gap_s.items())),
            "fitted_on": list(self.fitted_on),
            "num_iterations": dict(sorted(self.num_iterations.items())),
        }

    @classmethod
    def load(cls, path: str | Path) -> LiveCorrection:
        p = Path(path)
        p = require_file(p, "live correction file")
        d = json.loads(p.read_text())
        for key in ("scale", "gap_s"):
            if key not in d:
                raise ValueError(f"{p} is not a live correction (no {key!r})")
        return cls(d["scale"], d["gap_s"], tuple(d.get("fitted_on", ())),
                   d.get("num_iterations", {}))  # fmt: skip

    def save(self, path: str | Path) -> None:
        """Write atomically to a path `check_out_path` accepts (ValueError otherwise)."""
        p = check_out_path(path)
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(p)


def check_out_path(path: str | Path) -> Path:
    """`path` if a correction may be written there: a new file in an existing folder, or a
    correction file bulletsim wrote (replaced). ValueError for a folder or any other file."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"--out {p} is a folder; give a file name, e.g. {p / 'corr.json'}")
    if p.exists():
        try:
            LiveCorrection.load(p)
        except (ValueError, OSError, UnicodeDecodeError):
            raise ValueError(
                f"--out {p} exists and is not a live correction bulletsim wrote; "
                "choose a new file name"
            ) from None
    if not p.parent.is_dir():
        raise ValueError(f"--out {p}: folder {p.parent} does not exist")
    return p


def fit_correction(run_dirs: list[str | Path]) -> LiveCorrection:
    """Fit the correction on the iterations of live runs (ValueError when they hold none)."""
    frames, gaps = [], []
    for d in run_dirs:
        _, _, _, it = read_live_run(d)
        it = it[it["measured_s"] > 0]
        frames.append(
            pd.DataFrame(
                {
                    "phase": it["phase"].astype(str),
                    "group": [sm_group(int(n)) for n in it["num_sms"]],
                    "ratio": it["measured_s"] / it["predicted_s"],
                }
            )
        )
        for _, g in it.sort_values("start_s").groupby("lane", observed=True):
            gap = g["start_s"].to_numpy()[1:] - g["end_s"].to_numpy()[:-1]
            phase = g["phase"].astype(str).to_numpy()[1:]
            keep = (gap >= 0) & (gap < BACK_TO_BACK_S)
            gaps.append(pd.DataFrame({"phase": phase[keep], "gap": gap[keep]}))
    df = pd.concat(frames, ignore_index=True)
    if not len(df):
        raise ValueError("the live runs hold no measured iterations to fit on")
    scale, counts = {}, {}
    for (phase, group), g in df.groupby(["phase", "group"]):
        scale[f"{phase}|{group}"] = float(np.median(g["ratio"]))
        counts[f"{phase}|{group}"] = len(g)
    for phase, g in df.groupby("phase"):
        scale[f"{phase}|all"] = float(np.median(g["ratio"]))
        counts[f"{phase}|all"] = len(g)
    gp = pd.concat(gaps, ignore_index=True)
    gap_s = {p: float(np.median(g["gap"])) for p, g in gp.groupby("phase")}
    return LiveCorrection(scale, gap_s, tuple(str(d) for d in run_dirs), counts)


class CorrectedLatency:
    """`base`'s prediction times the fitted scale of the work's phase and SM group, plus the
    phase's host gap. Forwards `gpu`, `num_layers` and `total_sms` from `base`."""

    def __init__(self, base, correction: LiveCorrection) -> None:
        self.base = base
        self.correction = correction
        self.num_layers = base.num_layers
        self.total_sms = base.total_sms
        self.gpu = getattr(base, "gpu", None)
        self.name = f"{base.name} + live correction ({len(correction.fitted_on)} runs)"
        self._memo: dict[tuple[str, int], float] = {}

    def predict(self, shape: WorkShape, num_sms: int, co_runner: CoRunner | None = None) -> float:
        key = (shape.phase, num_sms)
        f = self._memo.get(key)
        if f is None:
            f = self._memo[key] = self.correction.factor(shape.phase, num_sms)
        return self.base.predict(shape, num_sms, co_runner) * f + self.correction.gap_s.get(
            shape.phase, 0.0
        )

    def describe(self) -> dict:
        return {**self.base.describe(), "live_correction": self.correction.to_dict()}
