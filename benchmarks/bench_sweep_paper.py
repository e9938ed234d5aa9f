"""Issue 11's sweep benchmark: the paper setting with 3 seeds and intervals (target <= 90 s).

Runs `run_sweep` on the paper setting of `results/paper-a100/regenerate.sh`'s first sweep
(Llama-3.1-8B on the derived A100 profile, bullet / chunked-1024 / chunked-2048 on sharegpt,
splitwise-code and arxiv, 5,000 requests per point, capacity to 1%, `sglang-llama3`, the
9-rate grid; `--rates 2,4,8,16` is the sweep's default grid) on a local pool of `--workers`
processes and prints its wall time, the CPU time of this process and its workers, the jobs
run (grid, search, stopped early) and each capacity, so two versions of the code can be
compared on the same machine (`PYTHONPATH=/other/tree python benchmarks/...`). Writes no
files and draws no plots (the CLI adds ~2 s for the timeline run and tables). The load
average is printed before and after: on a shared machine the times include other people's
work. Usage, from the repository root:

    python benchmarks/bench_sweep_paper.py --traces-dir ../shared/traces [--seeds 0,1,2]
        [--rates 1,2,3,4,6,8,10,12,16] [--workers 2] [-n 5000] [--points FILE.csv]
"""

from __future__ import annotations

import argparse
import os
import resource
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces-dir", default="../shared/traces")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rates", default="1,2,3,4,6,8,10,12,16")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("-n", "--num-requests", type=int, default=5000)
    ap.add_argument("--points", help="also write the points table to this CSV file")
    args = ap.parse_args()

    from bulletsim.executors import make_executor
    from bulletsim.sweep import SweepSpec, run_sweep

    spec = SweepSpec(
        policies=("bullet", "chunked-1024", "chunked-2048"),
        traces=("sharegpt", "splitwise-code", "arxiv"),
        rates=tuple(float(r) for r in args.rates.split(",")),
        num_requests=args.num_requests,
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        rel_tol=0.01,
        workers=args.workers,
        base={
            "gpu": "a100", "model": "llama-3.1-8b", "latency": "profile",
            "chunked": {"max_running_requests": 1024},
            "workload": {"convention": "sglang-llama3", "traces_dir": args.traces_dir},
        },
    )  # fmt: skip
    load0 = os.getloadavg()
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    with make_executor("local", args.workers) as pool:
        points, cap = run_sweep(spec, executor=pool)
    wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    load1 = os.getloadavg()
    if args.points:
        points.to_csv(args.points, index=False)
    kinds = points.groupby("kind").size().to_dict()
    stopped = int(points["stopped_early"].astype(bool).sum())
    print(f"jobs: {len(points)} points ({kinds}), {stopped} stopped early")
    for r in cap.itertuples():
        iv = f"[{r.capacity_lo:.3f}, {r.capacity_hi:.3f}]"
        print(f"  {r.trace:15s} {r.label:13s} {r.capacity_req_s:7.3f} {iv} {r.capacity_per_seed}")
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} ({os.cpu_count()} cores)")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s (this process + workers), "
          f"workers {args.workers}, seeds {args.seeds}, rates {args.rates}")  # fmt: skip


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its finished children (the pool's
    workers are counted once the pool has shut down)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    main()
