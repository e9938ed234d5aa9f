"""Where an eager step's time goes in the live engine: host enqueue against GPU (GPU only).

Runs a short live chunked-prefill run (splitwise, Poisson) once to set up and warm the
executor, then a second one under torch.profiler (CPU and CUDA activities) and writes:
  runtime_calls.txt   CUDA runtime calls by name: count and host time (a cudaMalloc, a
                      stream/device synchronize or a pageable copy inside a step would show)
  steps.json          per eager iteration: the loop's host_s, the CUDA-event measured_s, the
                      GPU kernel busy time inside the step and the first kernel's delay
  trace.json.gz       the chrome trace (`--trace`)
`python3 benchmarks/eager_host_profile.py --out DIR --traces-dir DIR [-n 60]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--traces-dir", required=True)
    ap.add_argument("-n", type=int, default=60)
    ap.add_argument("--rate", type=float, default=19.0)
    ap.add_argument("--trace", action="store_true", help="also write the chrome trace")
    a = ap.parse_args(argv)
    import torch
    from torch.profiler import ProfilerActivity, profile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from live_h200 import config

    from bulletsim.live.gpu.executor import GpuExecutor
    from bulletsim.live.run import live_run

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config("splitwise", "chunked", a.rate, a.n, a.traces_dir, 32768)
    ex = GpuExecutor(cfg)
    live_run(cfg, ex)  # setup, graphs, JIT, allocator warm
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        res = live_run(cfg, ex)
    torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        if e.key.startswith(("cuda", "cu")) and not e.key.startswith("cutlass"):
            rows.append((e.key, e.count, e.cpu_time_total / 1e3))
    rows.sort(key=lambda r: -r[2])
    text = "\n".join(f"{k:50s} {c:8d} {ms:10.2f} ms" for k, c, ms in rows)
    (out / "runtime_calls.txt").write_text(text + "\n")
    print(text[:4000])
    it = res.result.iterations
    eager = it[it["phase"] != "decode"]
    steps = {
        "n_eager": int(len(eager)),
        "host_ms_median": float(1e3 * eager["host_s"].median()),
        "measured_ms_median": float(1e3 * eager["measured_s"].median()),
        "iterations": eager[["start_s", "end_s", "phase", "prefill_tokens", "decode_tokens",
                             "measured_s", "host_s"]].to_dict("records"),
    }  # fmt: skip
    (out / "steps.json").write_text(json.dumps(steps, indent=1, default=float) + "\n")
    print("eager steps:", steps["n_eager"], "host p50", steps["host_ms_median"],
          "measured p50", steps["measured_ms_median"])  # fmt: skip
    if a.trace:
        raw = out / "trace.json"
        prof.export_chrome_trace(str(raw))
        with open(raw, "rb") as f, gzip.open(str(raw) + ".gz", "wb") as g:
            shutil.copyfileobj(f, g)
        raw.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
