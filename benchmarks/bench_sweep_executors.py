"""Sweep wall time on 1 and 2 local workers and on Ray with 2 CPUs; Ray's overhead per task.

Runs the same sweep (default: 2 policies x 2 traces, rates 2,4,8, 400 requests per point,
seeds 0,1, capacity to 5%) three ways and checks that the three give identical tables
before printing any time. Ray is a local instance started here with 2 CPUs; its start-up
(`ray.init`) is timed on its own and not in the sweep's time, while its workers' first
imports are in the first run (Ray starts them lazily). With --repeat the executors take
turns (round robin) and the median is shown. Overhead per task is measured with no-op tasks: the
round trip of one task at a time, and the cost per task when 2,000 are in flight; the
sweep-level figure (Ray's wall minus 2 local workers', per task) is derived and says so.
The machine's load average is printed before and after: on a shared machine the times
include other people's work. Usage:

    python benchmarks/bench_sweep_executors.py [-n 400] [--seeds 0,1] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import pandas as pd


def noop(x: int) -> int:
    return x


def sweep_spec(args: argparse.Namespace, workers: int):
    from bulletsim.sweep import SweepSpec

    return SweepSpec(
        policies=("bullet", "chunked-2048"),
        traces=("sharegpt", "splitwise-code"),
        rates=(2.0, 4.0, 8.0),
        num_requests=args.num_requests,
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        rel_tol=0.05,
        workers=workers,
    )


def timed_sweep(spec, executor) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    from bulletsim.sweep import run_sweep

    t0 = time.perf_counter()
    points, cap = run_sweep(spec, executor=executor)
    return time.perf_counter() - t0, points, cap


def task_overhead(executor, n_serial: int = 50, n_batch: int = 2000) -> tuple[float, float]:
    """(round trip of one no-op task, wall per no-op task with n_batch in flight), seconds."""
    from bulletsim.executors import Tasks

    tasks = Tasks(executor)
    tasks.map(noop, {i: (i,) for i in range(8)})  # warm the workers up
    times = []
    for i in range(n_serial):
        t0 = time.perf_counter()
        tasks.map(noop, {i: (i,)})
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    out = tasks.map(noop, {i: (i,) for i in range(n_batch)})
    batch = (time.perf_counter() - t0) / n_batch
    assert out == {i: i for i in range(n_batch)}
    return statistics.median(times), batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--num-requests", type=int, default=400)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--repeat", type=int, default=1, help="runs per executor (median shown)")
    args = ap.parse_args()
    import ray

    from bulletsim.executors import make_executor

    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    init_s = time.perf_counter() - t0
    executors = {
        "local, 1 worker": (make_executor("local", 1), 1),
        "local, 2 workers": (make_executor("local", 2), 2),
        "ray, 2 CPUs": (make_executor("ray"), 2),
    }
    runs: dict[str, list[float]] = {name: [] for name in executors}
    tables = {}
    for _ in range(args.repeat):  # round robin, so a change in the machine's load hits all
        for name, (ex, workers) in executors.items():
            wall, points, cap = timed_sweep(sweep_spec(args, workers), ex)
            runs[name].append(wall)
            tables[name] = (points, cap)
    overhead = {name: task_overhead(executors[name][0]) for name in list(executors)[1:]}
    for ex, _ in executors.values():
        ex.shutdown()
    ray.shutdown()
    ref_points, ref_cap = tables["local, 1 worker"]
    for key, (points, cap) in tables.items():  # a time means nothing for a wrong answer
        pd.testing.assert_frame_equal(points, ref_points, obj=f"points ({key})")
        pd.testing.assert_frame_equal(cap, ref_cap, obj=f"capacity ({key})")
    tasks = len(ref_points) + len(ref_cap)  # every point, plus one zero-load job per pair
    spec = sweep_spec(args, 1)
    print(
        f"sweep: {len(spec.policies)} policies x {len(spec.traces)} traces, rates "
        f"{','.join(f'{r:g}' for r in spec.rates)}, {spec.num_requests} requests per point, "
        f"seeds {args.seeds}, capacity to {100 * spec.rel_tol:g}%: {tasks} tasks "
        f"({len(ref_points)} points + {len(ref_cap)} zero-load); identical tables on all three"
    )
    one = statistics.median(runs["local, 1 worker"])
    print(f"{'executor':<18} {'wall (s)':>9} {'speed-up':>9} {'s/task':>8}  runs (s)")
    for key, walls in runs.items():
        w = statistics.median(walls)
        each = ", ".join(f"{x:.2f}" for x in walls)
        print(f"{key:<18} {w:9.2f} {one / w:8.2f}x {w / tasks:8.3f}  {each}")
    print(f"ray.init (local instance, 2 CPUs): {init_s:.2f} s, not in the sweep's wall time")
    for key, (serial, batch) in overhead.items():
        print(
            f"{key}: no-op task round trip {1e3 * serial:.2f} ms (median of 50, one at a "
            f"time); {1e3 * batch:.3f} ms per task with 2,000 in flight"
        )
    extra = statistics.median(runs["ray, 2 CPUs"]) - statistics.median(runs["local, 2 workers"])
    print(
        f"derived: Ray's sweep wall minus 2 local workers' = {extra:+.2f} s = "
        f"{1e3 * extra / tasks:+.1f} ms per task (includes Ray's lazy worker start-up)"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
