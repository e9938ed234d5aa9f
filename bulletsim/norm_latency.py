"""Capacity under a *normalized-latency* SLO: the highest Poisson rate at which the mean over
requests of E2E latency / output tokens stays within a limit.

That is the criterion of the normalized-latency-vs-rate plots of vLLM (Kwon et al., SOSP'23,
"normalized latency: end-to-end latency divided by output length, averaged over requests")
and DistServe, which the Bullet paper uses for its large-model settings (Llama-3.1-70B:
200 ms/token on 8xA100, 100 ms/token on 8xH100). `bulletsim sweep` judges per-request TTFT
and TPOT SLOs instead; this module complements it for those settings.

    python -m bulletsim.norm_latency --gpu a100 --model llama-3.1-70b --tp 8 --slo-ms 200 \\
        --policy bullet --policy chunked-8192 --trace sharegpt --out DIR [--seeds 0,1,2] ...

Per (policy, seed): the rate is bisected between `--lo` and `--hi` until hi/lo - 1 <= rel_tol
(the mean normalized latency grows with the rate); capacity is the highest rate that met the
limit. Mean and 95% t-interval over seeds, widened by rel_tol, and Bullet's ratio to the best
other policy paired by seed (`bulletsim.intervals`). Writes DIR/points.csv (every simulated
point), DIR/capacity.csv, DIR/capacity.md; the same inputs give the same files.
"""

from __future__ import annotations

import argparse
import json
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from bulletsim.intervals import mean_interval, ratio_interval


def mean_norm_latency_s(requests: pd.DataFrame) -> float:
    """Mean over completed requests of (finish - arrival) / output tokens (seconds/token)."""
    done = requests[requests["finish_s"].notna() & (requests["output_tokens"] > 0)]
    if done.empty:
        return math.inf
    return float(((done["finish_s"] - done["arrival_s"]) / done["output_tokens"]).mean())


def run_point(base: dict, policy: str, seed: int, rate: float, n: int, trace: str) -> dict:
    """Simulate one (policy, seed, rate) point; its mean normalized latency and throughput."""
    from bulletsim.config import load_config, merge_overrides
    from bulletsim.run import simulate
    from bulletsim.sweep import PolicyVariant

    v = PolicyVariant.parse(policy)
    over = merge_overrides(base, {"policy": v.policy, v.policy: dict(v.params)})
    over = merge_overrides(
        over,
        {
            "seed": seed,
            "workload": {"trace": trace, "arrival": "poisson", "rate": rate, "num_requests": n},
        },
    )
    res = simulate(load_config(None, over))
    s = res.summary
    return {
        "policy": policy,
        "seed": seed,
        "rate_req_s": rate,
        "norm_latency_ms": 1e3 * mean_norm_latency_s(res.requests),
        "throughput_req_s": s["throughput_req_s"],
        "tpot_p50_ms": s["tpot_ms"]["p50"],
        "ttft_p50_ms": s["ttft_ms"]["p50"],
        "latency_model": s["latency_model"],
        "num_requests": n,
    }


def search(base, policy, seed, slo_ms, lo, hi, rel_tol, n, trace, pool) -> tuple[float, list]:
    """Bisect one (policy, seed) on the rate: (capacity, every point run). Both ends of the
    bracket are checked first; a limit missed at `lo` gives 0, one met at `hi` gives `hi`."""
    points = []

    def ok(rate: float) -> bool:
        p = pool.submit(run_point, base, policy, seed, rate, n, trace).result()
        points.append(p)
        return p["norm_latency_ms"] <= slo_ms

    if not ok(lo):
        return 0.0, points
    if ok(hi):
        return hi, points
    while hi / lo - 1 > rel_tol:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo, points


def capacity_table(caps: dict[str, list[float]], rel_tol: float) -> list[dict]:
    """Per policy: mean capacity and interval; Bullet variants also get their paired ratio
    to the best non-Bullet policy (by mean)."""
    rows = []
    others = {p: c for p, c in caps.items() if not p.startswith("bullet")}
    best = max(others, key=lambda p: sum(others[p])) if others else None
    for p, c in caps.items():
        iv = mean_interval(c, rel_tol)
        row = {"policy": p, "capacity_req_s": iv.point, "lo": iv.lo, "hi": iv.hi, "seeds": c}
        if p.startswith("bullet") and best is not None:
            r = ratio_interval(c, others[best], rel_tol)
            row.update({"vs": best, "ratio": r.point, "ratio_lo": r.lo, "ratio_hi": r.hi})
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tp", type=int)
    ap.add_argument("--latency", default="profile")
    ap.add_argument("--slo-ms", type=float, required=True, help="mean E2E/output limit, ms")
    ap.add_argument("--policy", action="append", required=True)
    ap.add_argument("--trace", default="sharegpt")
    ap.add_argument("--traces-dir")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("-n", "--num-requests", type=int, default=2000)
    ap.add_argument("--lo", type=float, default=0.25)
    ap.add_argument("--hi", type=float, default=32.0)
    ap.add_argument("--rel-tol", type=float, default=0.02)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="config key=value")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    from bulletsim.config import merge_overrides, parse_sets

    base = merge_overrides(
        parse_sets(a.set),
        {
            "gpu": a.gpu, "model": a.model, "tp": a.tp, "latency": a.latency,
            "workload": {"traces_dir": a.traces_dir},
        },
    )  # fmt: skip
    seeds = [int(s) for s in a.seeds.split(",")]
    caps: dict[str, list[float]] = {}
    points: list[dict] = []
    with ProcessPoolExecutor(a.workers) as pool:
        jobs = {}
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(a.workers) as threads:  # one bisection per thread
            for p in a.policy:
                for s in seeds:
                    jobs[(p, s)] = threads.submit(
                        search, base, p, s, a.slo_ms, a.lo, a.hi, a.rel_tol,
                        a.num_requests, a.trace, pool,
                    )  # fmt: skip
            for (p, _s), job in jobs.items():
                cap, pts = job.result()
                caps.setdefault(p, []).append(cap)
                points += pts
    write(a, caps, points, base)


def write(a, caps: dict, points: list[dict], base: dict) -> None:
    a.out.mkdir(parents=True, exist_ok=True)
    pts = pd.DataFrame(points).sort_values(["policy", "seed", "rate_req_s"])
    pts.to_csv(a.out / "points.csv", index=False, float_format="%.6g")
    rows = capacity_table(caps, a.rel_tol)
    pd.DataFrame(rows).to_csv(a.out / "capacity.csv", index=False, float_format="%.6g")
    lat = sorted(set(pts["latency_model"]))
    lines = [
        f"Capacity at mean normalized latency (E2E / output tokens) <= {a.slo_ms:g} ms/token, "
        f"{a.gpu} / {a.model} tp={a.tp}, {a.trace}, {a.num_requests} requests per point, "
        f"seeds {a.seeds}, bisection to {a.rel_tol:.0%}; latency model {', '.join(lat)}.",
        "",
        "| policy | capacity (req/s) | 95% interval | Bullet / best other |",
        "|---|---:|---|---|",
    ]
    for r in rows:
        ratio = (
            f"{r['ratio']:.2f}x [{r['ratio_lo']:.2f}, {r['ratio_hi']:.2f}] vs {r['vs']}"
            if "ratio" in r
            else ""
        )
        lines.append(
            f"| {r['policy']} | {r['capacity_req_s']:.2f} | [{r['lo']:.2f}, {r['hi']:.2f}] "
            f"| {ratio} |"
        )
    cmd = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
    lines += ["", "Command arguments: `" + json.dumps(cmd, sort_keys=True) + "`"]
    (a.out / "capacity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
