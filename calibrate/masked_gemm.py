"""GEMMs under libsmctrl TPC masks, each under a watchdog: time, correctness, and hangs.

    python3 -m calibrate.masked_gemm --libsmctrl PATH --out DIR [--tpcs 1,2,4,...]

A masked cuBLAS GEMM was once seen to hang (DESIGN.md), and a hung kernel cannot be
cancelled from the host. So the parent re-runs a worker process until every case is done:
the worker marks a case `pending` in `DIR/masked_gemm.jsonl` before launching it, and its
`Watchdog` exits the process (code 3) when the case takes longer than `--watchdog-s`; the
next worker records that case as `hung` and carries on. Cases: the Llama-3.1-8B layer GEMMs
(2048 tokens, and decode's gate_up at batch 64) x GEMM paths (`bulletsim.gpu.gemm`: plain
cuBLAS, cuBLASLt with the SM-count target = the mask's SMs, the persistent Triton matmul on
a few counts) x TPC masks [0, n). Each case: reference check of the first 64 rows against
float32, warm-up, median of 5 event-timed launches, TFLOP/s beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from calibrate.own_files import (
    check_outputs,
    is_own_json,
    is_own_jsonl,
    jsonl_header,
    write_json_atomic,
)
from calibrate.tool_cli import (
    ToolParser,
    non_negative_int,
    positive_seconds,
    require_gpu,
    require_libsmctrl,
    require_out_folder,
    require_triton,
    run_tool,
)

# (op, M, N, K): y[M, N] = x[M, K] @ w[N, K]^T, Llama-3.1-8B shapes
SHAPES = (
    ("qkv", 2048, 6144, 4096),
    ("o", 2048, 4096, 4096),
    ("gate_up", 2048, 28672, 4096),
    ("down", 2048, 4096, 14336),
    ("gate_up_b64", 64, 28672, 4096),
)
DEFAULT_TPCS = (1, 2, 4, 8, 16, 33, 48, 64, 66)
TRITON_TPCS = (8, 33)  # one compile per program count: a few counts only
# cuBLASLt with the SM-count target hung under masks of 2-8 TPCs in the first device run
# (qkv, 2048 tokens; 1 TPC and plain cuBLAS ran): it runs last, on a few cases, so that its
# hangs (each costs a watchdog period and a restart) cannot starve the rest. "-half" sets
# the target to half the mask's SMs: does the hang need the target to fill the mask?
LT_CASES = (("o", 16), ("o", 33), ("o", 64), ("down", 33))
LT_HALF_CASES = (("o", 16), ("o", 33))
PATHS = ("cublas", "triton-persistent", "cublaslt-sm-target", "cublaslt-sm-target-half")


def cases(tpcs: tuple[int, ...]) -> list[dict]:
    """Plain cuBLAS and Triton on every shape x mask first, then the cuBLASLt cases."""
    shapes = {op: (m, n, k) for op, m, n, k in SHAPES}

    def case(op: str, path: str, t: int) -> dict:
        m, n, k = shapes[op]
        return {"key": f"{op}/{path}/tpcs{t}", "op": op, "path": path, "tpcs": t,
                "m": m, "n": n, "k": k}  # fmt: skip

    out = [case(op, "cublas", t) for op in shapes for t in tpcs]
    out += [case(op, "triton-persistent", t) for op in shapes for t in tpcs if t in TRITON_TPCS]
    out += [case(op, "cublaslt-sm-target", t) for op, t in LT_CASES if t in tpcs]
    out += [case(op, "cublaslt-sm-target-half", t) for op, t in LT_HALF_CASES if t in tpcs]
    return out


def read_log(path: Path) -> tuple[dict[str, dict], set[str]]:
    """Finished cases by key, and keys left `pending` by a worker that died inside them."""
    done: dict[str, dict] = {}
    pending: set[str] = set()
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(rec, dict) or "key" not in rec:
                continue  # the provenance header
            if rec.get("status") == "pending":
                pending.add(rec["key"])
            else:
                done[rec["key"]] = rec
                pending.discard(rec["key"])
    return done, pending - set(done)


def _append(fh, rec: dict) -> None:
    fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def _run_case(torch, gemm, case, t, s, x, w, out, fh, watchdog_s, Watchdog) -> dict:
    import statistics

    from bulletsim.gpu.gemm import _rel_err

    path = case["path"].removesuffix("-half")
    gemm.num_sms = t if case["path"].endswith("-half") else 2 * t  # the SM-count target
    ref = x[:64].float() @ w.float().t()
    if path == "triton-persistent":  # compile unmasked, outside the watchdog
        gemm.launch(path, x, w, out)
    torch.cuda.synchronize()
    _append(fh, {"key": case["key"], "status": "pending"})
    t0 = time.perf_counter()
    with Watchdog(watchdog_s, case["key"]), torch.cuda.stream(s):
        out.fill_(float("nan"))
        gemm.launch(path, x, w, out)
        s.synchronize()
        err = _rel_err(out[:64], ref)
        evs = [torch.cuda.Event(enable_timing=True) for _ in range(6)]
        evs[0].record()
        for i in range(5):
            gemm.launch(path, x, w, out)
            evs[i + 1].record()
        evs[-1].synchronize()
    ms = statistics.median(a.elapsed_time(b) for a, b in zip(evs, evs[1:], strict=False))
    flops = 2 * case["m"] * case["n"] * case["k"]
    return {
        **case,
        "status": "ok",
        "sms": 2 * t,
        "sm_target": gemm.num_sms,
        "ms": round(ms, 5),
        "tflops": round(flops / ms / 1e9, 1),
        "rel_err": err,
        "wall_s": round(time.perf_counter() - t0, 3),
    }


def worker(lib_path: str | None, log: Path, tpcs: tuple[int, ...], watchdog_s: float) -> int:
    import torch

    from bulletsim.gpu.gemm import PartitionGemm
    from bulletsim.gpu.libsmctrl import load_libsmctrl, new_raw_stream, tpc_mask_for
    from bulletsim.gpu.watchdog import Watchdog

    lib = load_libsmctrl(lib_path)
    num_sms = torch.cuda.get_device_properties(0).multi_processor_count
    total_tpcs = num_sms // 2
    done, pending = read_log(log)
    streams: dict[int, torch.cuda.ExternalStream] = {}
    gemm = PartitionGemm(num_sms, unit_sms=2)
    g = torch.Generator(device="cuda").manual_seed(0)
    with open(log, "a") as fh:
        for key in sorted(pending):
            _append(fh, {"key": key, "status": "hung", "watchdog_s": watchdog_s})
            done[key] = {}
        for case in cases(tpcs):
            if case["key"] in done:
                continue
            t = min(case["tpcs"], total_tpcs)
            if t not in streams:
                raw = new_raw_stream()
                lib.set_stream_mask(raw, tpc_mask_for(0, t, total_tpcs))
                streams[t] = torch.cuda.ExternalStream(raw)
            s = streams[t]
            x = torch.randn(case["m"], case["k"], device="cuda", dtype=torch.bfloat16, generator=g)
            w = torch.randn(case["n"], case["k"], device="cuda", dtype=torch.bfloat16, generator=g)
            out = torch.empty(case["m"], case["n"], device="cuda", dtype=torch.bfloat16)
            try:
                rec = _run_case(torch, gemm, case, t, s, x, w, out, fh, watchdog_s, Watchdog)
            except Exception as e:  # noqa: BLE001 - a path that cannot run is a result too
                rec = {**case, "status": "error", "error": f"{type(e).__name__}: {e}"[:300]}
            _append(fh, rec)
            del x, w, out
    return 0


def summarize(log: Path, tpcs: tuple[int, ...]) -> dict:
    done, pending = read_log(log)
    rows = [done[c["key"]] for c in cases(tpcs) if c["key"] in done]
    hung = [r["key"] for r in rows if r.get("status") == "hung"] + sorted(pending)
    bad = [r["key"] for r in rows if r.get("status") == "ok" and not r["rel_err"] < 2e-2]
    return {
        "cases": len(cases(tpcs)),
        "measured": sum(r.get("status") == "ok" for r in rows),
        "errors": {r["key"]: r["error"] for r in rows if r.get("status") == "error"},
        "hung": hung,
        "wrong_results": bad,
        "rows": rows,
    }


TOOL = "calibrate.masked_gemm"


def _tpc_list(text: str) -> tuple[int, ...]:
    try:
        tpcs = tuple(int(t) for t in text.split(","))
    except ValueError:
        tpcs = ()
    if not tpcs or min(tpcs) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give TPC counts >= 1, comma-separated, e.g. 1,2,4,8,16,33,66"
        )
    return tpcs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Checked arguments; ValueError (one line) for a bad --out or a file there this tool did
    not write."""
    ap = ToolParser(prog=TOOL, description=__doc__.split("\n")[0])
    ap.add_argument("--libsmctrl", default=None, help="libsmctrl.so (else $LIBSMCTRL_PATH)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tpcs", type=_tpc_list, default=DEFAULT_TPCS)
    ap.add_argument("--watchdog-s", type=positive_seconds, default=10.0)
    ap.add_argument("--max-restarts", type=non_negative_int, default=6)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.out = require_out_folder(a.out, "--out")
    check_outputs(
        a.out,
        {
            "masked_gemm.json": lambda p: is_own_json(p, TOOL),
            "masked_gemm.jsonl": lambda p: is_own_jsonl(p, TOOL),
        },
        TOOL,
    )
    return a


def main(argv: list[str] | None = None) -> int:
    """Run the cases in restarted workers; 0 when the last worker finished, 1 otherwise.
    Bad input and a machine without a GPU, libsmctrl or triton raise ValueError first."""
    a = parse_args(argv)
    tpcs = a.tpcs
    log = a.out / "masked_gemm.jsonl"
    if a.worker:
        return worker(a.libsmctrl, log, tpcs, a.watchdog_s)
    a.libsmctrl = require_libsmctrl(a.libsmctrl)
    require_gpu(TOOL)
    require_triton(TOOL)
    a.out.mkdir(parents=True, exist_ok=True)
    if not log.exists():
        log.write_text(jsonl_header(TOOL))
    cmd = [sys.executable, "-m", "calibrate.masked_gemm", "--worker", "--out", str(a.out)]
    cmd += ["--tpcs", ",".join(map(str, tpcs)), "--watchdog-s", str(a.watchdog_s)]
    cmd += ["--libsmctrl", a.libsmctrl]
    rcs = []
    for _ in range(a.max_restarts + 1):
        rc = subprocess.call(cmd)
        rcs.append(rc)
        if rc != 3:  # 3 = the watchdog fired: start again past the hung case
            break
    doc = {"worker_exit_codes": rcs, **summarize(log, tpcs)}
    write_json_atomic(a.out / "masked_gemm.json", TOOL, doc)
    print(
        f"masked GEMMs: {doc['measured']}/{doc['cases']} measured, hung {doc['hung']}, "
        f"wrong {doc['wrong_results']}, worker exits {rcs}"
    )
    print(f"{'case':<36} {'SMs':>4} {'ms':>9} {'TFLOP/s':>8}")
    for r in doc["rows"]:
        if r.get("status") == "ok":
            print(f"{r['key']:<36} {r['sms']:>4} {r['ms']:>9.4f} {r['tflops']:>8.1f}")
    return 0 if rcs and rcs[-1] == 0 else 1


if __name__ == "__main__":
    run_tool(lambda: sys.exit(main()))
