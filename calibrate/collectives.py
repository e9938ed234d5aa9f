"""Measure NCCL collectives between the GPUs of one host (issue 13): `python3 -m
calibrate.collectives --out DIR [--suite smoke|full]`.

One process per GPU (torch.multiprocessing.spawn, NCCL through torch.distributed), message
sizes of Llama-3.1-70B tensor-parallel steps (hidden 8192 x tokens x bf16, tokens 1..16384):
1. self-check: all-reduce / all-gather / reduce-scatter of integer-valued bf16 data against
   the exact sums, at every size (a wrong sum stops the run before any timing);
2. whether NCCL's kernel runs on the caller's stream (torch >= 2.7 launches synchronous
   collectives on the current stream; if not, a green-context stream could not confine it):
   the CUDA profiler's stream ids of an all-reduce and a marker kernel on the same stream;
3. all-reduce time on the whole GPU and with each rank's NCCL launched on a green-context
   partition of 8..96 SMs, plus all-gather and reduce-scatter on the whole GPU;
4. NCCL's CTA count (channels) as NCCL reports it, and all-reduce time with `max_ctas` capped;
5. co-run: a GEMM on the rest of the GPU while the all-reduce runs on its partition, both
   slowdowns against each alone.
Timing: CUDA events around a loop of k back-to-back collectives on one stream (a spin kernel
queued ahead so host enqueueing is hidden), after a barrier; median over loops of the smaller
of the two ranks' loop times (the rank that started later waited least). k depends only on
the message size, so both ranks issue the same collectives. NVLink multicast stays off
(NCCL_NVLS_ENABLE=0 etc.). Writes DIR/collectives.json and prints a summary table.
GPU-only module (torch imported inside the workers).
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import time
from pathlib import Path

from bulletsim.cli_errors import doc_summary
from calibrate.tool_cli import ToolParser, require_gpu, require_out_folder, run_tool

SAFE_ENV = {  # never enable NVLink multicast on the lent machines (KINDS.md)
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}
HIDDEN = 8192  # Llama-3.1-70B hidden_size (config.json); bf16 -> 16 KiB per token
SUITES = {
    "smoke": {
        "tokens": (1, 64, 2048, 16384),
        "part_sms": (8, 32),
        "ctas": (4,),
        "corun_sms": (16,),
        "loops": 3,
        "graph_sms": (8,),
        "graph_tokens": (1, 64),
    },
    "full": {
        "tokens": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
        "part_sms": (8, 16, 24, 32, 48, 64, 96),
        "ctas": (1, 2, 4, 8, 16, 32),
        "corun_sms": (8, 16, 32),
        "loops": 7,
        "graph_sms": (8, 16, 24, 32, 48, 64, 96),
        "graph_tokens": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    },
}
CTA_TOKENS = (64, 2048, 16384)  # decode, prefill chunk, long prefill
CORUN_TOKENS = (64, 4096)
GEMM_MNK = (4096, 8192, 7168)  # prefill GEMM of a TP-8 shard: 4096 tokens x gate_up (2x3584)


def loop_count(nbytes: int) -> int:
    """Collectives per timed loop: ~2 ms of work by a pessimistic 20 us + bytes / 100 GB/s,
    3..200. A function of the size only, so every rank issues the same number."""
    est = 20e-6 + nbytes / 100e9
    return max(3, min(200, round(2e-3 / est)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ranks:
    """One rank's collective calls and timers (inside a spawned worker)."""

    def __init__(self, rank: int, world: int, loops: int):
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        self.rank, self.world, self.loops = rank, world, loops

    def ev(self):
        return self.torch.cuda.Event(enable_timing=True)

    def call(self, kind: str, buf, out=None, group=None):
        d = self.dist
        if kind == "all_reduce":
            d.all_reduce(buf, group=group)
        elif kind == "all_gather":
            d.all_gather_into_tensor(out, buf, group=group)
        else:
            d.reduce_scatter_tensor(out, buf, group=group)

    def timed_graph(self, buf, stream, k: int) -> dict:
        """Per-all-reduce ms of k all-reduces captured in one CUDA graph on `stream` (a
        green-context stream keeps its partition in the graph), replayed after a barrier:
        device time without the host's launch cost, as an engine's decode graphs see it."""
        torch = self.torch
        g = torch.cuda.CUDAGraph()
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.call("all_reduce", buf)
        stream.synchronize()
        with torch.cuda.graph(g, stream=stream):
            for _ in range(k):
                self.call("all_reduce", buf)
        per_loop = []
        with torch.cuda.stream(stream):
            g.replay()
            for _ in range(self.loops):
                stream.synchronize()
                self.dist.barrier()
                s, e = self.ev(), self.ev()
                torch.cuda._sleep(int(200 * 1980))
                s.record()
                g.replay()
                e.record()
                e.synchronize()
                per_loop.append(s.elapsed_time(e) / k)
        mine = torch.tensor(per_loop, device="cuda")
        both = [torch.empty_like(mine) for _ in range(self.world)]
        self.dist.all_gather(both, mine)
        mins = torch.stack(both).min(0).values.tolist()
        del g
        return {"ms": statistics.median(mins), "ms_min": min(mins), "k": k, "loops_ms": mins}

    def timed(self, kind, buf, stream, out=None, group=None, k=None) -> dict:
        """Per-collective ms: median over loops of min over ranks; also each rank's own."""
        torch = self.torch
        k = k or loop_count(buf.numel() * buf.element_size())
        per_loop = []
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.call(kind, buf, out, group)
            for _ in range(self.loops):
                stream.synchronize()
                self.dist.barrier(group=group)
                s, e = self.ev(), self.ev()
                torch.cuda._sleep(int(min(30e3, 40.0 * k) * 1980))
                s.record()
                for _ in range(k):
                    self.call(kind, buf, out, group)
                e.record()
                e.synchronize()
                per_loop.append(s.elapsed_time(e) / k)
        mine = torch.tensor(per_loop, device="cuda")
        both = [torch.empty_like(mine) for _ in range(self.world)]
        self.dist.all_gather(both, mine, group=group)
        mins = torch.stack(both).min(0).values.tolist()
        return {"ms": statistics.median(mins), "ms_min": min(mins), "k": k, "loops_ms": mins}


def _self_check(r: Ranks, tokens) -> dict:
    """Exact sums of integer-valued bf16 data (small integers are exact in bf16)."""
    torch = r.torch
    worst = 0.0
    for t in tokens:
        n = t * HIDDEN
        base = (torch.arange(n, device="cuda") % 7).to(torch.bfloat16)
        buf = base * (r.rank + 1)
        r.call("all_reduce", buf)
        want = base * sum(range(1, r.world + 1))
        worst = max(worst, (buf.float() - want.float()).abs().max().item())
        out = torch.empty(n * r.world, device="cuda", dtype=torch.bfloat16)
        r.call("all_gather", base * (r.rank + 1), out)
        want_g = torch.cat([base * (i + 1) for i in range(r.world)])
        worst = max(worst, (out.float() - want_g.float()).abs().max().item())
        if n % r.world == 0:
            rs = torch.empty(n // r.world, device="cuda", dtype=torch.bfloat16)
            r.call("reduce_scatter", base * (r.rank + 1), rs)
            chunk = want.view(r.world, -1)[r.rank]
            worst = max(worst, (rs.float() - chunk.float()).abs().max().item())
    torch.cuda.synchronize()
    if worst != 0.0:
        raise RuntimeError(f"rank {r.rank}: collective self-check failed, max abs error {worst}")
    return {"sizes_tokens": list(tokens), "max_abs_error": worst, "ok": True}


def _stream_check(r: Ranks, stream) -> dict:
    """Does the all-reduce kernel run on the stream it was called on? (CUDA profiler ids.)"""
    torch = r.torch
    from torch.profiler import ProfilerActivity, profile

    buf = torch.ones(HIDDEN, device="cuda", dtype=torch.bfloat16)
    with profile(activities=[ProfilerActivity.CUDA]) as prof, torch.cuda.stream(stream):
        buf.mul_(1.0)  # marker kernel on `stream`
        r.call("all_reduce", buf)
        stream.synchronize()
    streams: dict[str, set] = {"nccl": set(), "marker": set()}
    for e in prof.events():
        if e.device_type.name != "CUDA":
            continue
        sid = getattr(e, "device_resource_id", None)
        name = e.name.lower()
        if "nccl" in name:
            streams["nccl"].add(sid)
        elif "mul" in name or "elementwise" in name:
            streams["marker"].add(sid)
    same = bool(streams["nccl"]) and streams["nccl"] <= streams["marker"]
    return {
        "nccl_streams": sorted(map(str, streams["nccl"])),
        "marker_streams": sorted(map(str, streams["marker"])),
        "nccl_on_caller_stream": same,
    }


def _worker(rank: int, world: int, port: int, suite: str, out: str) -> None:
    os.environ.update(SAFE_ENV)
    import torch
    import torch.distributed as dist

    cfg = SUITES[suite]
    torch.cuda.set_device(rank)
    dist.init_process_group(
        "nccl",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        device_id=torch.device("cuda", rank),
    )
    r = Ranks(rank, world, cfg["loops"])
    res: dict = {"rank": rank, "device": torch.cuda.get_device_name(rank)}
    t0 = time.perf_counter()
    dump = Path(out, f"rank{rank}.json")

    def stage(name: str) -> None:  # progress line and a partial result after every stage
        dump.write_text(json.dumps(res, indent=1) + "\n")
        if rank == 0:
            print(f"[{time.perf_counter() - t0:.1f}s] {name} done", flush=True)

    res["self_check"] = _self_check(r, cfg["tokens"])
    stage("self-check")
    from bulletsim.gpu.green import GreenContextPool

    pool = GreenContextPool(None, device=rank)
    res["stream_check"] = {}
    for name, sms in (("full", pool.total_sms), ("g8", 8)):
        try:
            res["stream_check"][name] = _stream_check(r, pool.get(sms).stream)
        except Exception as e:  # noqa: BLE001 - the profiler is a check, not the measurement
            res["stream_check"][name] = {"error": f"{type(e).__name__}: {e}"[:300]}
    stage("stream check")
    bufs = {t: torch.randn(t * HIDDEN, device="cuda", dtype=torch.bfloat16) for t in cfg["tokens"]}
    rows = []
    for sms in (pool.total_sms, *cfg["part_sms"]):
        st = pool.get(sms).stream
        for t, b in bufs.items():
            rows.append(
                {
                    "op": "all_reduce",
                    "tokens": t,
                    "bytes": b.numel() * 2,
                    "sms": sms,
                    **r.timed("all_reduce", b, st),
                }
            )
    full = pool.get(pool.total_sms).stream
    for t, b in bufs.items():
        og = torch.empty(b.numel() * world, device="cuda", dtype=torch.bfloat16)
        rows.append(
            {
                "op": "all_gather",
                "tokens": t,
                "bytes": og.numel() * 2,
                "sms": pool.total_sms,
                **r.timed("all_gather", b, full, og),
            }
        )
        if b.numel() % world == 0:
            ors = torch.empty(b.numel() // world, device="cuda", dtype=torch.bfloat16)
            rows.append(
                {
                    "op": "reduce_scatter",
                    "tokens": t,
                    "bytes": b.numel() * 2,
                    "sms": pool.total_sms,
                    **r.timed("reduce_scatter", b, full, ors),
                }
            )
    res["rows"] = rows
    res["nccl_version"] = ".".join(map(str, torch.cuda.nccl.version()))
    res["torch"] = torch.__version__
    stage("sweep")
    res["ctas"] = _cta_sweep(r, cfg, full)
    stage("max_ctas sweep")
    res["corun"] = _corun(r, pool, cfg)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    stage("co-run")
    # last: a failed capture must not cost the stages above
    res["graph_rows"] = []
    for sms in (pool.total_sms, *cfg["graph_sms"]):
        st = pool.get(sms).stream
        for t in cfg["graph_tokens"]:
            try:
                row = r.timed_graph(bufs[t], st, 50)
            except Exception as e:  # noqa: BLE001 - recorded; the eager rows stand
                row = {"error": f"{type(e).__name__}: {e}"[:300]}
            nbytes = bufs[t].numel() * 2
            res["graph_rows"].append(
                {"op": "all_reduce", "tokens": t, "sms": sms, "bytes": nbytes, **row}
            )
            if "error" in row:
                break
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    stage("graph-timed all-reduce")
    dist.destroy_process_group()


def _cta_sweep(r: Ranks, cfg: dict, stream) -> list[dict]:
    """All-reduce time with NCCL's CTAs (channels) capped by the communicator config."""
    torch, dist = r.torch, r.dist
    rows = []
    for c in cfg["ctas"]:
        opts = dist.ProcessGroupNCCL.Options()
        opts.config.max_ctas = c
        g = dist.new_group(list(range(r.world)), pg_options=opts)
        for t in CTA_TOKENS:
            b = torch.randn(t * HIDDEN, device="cuda", dtype=torch.bfloat16)
            rows.append(
                {
                    "max_ctas": c,
                    "tokens": t,
                    "bytes": b.numel() * 2,
                    **r.timed("all_reduce", b, stream, group=g),
                }
            )
        dist.destroy_process_group(g)
    return rows


def _corun(r: Ranks, pool, cfg: dict) -> list[dict]:
    """All-reduce loop on an n-SM green partition beside a GEMM loop on the rest: each one's
    time inside the other's window against its time alone (and both on the whole GPU)."""
    torch = r.torch
    from bulletsim.gpu.timing import Pending, inside

    m, n, k = GEMM_MNK
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    y = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    rows = []
    pairs = [(s, *pool.pair(s)) for s in cfg["corun_sms"]]
    pairs.append((pool.total_sms, pool.get(pool.total_sms), None))
    for sms, ar_part, gm_part in pairs:
        ar_st = ar_part.stream
        gm_st = gm_part.stream if gm_part is not None else torch.cuda.Stream()
        for t in CORUN_TOKENS:
            b = torch.randn(t * HIDDEN, device="cuda", dtype=torch.bfloat16)
            ar_alone = r.timed("all_reduce", b, ar_st)["ms"]
            gm_alone = _gemm_ms(torch, x, w, y, gm_st, 20)
            reps_g = 20
            n_ar = max(10, round(1.5 * reps_g * gm_alone / ar_alone))
            cnt = torch.tensor([n_ar], device="cuda")
            r.dist.all_reduce(cnt, op=r.dist.ReduceOp.MAX)
            n_ar = int(cnt.item())
            torch.cuda.synchronize()
            r.dist.barrier()
            spin_ar_us = 2000 + 40 * n_ar
            with torch.cuda.stream(ar_st):
                evs = [torch.cuda.Event(enable_timing=True) for _ in range(n_ar + 1)]
                torch.cuda._sleep(int(spin_ar_us * 1980))
                t_enq = time.perf_counter()
                evs[0].record()
                for i in range(n_ar):
                    r.call("all_reduce", b)
                    evs[i + 1].record()
                enq_us = (time.perf_counter() - t_enq) * 1e6
            agg = Pending(evs)
            # the GEMMs start about a quarter into the all-reduce window (GPU time)
            spin_g_us = max(0.0, spin_ar_us - enq_us) + 250.0 * n_ar * ar_alone
            with torch.cuda.stream(gm_st):
                gevs = [torch.cuda.Event(enable_timing=True) for _ in range(reps_g + 1)]
                torch.cuda._sleep(int(spin_g_us * 1980))
                gevs[0].record()
                for i in range(reps_g):
                    torch.mm(x, w.t(), out=y)
                    gevs[i + 1].record()
            vic = Pending(gevs)
            g_in = inside(vic, agg)
            a_in = inside(agg, vic)
            torch.cuda.synchronize()
            rows.append(
                {
                    "ar_sms": sms,
                    "gemm_sms": gm_part.num_sms if gm_part is not None else pool.total_sms,
                    "tokens": t,
                    "gemm_mnk": list(GEMM_MNK),
                    "gemm_alone_ms": gm_alone,
                    "gemm_corun_ms": statistics.median(g_in) if g_in else None,
                    "ar_alone_ms": ar_alone,
                    "ar_corun_ms": statistics.median(a_in) if a_in else None,
                    "n_gemm_inside": len(g_in),
                    "n_ar_inside": len(a_in),
                    "ar_window_ms": evs[0].elapsed_time(evs[-1]),
                    "gemm_window_ms": gevs[0].elapsed_time(gevs[-1]),
                    "gemm_start_after_ar_ms": evs[0].elapsed_time(gevs[0]),
                    "n_ar": n_ar,
                    "enqueue_ar_us_per_call": enq_us / n_ar,
                }
            )
    return rows


def _gemm_ms(torch, x, w, y, stream, reps) -> float:
    with torch.cuda.stream(stream):
        for _ in range(3):
            torch.mm(x, w.t(), out=y)
        evs = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
        torch.cuda._sleep(int(500 * 1980))
        evs[0].record()
        for i in range(reps):
            torch.mm(x, w.t(), out=y)
            evs[i + 1].record()
        evs[-1].synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in zip(evs, evs[1:], strict=False))


def nccl_channels(log_dir: Path) -> dict:
    """What NCCL's INFO log says: version, channels per communicator, transports."""
    coll, p2p, lines = [], [], []
    for f in sorted(log_dir.glob("nccl.*.log")):
        for line in f.read_text(errors="replace").splitlines():
            m = re.search(r"(\d+) coll channels", line)
            if m:
                coll.append(int(m.group(1)))
                lines.append(line.split("NCCL INFO", 1)[-1].strip())
            m = re.search(r"(\d+) p2p channels per peer", line)
            if m:
                p2p.append(int(m.group(1)))
            if re.search(r"NCCL version|via P2P|via SHM|NVLS|Channel 00/", line):
                lines.append(line.split("NCCL INFO", 1)[-1].strip())
    return {"coll_channels": coll, "p2p_channels_per_peer": p2p, "lines": lines[:60]}


def main() -> None:
    ap = ToolParser(prog="calibrate.collectives", description=doc_summary(__doc__))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--suite", choices=sorted(SUITES), default="full")
    args = ap.parse_args()
    require_out_folder(args.out, "--out")
    require_gpu("calibrate.collectives", min_gpus=2)
    os.environ.update(SAFE_ENV)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NCCL_DEBUG", "INFO")
    os.environ.setdefault("NCCL_DEBUG_SUBSYS", "INIT,GRAPH,ENV")
    os.environ.setdefault("NCCL_DEBUG_FILE", str(args.out / "nccl.%h.%p.log"))
    import torch
    import torch.multiprocessing as mp

    world = torch.cuda.device_count()
    t0 = time.perf_counter()
    error = None
    try:
        mp.spawn(_worker, args=(world, _free_port(), args.suite, str(args.out)), nprocs=world)
    except Exception as e:  # noqa: BLE001 - keep what the stages before the failure wrote
        error = f"{type(e).__name__}: {e}"[:2000]
        print(f"workers failed: {error}")
    ranks = [
        json.loads(p.read_text()) if p.exists() else {}
        for p in (args.out / f"rank{i}.json" for i in range(world))
    ]
    doc = {
        "what": "NCCL collectives, one process per GPU (calibrate/collectives.py)",
        "suite": args.suite,
        "world": world,
        "hidden": HIDDEN,
        "env": {k: os.environ.get(k) for k in SAFE_ENV},
        "timing_method": __doc__.split("Timing: ", 1)[1].split("Writes", 1)[0].strip(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_s": round(time.perf_counter() - t0, 1),
        "error": error,
        "nccl_log": nccl_channels(args.out),
        "rank0": ranks[0],
        "stream_check": [x.get("stream_check", {}) for x in ranks],
        "self_check": [x.get("self_check") for x in ranks],
    }
    (args.out / "collectives.json").write_text(json.dumps(doc, indent=1) + "\n")
    _summary(doc)


def _summary(doc: dict) -> None:
    r0 = doc["rank0"]
    on_caller = [s.get("g8", {}).get("nccl_on_caller_stream") for s in doc["stream_check"]]
    print(
        f"NCCL {r0.get('nccl_version')}, torch {r0.get('torch')}, world {doc['world']}, "
        f"coll channels {sorted(set(doc['nccl_log']['coll_channels']))}, "
        f"nccl on caller stream {on_caller}"
    )
    print(f"self-check {doc['self_check']}")
    ar = [x for x in r0.get("rows", []) if x["op"] == "all_reduce"]
    sms = sorted({x["sms"] for x in ar}, reverse=True)
    print("all_reduce us (busbw GB/s) by SMs: tokens | " + " | ".join(map(str, sms)))
    for t in sorted({x["tokens"] for x in ar}):
        cells = []
        for s in sms:
            x = next(y for y in ar if y["tokens"] == t and y["sms"] == s)
            bw = x["bytes"] * 2 * (doc["world"] - 1) / doc["world"] / (x["ms"] * 1e-3) / 1e9
            cells.append(f"{1e3 * x['ms']:.1f} ({bw:.0f})")
        print(f"{t:>6} | " + " | ".join(cells))
    for g in r0.get("graph_rows", []):
        t = f"{1e3 * g['ms']:.1f} us" if "ms" in g else g.get("error")
        print(f"graph-timed all_reduce {g['tokens']:>5} tokens on {g['sms']:>3} SMs: {t}")
    for c in r0.get("ctas", []):
        print(f"max_ctas {c['max_ctas']:>2} tokens {c['tokens']:>5}: {1e3 * c['ms']:.1f} us")
    for c in r0.get("corun", []):
        print(
            f"corun ar {c['ar_sms']} SMs / gemm {c['gemm_sms']} SMs, {c['tokens']} tok: gemm "
            f"{c['gemm_alone_ms']:.3f}->{c['gemm_corun_ms']} ms, ar {c['ar_alone_ms']:.4f}->"
            f"{c['ar_corun_ms']} ms"
        )


if __name__ == "__main__":
    run_tool(main)
