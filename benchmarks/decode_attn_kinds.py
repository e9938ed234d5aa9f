"""Decode attention kernels beyond flashinfer's decode wrapper, for `decode_variants.py`.

Two adapters with the decode wrapper's `run(q, (k_cache, v_cache), out=...)` shape, so the
attn and step parts of `decode_variants.py` time and check them like the others:
  XqaDecode       `flashinfer.xqa.xqa`: TensorRT-LLM's XQA GQA decode kernel (SM90 build,
                  bf16 K/V through its multi-block `mha.cu` path); page table [B, pages]
                  int32, sequence lengths [B, 1] uint32, no host plan
  Fa3PagedDecode  flashinfer's paged prefill wrapper with the Hopper FA3 kernel and one query
                  token per request (SGLang's "fa3" attention backend runs decode this way)
and `part_roofline`: the measured HBM ceilings of this GPU (`hbm_ceiling.py`).
`python benchmarks/decode_attn_kinds.py --jit xqa16` compiles one module ahead (the JIT cache
then serves the timed parts). GPU only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

WORKSPACE_BYTES = 256 << 20
XQA_SEMAPHORE_BYTES = 8 << 20  # flashinfer.decode.xqa_batch_decode_with_kv_cache reserves 8 MB


class XqaDecode:
    """flashinfer's XQA decode behind the decode wrapper's interface (see module doc)."""

    def __init__(self, batch: int, pdl: bool = False) -> None:
        import torch

        self.batch, self.pdl = batch, pdl
        ws = torch.zeros(WORKSPACE_BYTES, dtype=torch.uint8, device="cuda")  # zero on first use
        self.sem, self.scratch = ws[:XQA_SEMAPHORE_BYTES], ws[XQA_SEMAPHORE_BYTES:]
        self.sm_count = torch.cuda.get_device_properties(0).multi_processor_count

    def plan(self, layout, qh: int, kvh: int, d: int, page: int) -> None:
        import numpy as np
        import torch

        indptr, indices, last = layout
        per = np.diff(indptr)
        if len(set(per.tolist())) != 1:
            raise ValueError("XqaDecode here takes requests with equal page counts")
        self.kvh, self.page, self.qh, self.d = kvh, page, qh, d
        self.table = torch.from_numpy(indices.reshape(self.batch, int(per[0]))).cuda()
        lens = (per - 1) * page + last
        self.lens = torch.from_numpy(lens.astype(np.uint32).reshape(-1, 1)).cuda()

    def run(self, q, kv, out):
        from flashinfer.xqa import xqa

        k, v = kv
        b = self.batch
        xqa(
            q.contiguous().view(b, 1, self.qh, self.d),
            k,
            v,
            self.table,
            self.lens,
            out.view(b, 1, self.qh, self.d),
            self.scratch,
            self.sem,
            self.kvh,
            self.page,
            q_scale=1.0,  # 1/sqrt(head_dim) is applied inside (xqa_batch_decode_with_kv_cache)
            kv_scale=1.0,
            sm_count=self.sm_count,
            enable_pdl=self.pdl,
        )
        return out


class Fa3PagedDecode:
    """flashinfer's paged prefill wrapper, FA3 kernel, one query per request."""

    def __init__(self, batch: int, num_pages: int) -> None:
        import flashinfer
        import torch

        ws = torch.empty(WORKSPACE_BYTES, dtype=torch.uint8, device="cuda")
        i32 = dict(dtype=torch.int32, device="cuda")
        self.qo = torch.arange(batch + 1, **i32)
        self.wrapper = flashinfer.BatchPrefillWithPagedKVCacheWrapper(
            ws,
            "NHD",
            use_cuda_graph=True,
            qo_indptr_buf=self.qo,
            paged_kv_indptr_buf=torch.zeros(batch + 1, **i32),
            paged_kv_indices_buf=torch.zeros(num_pages, **i32),
            paged_kv_last_page_len_buf=torch.ones(batch, **i32),
            backend="fa3",
        )

    def plan(self, layout, qh: int, kvh: int, d: int, page: int) -> None:
        import torch

        self.wrapper.plan(
            self.qo.cpu(),
            *(torch.from_numpy(a) for a in layout),
            qh,
            kvh,
            d,
            page,
            causal=False,
            q_data_type=torch.bfloat16,
            kv_data_type=torch.bfloat16,
        )

    def run(self, q, kv, out):
        return self.wrapper.run(q.contiguous(), kv, out=out)


def make(var: dict, batch: int, num_pages: int):
    """The adapter for a variant with `kind` "xqa" or "fa3-paged"."""
    if var["kind"] == "xqa":
        return XqaDecode(batch, pdl=var.get("pdl", False))
    if var["kind"] == "fa3-paged":
        return Fa3PagedDecode(batch, num_pages)
    raise ValueError(f"unknown attention kind {var['kind']!r}; valid: xqa, fa3-paged")


def variants(tiny: bool) -> list[dict]:
    v = [
        dict(name="xqa-p16", kind="xqa", page=16),
        dict(name="xqa-p16-pdl", kind="xqa", page=16, pdl=True),
        dict(name="fa3paged-p16", kind="fa3-paged", page=16),
        # xqa-p32 / p64 left out (the engine pages by 16; S3R2 device time)
    ]
    return v[:1] if tiny else v


def jit(name: str) -> None:
    """Compile one module into flashinfer's JIT cache (xqa16 / xqa32 / xqa64 / fa3paged)."""
    import torch

    t0 = time.perf_counter()
    if name.startswith("xqa"):
        from flashinfer.xqa import get_xqa_module

        bf = torch.bfloat16
        get_xqa_module(bf, bf, int(name[3:]), 128, 4, False, bf, 1)
    elif name == "fa3paged":
        import numpy as np

        w = Fa3PagedDecode(2, 8)
        layout = (np.array([0, 2, 4], np.int32), np.arange(1, 5, dtype=np.int32),
                  np.array([16, 16], np.int32))  # fmt: skip
        w.plan(layout, 32, 8, 128, 16)
        k = torch.randn(8, 16, 8, 128, device="cuda", dtype=torch.bfloat16)
        q = torch.randn(2, 32, 128, device="cuda", dtype=torch.bfloat16)
        w.run(q, (k, k), torch.empty_like(q))
        torch.cuda.synchronize()
    else:
        raise SystemExit(f"unknown module {name!r}; valid: xqa16 xqa32 xqa64 fa3paged")
    print(f"jit {name}: {time.perf_counter() - t0:.1f} s", flush=True)


def part_roofline(out: Path) -> dict:
    """The measured HBM ceilings (`hbm_ceiling`: streaming read per tiling, device copy),
    written to `OUT/roofline.json`."""
    from hbm_ceiling import copy_tb_s, read_tb_s

    res = read_tb_s()
    res["copy_tb_s_read_plus_write"] = copy_tb_s()
    res["method"] = "hbm_ceiling.read_tb_s / copy_tb_s (4 GiB, median of 10)"
    (out / "roofline.json").write_text(json.dumps(res, indent=1) + "\n")
    print("roofline:", json.dumps(res), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jit", help="compile one module: xqa16 xqa32 xqa64 fa3paged")
    ap.add_argument("--roofline", action="store_true")
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    if args.jit:
        jit(args.jit)
    if args.roofline:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        part_roofline(Path(args.out))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
