"""Live runs on a real GPU, batched into one process (one model, one set of CUDA graphs).

Writes under OUT: `runs/<workload>-<policy>-r<rate>/` (the results of `bulletsim live`),
`checks.json` (green-context disjointness probed with `%smid`, the decode step's achieved
HBM bandwidth against the roofline, setup costs) and prints one line per run. Usage (on the
GPU machine, see results/live-h200/NOTES.md for the exact command):

    python benchmarks/live_h200.py --out OUT --traces-dir DIR --suite smoke|full
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SUITES = {
    # (workload, policy, rate req/s, requests)
    "smoke": [("splitwise", "chunked", 16.0, 60), ("splitwise", "bullet", 16.0, 60)],
    # 50 / 80 / 100% of chunked-2048's simulated capacity on the H200 profile at 500
    # requests (splitwise 34.9, sharegpt 52.7 req/s; `bulletsim sweep ... --capacity`)
    "full": [
        (w, p, round(cap * f, 1), 500)
        for w, cap in (("splitwise", 34.9), ("sharegpt", 52.7))
        for f in (0.5, 0.8, 1.0)
        for p in ("chunked", "bullet")
    ],
}


def config(workload, policy, rate, n, traces_dir, kv_blocks):
    from bulletsim.config import load_config

    over = {
        "policy": policy,
        "gpu": "h200",
        "workload": {"trace": workload, "arrival": "poisson", "rate": rate, "num_requests": n},
        "kv": {"capacity_blocks": kv_blocks},
        "bullet": {"mechanism": "green-ctx"},
    }
    if traces_dir:
        over["workload"]["traces_dir"] = traces_dir
    return load_config(None, over)


def check_partitions(ex) -> dict:
    """Every decode group of n SMs and prefill remainder of split s >= n share no SM."""
    from bulletsim.gpu.probe import SmidProbe

    probe, pool = SmidProbe(), ex.lanes_map.pool
    sets = {}
    for n in pool.pair_sizes():
        if n % 8 == 0 and n <= ex.lanes_map.max_split:
            g, r = pool.pair(n)
            sets[("g", n)] = set(probe.probe(g.stream))
            sets[("r", n)] = set(probe.probe(r.stream))
    bad = [
        (n, s)
        for (kg, n), gs in sets.items()
        if kg == "g"
        for (kr, s), rs in sets.items()
        if kr == "r" and n <= s and gs & rs
    ]
    sizes = {f"{k}{n}": len(v) for (k, n), v in sets.items()}
    return {"num_checked": len(sets), "overlapping_pairs": bad, "sm_counts": sizes}


def decode_bandwidth(ex, batch=64, ctx=2048, reps=20) -> dict:
    """A decode step (CUDA graph, full GPU) at batch x ctx: time and achieved HBM bandwidth."""
    import numpy as np
    import torch

    g, pg, m = ex.graphs, ex.pages, ex.model
    weight_bytes = (
        sum(
            t.numel() * t.element_size()
            for lw in m.layers
            for t in (lw.wqkv, lw.wo, lw.wgu, lw.wd, lw.norm1, lw.norm2)
        )
        + m.base.lm_head.numel() * 2
    )
    slots = np.arange(batch, dtype=np.int64) + 7000
    lens = np.full(batch, ctx + 1, np.int64)
    for s in slots:
        pg.slot_of[int(s) + 10**8] = int(s)
        pg._epoch[int(s) + 10**8] = 0
    pg.ensure_many(slots, lens)
    indptr, indices, last = pg.csr(slots, lens)
    b = batch
    lane = "main" if any(k == "full-main" for k, _ in g.graphs) else "decode"
    key, stream = f"full-{lane}", ex.lanes_map.full_streams[lane]
    with torch.cuda.stream(stream):
        inp = torch.from_numpy(np.stack([slots, lens - 1, pg.slots_tokens(slots, lens - 1)]))
        g.inputs[b].copy_(inp)
        g.plan(b, indptr, indices, last)
        times = []
        for _ in range(reps + 3):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record(stream)
            g.graphs[(key, b)].replay()
            e.record(stream)
            e.synchronize()
            times.append(s.elapsed_time(e) / 1e3)
    for s in slots:
        pg.release(int(s) + 10**8)
    t = float(np.median(times[3:]))
    spec = ex.spec
    kv_bytes = batch * (ctx + 1) * spec.kv_bytes_per_token_per_gpu
    bw = (weight_bytes + kv_bytes) / t
    return {
        "batch": batch,
        "ctx_tokens": ctx,
        "step_ms": t * 1e3,
        "bytes": weight_bytes + kv_bytes,
        "achieved_tb_s": bw / 1e12,
        "roofline_tb_s": 4.8,
        "fraction_of_roofline": bw / 4.8e12,
        "method": f"CUDA graph replay, median of {reps} after 3 warm-ups, events",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--traces-dir")
    ap.add_argument("--suite", default="smoke", choices=sorted(SUITES))
    ap.add_argument("--kv-blocks", type=int, default=32768)
    ap.add_argument("--only", default="", help="comma list of workload-policy to run")
    args = ap.parse_args()
    from bulletsim.live.gpu.executor import GpuExecutor
    from bulletsim.live.run import live_run
    from bulletsim.results import write_results

    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    checks: dict = {}
    ex = None
    t_all = time.perf_counter()
    for workload, policy, rate, n in sorted(SUITES[args.suite], key=lambda r: r[1] == "bullet"):
        if args.only and f"{workload}-{policy}" not in args.only.split(","):
            continue
        cfg = config(workload, policy, rate, n, args.traces_dir, args.kv_blocks)
        if ex is None:
            ex = GpuExecutor(cfg)
        t0 = time.perf_counter()
        res = live_run(cfg, ex)
        name = f"{workload}-{res.result.summary['policy']}-r{rate:g}-n{n}"
        write_results(res.result, out / "runs" / name, extra_json={"live.json": res.live})
        s, lv = res.result.summary, res.live
        print(
            f"{name}: {time.perf_counter() - t0:.1f}s wall, thr {s['throughput_req_s']:.2f} "
            f"req/s, TTFT p50 {s['ttft_ms']['p50']:.1f} ms, TPOT mean {s['tpot_ms']['mean']:.2f}"
            f" ms, SLO {s['slo_attainment']:.3f}, host/dev {lv['host_over_device']:.3f}, "
            f"setup {lv['executor']['setup_s']:.1f}s",
            flush=True,
        )
        if "decode_bandwidth" not in checks and ex.graphs is not None:
            checks["decode_bandwidth"] = decode_bandwidth(ex)
            print("decode bandwidth:", checks["decode_bandwidth"], flush=True)
        if ex.lanes_map.pool is not None and "partitions" not in checks:
            checks["partitions"] = check_partitions(ex)
            print("partitions:", checks["partitions"]["overlapping_pairs"], flush=True)
    checks["total_s"] = time.perf_counter() - t_all
    (out / "checks.json").write_text(json.dumps(checks, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
