"""Simulation speed of Bullet next to chunked prefill on 10,000 splitwise-conv requests.

Target: Bullet's wall time <= 2x chunked prefill's at the same load. Each run is a fresh
subprocess (no shared memo warm-up). The default rate is chunked-2048's capacity on the GPU
for the same requests (found with `bulletsim.capacity`), i.e. a loaded but stable system; an
overloaded chunked run is cheaper per request (few, full iterations), so it is not the yardstick.

    python benchmarks/bench_bullet.py [--traces-dir ../shared/traces] [--rate R] [-n 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

POLICIES = {"chunked-2048": ("chunked", {}), "bullet": ("bullet", {})}


def one(
    label: str, n: int, rate: float, traces_dir: str | None, gpu: str, latency: str = "roofline"
) -> dict:
    from bulletsim.config import load_config
    from bulletsim.run import simulate

    policy, params = POLICIES[label]
    over = {
        "policy": policy,
        policy: params,
        "gpu": gpu,
        "latency": latency,
        "workload": {
            "trace": "splitwise-conv", "arrival": "poisson", "rate": rate, "num_requests": n,
            "traces_dir": traces_dir,
        },
    }  # fmt: skip
    cfg = load_config(None, over)
    t0 = time.perf_counter()
    s = simulate(cfg).summary
    wall = time.perf_counter() - t0
    return {
        "label": label,
        "wall_s": wall,
        "iterations": s["num_iterations"],
        "us_per_iteration": 1e6 * wall / s["num_iterations"],
        "slo_attainment": s["slo_attainment"],
        "workload_source": s["workload_source"],
    }


def chunked_capacity(n: int, traces_dir: str | None, gpu: str, latency: str) -> float:
    from bulletsim.capacity import CapacitySearch, find_capacity

    def attainment(rate: float) -> float:
        return one("chunked-2048", n, rate, traces_dir, gpu, latency)["slo_attainment"]

    return find_capacity(attainment, CapacitySearch(start_req_s=4.0, rel_tol=0.05)).capacity_req_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces-dir", default=None)
    ap.add_argument("--rate", type=float, default=None)
    ap.add_argument("-n", type=int, default=10_000)
    ap.add_argument("--gpu", default="a100")
    ap.add_argument("--latency", default="roofline", help="roofline, profile or auto")
    ap.add_argument("--repeats", type=int, default=3, help="take the median wall time")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        label, rate = a.child.split(",")
        print(json.dumps(one(label, a.n, float(rate), a.traces_dir, a.gpu, a.latency)))
        return
    rate = a.rate if a.rate is not None else chunked_capacity(a.n, a.traces_dir, a.gpu, a.latency)
    print(f"splitwise-conv, {a.n} requests, {a.gpu}, {a.latency}, Poisson {rate:.2f} req/s")
    print(f"{'policy':>13} {'wall s':>8} {'iters':>8} {'us/iter':>8}  attain")
    walls = {}
    for label in POLICIES:
        runs = []
        for _ in range(a.repeats):
            cmd = [sys.executable, __file__, "--child", f"{label},{rate}", "-n", str(a.n)]
            cmd += ["--gpu", a.gpu, "--latency", a.latency]
            cmd += ["--traces-dir", a.traces_dir] if a.traces_dir else []
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out))
        r = sorted(runs, key=lambda x: x["wall_s"])[len(runs) // 2]
        walls[label] = r["wall_s"]
        print(
            f"{label:>13} {r['wall_s']:>8.2f} {r['iterations']:>8} "
            f"{r['us_per_iteration']:>8.1f}  {r['slo_attainment']:.3f}"
        )
    ratio = walls["bullet"] / walls["chunked-2048"]
    print(f"bullet / chunked wall time: {ratio:.2f}x (target <= 2x); source {r['workload_source']}")


if __name__ == "__main__":
    main()
