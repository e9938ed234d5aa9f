"""Kernel paths per partition, before and after (issue 9): GEMMs and attention backends.

python3 -m calibrate.kernel_bench --out DIR      (GPU; green-context partitions)
python3 -m calibrate.kernel_bench --warm NAME    (compile one flashinfer module and exit;
                                                  run several at once to JIT in parallel)

For Llama-3.1-8B's GEMMs at 2048 and 8192 tokens on 16..132 SMs: every path of
`bulletsim.gpu.gemm` (plain cuBLAS = the old profile's kernel, cuBLASLt with the SM-count
target, the persistent Triton matmul), each reference-checked, with TFLOP/s and per-SM
efficiency against the whole GPU's best. Decode attention (batch x context) and prefill
attention on 8..132 SMs through every backend the runtime can choose, each reference-checked,
with the KV bytes read per second (per SM). The choice logic is the calibrator's own
(`PartitionGemm.select`, `LlamaModel.use_partition(select=True)`), so these figures are what
the profile's kernel choices rest on. Writes kernel_bench.json; prints compact tables.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

GEMM_SMS = (16, 32, 64, 72, 80, 96, 104, 112, 120, 128, 132)
GEMM_TOKENS = (2048, 8192)
DECODE_SMS = (8, 16, 32, 64, 96, 132)
DECODE_SHAPES = ((64, 2048), (8, 2048), (256, 512), (32, 8192))
PREFILL_SMS = (32, 64, 96, 128, 132)
PREFILL_TOKENS = (2048, 8192)


def warm(name: str) -> None:
    """Run one flashinfer kernel once so its JIT module is compiled into the cache."""
    import torch

    from bulletsim.gpu import attention as attn

    ws = torch.zeros(128 * 2**20, dtype=torch.uint8, device="cuda")
    qh, kvh, d, page = 32, 8, 128, 16
    if name in ("fa3", "fa2"):
        be = attn.FlashinferPrefill(qh, kvh, d, ws, name)
        be.plan([256])
        q = torch.randn(256, qh, d, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(256, kvh, d, device="cuda", dtype=torch.bfloat16)
        be.run(q, k, torch.randn_like(k), torch.empty_like(q))
    else:
        be = attn.FlashinferDecode(qh, kvh, d, page, ws, name == "tc")
        table = torch.arange(8 * 4, device="cuda", dtype=torch.int32).view(8, 4)
        lens = torch.full((8,), 60, device="cuda", dtype=torch.int32)
        be.plan(table, lens, 60)
        kc = torch.randn(64, page, kvh, d, device="cuda", dtype=torch.bfloat16)
        q = torch.randn(8, qh, d, device="cuda", dtype=torch.bfloat16)
        be.run(q, kc, torch.randn_like(kc), torch.empty_like(q))
    torch.cuda.synchronize()
    print(f"warm {name}: ok", flush=True)


def bench_gemms(pool, spec, log) -> list[dict]:
    import torch

    from bulletsim.gpu.gemm import PartitionGemm

    h, inter = spec.hidden_size, spec.intermediate_size
    qkv_out = (spec.q_heads_per_gpu + 2 * spec.kv_heads_per_gpu) * spec.head_dim
    shapes = {"qkv": (qkv_out, h), "o": (h, h), "gate_up": (2 * inter, h), "down": (h, inter)}
    rows = []
    g = torch.Generator(device="cuda").manual_seed(0)
    for op, (n_out, k) in shapes.items():
        w = torch.randn(n_out, k, device="cuda", dtype=torch.bfloat16, generator=g) * k**-0.5
        for t in GEMM_TOKENS:
            x = torch.randn(t, k, device="cuda", dtype=torch.bfloat16, generator=g)
            out = torch.empty(t, n_out, device="cuda", dtype=torch.bfloat16)
            for n in GEMM_SMS:
                gemm = PartitionGemm(pool.total_sms)
                gemm.num_sms = n
                chosen = gemm.select(op, x, w, out, pool.get(n).stream, reps=5)
                ch = gemm.table.get(op, (t,), n)
                flop = 2.0 * t * n_out * k
                for path, ms in ch.times_ms.items():
                    rows.append(
                        {
                            "op": op,
                            "tokens": t,
                            "num_sms": n,
                            "path": path,
                            "ms": ms,
                            "tflops": None if ms is None else flop / ms / 1e9,
                            "rel_err": ch.rel_errs[path],
                            "chosen": path == chosen,
                        }
                    )
            log(f"gemm {op} done")
            del x, out
        del w
    return rows


def bench_attention(pool, model, log) -> list[dict]:
    rows = []
    for bb, c in DECODE_SHAPES:
        b = model.decode_batch(bb, c)
        kv_bytes = bb * (c + 1) * model.kv_dim * 2 * 2
        for n in DECODE_SMS:
            model.use_partition(b, pool.get(n), select=True)
            ch = model.attn_table.get("attn_decode", (bb, c), n)
            for name, ms in ch.times_ms.items():
                rows.append(
                    {
                        "op": "attn_decode",
                        "batch": bb,
                        "ctx": c,
                        "num_sms": n,
                        "backend": name,
                        "ms": ms,
                        "kv_gbs": None if ms is None else kv_bytes / ms / 1e6,
                        "rel_err": ch.rel_errs[name],
                        "chosen": name == ch.kernel,
                        "default": ch.default,
                    }
                )
        log(f"decode b{bb} c{c} done")
        del b
    for t in PREFILL_TOKENS:
        b = model.prefill_batch([t])
        flop = 4.0 * model.d * model.qh * t * (t + 1) / 2
        for n in PREFILL_SMS:
            model.use_partition(b, pool.get(n), select=True)
            ch = model.attn_table.get("attn_prefill", (1, t), n)
            for name, ms in ch.times_ms.items():
                rows.append(
                    {
                        "op": "attn_prefill",
                        "tokens": t,
                        "num_sms": n,
                        "backend": name,
                        "ms": ms,
                        "tflops": None if ms is None else flop / ms / 1e9,
                        "rel_err": ch.rel_errs[name],
                        "chosen": name == ch.kernel,
                    }
                )
        log(f"prefill {t} done")
        del b
    return rows


def _fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def print_gemm_table(rows: list[dict], total_sms: int) -> None:
    """Per-SM efficiency: (TFLOP/s / n) / (whole GPU's best TFLOP/s / total)."""
    print("\nGEMM TFLOP/s (per-SM efficiency vs the whole GPU's best path)")
    print("op       tok  sms | cublas        | lt-sm-target  | triton        | chosen")
    key = {}
    for r in rows:
        key.setdefault((r["op"], r["tokens"], r["num_sms"]), {})[r["path"]] = r
    for (op, t, n), paths in sorted(key.items()):
        full = key.get((op, t, total_sms), {})
        best_full = max((p["tflops"] or 0) for p in full.values()) if full else None
        cells = []
        for path in ("cublas", "cublaslt-sm-target", "triton-persistent"):
            r = paths.get(path)
            if r is None or r["tflops"] is None:
                cells.append(f"{'-':>13}")
                continue
            eff = (r["tflops"] / n) / (best_full / total_sms) if best_full else None
            cells.append(f"{r['tflops']:6.0f} ({_fmt(eff, 2):>4})")
        chosen = next((p for p, r in paths.items() if r["chosen"]), "-")
        print(f"{op:8} {t:5} {n:4} | " + " | ".join(cells) + f" | {chosen}")


def print_attention_table(rows: list[dict]) -> None:
    print("\nDecode attention, KV GB/s (per SM); * = chosen, default in brackets")
    key = {}
    for r in rows:
        if r["op"] == "attn_decode":
            key.setdefault((r["batch"], r["ctx"], r["num_sms"]), []).append(r)
    for (bb, c, n), rs in sorted(key.items()):
        cells = [
            f"{r['backend']}{'*' if r['chosen'] else ''} {_fmt(r['kv_gbs'], 0)} "
            f"({_fmt(None if r['kv_gbs'] is None else r['kv_gbs'] / n, 1)}) "
            f"e={_fmt(r['rel_err'], 4)}"
            for r in rs
        ]
        print(f"b{bb:<3} c{c:<5} {n:3} SMs [{rs[0]['default']}]: " + "; ".join(cells))
    print("\nPrefill attention TFLOP/s; * = chosen")
    key = {}
    for r in rows:
        if r["op"] == "attn_prefill":
            key.setdefault((r["tokens"], r["num_sms"]), []).append(r)
    for (t, n), rs in sorted(key.items()):
        cells = [f"{r['backend']}{'*' if r['chosen'] else ''} {_fmt(r['tflops'], 0)}" for r in rs]
        print(f"{t:5} tok {n:3} SMs: " + "; ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--warm", choices=("fa3", "fa2", "tc", "cc"))
    ap.add_argument("--skip-gemm", action="store_true")
    args = ap.parse_args()
    if args.warm:
        warm(args.warm)
        return
    import torch

    from bulletsim.gpu.green import GreenContextPool
    from bulletsim.gpu.llama import LlamaModel
    from bulletsim.hardware import get_gpu
    from bulletsim.models import get_model

    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    spec = get_model("llama-3.1-8b")
    pool = GreenContextPool(get_gpu("h200"))
    res: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    if not args.skip_gemm:
        res["gemm"] = bench_gemms(pool, spec, log)
        print_gemm_table(res["gemm"], pool.total_sms)
    model = LlamaModel(spec, num_layers=2, kv_pool_bytes=6e9)
    res["attention"] = bench_attention(pool, model, log)
    print_attention_table(res["attention"])
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "kernel_bench.json").write_text(json.dumps(res, indent=1) + "\n")
    log("written kernel_bench.json")


if __name__ == "__main__":
    main()
