"""`decode_variants.py --part step`: the whole decode step per variant (see that file).

The step is the engine's: `LiveModel.embed_into`, `LiveModel.layer` x 32 and `LiveModel.head`
with the attention closure of `DecodeGraphs._body`; a variant swaps the GEMM launcher (a shim
in place of `PartitionGemm` with a path per op) and/or the flashinfer decode wrapper. The
reference is the engine's choice: the committed H200 profile's GEMM paths at (op, 64, 132)
and tensor-core fa2 with flashinfer's default split-KV. Each variant's step is replayed once
from the same input tokens and compared with the reference's: greedy tokens (share equal)
and the final normed hidden state (relative error).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from decode_variants import (
    DATASHEET_TB_S,
    OPS,
    AttnRig,
    Saver,
    gemm_paths,
    make_wrapper,
    model_spec,
    plan_wrapper,
    replay_ms,
)


class GemmShim:
    """Stands in for `PartitionGemm` in `LiveModel.layer` / `head`: op -> launch."""

    def __init__(self, base, paths: dict) -> None:
        self.base, self.paths = base, paths

    def run(self, op, x, w, out):
        fn = self.paths.get(op)
        if fn is None:
            return self.base.run(op, x, w, out)
        return fn(x, w, out)


def part_step(args, out: Path) -> None:  # noqa: PLR0915 - one linear experiment
    import torch

    from bulletsim.gpu.selection import ChoiceTable
    from bulletsim.latency.profile_format import find_profile, read_profile
    from bulletsim.live.gpu.model import LiveModel

    spec = model_spec(args.tiny)
    batch, ctx = (8, 64) if args.tiny else (64, 2048)
    page = 16  # the engine's KV block (config kv.block_size)
    total = torch.cuda.get_device_properties(0).multi_processor_count
    per = -(-(ctx + 1) // page)
    num_pages = batch * 64 // page * -(-(ctx + 1) // 64) + 64 // page + 1
    sv = Saver(out, "step")
    res = sv.res = {"batch": batch, "ctx_tokens": ctx, "variants": {}}
    t0 = time.perf_counter()
    m = LiveModel(spec, num_pages, page, batch + 1, seed=0)
    m.k.normal_()
    m.v.normal_()
    prof = read_profile(find_profile("h200", "llama-3.1-8b"))
    m.use_choices(ChoiceTable.from_kernel_names(prof["meta"]["kernels"]["choices"]))
    m.set_num_sms(total)
    res["profile_paths"] = {op: m.gemm.path_for(op, batch) for op in OPS}
    res["setup_s"] = time.perf_counter() - t0
    rig = AttnRig.__new__(AttnRig)  # only its page layout (same cap rule as the attn part)
    rig.batch, rig.tokens, rig.cap = batch, ctx + 1, num_pages * page
    layout16 = rig.layout(page)
    indices = layout16[1]
    # the step's own token goes at position ctx: its page and offset in the request's table
    kv_slots = torch.tensor(
        [int(indices[j * per + ctx // page]) * page + ctx % page for j in range(batch)],
        device="cuda",
        dtype=torch.int64,
    )
    positions = torch.full((batch,), ctx, device="cuda", dtype=torch.int64)
    slots = torch.arange(batch, device="cuda", dtype=torch.int64)
    acts = m.acts(batch)
    init_tokens = torch.randint(0, spec.vocab_size, (batch + 1,), device="cuda")
    weight_bytes = m.weight_bytes()
    kv_bytes = batch * (ctx + 1) * spec.kv_bytes_per_token_per_gpu
    nbytes = weight_bytes + kv_bytes
    res["bytes"] = {"weights": weight_bytes, "kv": kv_bytes, "total": nbytes}
    stream = torch.cuda.Stream()
    wrappers: dict = {}

    def wrapper(var: dict):
        if var["name"] not in wrappers:
            wr = make_wrapper(var, batch, len(indices) + 16)
            with torch.cuda.stream(stream):
                plan_wrapper(wr, var, rig.layout(var["page"]), m.qh, m.kvh, m.d)
            wrappers[var["name"]] = wr
        return wrappers[var["name"]]

    pdl_state = {"on": False}  # the small kernels with PDL (the engine's graphs: decode_pdl)

    def body(wr, shim):
        def attn(i, q, k_cache, v_cache, o):
            wr.run(q, (k_cache, v_cache), out=o)

        base, pdl = m.gemm, pdl_state["on"]
        m.gemm = shim or base
        try:
            m.embed_into(acts, m.last_token.index_select(0, slots))
            for i in range(m.num_layers):
                m.layer(i, acts, positions, kv_slots, attn, pdl=pdl)
            m.head(acts, None, slots, pdl=pdl)
        finally:
            m.gemm = base

    ref_out: dict = {}

    def run_variant(name: str, attn_var: dict, gemm: dict | None, note: str = "") -> None:
        t1 = time.perf_counter()
        try:
            if attn_var["page"] != page:
                raise ValueError("the step keeps the engine's 16-token pages")
            wr = wrapper(attn_var)
            shim = GemmShim(m.gemm, gemm) if gemm else None
            with torch.cuda.stream(stream):
                m.last_token.copy_(init_tokens)
                body(wr, shim)  # warm-up (Triton compiles, cuBLAS handles) + first output
            stream.synchronize()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g, stream=stream):
                body(wr, shim)
            with torch.cuda.stream(stream):
                m.last_token.copy_(init_tokens)
                g.replay()
            stream.synchronize()
            tokens, h = m.last_token[:batch].clone(), acts.h.float().clone()
            if not ref_out:
                ref_out.update(tokens=tokens, h=h)
            same = float((tokens == ref_out["tokens"]).float().mean())
            err = float((h - ref_out["h"]).norm() / ref_out["h"].norm())
            ms = replay_ms(g, stream)
            bw = nbytes / (ms / 1e3) / 1e12
            row = {
                "step_ms": ms,
                "achieved_tb_s": bw,
                "of_datasheet_4p8": bw / DATASHEET_TB_S,
                "tokens_equal_to_reference": same,
                "hidden_rel_err_vs_reference": err,
                "finite": bool(torch.isfinite(h).all()),
                "attention": attn_var["name"],
                # ops whose launcher the variant replaced (its name says which); "profile": none
                "gemm_replaced": sorted(gemm or {}) or "profile",
                "capture_s": time.perf_counter() - t1,
                "note": note,
            }  # fmt: skip
            if args.profile and not args.tiny and name in ("reference", "combined"):
                from live_h200 import profile_breakdown

                try:
                    row["by_class_ms"] = profile_breakdown(g, stream, reps=3)["by_class_ms"]
                except Exception as e:  # noqa: BLE001
                    row["by_class_ms"] = {"error": repr(e)[:200]}
            del g
        except Exception as e:  # noqa: BLE001
            row = {"error": repr(e)[:400], "attention": attn_var["name"]}
        res["variants"][name] = row
        tok, err = row.get("tokens_equal_to_reference"), row.get("hidden_rel_err_vs_reference")
        print(f"{name}: {row.get('step_ms', -1):.3f} ms {row.get('achieved_tb_s', -1):.2f} TB/s "
              f"tok={tok} err={err} {row.get('error', '')}", flush=True)  # fmt: skip
        sv.save()

    fa2 = dict(name="tc-fa2-p16", tc=True, backend="fa2", page=16)
    run_variant("reference", fa2, None, "the engine: profile GEMM paths, tc fa2 split-KV")
    # GEMM launchers per op (a fresh set per shape so split-K counters are per GEMM)
    shapes_nk = {op: (w.shape[0], w.shape[1]) for op, w in _weights(m).items()}
    launch = {op: gemm_paths(n, k, args.tiny) for op, (n, k) in shapes_nk.items()}
    gemm_res = _read(out / "gemm.json")
    attn_res = _read(out / "attn.json")

    def pick(op: str, key: str):
        name = gemm_res.get("ops", {}).get(op, {}).get(key)
        return name if name in launch[op] else None

    for p in ("cublas", "cublaslt-addmm", "cublaslt-preferred"):
        run_variant(f"all-{p}", fa2, {op: launch[op][p] for op in OPS})
    best = {op: pick(op, "best") for op in OPS}
    if any(best.values()):
        run_variant("gemm-best-alone", fa2, {op: launch[op][b] for op, b in best.items() if b},
                    f"each op's fastest path alone: {best}")  # fmt: skip
    sk = {op: pick(op, "best_skinny") for op in ("qkv", "o", "down", "gate_up")}
    if args.tiny:
        sk = {op: next(p for p in launch[op] if p.startswith("skinny")) for op in sk}
    if any(sk.values()):
        run_variant("skinny-all4", fa2, {op: launch[op][b] for op, b in sk.items() if b}, str(sk))
        small = {op: launch[op][b] for op, b in sk.items() if b and op != "gate_up"}
        run_variant("skinny-qkv-o-down", fa2, small, str(sk))
    # programmatic dependent launch: the small kernels, then also the skinny GEMMs
    res["decode_pdl_available"] = m.decode_pdl
    pdl_ok = False
    try:
        from bulletsim.gpu import pdl_kernels

        pdl_ok = m.decode_pdl
    except Exception as e:  # noqa: BLE001 - no PDL in this Triton: reported, skipped
        res["variants"]["pdl-small-kernels"] = {"error": repr(e)[:300], "attention": "-"}
    if pdl_ok:
        pdl_state["on"] = True
        try:
            run_variant("pdl-small-kernels", fa2, None, "the engine's decode_pdl")
            lt = {op: launch[op]["cublaslt-preferred"] for op in ("qkv", "o", "gate_up", "down")}
            run_variant("pdl-small+lt-preferred", fa2, lt, "PDL small kernels, Lt plain mm")
            pdl_gemm = {op: pdl_kernels.SkinnyGemmPdl(*_tiling(b)) for op, b in sk.items() if b}
            if pdl_gemm:
                run_variant("pdl-small+skinny-pdl", fa2, pdl_gemm, f"PDL skinny {sk}")
                small = {op: g for op, g in pdl_gemm.items() if op != "gate_up"}
                run_variant("pdl-small+skinny-pdl-qkv-o-down", fa2, small, f"PDL skinny {sk}")
                small["gate_up"] = launch["gate_up"]["cublaslt-preferred"]
                run_variant("pdl-small+skinny-pdl+lt-gate_up", fa2, small, f"PDL skinny {sk}")
        finally:
            pdl_state["on"] = False
    variants = {v["name"]: v for v in _attn_variants()}
    if pdl_ok and "xqa-p16-pdl" in variants:  # the engine's kernels with XQA attention
        pdl_state["on"] = True
        try:
            run_variant("pdl-small+xqa-pdl", variants["xqa-p16-pdl"], None, "engine + XQA")
            lt = {op: launch[op]["cublaslt-preferred"] for op in ("qkv", "o", "gate_up", "down")}
            run_variant("pdl-small+lt-preferred+xqa-pdl", variants["xqa-p16-pdl"], lt, "")
        finally:
            pdl_state["on"] = False
    ok = {n: r for n, r in attn_res.get("variants", {}).items() if "ms_per_step" in r}
    tried = ["tc-fa2-p16-nosplit"]
    if ok:
        p16 = [n for n in ok if variants.get(n, {}).get("page") == 16]
        tried += sorted(p16, key=lambda n: ok[n]["ms_per_step"])[:2]
    best_attn = None
    for n in dict.fromkeys(tried):
        if n in variants and n != fa2["name"]:
            run_variant(f"attn-{n}", variants[n], None)
            r = res["variants"][f"attn-{n}"]
            if "step_ms" in r and r["step_ms"] < res["variants"]["reference"].get("step_ms", 1e9):
                if (
                    best_attn is None
                    or r["step_ms"] < res["variants"][f"attn-{best_attn}"]["step_ms"]
                ):
                    best_attn = n
    gem = [
        n for n, r in res["variants"].items() if "step_ms" in r and r["attention"] == fa2["name"]
    ]
    best_g = min(gem, key=lambda n: res["variants"][n]["step_ms"]) if gem else "reference"
    if best_attn and best_g != "reference":
        gm = _gemm_of(best_g, launch, best, sk)
        if best_g.startswith("pdl-small+skinny"):
            gm = {op: pdl_kernels.SkinnyGemmPdl(*_tiling(b)) for op, b in sk.items() if b}
            if not best_g.endswith("pdl"):
                gm.pop("gate_up", None)
            if best_g.endswith("lt-gate_up"):
                gm["gate_up"] = launch["gate_up"]["cublaslt-preferred"]
        elif best_g == "pdl-small+lt-preferred":
            gm = {op: launch[op]["cublaslt-preferred"] for op in ("qkv", "o", "gate_up", "down")}
        pdl_state["on"] = best_g.startswith("pdl")
        try:
            run_variant("combined", variants[best_attn], gm, f"{best_g} + attention {best_attn}")
        finally:
            pdl_state["on"] = False
    ok_rows = {n: r for n, r in res["variants"].items() if "step_ms" in r}
    if ok_rows:
        res["best"] = min(ok_rows, key=lambda n: ok_rows[n]["step_ms"])
    sv.save()


def _gemm_of(name: str, launch: dict, best: dict, sk: dict) -> dict | None:
    if name.startswith("all-"):
        p = name[4:]
        return {op: launch[op][p] for op in OPS}
    if name == "gemm-best-alone":
        return {op: launch[op][b] for op, b in best.items() if b}
    if name == "skinny-all4":
        return {op: launch[op][b] for op, b in sk.items() if b}
    if name == "skinny-qkv-o-down":
        return {op: launch[op][b] for op, b in sk.items() if b and op != "gate_up"}
    return None


def _tiling(name: str) -> tuple[int, int, int, int, int]:
    """(block_n, block_k, split, stages, warps) of a `SkinnyGemm.name`."""
    parts = dict(
        (p.rstrip("0123456789"), int(p[len(p.rstrip("0123456789")) :])) for p in name.split("-")[1:]
    )
    return parts["n"], parts["k"], parts["s"], parts["st"], parts["w"]


def _attn_variants():
    from decode_variants import attn_variants

    return attn_variants(False)


def _weights(m) -> dict:
    w = m.layers[0]
    return {"qkv": w.wqkv, "o": w.wo, "gate_up": w.wgu, "down": w.wd, "lm_head": m.base.lm_head}


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
