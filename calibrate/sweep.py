"""Run a calibration grid on the GPU: per-op / whole-layer / whole-step / co-run samples.

Every sample: kernels checked against a reference once per shape, warm-up, CUDA events, the
median over passes x layers (walking through distinct layers rotates weights and KV past L2),
the SM set the partition really used (`%smid` probe run right before it), the SM clock, and
eager vs graph execution. Samples go to a `SampleStore` as they are made (resumable).
GPU-only module.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch

from calibrate.check import check_layer
from calibrate.grids import Grid
from calibrate.probe import SmidProbe, sm_mask_hex
from calibrate.samples import SampleStore, sample_key
from calibrate.sweep_shapes import decode_shape, prefill_shape
from calibrate.timing import (
    Clocks,
    enqueue_graph,
    enqueue_kernels,
    inside,
    time_graph,
    time_kernels,
)
from calibrate.watchdog import Watchdog

LAYER_OPS = ("qkv", "o", "gate_up", "down", "norm_rope_act")


class Sweep:
    def __init__(
        self,
        model,
        pool,
        grid: Grid,
        store: SampleStore,
        *,
        mechanism: str,
        progress: Callable[[str], None] = lambda s: None,
        watchdog_s: float = 0.0,
    ):
        self.m, self.pool, self.grid, self.store = model, pool, grid, store
        self.mechanism = mechanism
        self.probe = SmidProbe()
        self.clocks = Clocks()
        self.progress = progress
        self.watchdog_s = watchdog_s
        self.checked: dict[str, dict] = {}
        self.total_sms = pool.total_sms

    # -- helpers ---------------------------------------------------------------------------
    def _verify(self, part) -> dict:
        ids = self.probe.probe(part.stream)
        part.sm_ids = ids
        return {
            "sm_ids_hex": sm_mask_hex(ids),
            "sm_count_probed": len(ids),
            "sm_verified": len(ids) == part.num_sms,
            "partition": part.name,
        }

    def _verify_pair(self, a, b) -> tuple[dict, dict]:
        ia, ib = self.probe.probe_concurrent([a.stream, b.stream])
        disjoint = not set(ia) & set(ib)
        va = {
            "sm_ids_hex": sm_mask_hex(ia),
            "sm_count_probed": len(ia),
            "partition": a.name,
            "sm_verified": len(ia) == a.num_sms and disjoint,
        }
        vb = {
            "co_sm_ids_hex": sm_mask_hex(ib),
            "co_sm_count_probed": len(ib),
            "co_partition": b.name,
            "co_sm_verified": len(ib) == b.num_sms and disjoint,
        }
        return va, vb

    def _base(self) -> dict:
        return {
            "mechanism": self.mechanism,
            "sm_mhz": self.clocks.sm_mhz(),
            "mem_mhz": self.clocks.mem_mhz(),
            "t_unix": round(time.time(), 3),
        }

    def _check(self, b, tag: str) -> dict:
        if tag not in self.checked:
            with torch.cuda.stream(self.pool.get(self.total_sms).stream):
                self.checked[tag] = check_layer(self.m, b)
        return self.checked[tag]

    def _guard(self, key: str):
        if self.watchdog_s > 0:
            self.store.mark_pending(key)
            return Watchdog(self.watchdog_s, key)
        return _NoGuard()

    # -- per-op and whole-layer samples ------------------------------------------------------
    def layer_point(self, b, num_sms: int, shape: dict, split: str) -> None:
        phase = b.phase
        key = sample_key("layer", phase, "layer", num_sms, **shape)
        if key in self.store.done:
            return
        part = self.pool.get(num_sms)
        with self._guard(key):
            ver = self._verify(part)
            warm = time_kernels(self.m.layer_kernels(0, b), part.stream, 2, spin_us=0)
            t1 = max(min(warm.spans_ms), 1e-3)
            enq_us = warm.enqueue_us
            nl = max(2, min(self.m.num_layers, math.ceil(self.grid.target_ms / t1)))
            ks = [k for i in range(nl) for k in self.m.layer_kernels(i, b)]
            spin_us = min(1.3 * enq_us * nl, 30000.0) if t1 * 1e3 < enq_us * 1.5 else 0.0
            kt = time_kernels(ks, part.stream, self.grid.passes, spin_us=spin_us)
            heads = self.m.head_kernels(b)
            time_kernels(heads, part.stream, 1)
            ht = time_kernels(
                heads * 4, part.stream, self.grid.passes, spin_us=min(1.3 * enq_us, 5000.0)
            )
        common = {
            **self._base(),
            **ver,
            **shape,
            "phase": phase,
            "num_sms": num_sms,
            "split": split,
            "exec": "eager",
            "layers_timed": nl,
            "passes": self.grid.passes,
            "attn_backend": b.attn_backend.name,
            "spin_us": round(spin_us),
        }
        occ = {
            op: sum(1 for n, _ in self.m.layer_kernels(0, b) if n == op)
            for op in (*LAYER_OPS, f"attn_{phase}")
        }
        ops_sum = 0.0
        for op, n_occ in occ.items():
            t = kt.op_ms(op, n_occ) / 1e3
            ops_sum += t
            self.store.add(
                {
                    **common,
                    "key": sample_key("op", phase, op, num_sms, **shape),
                    "kind": "op",
                    "op": op,
                    "time_s": t,
                }
            )
        for op in ("final_norm", "lm_head"):
            t = kt_head(ht, op) / 1e3
            self.store.add(
                {
                    **common,
                    "key": sample_key("op", phase, op, num_sms, **shape),
                    "kind": "op",
                    "op": op,
                    "time_s": t,
                }
            )
        spans = [s / nl / 1e3 for s in kt.spans_ms]
        self.store.add(
            {
                **common,
                "key": key,
                "kind": "layer",
                "op": "layer",
                "time_s": statistics.median(spans),
                "time_min_s": min(spans),
                "time_max_s": max(spans),
                "ops_sum_s": ops_sum,
            }
        )

    def prefill_ops(self) -> None:
        g = self.grid
        points = [((1, t), "train", g.sms) for t in g.prefill_tokens]
        points += [((1, t), "heldout", g.sms_heldout) for t in g.prefill_tokens]
        points += [((1, t), "heldout", g.sms) for t in g.prefill_tokens_heldout]
        points += [(ms, "heldout", g.sms) for ms in g.prefill_multi_heldout]
        for (s, n), split, sms_list in points:
            shape = prefill_shape(s, n)
            todo = [
                k
                for k in sms_list
                if sample_key("layer", "prefill", "layer", k, **shape) not in self.store.done
            ]
            if not todo:
                continue
            b = self.m.prefill_batch([n] * s)
            self._check(b, f"prefill {s}x{n}")
            for k in todo:
                self.progress(f"prefill {s}x{n} on {k} SMs")
                self.layer_point(b, k, shape, split)
            del b

    def decode_ops(self) -> None:
        g = self.grid
        points = [((bb, c), "train", g.sms) for bb, c in g.decode_shapes()]
        points += [((bb, c), "heldout", g.sms_heldout) for bb, c in g.decode_shapes()]
        points += [((bb, c), "heldout", g.sms) for bb, c in g.decode_heldout]
        for (bb, c), split, sms_list in points:
            shape = decode_shape(bb, c)
            todo = [
                k
                for k in sms_list
                if sample_key("layer", "decode", "layer", k, **shape) not in self.store.done
            ]
            if not todo:
                continue
            b = self.m.decode_batch(bb, c)
            self._check(b, f"decode {bb}x{c}")
            for k in todo:
                self.progress(f"decode b{bb} ctx{c} on {k} SMs")
                self.layer_point(b, k, shape, split)
            del b

    # -- whole steps -------------------------------------------------------------------------
    def steps(self) -> None:
        g = self.grid
        for s, n in g.step_prefill:
            shape = prefill_shape(s, n)
            b = None
            for k in g.step_sms:
                key = sample_key("step", "prefill", "step", k, **shape)
                if key in self.store.done:
                    continue
                b = b or self.m.prefill_batch([n] * s)
                self.progress(f"prefill step {s}x{n} on {k} SMs")
                part = self.pool.get(k)
                with self._guard(key):
                    ver = self._verify(part)
                    time_kernels(self.m.layer_kernels(0, b), part.stream, 1)
                    ks = self.m.step_kernels(b)
                    kt = time_kernels(ks, part.stream, 2, per_kernel=False)
                self.store.add(
                    {
                        **self._base(),
                        **ver,
                        **shape,
                        "key": key,
                        "kind": "step",
                        "phase": "prefill",
                        "op": "step",
                        "num_sms": k,
                        "split": "heldout",
                        "exec": "eager",
                        "time_s": statistics.median(kt.spans_ms) / 1e3,
                        "attn_backend": b.attn_backend.name,
                    }
                )
        for bb, c in g.step_decode:
            shape = decode_shape(bb, c)
            b = None
            for k in g.step_sms:
                key = sample_key("step", "decode", "step", k, **shape)
                if key in self.store.done:
                    continue
                b = b or self.m.decode_batch(bb, c)
                self.progress(f"decode step b{bb} ctx{c} on {k} SMs (graph)")
                part = self.pool.get(k)
                with self._guard(key):
                    ver = self._verify(part)
                    graph = self.capture(b, part)
                    times = time_graph(graph, part.stream, 7)
                    del graph
                self.store.add(
                    {
                        **self._base(),
                        **ver,
                        **shape,
                        "key": key,
                        "kind": "step",
                        "phase": "decode",
                        "op": "step",
                        "num_sms": k,
                        "split": "heldout",
                        "exec": "graph",
                        "time_s": statistics.median(times) / 1e3,
                        "time_min_s": min(times) / 1e3,
                        "attn_backend": b.attn_backend.name,
                    }
                )

    def capture(self, b, part) -> torch.cuda.CUDAGraph:
        """Capture a whole decode step on `part`'s stream. Replays keep the capture stream's
        partition (measured: a graph captured on the full GPU used all 132 SMs when replayed
        on a 16-SM green stream), so every partition gets its own capture."""
        ks = self.m.step_kernels(b)
        with torch.cuda.stream(part.stream):
            for _, fn in ks:
                fn()
        part.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=part.stream):
            for _, fn in ks:
                fn()
        return graph

    # -- co-runs -----------------------------------------------------------------------------
    def coruns(self) -> None:
        g = self.grid
        for bb, c in g.corun_decode:
            dec = None
            for t in g.corun_prefill_tokens:
                pre = None
                for dk in g.corun_decode_sms:
                    shape = {**decode_shape(bb, c), "co_tokens": t}
                    k_dec = sample_key("corun", "decode", "step", dk, **shape)
                    pk = self.total_sms - dk
                    shape_p = {**prefill_shape(1, t), "co_batch": bb, "co_ctx": c}
                    k_pre = sample_key("corun", "prefill", "layer", pk, **shape_p)
                    if k_dec in self.store.done and k_pre in self.store.done:
                        continue
                    dec = dec or self.m.decode_batch(bb, c)
                    pre = pre or self.m.prefill_batch([t])
                    self.progress(f"co-run decode b{bb} ctx{c} on {dk} | prefill {t} on {pk}")
                    with self._guard(k_dec):
                        self.corun_point(dec, pre, dk, shape, shape_p, k_dec, k_pre)

    def corun_point(self, dec, pre, dk, shape_d, shape_p, k_dec, k_pre) -> None:
        d_part, p_part = self.pool.pair(dk)
        vd, vp = self._verify_pair(d_part, p_part)
        graph = self.capture(dec, d_part)
        alone_d = statistics.median(time_graph(graph, d_part.stream, 5))
        nl = 4
        pks = [k for i in range(nl) for k in self.m.layer_kernels(i, pre)]
        time_kernels(pks, p_part.stream, 1, per_kernel=False)
        alone_p = statistics.median(time_kernels(pks, p_part.stream, 2, per_kernel=False).spans_ms)
        # decode is the victim, prefill layers the aggressor (started first, outlasting it)
        reps = max(3, min(20, math.ceil(2 * alone_p / alone_d)))
        rounds = max(1, math.ceil(1.5 * (reps * alone_d + 2.0) / alone_p))
        agg = enqueue_kernels(pks * rounds, p_part.stream, spin_us=3000)
        vic = enqueue_graph(graph, d_part.stream, reps, spin_us=3000)
        ds = inside(vic, agg)
        # prefill is the victim, decode replays the aggressor
        agg2 = enqueue_graph(
            graph, d_part.stream, math.ceil(1.5 * alone_p / alone_d) + 4, spin_us=2000
        )
        vic2 = enqueue_kernels(pks, p_part.stream, spin_us=2000 + 1000 * alone_d)
        ps = inside(vic2, agg2)
        del graph
        base = self._base()
        vd_co = {
            k.replace("co_", "", 1) if k.startswith("co_") else "co_" + k: v
            for k, v in {**vd, **vp}.items()
        }
        if ds:
            self.store.add(
                {
                    **base,
                    **vd,
                    **vp,
                    **shape_d,
                    "key": k_dec,
                    "kind": "corun",
                    "phase": "decode",
                    "op": "step",
                    "num_sms": d_part.num_sms,
                    "co_phase": "prefill",
                    "co_sms": p_part.num_sms,
                    "split": "train",
                    "exec": "graph",
                    "time_s": statistics.median(ds) / 1e3,
                    "alone_s": alone_d / 1e3,
                    "n_inside": len(ds),
                }
            )
        if ps:
            self.store.add(
                {
                    **base,
                    **vd_co,
                    **shape_p,
                    "key": k_pre,
                    "kind": "corun",
                    "phase": "prefill",
                    "op": "layer",
                    "num_sms": p_part.num_sms,
                    "co_phase": "decode",
                    "co_sms": d_part.num_sms,
                    "split": "train",
                    "exec": "eager",
                    "time_s": statistics.median(ps) / nl / 1e3,
                    "alone_s": alone_p / nl / 1e3,
                    "n_inside": len(ps),
                }
            )

    def run(self, phases=("prefill", "decode", "step", "corun")) -> None:
        for ph in phases:
            {
                "prefill": self.prefill_ops,
                "decode": self.decode_ops,
                "step": self.steps,
                "corun": self.coruns,
            }[ph]()


def kt_head(ht, op: str) -> float:
    """Head kernels were timed 4x per pass: median of single occurrences."""
    return statistics.median(ht.per_op[op])


class _NoGuard:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None
