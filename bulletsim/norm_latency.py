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
limit. A seed still within the limit at `--hi` has a capacity "> hi", one over it already at
`--lo` "< lo": neither bound is a measured capacity, so such a policy gets no mean, interval
or ratio (the tables say which bound and which flag to widen). Mean and 95% t-interval over
seeds, widened by rel_tol, and Bullet's ratio to the best other policy paired by seed
(`bulletsim.intervals`). Writes DIR/points.csv (every simulated point), DIR/capacity.csv,
DIR/capacity.md (each atomically; DIR may be new or hold only these files); the same inputs
give the same files. Bad input is one line and exit code 2.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Only the standard library and cli_errors (itself light) load before `run_script` is in
# charge: a Ctrl-C while pandas / scipy load is then "interrupted", exit 130, no traceback.
from bulletsim.cli_errors import OneLineParser, doc_summary, run_script
from bulletsim.models import DEFAULT_TP_RULE

if TYPE_CHECKING:
    import pandas as pd

OUT_FILES = ("points.csv", "capacity.csv", "capacity.md")
ABOVE, BELOW = "> hi", "< lo"  # a seed whose capacity the bracket did not hold


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


def search(base, policy, seed, slo_ms, lo, hi, rel_tol, n, trace, pool) -> tuple[float, list, str]:
    """Bisect one (policy, seed) on the rate: (capacity, every point run, bracket). Both ends
    are checked first: a limit missed at `lo` gives (lo, points, "< lo"), one still met at
    `hi` gives (hi, points, "> hi") -- bounds, not capacities; else bracket is ""."""
    points = []

    def ok(rate: float) -> bool:
        p = pool.submit(run_point, base, policy, seed, rate, n, trace).result()
        points.append(p)
        return p["norm_latency_ms"] <= slo_ms

    if not ok(lo):
        return lo, points, BELOW
    if ok(hi):
        return hi, points, ABOVE
    while hi / lo - 1 > rel_tol:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo, points, ""


def capacity_table(
    caps: dict[str, list[float]], rel_tol: float, brackets: dict[str, list[str]] | None = None
) -> list[dict]:
    """Per policy: mean capacity and interval; Bullet variants also get their paired ratio
    to the best non-Bullet policy (by mean). A policy with a seed outside the bracket
    (`brackets[policy][i]` "> hi" or "< lo") gets NaN capacity and no ratio, and its row
    says which bound (`bracket`); so does the ratio of a Bullet row against it."""
    brackets = brackets or {}
    nan = float("nan")
    held = {p: not any(brackets.get(p, [])) for p in caps}
    rows = []
    others = {p: c for p, c in caps.items() if not p.startswith("bullet") and held[p]}
    best = max(others, key=lambda p: sum(others[p])) if others else None
    for p, c in caps.items():
        if not held[p]:
            marks = brackets[p]
            seeds = [f"{m[0]} {x:g}" if m else f"{x:g}" for x, m in zip(c, marks, strict=True)]
            bound = ABOVE if ABOVE in marks else BELOW
            row = {"policy": p, "capacity_req_s": nan, "lo": nan, "hi": nan, "seeds": seeds}
            rows.append({**row, "bracket": f"{bound} for {sum(map(bool, marks))}/{len(c)} seeds"})
            continue
        from bulletsim.intervals import mean_interval, ratio_interval

        iv = mean_interval(c, rel_tol)
        row = {"policy": p, "capacity_req_s": iv.point, "lo": iv.lo, "hi": iv.hi, "seeds": c}
        if p.startswith("bullet") and best is not None:
            r = ratio_interval(c, others[best], rel_tol)
            row.update({"vs": best, "ratio": r.point, "ratio_lo": r.lo, "ratio_hi": r.hi})
        rows.append(row)
    return rows


def parse_args(argv: list[str] | None):
    """The command line, checked: numbers in range, names and the config resolvable (a
    one-line ValueError / FileNotFoundError naming what is valid, before any simulation)."""
    ap = OneLineParser(
        prog="bulletsim.norm_latency",
        description=doc_summary(__doc__),
        epilog="Writes OUT/points.csv (every simulated point), OUT/capacity.csv and "
        "OUT/capacity.md; the same inputs give the same files.",
    )
    ap.add_argument("--gpu", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tp", type=int, help=f"tensor-parallel degree (default: {DEFAULT_TP_RULE})")
    ap.add_argument("--latency", default="profile")
    ap.add_argument("--slo-ms", type=float, required=True, help="mean E2E/output limit, ms")
    ap.add_argument("--policy", action="append", required=True)
    ap.add_argument("--trace", default="sharegpt")
    ap.add_argument("--traces-dir")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("-n", "--num-requests", type=int, default=2000)
    ap.add_argument("--lo", type=float, default=0.25, help="lowest rate tried, req/s")
    ap.add_argument("--hi", type=float, default=32.0, help="highest rate tried, req/s")
    ap.add_argument("--rel-tol", type=float, default=0.02)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="config key=value")
    ap.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder (new, or holding only these files) for points.csv, capacity.csv and "
        "capacity.md",
    )
    a = ap.parse_args(argv)
    if not (math.isfinite(a.slo_ms) and a.slo_ms > 0):
        raise ValueError(f"--slo-ms {a.slo_ms:g}: must be a finite number of ms > 0")
    if not (0 < a.lo < a.hi < math.inf):
        raise ValueError(f"--lo {a.lo:g} / --hi {a.hi:g}: need 0 < lo < hi (finite req/s)")
    if not 0 < a.rel_tol < 1:
        raise ValueError(f"--rel-tol {a.rel_tol:g}: must be in (0, 1)")
    if a.num_requests < 1 or a.workers < 1:
        raise ValueError("-n and --workers must be >= 1")
    try:
        a.seed_list = [int(x) for x in a.seeds.split(",")]
    except ValueError:
        raise ValueError(f"--seeds {a.seeds!r}: give integers separated by commas") from None
    if len(set(a.seed_list)) != len(a.seed_list):
        raise ValueError(f"--seeds {a.seeds!r}: a seed is repeated")
    if len(set(a.policy)) != len(a.policy):
        raise ValueError(f"--policy given twice: {a.policy}")
    check_out(a.out)
    return a


def check_out(out: Path) -> None:
    """`out` may be new, empty, or hold only this tool's files; anything else is refused."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder; choose another path")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OUT_FILES)
        md = out / "capacity.md"
        ours = not md.exists() or md.read_text().startswith("Capacity at mean normalized")
        if foreign or not ours:
            what = ", ".join(foreign[:3]) or "a capacity.md it did not write"
            raise ValueError(f"--out {out}: holds {what}; choose a new or empty folder")


def main(argv: list[str] | None = None) -> None:
    from bulletsim.config import load_config, merge_overrides, parse_sets
    from bulletsim.sweep import PolicyVariant

    a = parse_args(argv)
    base = merge_overrides(
        parse_sets(a.set),
        {
            "gpu": a.gpu, "model": a.model, "tp": a.tp, "latency": a.latency,
            "workload": {"traces_dir": a.traces_dir},
        },
    )  # fmt: skip
    for p in a.policy:  # every point's config resolves, or one line before simulating
        v = PolicyVariant.parse(p)
        over = merge_overrides(base, {"policy": v.policy, v.policy: dict(v.params)})
        over = merge_overrides(over, {"workload": {"trace": a.trace, "arrival": "poisson"}})
        cfg = load_config(None, over)
    from bulletsim.hardware import get_gpu
    from bulletsim.latency.factory import build_latency

    gpu, mech = get_gpu(cfg.gpu), cfg.partition_mechanism()
    build_latency(cfg.latency, gpu, cfg.model_spec(), mech, cfg.profile)  # a missing profile
    caps: dict[str, list[float]] = {}
    brackets: dict[str, list[str]] = {}
    points: list[dict] = []
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(a.workers) as pool:
        jobs = {}
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(a.workers) as threads:  # one bisection per thread
            for p in a.policy:
                for s in a.seed_list:
                    jobs[(p, s)] = threads.submit(
                        search, base, p, s, a.slo_ms, a.lo, a.hi, a.rel_tol,
                        a.num_requests, a.trace, pool,
                    )  # fmt: skip
            for (p, _s), job in jobs.items():
                cap, pts, bracket = job.result()
                caps.setdefault(p, []).append(cap)
                brackets.setdefault(p, []).append(bracket)
                points += pts
    write(a, caps, points, base, brackets, tp=cfg.model_spec().tp)


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def write(
    a, caps: dict, points: list[dict], base: dict, brackets: dict | None = None, tp=None
) -> None:
    """points.csv, capacity.csv, capacity.md into `a.out` (each atomically); `tp` is the
    degree the runs used (the model's default when --tp was not given)."""
    import pandas as pd

    check_out(a.out)
    a.out.mkdir(parents=True, exist_ok=True)
    pts = pd.DataFrame(points).sort_values(["policy", "seed", "rate_req_s"])
    _atomic(a.out / "points.csv", pts.to_csv(index=False, float_format="%.6g"))
    rows = capacity_table(caps, a.rel_tol, brackets)
    _atomic(a.out / "capacity.csv", pd.DataFrame(rows).to_csv(index=False, float_format="%.6g"))
    lat = sorted(set(pts["latency_model"]))
    lines = [
        f"Capacity at mean normalized latency (E2E / output tokens) <= {a.slo_ms:g} ms/token, "
        f"{a.gpu} / {a.model} tp={a.tp if tp is None else tp}, {a.trace}, "
        f"{a.num_requests} requests per point, "
        f"seeds {a.seeds}, bisection to {a.rel_tol:.0%}; latency model {', '.join(lat)}.",
        "",
        "| policy | capacity (req/s) | 95% interval | Bullet / best other |",
        "|---|---:|---|---|",
    ]
    for r in rows:
        if "bracket" in r:  # a bound, not a capacity: say which and how to widen the search
            flag = f"raise --hi {a.hi:g}" if ABOVE in r["bracket"] else f"lower --lo {a.lo:g}"
            bound = f"> {a.hi:g}" if ABOVE in r["bracket"] else f"< {a.lo:g}"
            lines.append(
                f"| {r['policy']} | {bound} (not bracketed: {r['bracket']}; {flag}) | "
                f"seeds {', '.join(r['seeds'])} | |"
            )
            continue
        ratio = (
            f"{r['ratio']:.2f}x [{r['ratio_lo']:.2f}, {r['ratio_hi']:.2f}] vs {r['vs']}"
            if "ratio" in r
            else ""
        )
        lines.append(
            f"| {r['policy']} | {r['capacity_req_s']:.2f} | [{r['lo']:.2f}, {r['hi']:.2f}] "
            f"| {ratio} |"
        )
    cmd = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "seed_list"
    }
    lines += ["", "Command arguments: `" + json.dumps(cmd, sort_keys=True) + "`"]
    _atomic(a.out / "capacity.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    for r in rows:
        if "bracket" in r:
            print(
                f"warning: {r['policy']}: capacity not bracketed ({r['bracket']})", file=sys.stderr
            )


if __name__ == "__main__":
    run_script(main)
