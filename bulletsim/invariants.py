"""Checks every simulated run must pass; tests call them on every run they make."""

from __future__ import annotations

import numpy as np
import pandas as pd


def check_run(
    requests: pd.DataFrame,
    iterations: pd.DataFrame,
    *,
    num_requests: int,
    kv_capacity_blocks: int,
    total_sms: int,
    max_overlap_sms: int = 0,
) -> None:
    """Raise AssertionError naming the first broken invariant.

    Every request finishes exactly once, after its first token, which comes after its
    arrival; output tokens are conserved; KV usage never exceeds capacity; a lane's
    iterations never overlap in time; lanes together never hold more SMs than the GPU
    (beyond `max_overlap_sms` while a split changes).
    """
    r = requests
    assert len(r) == num_requests, f"{len(r)} request records for {num_requests} requests"
    assert r["id"].is_unique, "a request appears twice"
    assert (r["finish_s"] >= 0).all(), f"{int((r['finish_s'] < 0).sum())} requests never finished"
    assert (r["first_token_s"] >= r["arrival_s"]).all(), "first token before arrival"
    assert (r["finish_s"] >= r["first_token_s"]).all(), "finish before first token"
    bad = r["generated_tokens"] != r["output_tokens"]
    assert not bad.any(), f"{int(bad.sum())} requests generated the wrong number of tokens"
    it = iterations
    if len(it):
        assert int(it["kv_used_blocks"].max()) <= kv_capacity_blocks, "KV usage above capacity"
        assert (it["end_s"] >= it["start_s"]).all(), "iteration ends before it starts"
        assert (it["num_sms"] >= 1).all() and (it["num_sms"] <= total_sms).all(), "bad SM count"
        for _, g in it.groupby("lane", observed=True):
            s, e = g["start_s"].to_numpy(), g["end_s"].to_numpy()
            assert (s[1:] >= e[:-1] - 1e-12).all(), "a lane runs two iterations at once"
        check_sm_budget(it, total_sms, max_overlap_sms)


def check_sm_budget(it: pd.DataFrame, total_sms: int, max_overlap_sms: int = 0) -> None:
    """At every instant the SMs of concurrently running iterations fit on the GPU."""
    if it["lane"].nunique() < 2:
        return
    t = np.concatenate([it["start_s"].to_numpy(), it["end_s"].to_numpy()])
    d = np.concatenate([it["num_sms"].to_numpy(), -it["num_sms"].to_numpy()])
    order = np.lexsort((d, t))  # at equal times, releases (negative) first
    peak = int(np.cumsum(d[order]).max())
    assert peak <= total_sms + max_overlap_sms, (
        f"lanes held {peak} SMs at once on a {total_sms}-SM GPU"
    )
