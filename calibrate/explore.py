"""One-shot device check of everything calibration depends on (run once per new machine).

python3 -m calibrate.explore [--out DIR]: green-context pool + %smid probe (native and
Triton), graph replay semantics under green contexts, SDPA / flashinfer / Triton attention
against references, per-op checks of a layer, GEMMs and a decode step under partitions, NVML
clocks. Prints a compact table; writes explore.json under --out.
File length: ~330 lines, a one-shot script whose checks run in order and share one device
setup; it is run once per new machine, not imported by the calibrator.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback

from bulletsim.latency.ops import attention_coefficients, gemm
from bulletsim.models import get_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--layers", type=int, default=32)
    args = ap.parse_args()
    res: dict = {}

    def step(name):
        def deco(fn):
            t0 = time.perf_counter()
            try:
                res[name] = fn()
            except Exception as e:  # noqa: BLE001 - report and keep checking the rest
                res[name] = {
                    "error": f"{type(e).__name__}: {e}",
                    "tb": traceback.format_exc()[-1500:],
                }
            print(
                f"[{time.perf_counter() - t0:7.2f}s] {name}: "
                f"{json.dumps(res[name], default=str)[:600]}",
                flush=True,
            )
            return fn

        return deco

    import torch
    import triton

    from bulletsim.gpu import attention as attn
    from bulletsim.gpu.green import GreenContextPool
    from bulletsim.gpu.probe import SmidProbe
    from bulletsim.gpu.timing import Clocks, bench_ms, time_graph, time_kernels

    clocks = Clocks()

    @step("env")
    def _():
        p = torch.cuda.get_device_properties(0)
        import cuda.bindings

        return dict(
            gpu=p.name,
            sms=p.multi_processor_count,
            torch=torch.__version__,
            cuda=torch.version.cuda,
            triton=triton.__version__,
            cuda_bindings=cuda.bindings.__version__,
            driver=clocks.driver_version(),
            sm_mhz=clocks.sm_mhz(),
            flashinfer=attn.flashinfer_available(),
        )

    state = {}

    @step("green_pool")
    def _():
        t0 = time.perf_counter()
        pool = GreenContextPool()
        state["pool"] = pool
        return dict(
            create_s=round(time.perf_counter() - t0, 3), sizes=pool.sizes(), pairs=pool.pair_sizes()
        )

    @step("probe")
    def _():
        pool = state["pool"]
        nat = SmidProbe()
        tri = SmidProbe(prefer_native=False)
        state["probe"] = nat
        out = {"native_kind": nat.kind}
        for n in (8, 16, 64, 124, 132):
            part = pool.get(n)
            ids = nat.probe(part.stream)
            out[f"{part.name}"] = (len(ids), ids[:3], ids[-2:])
        out["triton_g16"] = len(tri.probe(pool.get(16).stream))
        a, b = pool.pair(64)
        ia, ib = nat.probe_concurrent([a.stream, b.stream])
        out["pair64_disjoint"] = (len(ia), len(ib), len(set(ia) & set(ib)))
        a, b = pool.pair(8)
        ia, ib = nat.probe_concurrent([a.stream, b.stream])
        out["pair8_disjoint"] = (len(ia), len(ib), len(set(ia) & set(ib)))
        return out

    @step("graph_semantics")
    def _():
        pool, nat = state["pool"], state["probe"]
        buf = torch.full((nat.num_blocks,), -1, dtype=torch.int32, device="cuda")
        out = {}
        for cap_name, cap_n, rep_n in (
            ("full->g16", 132, 16),
            ("g16->g16", 16, 16),
            ("g16->full", 16, 132),
        ):
            cap, rep = pool.get(cap_n), pool.get(rep_n)
            g = torch.cuda.CUDAGraph()
            cap.stream.synchronize()
            with torch.cuda.graph(g, stream=cap.stream):
                nat.launch(torch.cuda.current_stream(), buf)
            with torch.cuda.stream(rep.stream):
                g.replay()
            rep.stream.synchronize()
            out[cap_name] = len(set(buf.cpu().tolist()))
        return out

    spec = get_model("llama-3.1-8b")

    @step("model_init")
    def _():
        from bulletsim.gpu.llama import LlamaModel

        t0 = time.perf_counter()
        m = LlamaModel(spec, num_layers=args.layers, kv_pool_bytes=40e9)
        torch.cuda.synchronize()
        state["model"] = m
        return dict(
            s=round(time.perf_counter() - t0, 2),
            pages=m.num_pages,
            mem_gb=round(torch.cuda.memory_allocated() / 1e9, 1),
        )

    @step("sdpa_backends")
    def _():
        n = 4096
        q = torch.randn(n, 32, 128, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(n, 8, 128, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        o = torch.empty_like(q)
        ref = attn.reference_attention(q[-128:], k, v, n - 128)
        # causal attention over n tokens, Llama-3.1-8B heads (32 x 128): latency.ops formulas
        flops = attention_coefficients(get_model("llama-3.1-8b")).flops(n * (n + 1) / 2)
        out = {}
        for be in attn.sdpa_backends():
            c = attn.SdpaPrefill(32, 8, 128, be)
            c.plan([n])
            try:
                c.run(q, k, v, o)
                err = attn.rel_err(o[-128:], ref)
                ms = bench_ms(lambda c=c: c.run(q, k, v, o))
                out[c.name] = (round(ms, 3), round(flops / ms / 1e9), f"{err:.1e}")
            except Exception as e:  # noqa: BLE001
                out[c.name] = str(e)[:120]
        if attn.flashinfer_available():
            t0 = time.perf_counter()
            c = attn.FlashinferPrefill(32, 8, 128, state["model"].workspace)
            c.plan([n])
            c.run(q, k, v, o)
            torch.cuda.synchronize()
            jit = time.perf_counter() - t0
            err = attn.rel_err(o[-128:], ref)
            ms = bench_ms(lambda: c.run(q, k, v, o))
            out["flashinfer"] = (
                round(ms, 3),
                round(flops / ms / 1e9),
                f"{err:.1e}",
                f"first {jit:.1f}s",
            )
            # strided q/k/v straight out of the qkv buffer, as the layer passes them
            qkv = torch.randn(n, 6144, device="cuda", dtype=torch.bfloat16)
            qs, ks, vs = (
                qkv[:, :4096].view(n, 32, 128),
                qkv[:, 4096:5120].view(n, 8, 128),
                qkv[:, 5120:].view(n, 8, 128),
            )
            c.run(qs, ks, vs, o)
            out["flashinfer_strided_err"] = (
                f"{attn.rel_err(o[-128:], attn.reference_attention(qs[-128:], ks, vs, n - 128)):.1e}"  # noqa: E501
            )
        return out

    @step("decode_attention")
    def _():
        m = state["model"]
        out = {}
        for b, ctx in ((64, 2048), (4, 8192)):
            batch_ref = None
            bt = m.decode_batch(b, ctx)
            kc, vc = m.layer_cache(0, bt.pages_per_layer)
            q = bt.qkv[:, :4096].view(b, 32, 128)
            o = bt.attn_out.view(b, 32, 128)
            for name, be in bt.backends.items():
                t0 = time.perf_counter()
                be.run(q, kc, vc, o)
                torch.cuda.synchronize()
                first = time.perf_counter() - t0
                if batch_ref is None:
                    table = bt.extra["block_table"]
                    refs = []
                    for r in range(2):
                        pages = table[r]
                        kk = kc[pages.long()].reshape(-1, 8, 128)[: ctx + 1]
                        vv = vc[pages.long()].reshape(-1, 8, 128)[: ctx + 1]
                        refs.append(attn.reference_attention(q[r : r + 1], kk, vv, None))
                    batch_ref = torch.cat(refs)
                err = attn.rel_err(o[:2], batch_ref)
                ms = bench_ms(lambda be=be, q=q, kc=kc, vc=vc, o=o: be.run(q, kc, vc, o))
                gbs = b * (ctx + 1) * 8 * 128 * 2 * 2 / ms / 1e6
                out[f"{name} b{b} c{ctx}"] = (
                    round(ms, 4),
                    round(gbs),
                    f"{err:.1e}",
                    f"first {first:.1f}s",
                )
        return out

    @step("layer_checks")
    def _():
        from bulletsim.gpu.check import check_layer

        m = state["model"]
        return {
            "prefill": check_layer(m, m.prefill_batch([1024])),
            "prefill_multi": check_layer(m, m.prefill_batch([256] * 4)),
            "decode": check_layer(m, m.decode_batch(16, 1000)),
        }

    @step("gemm_partitions")
    def _():
        m, pool = state["model"], state["pool"]
        bt = m.prefill_batch([4096])
        out = {}
        for n in (8, 16, 32, 64, 96, 120, 128, 132):
            ks = [k for i in range(4) for k in m.layer_kernels(i, bt)]
            part = pool.get(n)
            time_kernels(ks, part.stream, 1)
            kt = time_kernels(ks, part.stream, 2)
            gu = kt.op_ms("gate_up", 1)
            tf = gemm("gate_up", 4096, 28672, 4096, 2).flops / gu / 1e9
            out[n] = dict(
                gate_up_ms=round(gu, 3),
                tflops=round(tf),
                layer_ms=round(sum(kt.spans_ms) / len(kt.spans_ms) / 4, 3),
                attn_ms=round(kt.op_ms("attn_prefill", 1), 3),
                sm_mhz=clocks.sm_mhz(),
            )
        return out

    @step("decode_graph_partitions")
    def _():
        m, pool = state["model"], state["pool"]
        bt = m.decode_batch(64, 2048)
        ks = m.step_kernels(bt)
        out = {}
        full = pool.get(132)
        with torch.cuda.stream(full.stream):
            for _, fn in ks:
                fn()
        full.stream.synchronize()
        t0 = time.perf_counter()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=full.stream):
            for _, fn in ks:
                fn()
        out["capture_s"] = round(time.perf_counter() - t0, 3)
        kv_bytes = 64 * 2049 * spec.kv_bytes_per_token_per_gpu
        for n in (16, 32, 64, 132):
            part = pool.get(n)
            ms = sorted(time_graph(g, part.stream, 6))[3]
            eager = time_kernels(ks, part.stream, 2, spin_us=20000, per_kernel=False)
            out[n] = dict(
                graph_ms=round(ms, 3),
                eager_ms=round(min(eager.spans_ms), 3),
                enqueue_ms=round(eager.enqueue_us / 1e3, 1),
                gbs=round((spec.weight_bytes + kv_bytes) / ms / 1e6),
            )
        # capture under a partition too (in case replay follows the capture stream)
        g2 = torch.cuda.CUDAGraph()
        p16 = pool.get(16)
        with torch.cuda.graph(g2, stream=p16.stream):
            for _, fn in ks:
                fn()
        out["cap16_rep16"] = round(sorted(time_graph(g2, p16.stream, 4))[2], 3)
        out["cap16_repfull"] = round(sorted(time_graph(g2, full.stream, 4))[2], 3)
        return out

    @step("corun")
    def _():
        m, pool = state["model"], state["pool"]
        pre = m.prefill_batch([4096])
        ks = [k for i in range(8) for k in m.layer_kernels(i, pre)]
        dec = m.decode_batch(64, 2048)
        dks = m.step_kernels(dec)
        a, b = pool.pair(96)  # prefill 96, decode 36
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=b.stream):
            for _, fn in dks:
                fn()
        alone_d_ms = sorted(time_graph(g, b.stream, 5))[2]
        alone_p_ms = min(time_kernels(ks, a.stream, 2, per_kernel=False).spans_ms)
        # co-run: prefill layers on a (aggressor, long), decode replays on b (victim)
        from bulletsim.gpu.timing import enqueue_graph, enqueue_kernels, inside

        agg = enqueue_kernels(ks * 3, a.stream, spin_us=3000)
        vic = enqueue_graph(g, b.stream, max(3, int(2 * alone_p_ms / alone_d_ms)), spin_us=3000)
        ds = inside(vic, agg)
        # reverse: decode replays (aggressor) around one prefill pass (victim)
        agg2 = enqueue_graph(g, b.stream, int(3 * alone_p_ms / alone_d_ms) + 3, spin_us=2000)
        vic2 = enqueue_kernels(ks, a.stream, spin_us=2000 + 2 * 1000 * alone_d_ms)
        ps = inside(vic2, agg2)
        return dict(
            alone_decode_ms=round(alone_d_ms, 3),
            alone_prefill8_ms=round(alone_p_ms, 3),
            corun_decode_ms=[round(x, 3) for x in ds],
            corun_prefill8_ms=[round(x, 3) for x in ps],
            sm_mhz=clocks.sm_mhz(),
        )

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "explore.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)


if __name__ == "__main__":
    main()
