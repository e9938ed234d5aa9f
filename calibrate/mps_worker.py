"""One lane of Bullet's two-process layout: a prefill or a decode process, run by `mps_corun`.

    python3 -m calibrate.mps_worker --role prefill|decode --sync DIR [--tpcs FIRST:COUNT]

The work is a proxy of a lane's iteration, captured as one CUDA graph: `--layers` Llama-3.1-8B
layers (distinct weights, rotating past the 60 MB L2) of QKV GEMM, SDPA attention (GQA 32/8,
head 128; causal over the prompt for prefill, over a contiguous KV cache for decode), O GEMM,
gate_up GEMM, SiLU*mul, down GEMM; prefill: one 4096-token prompt; decode: batch 64, context
2048. Not the calibrator's kernels (no flashinfer, no partition-aware GEMM path): the same
proxy runs in every configuration, so the table compares layouts, not kernels.

Protocol with the controller (files in `--sync`): after setup the worker writes
`ready_<role>` (with its setup timings), then for each phase waits for `go_<phase>_<role>`,
replays the graph back to back for `--duration-s` (CUDA events around every replay) and writes
`done_<phase>_<role>`; `exit` ends it. Phases decided by the controller: alone, together.
`CUDA_MPS_ACTIVE_THREAD_PERCENTAGE` (read by the driver at context creation) and the MPS pipe
come from the environment; `--tpcs` masks the lane's stream with libsmctrl inside the process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from calibrate.tool_cli import (
    ToolParser,
    positive_int,
    positive_seconds,
    require_folder,
    require_gpu,
    require_libsmctrl,
    run_tool,
)

T_LAUNCH = time.time()


def _wait_for(path: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {path.name} within {timeout_s:.0f}s")
        time.sleep(0.001)
    return path.read_text()


def _write(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def build_iteration(torch, role: str, layers: int):
    """Tensors and a closure running one iteration of `role` (see the module docstring)."""
    import torch.nn.functional as F

    g = torch.Generator(device="cuda").manual_seed(1 if role == "prefill" else 2)
    d, qh, kvh, hd, ff = 4096, 32, 8, 128, 14336
    bf = torch.bfloat16

    def rnd(*shape):
        return torch.randn(*shape, device="cuda", dtype=bf, generator=g) * 0.02

    ws = [
        (rnd((qh + 2 * kvh) * hd, d), rnd(d, qh * hd), rnd(2 * ff, d), rnd(d, ff))
        for _ in range(layers)
    ]
    tokens = 4096 if role == "prefill" else 64
    x = rnd(tokens, d)
    if role == "decode":
        kv = [(rnd(64, kvh, 2048, hd), rnd(64, kvh, 2048, hd)) for _ in range(layers)]

    def step():
        h = x
        for i, (wqkv, wo, wgu, wd) in enumerate(ws):
            qkv = h @ wqkv.t()
            q = qkv[:, : qh * hd]
            if role == "prefill":
                q = q.view(1, tokens, qh, hd).transpose(1, 2)
                k = qkv[:, qh * hd : (qh + kvh) * hd].view(1, tokens, kvh, hd).transpose(1, 2)
                v = qkv[:, (qh + kvh) * hd :].view(1, tokens, kvh, hd).transpose(1, 2)
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            else:
                q = q.reshape(tokens, qh, 1, hd)
                a = F.scaled_dot_product_attention(q, kv[i][0], kv[i][1], enable_gqa=True)
            a = (
                a.transpose(1, 2).reshape(tokens, qh * hd)
                if role == "prefill"
                else a.reshape(tokens, qh * hd)
            )
            h = a @ wo.t()
            gu = h @ wgu.t()
            h = (F.silu(gu[:, :ff]) * gu[:, ff:]) @ wd.t()
        return h

    flops_per_layer = 2 * tokens * d * ((qh + 2 * kvh) * hd + qh * hd + 2 * ff + ff)
    return step, flops_per_layer * layers


def new_context_ms(reps: int = 3) -> float | str:
    """Median wall time of creating (and destroying) one more CUDA context in this process:
    the cost of re-partitioning by a new context (an MPS percentage is fixed per context).
    Driver API through ctypes; torch's context is made current again afterwards."""
    import ctypes

    cuda = ctypes.CDLL("libcuda.so.1")
    prev, dev = ctypes.c_void_p(), ctypes.c_int()
    cuda.cuCtxGetCurrent(ctypes.byref(prev))
    cuda.cuCtxGetDevice(ctypes.byref(dev))
    times = []
    for _ in range(reps):
        ctx = ctypes.c_void_p()
        t0 = time.perf_counter()
        err = cuda.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev)
        t1 = time.perf_counter()
        if err == 0:
            cuda.cuCtxDestroy_v2(ctx)
        cuda.cuCtxSetCurrent(prev)
        if err != 0:
            return f"cuCtxCreate_v2 failed with CUresult {err}"
        times.append((t1 - t0) * 1e3)
    return round(statistics.median(times), 3)


def affinity_context(sms: int, switches: int = 2000) -> dict:
    """A context limited to `sms` SMs by execution affinity (`cuCtxCreate_v3`,
    CU_EXEC_AFFINITY_TYPE_SM_COUNT; "only supported under Volta+ MPS", cuda.h): creation time,
    the SM count granted (`cuCtxGetExecAffinity`), and the host cost of switching to it and
    back (`cuCtxSetCurrent`): what re-partitioning among pre-created MPS contexts would cost."""
    import ctypes

    class Param(ctypes.Structure):  # CUexecAffinityParam: type + union {unsigned val}
        _fields_ = [("type", ctypes.c_int), ("val", ctypes.c_uint)]

    cuda = ctypes.CDLL("libcuda.so.1")
    prev, dev, ctx = ctypes.c_void_p(), ctypes.c_int(), ctypes.c_void_p()
    cuda.cuCtxGetCurrent(ctypes.byref(prev))
    cuda.cuCtxGetDevice(ctypes.byref(dev))
    want = Param(0, sms)
    t0 = time.perf_counter()
    err = cuda.cuCtxCreate_v3(ctypes.byref(ctx), ctypes.byref(want), 1, 0, dev)
    create_ms = (time.perf_counter() - t0) * 1e3
    if err != 0:
        cuda.cuCtxSetCurrent(prev)
        return {"requested_sms": sms, "error": f"cuCtxCreate_v3 failed with CUresult {err}"}
    got = Param()
    gerr = cuda.cuCtxGetExecAffinity(ctypes.byref(got), 0)
    t0 = time.perf_counter()
    for _ in range(switches):
        cuda.cuCtxSetCurrent(prev)
        cuda.cuCtxSetCurrent(ctx)
    switch_us = (time.perf_counter() - t0) / (2 * switches) * 1e6
    cuda.cuCtxSetCurrent(prev)
    cuda.cuCtxDestroy_v2(ctx)
    cuda.cuCtxSetCurrent(prev)
    return {
        "requested_sms": sms,
        "granted_sms": int(got.val) if gerr == 0 else f"cuCtxGetExecAffinity: {gerr}",
        "create_ms": round(create_ms, 3),
        "set_current_us": round(switch_us, 3),
    }


def _tpc_range(text: str) -> str:
    """argparse type of --tpcs: FIRST:COUNT, FIRST >= 0, COUNT >= 1."""
    try:
        first, count = (int(v) for v in text.split(":"))
    except ValueError:
        first, count = -1, 0
    if first < 0 or count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give FIRST:COUNT TPCs, e.g. 0:16")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = ToolParser(prog="calibrate.mps_worker", description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=("prefill", "decode"), required=True)
    ap.add_argument("--sync", type=Path, required=True)
    ap.add_argument("--layers", type=positive_int, default=4)
    ap.add_argument("--duration-s", type=positive_seconds, default=2.0)
    ap.add_argument("--tpcs", type=_tpc_range, default=None, help="FIRST:COUNT libsmctrl mask")
    ap.add_argument("--libsmctrl", default=None)
    ap.add_argument("--timeout-s", type=positive_seconds, default=120.0)
    a = ap.parse_args(argv)
    require_folder(a.sync, "--sync folder")
    if a.tpcs:
        a.libsmctrl = require_libsmctrl(a.libsmctrl)
    require_gpu("calibrate.mps_worker")
    t0 = time.time()
    import torch

    t_import = time.time()
    torch.cuda.init()
    free0, total = torch.cuda.mem_get_info()  # creates the context
    torch.zeros(1, device="cuda").add_(1)
    torch.cuda.synchronize()
    t_ctx = time.time()
    if a.tpcs:
        from bulletsim.gpu.libsmctrl import load_libsmctrl, new_raw_stream, tpc_mask_for

        lib = load_libsmctrl(a.libsmctrl)
        first, count = (int(v) for v in a.tpcs.split(":"))
        # Under an MPS percentage the device reports the capped SM count (98 at 75% on the
        # H200), but mask bits name physical TPCs: cover at least the TPCs asked for.
        total_tpcs = torch.cuda.get_device_properties(0).multi_processor_count // 2
        raw = new_raw_stream()
        lib.set_stream_mask(raw, tpc_mask_for(first, count, max(total_tpcs, first + count)))
        stream = torch.cuda.ExternalStream(raw)
    else:
        stream = torch.cuda.Stream()
    probed = None
    try:
        from bulletsim.gpu.probe import SmidProbe

        probed = len(SmidProbe(num_blocks=4096).probe(stream))
    except Exception as e:  # noqa: BLE001 - the probe is a record, not a requirement
        probed = f"probe failed: {type(e).__name__}: {e}"[:200]
    step, flops = build_iteration(torch, a.role, a.layers)
    with torch.cuda.stream(stream):
        for _ in range(2):
            step()
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        step()
    with torch.cuda.stream(stream):
        for _ in range(3):
            graph.replay()
    stream.synchronize()
    t_setup = time.time()
    ctx_ms = new_context_ms()
    affinity = affinity_context(32)
    ready = {
        "pid": os.getpid(),
        "role": a.role,
        "mps_pipe": os.environ.get("CUDA_MPS_PIPE_DIRECTORY"),
        "active_thread_pct": os.environ.get("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"),
        "tpcs": a.tpcs,
        "probed_sms": probed,
        "import_s": round(t_import - t0, 3),
        "interpreter_start_s": round(t0 - T_LAUNCH, 3),
        "context_s": round(t_ctx - t_import, 3),
        "setup_s": round(t_setup - t_ctx, 3),
        "new_context_ms": ctx_ms,
        "affinity_context": affinity,
        "free_bytes_at_context": free0,
        "total_bytes": total,
        "iteration_flops": flops,
    }
    _write(a.sync / f"ready_{a.role}", ready)
    phases = {}
    while True:
        phase = _wait_for(a.sync / f"go_{a.role}", a.timeout_s).strip()
        (a.sync / f"go_{a.role}").unlink()
        if phase == "exit":
            break
        ms: list[float] = []
        end = time.monotonic() + a.duration_s
        with torch.cuda.stream(stream):
            while time.monotonic() < end:
                evs = [torch.cuda.Event(enable_timing=True) for _ in range(11)]
                evs[0].record()
                for i in range(10):
                    graph.replay()
                    evs[i + 1].record()
                evs[-1].synchronize()
                ms += [x.elapsed_time(y) for x, y in zip(evs, evs[1:], strict=False)]
        phases[phase] = {
            "n": len(ms),
            "median_ms": round(statistics.median(ms), 4),
            "p10_ms": round(sorted(ms)[len(ms) // 10], 4),
            "p90_ms": round(sorted(ms)[9 * len(ms) // 10], 4),
        }
        _write(a.sync / f"done_{phase}_{a.role}", phases[phase])
    _write(a.sync / f"result_{a.role}", {**ready, "phases": phases})
    return 0


if __name__ == "__main__":
    run_tool(lambda: sys.exit(main()))
