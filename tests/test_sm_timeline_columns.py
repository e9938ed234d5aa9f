"""`sm_timeline.parquet` and `iterations.parquet` agree on the SMs that ran (new-user finding:
for pdmux on green contexts the timeline showed the policy's 112/20 while the iterations were
priced at the partition the GPU engine makes, 108/24). The timeline now records both:
`num_sms` (what a launch at that allocation runs on, as the iterations count it) and
`policy_sms` (the policy's split)."""

from __future__ import annotations

import pandas as pd
import pytest

from bulletsim.config import load_config
from bulletsim.records import SM_TIMELINE_COLUMNS, sm_timeline_frame
from bulletsim.results import load_results, write_results
from bulletsim.run import simulate

BASE = {"gpu": "h200", "workload": {"trace": "alpaca", "num_requests": 40, "rate": 20.0}}


def _run(tmp_path, monkeypatch, policy: str, **params) -> dict:
    monkeypatch.setenv("BULLETSIM_TRACES_DIR", "")
    monkeypatch.setenv("BULLETSIM_CACHE_DIR", str(tmp_path / "no-cache"))
    cfg = load_config(None, {**BASE, "policy": policy, policy: params})
    return load_results(write_results(simulate(cfg), tmp_path / policy))


def _at_launch(timeline: pd.DataFrame, it: pd.DataFrame) -> list[tuple[int, int]]:
    """(timeline's num_sms for the lane at each iteration's start, the iteration's num_sms)."""
    out = []
    for lane, rows in it.groupby(it["lane"].astype(str), observed=True):
        tl = timeline[timeline["lane"].astype(str) == lane].sort_values("time_s", kind="stable")
        idx = tl["time_s"].searchsorted(rows["start_s"].to_numpy(), side="right") - 1
        out += list(zip(tl["num_sms"].to_numpy()[idx], rows["num_sms"], strict=True))
    return out


def test_pdmux_timeline_records_the_partition_that_ran_and_the_policys(tmp_path, monkeypatch):
    r = _run(tmp_path, monkeypatch, "pdmux")
    tl, it = r["sm_timeline"], r["iterations"]
    assert list(tl.columns) == list(SM_TIMELINE_COLUMNS)
    pairs = {
        (str(ln), p, n) for ln, p, n in tl[["lane", "policy_sms", "num_sms"]].itertuples(False)
    }
    # the table's first split, as the policy decided it and as green contexts run it
    assert {("prefill", 112, 108), ("decode", 20, 24)} <= pairs
    assert ("prefill", 0, 0) in pairs  # a lane without SMs launches nothing
    # every iteration ran on the SMs the timeline says its lane had when it started
    at_launch = _at_launch(tl, it)
    assert len(at_launch) == len(it) and all(a == b for a, b in at_launch)
    assert set(it["num_sms"]) <= set(tl["num_sms"]) and 112 not in set(it["num_sms"])


def test_without_rounding_the_two_columns_are_equal(tmp_path, monkeypatch):
    r = _run(tmp_path, monkeypatch, "bullet", mechanism="libsmctrl")
    tl = r["sm_timeline"]
    assert len(tl) > 4 and (tl["num_sms"] == tl["policy_sms"]).all()
    assert set(r["iterations"]["num_sms"]) <= set(tl["num_sms"])


@pytest.mark.parametrize(("asked", "ran"), [(0, 0), (20, 24), (132, 132)])
def test_frame_maps_each_change_by_the_engines_rule(asked, ran):
    rule = {20: 24, 132: 132}.get  # a lane asking for 0 SMs is never passed to the rule
    df = sm_timeline_frame([(0.5, "decode", asked)], lambda lane, n: rule(n))
    assert df.to_dict("records") == [
        {"time_s": 0.5, "lane": "decode", "num_sms": ran, "policy_sms": asked}
    ]
