"""Eager attention as the live engine runs it, against the kernels the profile timed (GPU).

The live engine runs every eager batch (chunked prefill's mixed batches, Bullet's and
PD-Multiplexing's prefill windows) through flashinfer's paged prefill wrapper with the FA2
kernel, decode rows included (one query each, as SGLang's mixed chunks do), while the
calibrated profile priced prefill attention with the ragged FA3 kernel over new tokens only
(by causal pairs) and decode rows with the tensor-core decode kernel. This script times, on
the whole GPU, per layer (8 layers' K/V rotated so the L2 holds none of it):

  decode   decode rows alone: paged FA2 prefill kernel (engine, eager) vs tensor-core decode
           (engine's graphs; the profile's attn_decode kernel), batch x context per request
  prefill  one prompt chunk of `new` tokens after `prior` cached tokens: paged FA2 (engine)
           vs ragged FA3 over the same query/key lengths vs ragged FA3 causal over T tokens
           with T(T+1)/2 = the chunk's pairs (what the profile's pairs grid stands for)
  mixed    decode rows and a chunk in one paged plan against the two apart (additivity)

Writes JSON (`--out FILE`): every case's milliseconds, its shape, and the ratios. GPU only:
`python3 benchmarks/eager_attention.py --out eager_attention.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

QH, KVH, D, PAGE = 32, 8, 128, 16  # Llama-3.1-8B on one GPU; the live engine's page size
HEADS = (QH, KVH, D, PAGE)  # what flashinfer's paged plans take after the page layout
LAYERS = 8  # K/V sets rotated per timed call: 8 x >= 64 MB, several times the 50 MB L2
REPS = 7
# (decode rows, their context, chunk tokens, chunk's prior context) timed together and apart
MIXED = ((64, 1024, 1024, 2048), (128, 1024, 256, 0), (32, 2048, 2048, 4096))


def time_layers(run, reps: int = REPS) -> float:
    """Median ms of one call, from events around LAYERS back-to-back calls (one per layer)."""
    import torch

    for i in range(LAYERS):  # warm-up (plans, first-use allocations)
        run(i)
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for i in range(LAYERS):
            run(i)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / LAYERS)
    return statistics.median(times)


class Pool:
    """K/V pages for LAYERS layers, NHD as the engine's ([pages, page, kv heads, dim])."""

    def __init__(self, num_pages: int) -> None:
        import torch

        shape = (LAYERS, num_pages, PAGE, KVH, D)
        self.k = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
        self.v = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
        self.num_pages = num_pages


def layout(kv_lens: list[int]):
    """(indptr, indices, last_page_len) int32 for requests of `kv_lens` tokens, pages in
    order (the engine's page table is a free list: any order reads the same bytes)."""
    import torch

    pages = [max(1, -(-n // PAGE)) for n in kv_lens]
    indptr = [0]
    for p in pages:
        indptr.append(indptr[-1] + p)
    last = [n - (p - 1) * PAGE for n, p in zip(kv_lens, pages, strict=True)]
    i32 = dict(dtype=torch.int32)
    return (torch.tensor(indptr, **i32), torch.arange(indptr[-1], **i32), torch.tensor(last, **i32))


def paged_fa2(ws, q_lens: list[int], kv_lens: list[int], pool: Pool):
    """The engine's eager attention: paged prefill wrapper, FA2, causal, one plan."""
    import flashinfer
    import torch

    w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD", backend="fa2")
    qo = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    w.plan(qo, *layout(kv_lens), *HEADS, causal=True, **plan_dtypes())
    return paged_runner(w, sum(q_lens), pool)


def decode_tc(ws, kv_lens: list[int], pool: Pool):
    """The engine's graph decode (and the profile's attn_decode kernel): tensor cores."""
    import flashinfer

    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(ws, "NHD", use_tensor_cores=True)
    w.plan(*layout(kv_lens), *HEADS, **plan_dtypes())
    return paged_runner(w, len(kv_lens), pool)


def plan_dtypes() -> dict:
    """flashinfer's plan() needs the query dtype as well as the KV dtype (DESIGN.md)."""
    import torch

    return {"q_data_type": torch.bfloat16, "kv_data_type": torch.bfloat16}


def paged_runner(w, rows: int, pool: Pool):
    """run(i): wrapper `w` on layer i's pages for `rows` query rows."""
    import torch

    q = torch.randn(rows, QH, D, device="cuda", dtype=torch.bfloat16)
    out = torch.empty_like(q)
    return lambda i: w.run(q, (pool.k[i], pool.v[i]), out=out)


def ragged_fa3(ws, q_len: int, kv_len: int):
    """The profile's prefill kernel: ragged FA3, causal (keys aligned to the query's end)."""
    import flashinfer
    import torch

    w = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(ws, "NHD", backend="fa3")
    qo = torch.tensor([0, q_len], dtype=torch.int32)
    kv = torch.tensor([0, kv_len], dtype=torch.int32)
    w.plan(qo, kv, QH, KVH, D, causal=True, q_data_type=torch.bfloat16, kv_data_type=torch.bfloat16)
    q = torch.randn(q_len, QH, D, device="cuda", dtype=torch.bfloat16)
    ks = [torch.randn(kv_len, KVH, D, device="cuda", dtype=torch.bfloat16) for _ in range(LAYERS)]
    vs = [torch.randn(kv_len, KVH, D, device="cuda", dtype=torch.bfloat16) for _ in range(LAYERS)]
    out = torch.empty_like(q)
    return lambda i: w.run(q, ks[i], vs[i], out=out)


def pairs_tokens(pairs: float) -> int:
    """T with T(T+1)/2 closest to `pairs`: the single causal prompt of the same pairs."""
    return max(1, round((math.sqrt(8 * pairs + 1) - 1) / 2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--quick", action="store_true", help="a few shapes only (a smoke check)")
    a = ap.parse_args(argv)
    import torch

    t_start = time.time()
    ws = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    dec_batches, dec_ctx = (
        ((64,), (1024,)) if a.quick else ((16, 64, 128, 256), (256, 1024, 2048, 4096))
    )
    new_tokens, priors = (
        ((512,), (0, 2048)) if a.quick else ((256, 512, 1024, 2048), (0, 1024, 2048, 4096, 8192))
    )
    dec_pages = max(b * -(-c // PAGE) for b in dec_batches for c in dec_ctx if b * c <= 1 << 20)
    chunk_pages = -(-(max(new_tokens) + max(priors)) // PAGE)
    mixed_pages = max(b * -(-c // PAGE) + -(-(n + p) // PAGE) for b, c, n, p in MIXED)
    max_pages = max(dec_pages, chunk_pages, mixed_pages)
    pool = Pool(max_pages)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    res: dict = {
        "device": torch.cuda.get_device_name(0),
        "sms": sms,
        "heads": [QH, KVH, D],
        "page": PAGE,
        "layers_rotated": LAYERS,
        "reps": REPS,
        "decode": [],
        "prefill": [],
        "mixed": [],
    }
    import flashinfer

    res["flashinfer"] = flashinfer.__version__
    for b in dec_batches:
        for c in dec_ctx:
            if b * c > 1 << 20:  # > 1M cached tokens: beyond what the runs held
                continue
            lens = [c] * b
            eng = time_layers(paged_fa2(ws, [1] * b, lens, pool))
            tc = time_layers(decode_tc(ws, lens, pool))
            gb = b * c * KVH * D * 2 * 2 / 1e9
            res["decode"].append(
                {
                    "batch": b,
                    "ctx": c,
                    "paged_fa2_ms": eng,
                    "decode_tc_ms": tc,
                    "ratio": eng / tc,
                    "kv_gb": gb,
                    "paged_fa2_tb_s": gb / eng,
                    "decode_tc_tb_s": gb / tc,
                }
            )
            print(
                f"decode b={b} ctx={c}: paged fa2 {eng:.3f} ms, tc decode {tc:.3f} ms, "
                f"x{eng / tc:.2f}",
                flush=True,
            )
    for n in new_tokens:
        for p in priors:
            eng = time_layers(paged_fa2(ws, [n], [p + n], pool))
            same = time_layers(ragged_fa3(ws, n, p + n))
            pairs = n * p + n * (n + 1) / 2
            tt = pairs_tokens(pairs)
            eq = time_layers(ragged_fa3(ws, tt, tt))
            res["prefill"].append(
                {
                    "new": n,
                    "prior": p,
                    "pairs": pairs,
                    "pairs_tokens": tt,
                    "paged_fa2_ms": eng,
                    "ragged_fa3_ms": same,
                    "ragged_fa3_pairs_equiv_ms": eq,
                    "ratio_engine_to_profile": eng / eq,
                    "ratio_fa2_paged_to_fa3": eng / same,
                }
            )
            print(
                f"prefill new={n} prior={p}: paged fa2 {eng:.3f}, ragged fa3 {same:.3f}, "
                f"fa3 pairs-equiv ({tt}) {eq:.3f} ms; engine/profile x{eng / eq:.2f}",
                flush=True,
            )
    for b, c, n, p in MIXED:
        both = time_layers(paged_fa2(ws, [1] * b + [n], [c] * b + [p + n], pool))
        rows = time_layers(paged_fa2(ws, [1] * b, [c] * b, pool))
        chunk = time_layers(paged_fa2(ws, [n], [p + n], pool))
        res["mixed"].append(
            {
                "batch": b,
                "ctx": c,
                "new": n,
                "prior": p,
                "together_ms": both,
                "decode_rows_ms": rows,
                "chunk_ms": chunk,
                "together_over_sum": both / (rows + chunk),
            }
        )
        print(
            f"mixed b={b} ctx={c} + chunk {n}@{p}: together {both:.3f} vs apart "
            f"{rows:.3f}+{chunk:.3f} ms",
            flush=True,
        )
    res["wall_s"] = time.time() - t_start
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
