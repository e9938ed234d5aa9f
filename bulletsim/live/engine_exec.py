"""How a live run's engine executed, as profile `exec` keys: what re-pricing the run needs.

A calibrated profile prices the kernels it timed; the live engine that made a run may have
run some work differently, and the run's live.json says how: its decode CUDA graphs' batch
sizes (`decode_graph_buckets`, `latency.graph_buckets`) and, for eager batches through
flashinfer's paged FA2 prefill kernel, the factor of that kernel over the profile's prefill
attention measured for the live engine on that GPU (`eager_prefill_attention`,
`latency.eager_attention`). `bulletsim fidelity` prices its clock, and `calibrate --from-live`
its refit, with the profile plus these keys (`live.refit.engine_doc`).
"""

from __future__ import annotations

from pathlib import Path

from bulletsim.latency.eager_attention import live_engine_table
from bulletsim.live.rundir import check_live_run, graph_buckets, read_json_object

# live.json's executor.attention of the GPU engine whose eager batches run paged FA2 prefill
PAGED_FA2 = "flashinfer paged prefill, fa2"


def run_engine_exec(run_dir: str | Path) -> dict:
    """The exec keys of `run_dir`'s engine ({} for a run that ran as any profile prices:
    no decode graphs recorded, no eager kernel of another kind, e.g. the fake executor)."""
    d = check_live_run(run_dir)
    out: dict = {}
    buckets = graph_buckets(d)
    if buckets:
        out["decode_graph_buckets"] = list(buckets)
    ex = read_json_object(d / "live.json")["executor"]
    if PAGED_FA2 in str(ex.get("attention", "")):
        gpu = str(read_json_object(d / "config.json")["config"].get("gpu", ""))
        table = live_engine_table(gpu)
        if table is not None:
            out["eager_prefill_attention"] = table
    return out


# live.json executor fields that change how the engine's work takes time beside the exec keys:
# the refit fits one engine's overheads (PDL shrinks a decode graph's per-layer gaps)
IDENTITY = ("decode_graph_buckets", "attention", "decode_graph_pdl", "elementwise")


def engine_identity(run_dir: str | Path) -> dict:
    """live.json's `IDENTITY` fields of the run's executor (None where not recorded)."""
    ex = read_json_object(check_live_run(run_dir) / "live.json")["executor"]
    return {k: ex.get(k) for k in IDENTITY}


def common_engine_exec(run_dirs: list[Path]) -> dict:
    """The exec keys all of `run_dirs` share; ValueError (one line naming two runs and the
    live.json fields that differ) when their engines ran differently (`IDENTITY`, or a
    GPU without the same eager-attention table): one profile cannot price both."""
    found = {Path(d): (run_engine_exec(d), engine_identity(d)) for d in run_dirs}
    first, (want, want_id) = next(iter(found.items()), (None, ({}, {})))
    for d, (got, got_id) in found.items():
        diff = [f"executor.{k}" for k in IDENTITY if got_id.get(k) != want_id.get(k)]
        if got != want and not diff:
            diff = ["the eager-attention table of their GPU"]
        if diff:
            raise ValueError(
                f"{first} and {d} ran engines that differ in live.json {', '.join(diff)} "
                "(None: not recorded): refit them apart"
            )
    return want
