"""Where the live loop's long host stalls go (GPU only).

The first run of a process paid one host stall of 0.3-0.7 s in three rounds (chunked-2048 on
splitwise at 19 req/s; results/live-h200/NOTES.md, session S4). This runs that config as the
first run of the process while a sampler thread reads the main thread's Python stack every
`--every-ms` (sys._current_frames) and keeps the samples of every stretch the loop spent
without finishing an iteration for longer than `--stall-ms`; writes `stalls.json` (each
stall: start, length, the innermost frames of its samples, counted) and the run's summary.
`python3 benchmarks/host_stall_probe.py --out DIR --traces-dir DIR [-n 500 --rate 19]`.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import threading
import time
import traceback
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--traces-dir", required=True)
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--rate", type=float, default=19.0)
    ap.add_argument("--every-ms", type=float, default=20.0)
    ap.add_argument("--stall-ms", type=float, default=100.0)
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from live_h200 import config

    from bulletsim.live.engine import LiveEngine
    from bulletsim.live.gpu.executor import GpuExecutor
    from bulletsim.live.run import live_run

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    main_id = threading.get_ident()
    beat = {"t": time.perf_counter(), "n": 0}
    samples: list[tuple[float, int, list[str]]] = []  # (time, beat count, frames)
    done = threading.Event()

    append = LiveEngine.__dict__["_sync_allocations"]  # called once per finished launch set

    def beating(self, *args, **kw):
        beat["t"], beat["n"] = time.perf_counter(), beat["n"] + 1
        return append(self, *args, **kw)

    LiveEngine._sync_allocations = beating

    def sampler() -> None:
        while not done.wait(a.every_ms / 1e3):
            idle = time.perf_counter() - beat["t"]
            if idle * 1e3 < a.stall_ms / 2:
                continue
            frame = sys._current_frames().get(main_id)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)
            if any(fs.name == "wait" and fs.filename.endswith("live/gpu/executor.py")
                   for fs in stack):  # fmt: skip
                continue  # the loop waiting on the GPU, not a stall of the host
            frames = [f"{fs.filename.split('site-packages/')[-1]}:{fs.lineno} {fs.name}"
                      for fs in stack[-24:]]  # fmt: skip
            samples.append((time.perf_counter(), beat["n"], frames))

    compiles: list[dict] = []  # every Triton compile: when and for which specialisation

    def on_compile(*_a, **kw) -> bool:
        compiles.append({"at_s": round(time.perf_counter() - t_start, 3),
                         "after_beat": beat["n"], "repr": kw.get("repr", "")[:600]})  # fmt: skip
        return False  # compile as usual

    import triton

    triton.knobs.runtime.jit_cache_hook = on_compile
    t_start = time.perf_counter()
    cfg = config("splitwise", "chunked", a.rate, a.n, a.traces_dir, 32768)
    ex = GpuExecutor(cfg)
    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    t0 = time.perf_counter()
    res = live_run(cfg, ex)
    done.set()
    t.join()
    # group samples by the heartbeat they waited after: one group = one stretch without beats
    groups: dict[int, list] = collections.defaultdict(list)
    for ts, n, frames in samples:
        groups[n].append((ts, frames))
    stalls = []
    for n, g in sorted(groups.items()):
        length_ms = (g[-1][0] - g[0][0]) * 1e3 + a.every_ms
        if length_ms < a.stall_ms:
            continue
        # the frames outside the compiler: which of our calls compiled
        ours = [[x for x in f if "bulletsim/" in x][-3:] for _, f in g]
        where = collections.Counter(" <- ".join(reversed(o)) for o in ours)
        stalls.append({"at_s": round(g[0][0] - t0, 3), "length_ms_about": round(length_ms),
                       "after_beat": n, "samples": len(g),
                       "stacks": where.most_common(5)})  # fmt: skip
    it = res.result.iterations
    doc = {"n": a.n, "rate": a.rate, "every_ms": a.every_ms, "stall_ms": a.stall_ms,
           "stalls": stalls, "host_s_max": float(it["host_s"].max()),
           "host_s_over_100ms": int((it["host_s"] > 0.1).sum()),
           "summary": {k: res.result.summary[k] for k in ("throughput_req_s",)},
           "tpot_mean_ms": res.result.summary["tpot_ms"]["mean"],
           "run_started_at_s": round(t0 - t_start, 3), "compiles": compiles}  # fmt: skip
    (out / "stalls.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1)[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
