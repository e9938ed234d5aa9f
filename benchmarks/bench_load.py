"""Seconds to build a 100,000-request workload of the Azure conversation trace.

A script, not a test: `python benchmarks/bench_load.py [--traces-dir ../shared/traces]`.
Without a traces folder it times the embedded offline model. Target: under 1 s per load (the
loader must never dominate a 100k-request simulation, which takes ~4 s).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bulletsim.workload import WorkloadConfig, load_workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces-dir", default=None)
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cfg = WorkloadConfig(
        trace="splitwise-conv", traces_dir=args.traces_dir, rate=30.0, num_requests=args.n
    )
    times = []
    for seed in range(args.repeat):
        start = time.perf_counter()
        w = load_workload(cfg, np.random.default_rng(seed))
        times.append(time.perf_counter() - start)
    assert len(w.requests) == args.n
    print(
        f"{args.n:,} requests from {w.source}: median {statistics.median(times):.3f} s "
        f"(min {min(times):.3f}, max {max(times):.3f}, {args.repeat} loads)"
    )


if __name__ == "__main__":
    main()
