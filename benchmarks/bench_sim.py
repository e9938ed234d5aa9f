"""Simulator speed and memory: chunked prefill on splitwise-conv at 10,000 and 100,000 requests.

Each size runs in a fresh subprocess so peak memory (ru_maxrss) belongs to that size alone.
The load is set near chunked prefill's capacity on the chosen GPU (a rate found once by a
quick search, printed with the figures). Usage:

    python benchmarks/bench_sim.py [--traces-dir ../shared/traces] [--rate R] [--policy chunked]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(n: int, rate: float, policy: str, traces_dir: str | None, gpu: str) -> dict:
    from bulletsim.config import load_config
    from bulletsim.run import simulate

    t0 = time.perf_counter()
    over = {
        "policy": policy,
        "gpu": gpu,
        "workload": {
            "trace": "splitwise-conv",
            "arrival": "poisson",
            "rate": rate,
            "num_requests": n,
            "traces_dir": traces_dir,
        },
    }
    cfg = load_config(None, over)
    t1 = time.perf_counter()
    res = simulate(cfg)
    t2 = time.perf_counter()
    s = res.summary
    return {
        "policy": s["policy"],
        "requests": n,
        "workload_source": s["workload_source"],
        "setup_s": t1 - t0,
        "wall_s": t2 - t1,
        "req_per_wall_s": n / (t2 - t1),
        "iterations": s["num_iterations"],
        "iter_per_wall_s": s["num_iterations"] / (t2 - t1),
        "slo_attainment": s["slo_attainment"],
        "throughput_req_s": s["throughput_req_s"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces-dir", default=None)
    ap.add_argument("--rate", type=float, default=None, help="req/s (default: near capacity)")
    ap.add_argument("--policy", default="chunked")
    ap.add_argument("--gpu", default="a100")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        n, rate = a.child.split(",")
        print(json.dumps(one(int(n), float(rate), a.policy, a.traces_dir, a.gpu)))
        return
    rate = a.rate if a.rate is not None else near_capacity(a)
    print(f"splitwise-conv, {a.policy}, {a.gpu}, Poisson {rate:.2f} req/s (near capacity)")
    print(
        f"{'requests':>9} {'wall s':>8} {'req/s':>9} {'iters':>8} {'iter/s':>9} "
        f"{'RSS MB':>7}  attain"
    )
    for n in map(int, a.sizes.split(",")):
        cmd = [sys.executable, __file__, "--child", f"{n},{rate}", "--policy", a.policy]
        cmd += ["--gpu", a.gpu] + (["--traces-dir", a.traces_dir] if a.traces_dir else [])
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        print(
            f"{n:>9} {r['wall_s']:>8.3f} {r['req_per_wall_s']:>9.0f} {r['iterations']:>8} "
            f"{r['iter_per_wall_s']:>9.0f} {r['peak_rss_mb']:>7.0f}  {r['slo_attainment']:.3f}"
        )
    print(f"workload source: {r['workload_source']}")


def near_capacity(a: argparse.Namespace) -> float:
    """Highest rate (geometric bisection to ~1%, 10,000 requests) with >= 90% SLO attainment."""
    lo, hi = 0.5, 64.0
    while hi / lo > 1.01:
        mid = (lo * hi) ** 0.5
        if one(10_000, mid, a.policy, a.traces_dir, a.gpu)["slo_attainment"] >= 0.9:
            lo = mid
        else:
            hi = mid
    return lo


if __name__ == "__main__":
    main()
