"""Where the host time of the live engine's eager step goes, call by call (GPU only).

An eager chunked step enqueues ~290-370 kernels and took 10.8-15.6 ms of host CPU (median)
on the lent H200 (results/live-h200/NOTES.md, session S4), so short mixed steps are
host-bound. This sets up the live executor (a tiny chunked run), then times the host side of
each call the eager step makes, one kind at a time, at a few row counts: the enqueue only
(the GPU runs behind; row counts small enough that it keeps up), mean over `--reps` calls:

  ops.<rows>.<call>   us per call: the Triton small kernels, each GEMM op by the profile's
                      path and by every path forced, flashinfer's paged prefill run, one
                      whole decoder layer, one whole eager step (build, plan, 32 layers, head)
  layer_idle_vs_busy  us per decoder layer enqueued with the GPU idle vs busy (`idle_vs_busy`)
  eager_step.<rows>   host ms of whole eager prefill steps (median of 10)
  graph_replay_us     host us per decode-graph replay at 8, 64 and 256 rows
  cprofiled_run       host ms of a short live chunked run's steps (after a warm one), whose
                      cProfile is cprofile.txt: top functions by own and cumulative time

`python3 benchmarks/eager_host_ops.py --out DIR --traces-dir DIR` -> DIR/host_ops.json.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path


def host_us(fn, reps: int) -> float:
    """Mean host microseconds per call of `fn` (enqueue only; synchronised before and after)."""
    import torch

    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    dt = time.perf_counter() - t0
    torch.cuda.synchronize()
    return dt / reps * 1e6


def ops_at(ex, t: int, reps: int) -> dict:
    """Host us per call of each call an eager step of `t` rows makes (see the module doc)."""
    import torch

    from bulletsim.gpu import kernels as kn
    from bulletsim.gpu.selection import GEMM_PATHS

    m = ex.model
    w0 = m.layers[0]
    wrapper = ex.prefill_wrappers["main"]
    r: dict = {}
    acts = m.acts(t)
    acts.x.normal_()
    acts.res.zero_()
    acts.qkv.normal_()
    acts.gu.normal_()
    pos = torch.arange(t, device="cuda", dtype=torch.int64)
    slots = pos + m.page
    r["add_rmsnorm"] = host_us(lambda: kn.add_rmsnorm(acts.x, acts.res, w0.norm1, acts.h), reps)
    r["silu_mul"] = host_us(lambda: kn.silu_mul(acts.gu, acts.act), reps)
    r["rope_store"] = host_us(lambda: m._rope_store(0, acts, pos, slots), reps)
    shapes = {
        "qkv": (acts.h, w0.wqkv, acts.qkv),
        "o": (acts.attn_out, w0.wo, acts.x),
        "gate_up": (acts.h, w0.wgu, acts.gu),
        "down": (acts.act, w0.wd, acts.x),
    }
    for op, args in shapes.items():
        chosen = m.gemm.path_for(op, t)
        r[f"gemm.{op}.{chosen}(profile)"] = host_us(lambda o=op, g=args: m.gemm.run(o, *g), reps)
        for path in GEMM_PATHS:
            try:
                r[f"gemm.{op}.{path}"] = host_us(lambda p=path, g=args: m.gemm.launch(p, *g), reps)
            except Exception as e:  # noqa: BLE001 - a path that cannot run is reported
                r[f"gemm.{op}.{path}"] = repr(e)[:200]
    r["torch.mm(plain)"] = host_us(lambda: torch.mm(acts.h, w0.wqkv.t(), out=acts.qkv), reps)
    r["torch.empty"] = host_us(lambda: torch.empty(t, 4096, device="cuda"), reps)
    # attention: one prompt of t tokens from position 0 (pages 1..)
    npg = -(-t // m.page)
    layout = (
        torch.tensor([0, t], dtype=torch.int32),
        torch.tensor([0, npg], dtype=torch.int32),
        torch.arange(1, npg + 1, dtype=torch.int32),
        torch.tensor([t - (npg - 1) * m.page], dtype=torch.int32),
    )
    heads = m.paged_heads()
    r["flashinfer.plan"] = host_us(
        lambda: wrapper.plan(*layout, *heads, causal=True, **m.PLAN_DTYPES), 20
    )
    q = acts.q.view(t, m.qh, m.d)
    o = acts.attn_out.view(t, m.qh, m.d)
    r["flashinfer.run"] = host_us(lambda: wrapper.run(q, (m.k[0], m.v[0]), out=o), reps)

    def attn(i, q, k_cache, v_cache, out):
        wrapper.run(q, (k_cache, v_cache), out=out)

    r["layer"] = host_us(lambda: m.layer(0, acts, pos, slots, attn), 50)
    return r


def idle_vs_busy(ex, stream, t: int = 64, layers: int = 32, reps: int = 5) -> dict:
    """Host us to enqueue one decoder layer of `t` rows, 32 layers in a row, with the GPU idle
    (each kernel runs as soon as it is launched: a host-bound step) against the GPU busy with
    ~0.2 s of queued GEMMs (the launches queue behind them: a GPU-bound step), median of
    `reps` rounds of each, interleaved."""
    import numpy as np
    import torch

    m = ex.model
    acts = m.acts(t)
    acts.x.normal_()
    acts.res.zero_()
    pos = torch.arange(t, device="cuda", dtype=torch.int64)
    slots = pos + m.page
    wrapper = ex.prefill_wrappers["main"]
    npg = -(-t // m.page)
    wrapper.plan(torch.tensor([0, t], dtype=torch.int32), torch.tensor([0, npg], dtype=torch.int32),
                 torch.arange(1, npg + 1, dtype=torch.int32),
                 torch.tensor([t - (npg - 1) * m.page], dtype=torch.int32),
                 *m.paged_heads(), causal=True, **m.PLAN_DTYPES)  # fmt: skip
    big = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    out = torch.empty_like(big)

    def attn(i, q, k_cache, v_cache, o):
        wrapper.run(q, (k_cache, v_cache), out=o)

    idle, busy = [], []
    with torch.cuda.stream(stream):
        for _ in range(reps):
            for queue, bucket in ((0, idle), (180, busy)):
                torch.cuda.synchronize()
                for _ in range(queue):  # ~1.1 ms each at ~1 PFLOP/s: ~0.2 s of GPU work
                    torch.mm(big, big, out=out)
                t0 = time.perf_counter()
                for i in range(layers):
                    m.layer(i, acts, pos, slots, attn)
                bucket.append((time.perf_counter() - t0) / layers * 1e6)
                torch.cuda.synchronize()
    return {"rows": t, "idle_us_per_layer": float(np.median(idle)),
            "busy_us_per_layer": float(np.median(busy)), "idle": idle, "busy": busy}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--traces-dir", required=True)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--rows", default="16,64,256")
    ap.add_argument("-n", type=int, default=60, help="requests of the cProfile'd run")
    a = ap.parse_args(argv)
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from live_h200 import config

    from bulletsim.live.gpu.executor import GpuExecutor
    from bulletsim.live.run import live_run

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config("splitwise", "chunked", 16.0, 8, a.traces_dir, 32768)
    ex = GpuExecutor(cfg)
    live_run(cfg, ex)
    m = ex.model
    stream = ex.lanes_map.full_streams["main"]
    m.set_num_sms(ex.total)
    doc: dict = {"device": torch.cuda.get_device_name(0), "reps": a.reps, "ops": {}}

    def save() -> None:
        tmp = out / "host_ops.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(out / "host_ops.json")

    with torch.cuda.stream(stream):
        for t in (int(x) for x in a.rows.split(",")):
            doc["ops"][str(t)] = r = ops_at(ex, t, a.reps)
            print(t, json.dumps({k: (round(v, 1) if isinstance(v, float) else v)
                                 for k, v in r.items()}), flush=True)  # fmt: skip
            save()
    doc["layer_idle_vs_busy"] = idle_vs_busy(ex, stream)
    print("layer host us, GPU idle vs busy:", doc["layer_idle_vs_busy"], flush=True)
    save()
    # whole eager steps (prefill of t tokens from position 0), as the warm-up launches them
    steps = {}
    for t in (int(x) for x in a.rows.split(",")):
        ms = [ex.eager_prefill("main", stream, ex.total, t, 10**9 + k) * 1e3 for k in range(10)]
        steps[str(t)] = {"host_ms_median": float(np.median(ms)), "host_ms": ms}
        print("eager step", t, steps[str(t)]["host_ms_median"], flush=True)
    doc["eager_step"] = steps
    graphs = {}
    for (key, b), g in ex.graphs.graphs.items():
        if key == "full-main" and b in (8, 64, 256):
            graphs[str(b)] = host_us(g.replay, 20)
    doc["graph_replay_us"] = graphs
    print("graph replay host us", graphs, flush=True)
    save()
    # cProfile of a short live run (the executor is warm)
    cfg = config("splitwise", "chunked", 19.0, a.n, a.traces_dir, 32768)
    pr = cProfile.Profile()
    pr.enable()
    res = live_run(cfg, ex)
    pr.disable()
    it = res.result.iterations
    eager = it[it["phase"] != "decode"]
    doc["cprofiled_run"] = {
        "n": a.n, "eager_steps": int(len(eager)),
        "eager_host_ms_median": float(eager["host_s"].median() * 1e3),
        "decode_host_ms_median": float(it[it["phase"] == "decode"]["host_s"].median() * 1e3),
    }  # fmt: skip
    buf = io.StringIO()
    st = pstats.Stats(pr, stream=buf)
    st.sort_stats("tottime").print_stats(45)
    st.sort_stats("cumulative").print_stats(60)
    (out / "cprofile.txt").write_text(buf.getvalue())
    print(buf.getvalue()[:6000])
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
