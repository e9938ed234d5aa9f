"""Check and time the MoE kernels of Qwen3-235B-A22B at the per-GPU shapes of TP 8 and EP 8.

    python3 -m calibrate.moe_bench --part check --out DIR   (reference checks, every path)
    python3 -m calibrate.moe_bench --part time --out DIR    (grouped GEMM vs a loop of GEMMs)
    python3 -m calibrate.moe_bench --part model --out DIR   (a Qwen3MoeModel layer: check,
                                                             per-op times, graph capture)

TP 8: every GPU holds all 128 experts, each 1536 / 8 = 192 wide (gate_up [128, 384, 4096],
down [128, 4096, 192]) and runs all T*8 copies. EP 8: 16 whole experts (gate_up [16, 3072,
4096], down [16, 4096, 1536]) and the copies of the busiest rank. Token copies per expert
come from `bulletsim.latency.moe` distributions (uniform; zipf:0.6), seeded. Each path is
checked against a float32 per-expert reference on fresh random inputs with its output
poisoned, then timed with CUDA events (median of repeats after warm-up, on the full GPU and
on green-context partitions), TFLOP/s of the useful FLOPs and GB/s of expert weights read
printed beside each time. Writes moe_<part>.json under --out.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from calibrate.tool_cli import ToolParser, doc_summary, require_gpu, require_out_folder, run_tool

ROUTINGS = ("uniform", "zipf:0.6")
LAYOUTS = {"tp8": 1, "ep8": 8}


def _spec():
    from bulletsim.models import get_model

    return get_model("qwen3-235b-a22b", tp=8)


def _paths():
    from calibrate import moe_kernels as mk

    paths = ["triton-grouped", "loop-mm"]
    if mk.has_torch_grouped_mm():
        paths.insert(0, "torch-grouped-mm")
    return paths


def _grouped(path, rows, w, route, counts, ends, out):
    from calibrate import moe_kernels as mk

    if path == "torch-grouped-mm":
        return mk.grouped_torch(rows, w, ends)
    if path == "triton-grouped":
        te, tr = mk.tile_schedule(counts, ends, route.max_tiles, mk.TILE_M)
        return mk.grouped_triton(rows, w, te, tr, ends, out)
    return mk.grouped_loop(rows, w, route.counts_host, out)


def part_check(log) -> list[dict]:
    import torch

    from bulletsim.latency.moe import parse_routing
    from calibrate import moe_kernels as mk
    from calibrate.moe_model import MoeBlock, draw_route

    spec, rows_out = _spec(), []
    for layout, ep in LAYOUTS.items():
        for rname in ROUTINGS:
            for t in (1, 37, 512):
                route = draw_route(t, spec, ep, parse_routing(rname), seed=11)
                for path in _paths():
                    blk = MoeBlock(spec, ep, 1, path, seed=t)
                    h = torch.randn(t, spec.hidden_size, device="cuda", dtype=torch.bfloat16)
                    # grouped gate_up alone, against the per-expert float32 reference
                    order, counts, ends = mk.align(route.expert, blk.num_local)
                    rows = h.index_select(0, route.token.index_select(0, order))
                    out = torch.full(
                        (rows.shape[0], blk.wgu[0].shape[1]),
                        float("nan"),
                        device="cuda",
                        dtype=torch.bfloat16,
                    )
                    got = _grouped(path, rows, blk.wgu[0], route, counts, ends, out)
                    torch.cuda.synchronize()
                    ref = mk.grouped_reference(rows, blk.wgu[0], route.counts_host)
                    e_gu = mk.rel_err(got, ref)
                    # the whole block (router, align, gate_up, act, down, combine)
                    bufs = blk.buffers(route)
                    x = torch.full_like(h, float("nan"))
                    for _, fn in blk.kernels(0, h, x, route, bufs):
                        fn()
                    torch.cuda.synchronize()
                    ref = mk.moe_reference(
                        h, route.token, route.expert, route.weight, blk.wgu[0], blk.wd[0]
                    )
                    e_blk = mk.rel_err(x, ref)
                    r = dict(
                        layout=layout,
                        routing=rname,
                        tokens=t,
                        path=path,
                        copies=int(route.token.shape[0]),
                        gate_up_rel_err=e_gu,
                        block_rel_err=e_blk,
                        ok=bool(e_gu < 2e-2 and e_blk < 2e-2),
                    )
                    rows_out.append(r)
                    log(
                        f"check {layout} {rname} T={t} {path}: gate_up {e_gu:.2e} block {e_blk:.2e}"
                    )
    # QK-norm (Triton) against float32
    t, qh, kvh, d = 300, 8, 1, 128
    qkv = torch.randn(t, (qh + 2 * kvh) * d, device="cuda", dtype=torch.bfloat16)
    wq = 1 + 0.1 * torch.randn(d, device="cuda", dtype=torch.bfloat16)
    wk = 1 + 0.1 * torch.randn(d, device="cuda", dtype=torch.bfloat16)
    ref = mk.qk_norm_reference(qkv, qh, kvh, d, wq, wk)
    mk.qk_norm_(qkv, qh, kvh, d, wq, wk)
    e = mk.rel_err(qkv[:, : (qh + kvh) * d].view(t, -1, d), ref)
    rows_out.append(dict(op="qk_norm", rel_err=e, ok=bool(e < 2e-2)))
    log(f"check qk_norm: {e:.2e}")
    return rows_out


def _median_ms(fn, stream, reps=20) -> float:
    import statistics

    import torch

    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
        evs = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
        torch.cuda._sleep(200_000)  # hold the stream while launches queue
        evs[0].record()
        for i in range(reps):
            fn()
            evs[i + 1].record()
        evs[-1].synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in zip(evs, evs[1:], strict=False))


def part_time(log, sms_list=(132, 64, 32)) -> list[dict]:
    import torch

    from bulletsim.gpu.green import GreenContextPool
    from bulletsim.hardware import get_gpu
    from bulletsim.latency.moe import parse_routing
    from calibrate import moe_kernels as mk
    from calibrate.moe_model import MoeBlock, draw_route

    spec = _spec()
    pool = GreenContextPool(get_gpu("h200"))
    out = []
    for layout, ep in LAYOUTS.items():
        blks = {p: MoeBlock(spec, ep, 4, p, seed=1) for p in _paths()}
        for rname in ROUTINGS:
            for t in (16, 256, 2048, 8192):
                route = draw_route(t, spec, ep, parse_routing(rname), seed=3)
                h = torch.randn(t, spec.hidden_size, device="cuda", dtype=torch.bfloat16)
                any_blk = next(iter(blks.values()))
                order, counts, ends = mk.align(route.expert, any_blk.num_local)
                rows = h.index_select(0, route.token.index_select(0, order))
                c = rows.shape[0]
                n_gu, k = any_blk.wgu[0].shape[1], spec.hidden_size
                touched = sum(1 for n in route.counts_host if n)
                flop = 2.0 * c * n_gu * k
                wbytes = 2.0 * touched * n_gu * k
                for n in sms_list:
                    stream = pool.get(n).stream
                    for path, blk in blks.items():
                        buf = torch.empty(c, n_gu, device="cuda", dtype=torch.bfloat16)
                        layer = [0]

                        args = (rows, route, counts, ends, buf)

                        def run(blk=blk, path=path, args=args, layer=layer):
                            layer[0] = (layer[0] + 1) % 4  # rotate weights past L2
                            rows_, route_, counts_, ends_, buf_ = args
                            _grouped(path, rows_, blk.wgu[layer[0]], route_, counts_, ends_, buf_)

                        try:
                            ms = _median_ms(run, stream)
                        except Exception as e:  # noqa: BLE001 - report, go on
                            log(f"time {layout} {path} T={t}: failed {e!r}"[:300])
                            continue
                        # whole block (gate_up incl. router/align, act, down+combine)
                        bufs = blk.buffers(route)
                        x = torch.empty_like(h)
                        ks = blk.kernels(0, h, x, route, bufs)
                        ms_blk = _median_ms(lambda ks=ks: [fn() for _, fn in ks], stream, 10)
                        out.append(
                            dict(
                                layout=layout,
                                routing=rname,
                                tokens=t,
                                copies=c,
                                experts_touched=touched,
                                num_sms=n,
                                path=path,
                                gate_up_ms=ms,
                                tflops=flop / ms / 1e9,
                                weight_gbs=wbytes / ms / 1e6,
                                block_ms=ms_blk,
                            )
                        )
                        log(
                            f"{layout} {rname:8} T={t:5} C={c:6} {n:3} SMs {path:16} "
                            f"gate_up {ms:7.3f} ms {flop / ms / 1e9:6.0f} TFLOP/s "
                            f"{wbytes / ms / 1e6:6.0f} GB/s  block {ms_blk:7.3f} ms"
                        )
        del blks
        torch.cuda.empty_cache()
    return out


def part_model(log) -> dict:
    import torch

    from bulletsim.gpu.graphs import capture_step
    from bulletsim.gpu.green import GreenContextPool
    from bulletsim.gpu.timing import time_graph, time_kernels
    from bulletsim.hardware import get_gpu
    from bulletsim.latency.moe import parse_routing
    from calibrate.moe_model import Qwen3MoeModel, check_moe_layer

    pool = GreenContextPool(get_gpu("h200"))
    res = {}
    path = _paths()[0]
    for layout, ep in LAYOUTS.items():
        m = Qwen3MoeModel(
            _spec(), ep, parse_routing("uniform"), path, num_layers=2, kv_pool_bytes=2e9
        )
        for label, b in (
            ("prefill512", m.prefill_batch([512])),
            ("decode32", m.decode_batch(32, 1024)),
        ):
            m.use_partition(b, pool.get(132))
            errs = check_moe_layer(m, b)
            m.use_partition(b, pool.get(64), select=True)
            kt = time_kernels(m.step_kernels(b, head=True), pool.get(64).stream, 3)
            occ = {
                n: 2 * sum(1 for k, _ in m.layer_kernels(0, b) if k == n)
                for n, _ in m.layer_kernels(0, b)
            }
            ops = {op: round(kt.op_ms(op, n), 4) for op, n in occ.items()}
            r = {"check": errs, "ops_ms_64sms": ops, "names": m.kernel_names(b)}
            if b.phase == "decode":
                g = capture_step(m, b, pool.get(64))
                r["graph_ms_64sms"] = sorted(time_graph(g, pool.get(64).stream, 5))[2]
            res[f"{layout}/{label}"] = r
            log(f"model {layout} {label}: {r}")
        del m
        torch.cuda.empty_cache()
    return res


def main() -> None:
    ap = ToolParser(prog="calibrate.moe_bench", description=doc_summary(__doc__))
    ap.add_argument("--part", choices=("check", "time", "model"), required=True)
    ap.add_argument("--out", default=os.environ.get("OUTDIR", "."), help="folder (env OUTDIR)")
    args = ap.parse_args()
    require_out_folder(args.out, "--out")
    require_gpu("calibrate.moe_bench")
    import torch

    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    log(
        f"torch {torch.__version__}, _grouped_mm: {hasattr(torch, '_grouped_mm')}, "
        f"{torch.cuda.get_device_name(0)}"
    )
    fn = {"check": part_check, "time": part_time, "model": part_model}[args.part]
    res = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0),
        "paths": _paths(),
        "result": fn(log),
    }
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    p = Path(args.out) / f"moe_{args.part}.json"
    p.write_text(json.dumps(res, indent=1) + "\n")
    log(f"wrote {p}")


if __name__ == "__main__":
    run_tool(main)
