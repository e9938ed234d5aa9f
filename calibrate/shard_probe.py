"""Where does a shard calibration spend (or lose) its first seconds? One point, stage by stage.

    python3 -m calibrate.shard_probe --model llama-3.1-70b --tp 8 --out DIR [--skip a,b]

Builds a 2-layer model of one GPU's shard and walks what the sweep's first prefill and decode
points do on an 8-SM green-context partition: batch planning, the reference check, every GEMM
path on every GEMM, every attention backend, kernel selection, a layer's timing, a decode
graph. Each stage runs under `faulthandler.dump_traceback_later(--stage-s, exit=True)`, so a
stage that hangs prints where it hangs and ends the process (exit 1) with DIR/probe.json
naming it (`running`). Components named in --skip (GEMM paths, attention backends) are left
out, so a caller can retry without the one that hung and then calibrate without it
(`bulletsim calibrate --gemm-paths / --prefill-backend / --decode-backend`). Issue 13, R1:
both 70B TP-8 and Qwen3 TP-8 sweeps (8 query / 1 KV head per GPU) ended with no sample.
GPU-only module.
"""

from __future__ import annotations

import faulthandler
import json
import time
from pathlib import Path

from bulletsim.cli_errors import doc_summary
from calibrate.tool_cli import ToolParser, require_gpu, require_out_folder, run_tool


def main() -> None:
    ap = ToolParser(prog="calibrate.shard_probe", description=doc_summary(__doc__))
    ap.add_argument("--model", default="llama-3.1-70b")
    ap.add_argument("--tp", type=int, default=8)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--skip", default="", help="comma-separated components to leave out")
    ap.add_argument("--stage-s", type=float, default=25.0)
    ap.add_argument("--sms", type=int, default=8)
    a = ap.parse_args()
    from bulletsim.models import get_model

    get_model(a.model, a.tp)  # a known model and a valid degree, or the valid choices
    if not (a.stage_s > 0 and a.sms > 0):
        raise ValueError(f"--stage-s and --sms must be > 0, got {a.stage_s} and {a.sms}")
    require_out_folder(a.out, "--out")
    require_gpu("calibrate.shard_probe")
    skip = {s for s in a.skip.split(",") if s}
    a.out.mkdir(parents=True, exist_ok=True)
    doc: dict = {"skip": sorted(skip), "stages": {}, "running": None, "done": False}

    def save() -> None:
        (a.out / "probe.json").write_text(json.dumps(doc, indent=1) + "\n")

    t0 = time.perf_counter()

    def stage(name: str, fn):
        doc["running"] = name
        save()
        print(f"[{time.perf_counter() - t0:6.1f}s] start {name}", flush=True)
        faulthandler.dump_traceback_later(a.stage_s, exit=True)
        t = time.perf_counter()
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 - a failing component is a finding, not a stop
            out = None
            doc["stages"][name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        else:
            doc["stages"][name] = {"s": round(time.perf_counter() - t, 3)}
        faulthandler.cancel_dump_traceback_later()
        print(f"[{time.perf_counter() - t0:6.1f}s] done  {name}: {doc['stages'][name]}", flush=True)
        doc["running"] = None
        save()
        return out

    import torch

    from bulletsim.gpu.check import check_layer
    from bulletsim.gpu.graphs import capture_step
    from bulletsim.gpu.llama import LlamaModel
    from bulletsim.gpu.pools import make_pool
    from bulletsim.gpu.selection import DECODE_BACKENDS, GEMM_PATHS
    from bulletsim.gpu.timing import time_graph, time_kernels
    from bulletsim.hardware import get_gpu
    from bulletsim.models import get_model

    spec = get_model(a.model, a.tp)
    pool = stage("pool", lambda: make_pool("green-ctx", get_gpu("h200")))
    paths = tuple(p for p in GEMM_PATHS if p not in skip)
    decs = tuple(d for d in DECODE_BACKENDS if d not in skip)
    pref = "sdpa" if {"flashinfer-fa3", "flashinfer-fa2"} & skip else "auto"
    if any(s.startswith("sdpa") for s in skip):
        pref = "flashinfer"
    m = stage(
        "model",
        lambda: LlamaModel(
            spec, num_layers=2, kv_pool_bytes=4e9, gemm_paths=paths, decode_backends=decs,
            prefill_backend=pref,
        ),
    )  # fmt: skip
    m.gemm.unit_sms = pool.granularity
    full, part = pool.get(pool.total_sms), pool.get(a.sms)

    def on(p, fn):
        with torch.cuda.stream(p.stream):
            out = fn()
        p.stream.synchronize()
        return out

    from bulletsim.gpu.llama import prefill_backend_factories

    # where prefill_batch tests the SDPA candidates (a hang here means SDPA: "sdpa-all")
    doc["prefill_factories"] = sorted(
        stage("prefill_factories", lambda: prefill_backend_factories(m)) or []
    )
    for label, make in (("prefill", lambda: m.prefill_batch([32])),
                        ("decode", lambda: m.decode_batch(16, 1000))):  # fmt: skip
        b = stage(f"{label}_batch", make)
        doc[f"{label}_backends"] = sorted(b.backends)
        m.use_partition(b, full)
        stage(f"{label}_check_full", lambda b=b: on(full, lambda: check_layer(m, b)))
        m.use_partition(b, part)
        for op, x, w, o in m._gemm_operands(b):  # noqa: SLF001 - the probe walks the model
            for path in paths:
                stage(f"gemm:{path}:{op}", lambda p=path, x=x, w=w, o=o, op=op: on(
                    part, lambda: m.gemm.launch(p, x, w, o)))  # fmt: skip
        for name, be in b.backends.items():
            if name in skip:
                continue
            b.attn_backend = be
            stage(f"{label}:{name}", lambda b=b: on(part, m.layer_kernels(0, b)[4][1]))
        stage(f"{label}_select", lambda b=b: m.use_partition(b, part, select=True))
        kt = stage(
            f"{label}_layer", lambda b=b: time_kernels(m.layer_kernels(0, b), part.stream, 2)
        )
        if kt is not None:
            doc[f"{label}_layer_ms"] = round(min(kt.spans_ms), 4)
    g = stage("decode_graph", lambda: capture_step(m, b, part))
    if g is not None:
        doc["decode_graph_ms"] = round(min(time_graph(g, part.stream, 3)), 4)
    torch.cuda.synchronize()
    doc["done"] = True
    save()
    print(json.dumps({k: v for k, v in doc.items() if k != "stages"}), flush=True)


if __name__ == "__main__":
    run_tool(main)
