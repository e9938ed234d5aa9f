"""Live runs and the decode-step benchmark on a real GPU, one process per part.

Parts (`--part`):
  runs       the runs of `--suite` one after another in one process (one model, one set of
             CUDA graphs), each written to `OUT/runs/<workload>-<policy>-r<rate>-n<n>/` (the
             results of `bulletsim live`) with its wall time; `OUT/runs.json` sums them up.
             Suites: smoke (n=60), splitwise, sharegpt, full (both) at 50/80/100% of
             chunked-2048's simulated capacity; `--policies` (default chunked,bullet,pdmux,
             the committed runs) picks the policies
  bandwidth  the decode step at batch 64 x context 2048 on the whole GPU (CUDA graph): time,
             achieved HBM bandwidth against the 4.8 TB/s datasheet and the device-copy
             bandwidth measured in the same process, a per-kernel breakdown (torch.profiler
             over graph replays), the step with each GEMM path forced, the host time to
             prepare one step; plus the `%smid` probe of every green-context pair used.
             Written to `OUT/bandwidth.json`
Usage (on the GPU machine; results/live-h200/NOTES.md has the exact commands):

    python benchmarks/live_h200.py --part runs --suite smoke --out OUT --traces-dir DIR
    python benchmarks/live_h200.py --part runs --suite full --policies pdmux-slo --out OUT
    python benchmarks/live_h200.py --part bandwidth --out OUT
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import traceback
from pathlib import Path

# chunked-2048's simulated capacity (req/s at 90% SLO attainment) at 500 requests on the
# committed H200 profile, seed 0: `bulletsim sweep --trace W --policy chunked-2048 --gpu h200
# -n 500 --seeds 0 --capacity` (results/live-h200/NOTES.md, 2026-11-30)
CAPACITY = {"splitwise": 38.05, "sharegpt": 76.11}
LOADS = (0.5, 0.8, 1.0)
# the policies of the committed runs (results/live-h200/runs, round R2); `--policies` picks
# others at the same loads (pdmux-slo: results/live-h200/runs-pdmux-slo, round R1 of 12-01)
POLICIES = ("chunked", "bullet", "pdmux")


def suite(name: str, policies: tuple[str, ...] = POLICIES) -> list[tuple[str, str, float, int]]:
    """(workload, policy, rate req/s, requests) of a suite."""
    if name == "smoke":
        return [("splitwise", p, 16.0, 60) for p in policies]
    workloads = list(CAPACITY) if name == "full" else [name]
    if any(w not in CAPACITY for w in workloads):
        raise SystemExit(f"unknown suite {name!r}; valid: smoke, full, {', '.join(CAPACITY)}")
    return [
        (w, p, round(CAPACITY[w] * f, 1), 500) for w in workloads for f in LOADS for p in policies
    ]


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


def run_suite(args) -> None:
    from bulletsim.live.gpu.executor import GpuExecutor
    from bulletsim.live.run import live_run
    from bulletsim.results import write_results

    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    ex, rows = None, []
    # one lane-set at a time: chunked's graphs first, then the two-lane policies share theirs
    runs = suite(args.suite, tuple(args.policies.split(",")))
    for workload, policy, rate, n in sorted(runs, key=lambda r: r[1] != "chunked"):
        if args.only and f"{workload}-{policy}" not in args.only.split(","):
            continue
        cfg = config(workload, policy, rate, n, args.traces_dir, args.kv_blocks)
        ex = ex or GpuExecutor(cfg)
        t0 = time.perf_counter()
        setup0 = ex.setup_s
        try:
            res = live_run(cfg, ex)
        except Exception as e:  # noqa: BLE001 - one failing run must not end the suite
            traceback.print_exc()
            print(f"{workload}-{policy}-r{rate:g}: FAILED {type(e).__name__}: {e}", flush=True)
            rows.append({"run": f"{workload}-{policy}-r{rate:g}-n{n}", "error": repr(e)})
            (out / "runs.json").write_text(json.dumps(rows, indent=1) + "\n")
            continue
        name = f"{workload}-{res.result.summary['policy']}-r{rate:g}-n{n}"
        write_results(res.result, out / "runs" / name, extra_json={"live.json": res.live})
        s, lv = res.result.summary, res.live
        row = {
            "run": name,
            "wall_s": time.perf_counter() - t0,
            "setup_s": ex.setup_s - setup0,
            "throughput_req_s": s["throughput_req_s"],
            "ttft_p50_ms": s["ttft_ms"]["p50"],
            "tpot_mean_ms": s["tpot_ms"]["mean"],
            "slo_attainment": s["slo_attainment"],
            "host_ms_per_iteration": lv["host_ms_per_iteration"]["mean"],
            "device_ms_per_iteration": lv["device_ms_per_iteration"]["mean"],
            "host_over_device": lv["host_over_device"],
            "back_to_back_gap_ms_p50": lv["back_to_back_gap_ms"].get("p50"),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "runs.json").write_text(json.dumps(rows, indent=1) + "\n")
        if ex.lanes_map.pool is not None and not (out / "partitions.json").exists():
            probe = check_partitions(ex)
            (out / "partitions.json").write_text(json.dumps(probe, indent=1) + "\n")
            print("partitions overlapping:", probe["overlapping_pairs"], flush=True)
    (out / "runs.json").write_text(json.dumps(rows, indent=1) + "\n")


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


KERNEL_CLASSES = (
    ("attention", ("flashinfer", "BatchPrefill", "BatchDecode", "PersistentVariableLength")),
    ("rope+kv write", ("_rope",)),
    ("rmsnorm", ("_add_rmsnorm",)),
    ("silu*mul", ("_silu_mul",)),
    ("gemm", ("gemm", "nvjet", "sm90", "cutlass", "xmma", "_persistent_matmul", "splitKreduce")),
    ("sampling", ("argmax", "reduce_kernel", "index")),
)


def kernel_class(name: str) -> str:
    for cls, keys in KERNEL_CLASSES:
        if any(k in name for k in keys):
            return cls
    return "other"


def profile_breakdown(graph, stream, reps: int = 5) -> dict:
    """Per-kernel device time of one graph replay (torch.profiler, CUPTI), by kernel."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.cuda.stream(stream):
        graph.replay()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        with torch.cuda.stream(stream):
            for _ in range(reps):
                graph.replay()
        torch.cuda.synchronize()
    rows = []
    for ev in prof.key_averages():
        us = getattr(ev, "device_time_total", None)
        if us is None:
            us = getattr(ev, "cuda_time_total", 0.0)
        if us <= 0:
            continue
        rows.append(
            {
                "kernel": ev.key[:120],
                "class": kernel_class(ev.key),
                "ms_per_step": us / 1e3 / reps,
                "calls_per_step": ev.count / reps,
            }
        )
    rows.sort(key=lambda r: -r["ms_per_step"])
    by_class: dict[str, float] = {}
    for r in rows:
        by_class[r["class"]] = by_class.get(r["class"], 0.0) + r["ms_per_step"]
    return {
        "by_class_ms": by_class,
        "kernels": rows[:25],
        "method": f"torch.profiler, {reps} replays",
    }


def gemm_bandwidth(m, rows: int, stream, reps: int = 5) -> dict:
    """Each decode GEMM alone: (op, path) -> ms per layer and TB/s of weight bytes, walking
    all layers' weights (far past the 60 MB L2) on the whole GPU; events around each walk."""
    import torch

    from bulletsim.gpu.gemm import EXPERIMENTAL_SKINNY

    ops = {"qkv": "wqkv", "o": "wo", "gate_up": "wgu", "down": "wd"}
    out: dict = {}
    with torch.cuda.stream(stream):
        for op, attr in ops.items():
            ws = [getattr(lw, attr) for lw in m.layers]
            x = torch.randn(rows, ws[0].shape[1], device="cuda", dtype=torch.bfloat16)
            y = torch.empty(rows, ws[0].shape[0], device="cuda", dtype=torch.bfloat16)
            nbytes = sum(w.numel() * w.element_size() for w in ws)
            for path in ("cublas", "cublaslt-sm-target", "triton-persistent", EXPERIMENTAL_SKINNY):
                try:
                    ref = x.float() @ ws[0].float().t()
                    m.gemm.launch(path, x, ws[0], y)  # warm-up (Triton compile) + check
                    err = float((y.float() - ref).norm() / ref.norm())
                    if not err < 2e-2:
                        raise ValueError(f"relative error {err:.3g} against float32")
                    times = []
                    for _ in range(reps):
                        s, e = (
                            torch.cuda.Event(enable_timing=True),
                            torch.cuda.Event(enable_timing=True),
                        )
                        s.record(stream)
                        for w in ws:
                            m.gemm.launch(path, x, w, y)
                        e.record(stream)
                        e.synchronize()
                        times.append(s.elapsed_time(e) / 1e3)
                    t = statistics.median(times)
                    out[f"{op}/{path}"] = {
                        "ms_per_layer": t / len(ws) * 1e3,
                        "tb_s": nbytes / t / 1e12,
                        "rel_err": err,
                    }
                except Exception as e:  # noqa: BLE001
                    out[f"{op}/{path}"] = {"error": repr(e)}
    return out


def bandwidth(args) -> None:
    import numpy as np
    import torch

    from bulletsim.gpu.gemm import EXPERIMENTAL_SKINNY
    from bulletsim.gpu.selection import GEMM_PATHS, ChoiceTable
    from bulletsim.live.gpu.batches import graph_step_inputs
    from bulletsim.live.gpu.executor import GpuExecutor
    from bulletsim.live.run import live_run

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    batch, ctx = 64, 2048
    cfg = config("splitwise", "chunked", 16.0, 8, args.traces_dir, args.kv_blocks)
    ex = GpuExecutor(cfg)
    live_run(cfg, ex)  # sets up the model, pages and the whole-GPU decode graphs
    m, g, pg, spec = ex.model, ex.graphs, ex.pages, ex.spec
    stream, key = ex.lanes_map.full_streams["main"], "full-main"
    res: dict = {"batch": batch, "ctx_tokens": ctx, "device": torch.cuda.get_device_name(0)}
    res["roofline_tb_s"] = 4.8
    res["method"] = (
        f"CUDA graph replay on the whole GPU, median of {args.reps} after 3 warm-ups, CUDA "
        "events; bytes = every weight once (layers, final norm, lm_head) + K and V of "
        "batch x (ctx + 1) tokens; copy = torch copy_ of 4 GiB, read + write bytes; read = "
        "hbm_ceiling.read_tb_s (streaming read of 4 GiB, best tiling)"
    )

    def save() -> None:  # after every stage: a timeout keeps what was measured
        tmp = out / "bandwidth.json.tmp"
        tmp.write_text(json.dumps(res, indent=1, default=str) + "\n")
        tmp.replace(out / "bandwidth.json")

    from decode_variants import replay_ms
    from hbm_ceiling import copy_tb_s, read_tb_s

    res["copy_tb_s"] = copy_tb_s()
    try:
        res["read"] = read_tb_s()
        res["read_tb_s"] = res["read"]["read_tb_s"]
    except Exception as e:  # noqa: BLE001 - the read ceiling is context, not the figure
        res["read"] = {"error": repr(e)[:300]}
    ids = [10**9 + i for i in range(batch)]
    slots = np.asarray([pg.slot(i, 0) for i in ids], np.int64)
    pg.ensure_many(slots, np.full(batch, ctx + 1, np.int64))

    class Member:  # the fields graph_step_inputs reads from a Request
        def __init__(self, rid):
            self.spec = type("S", (), {"id": rid})()
            self.num_preemptions = 0

    members = [Member(i) for i in ids]
    ctx_arr = np.full(batch, ctx, np.int64)
    h = ex.host_bufs["main"]
    t_inputs = t_plan = 0.0
    for _ in range(20):
        t0 = time.perf_counter()
        indptr, indices, last = graph_step_inputs(pg, members, ctx_arr, batch, h)
        t1 = time.perf_counter()
        g.plan(batch, indptr, indices, last)
        t_inputs, t_plan = t_inputs + t1 - t0, t_plan + time.perf_counter() - t1
    res["host_prepare_ms"] = (t_inputs + t_plan) / 20 * 1e3
    res["host_prepare_split_ms"] = {"inputs": t_inputs / 20 * 1e3, "plan": t_plan / 20 * 1e3}
    with torch.cuda.stream(stream):
        g.inputs[batch].view(-1).copy_(torch.from_numpy(h[: 3 * batch].copy()))
    torch.cuda.synchronize()
    kv_bytes = batch * (ctx + 1) * spec.kv_bytes_per_token_per_gpu
    nbytes = m.weight_bytes() + kv_bytes
    res["bytes"] = {"weights": m.weight_bytes(), "kv": kv_bytes, "total": nbytes}

    def entry(ms: float) -> dict:
        bw = nbytes / (ms / 1e3) / 1e12
        return {
            "step_ms": ms,
            "achieved_tb_s": bw,
            "of_datasheet_4p8": bw / 4.8,
            "of_measured_copy": bw / res["copy_tb_s"],
            **({"of_measured_read": bw / res["read_tb_s"]} if "read_tb_s" in res else {}),
        }

    graph = g.graphs[(key, batch)]
    res["graph"] = entry(replay_ms(graph, stream, args.reps, warm=3))
    res["graph"]["gemm_paths"] = {
        op: m.gemm.path_for(op, batch) for op in ("qkv", "o", "gate_up", "down", "lm_head")
    }
    print("decode step:", json.dumps(res["graph"]), flush=True)
    save()
    try:
        res["breakdown"] = profile_breakdown(graph, stream)
        print("breakdown (ms/step):", json.dumps(res["breakdown"]["by_class_ms"]), flush=True)
    except Exception as e:  # noqa: BLE001 - the profiler is optional evidence
        res["breakdown"] = {"error": repr(e)}
    save()
    m.set_num_sms(ex.total)
    res["gemm_alone"] = gemm_bandwidth(m, batch, stream)
    print("gemm alone:", json.dumps(res["gemm_alone"]), flush=True)
    save()
    profile_table = m.gemm.table
    res["forced_gemm_path"] = {}
    for path in GEMM_PATHS:
        forced = {f"{op}|{batch}|{ex.total}": path for op in ("qkv", "o", "gate_up", "down")}
        m.use_choices(ChoiceTable.from_kernel_names(forced))
        m.set_num_sms(ex.total)
        try:
            gr = g.capture_bucket(batch, stream)
            res["forced_gemm_path"][path] = entry(replay_ms(gr, stream, args.reps, warm=3))
            try:
                res["forced_gemm_path"][path]["by_class_ms"] = profile_breakdown(gr, stream)[
                    "by_class_ms"
                ]
            except Exception:  # noqa: BLE001
                pass
            del gr
        except Exception as e:  # noqa: BLE001 - a path that cannot run here is reported
            res["forced_gemm_path"][path] = {"error": repr(e)}
        print(f"forced {path}:", json.dumps(res["forced_gemm_path"][path]), flush=True)
        save()
    # experimental: the skinny split-K GEMM for qkv, o and down (not in the profile)
    skinny = {f"{op}|{batch}|{ex.total}": EXPERIMENTAL_SKINNY for op in ("qkv", "o", "down")}
    m.use_choices(profile_table)
    m.set_num_sms(ex.total)
    for op in ("gate_up", "lm_head"):
        skinny[f"{op}|{batch}|{ex.total}"] = m.gemm.path_for(op, batch)
    m.use_choices(ChoiceTable.from_kernel_names(skinny))
    m.set_num_sms(ex.total)
    try:
        gr = g.capture_bucket(batch, stream)
        res["experimental_skinny_gemm"] = entry(replay_ms(gr, stream, args.reps, warm=3))
        res["experimental_skinny_gemm"]["by_class_ms"] = profile_breakdown(gr, stream)[
            "by_class_ms"
        ]
        res["experimental_skinny_gemm"]["note"] = (
            "qkv, o, down by triton_skinny.skinny_matmul (not priced by the profile, not run "
            "by the engine); gate_up and lm_head as the profile chose"
        )
        del gr
    except Exception as e:  # noqa: BLE001
        res["experimental_skinny_gemm"] = {"error": repr(e)}
    print("experimental skinny:", json.dumps(res["experimental_skinny_gemm"]), flush=True)
    save()
    m.use_choices(profile_table)
    m.set_num_sms(ex.total)
    res["graph"]["decode_pdl"] = m.decode_pdl

    def step_without(attr: str, key: str, label: str, note: str = "") -> None:
        """The step captured again with the model's switch `attr` off (what it saved)."""
        setattr(m, attr, False)
        try:
            gr = g.capture_bucket(batch, stream)
            res[key] = entry(replay_ms(gr, stream, args.reps, warm=3))
            if note:
                res[key]["note"] = note
            del gr
        except Exception as e:  # noqa: BLE001
            res[key] = {"error": repr(e)}
        setattr(m, attr, True)
        print(f"{label}:", json.dumps(res[key]), flush=True)

    if m.decode_pdl:  # what programmatic dependent launch of the small kernels saved
        step_without("decode_pdl", "decode_pdl_off", "decode pdl off",
                     "the same step, small kernels without PDL")  # fmt: skip
    save()
    if m.fused_rope_store:  # what fusing RoPE + KV write + dense q saved
        step_without("fused_rope_store", "unfused_rope_kv", "unfused rope/kv")
    save()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--part", default="runs", choices=("runs", "bandwidth"))
    ap.add_argument("--traces-dir")
    ap.add_argument("--suite", default="smoke")
    ap.add_argument("--kv-blocks", type=int, default=32768)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--only", default="", help="comma list of workload-policy to run")
    ap.add_argument(
        "--policies", default=",".join(POLICIES), help="comma list of policies of the suite"
    )
    args = ap.parse_args()
    if os.environ.get("BULLETSIM_GIT_SHA"):
        print("code:", os.environ["BULLETSIM_GIT_SHA"], flush=True)
    if args.part == "runs":
        from bulletsim.policies.registry import policy_names

        bad = [p for p in args.policies.split(",") if p not in policy_names()]
        if bad:
            ap.error(f"unknown policies {bad}; valid: {', '.join(policy_names())}")
        run_suite(args)
    else:
        bandwidth(args)


if __name__ == "__main__":
    main()
