"""The live run's GC freeze and its per-iteration SM clock column (fake executor, no GPU)."""

from __future__ import annotations

import gc
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.config import load_config
from bulletsim.live.fake import FakeExecutor
from bulletsim.live.gc_freeze import GC_NOTE
from bulletsim.live.run import live_run, median_sm_clock_mhz
from bulletsim.live.rundir import check_live_runs

OLD_RUN = Path(__file__).parents[1] / "results/live-h200/runs/splitwise-chunked-2048-r19-n500"


def _cfg(n: int = 30):
    over = {"policy": "chunked", "gpu": "h200"}
    return load_config(None, over | {"workload": {"trace": "splitwise", "num_requests": n}})


class GcProbe(FakeExecutor):
    """The fake executor noting the collector's state at its first launches (in the loop)."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.seen: set[tuple[int, bool]] = set()
        self.fail_at = fail_at

    def launch(self, launch) -> None:
        if self.num_launches < 3:  # get_freeze_count walks the permanent generation
            self.seen.add((gc.get_freeze_count(), gc.isenabled()))
        if self.num_launches == self.fail_at:
            raise RuntimeError("launch failed")
        super().launch(launch)


def test_a_fake_run_writes_a_nan_sm_clock_column_and_the_gc_note(tmp_path):
    out = tmp_path / "run"
    args = ["live", "--executor", "fake", "--trace", "splitwise", "-n", "20", "--gpu", "h200"]
    r = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    it = pd.read_parquet(out / "iterations.parquet")
    assert it["sm_clock_mhz"].dtype == "float64" and it["sm_clock_mhz"].isna().all()
    text = (out / "live.json").read_text()
    live = json.loads(text)
    assert live["gc"] == GC_NOTE and "#44363" in live["gc"]
    assert live["sm_clock_mhz_p50"] is None and "NaN" not in text  # strict JSON
    check_live_runs([out])


def test_the_heap_is_frozen_in_the_loop_and_unfrozen_after():
    before = gc.get_freeze_count()
    assert before == 0, "something else froze the heap"
    ex = GcProbe()
    res = live_run(_cfg(), ex)
    assert res.live["gc"] == GC_NOTE
    # frozen (setup's objects and more) and still collecting, inside the loop
    assert ex.seen and all(n > 0 and enabled for n, enabled in ex.seen)
    assert gc.get_freeze_count() == before and gc.isenabled()


def test_the_heap_is_unfrozen_when_the_loop_fails():
    with pytest.raises(RuntimeError, match="launch failed"):
        live_run(_cfg(), GcProbe(fail_at=3))
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_before_the_run_is_frozen_further_and_never_released():
    """Torch's setup on the H200 left 375 objects frozen (session S4): the run still freezes
    its own, and leaves all frozen after (unfreeze would release the others' too)."""
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        seen = []

        class Probe(FakeExecutor):
            def launch(self, x):
                seen.append(gc.get_freeze_count())
                return super().launch(x)

        res = live_run(_cfg(n=10), Probe())
        assert seen and min(seen) > before  # the setup's objects were frozen too
        assert gc.get_freeze_count() > 0  # nothing released
        assert res.live["gc"].startswith("collected and frozen before the loop, left frozen")
    finally:
        gc.unfreeze()


def test_the_sm_clock_median_skips_missing_readings():
    it = pd.DataFrame({"sm_clock_mhz": [1980.0, math.nan, 1755.0, 1980.0]})
    assert median_sm_clock_mhz(it) == 1980.0
    assert median_sm_clock_mhz(it.iloc[[1]]) is None
    assert median_sm_clock_mhz(pd.DataFrame({"end_s": [1.0]})) is None  # a run before it


def test_committed_runs_without_the_column_still_read():
    import pyarrow.parquet as pq

    assert "sm_clock_mhz" not in pq.read_schema(OLD_RUN / "iterations.parquet").names
    check_live_runs([OLD_RUN])
    r = CliRunner().invoke(
        app,
        [
            "fidelity",
            str(OLD_RUN),
            "--profile",
            str(OLD_RUN.parents[1] / "profile-r2-run-time.json"),
        ],
    )
    assert r.exit_code == 0, r.output
