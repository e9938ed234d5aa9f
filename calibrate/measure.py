"""One calibration sample at a time: per-op + whole-layer, whole-step and co-run points.

`Measurer` turns (batch, partition) into sample rows: the partition's SM set probed right
before every sample (`%smid`), warm-up, CUDA events, the median over passes x distinct layers
(walking through layers rotates weights and KV past L2), the SM clock, and eager vs graph
execution. Which points to measure is `calibrate.sweep`'s job. GPU-only module.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from bulletsim.gpu.check import check_layer
from bulletsim.gpu.graphs import capture_step
from bulletsim.gpu.probe import SmidProbe, verify, verify_pair
from bulletsim.gpu.timing import (
    Clocks,
    enqueue_graph,
    enqueue_kernels,
    inside,
    time_graph,
    time_kernels,
)
from calibrate.samples import SampleStore, sample_key

LAYER_OPS = ("qkv", "o", "gate_up", "down", "norm_rope_act")


class Measurer:
    """Measures samples of `model` on `pool`'s partitions into `store`."""

    def __init__(
        self,
        model,
        pool,
        store: SampleStore,
        *,
        mechanism: str,
        passes: int,
        target_ms: float,
        identity: dict | None = None,
    ):
        self.m, self.pool, self.store = model, pool, store
        self.mechanism = mechanism
        # the run's gpu/model/tp on every sample: a fit refuses another run's meta.json
        # (calibrate.sample_identity)
        self.identity = dict(identity or {})
        self.passes, self.target_ms = passes, target_ms
        self.probe = SmidProbe()
        self.clocks = Clocks()
        self.checked: dict[str, dict] = {}
        self.total_sms = pool.total_sms

    def base(self) -> dict:
        """Fields every sample carries: the run's identity, mechanism, clocks read now, wall
        time."""
        return {
            **self.identity,
            "mechanism": self.mechanism,
            "sm_mhz": self.clocks.sm_mhz(),
            "mem_mhz": self.clocks.mem_mhz(),
            "t_unix": round(time.time(), 3),
        }

    def check(self, b, tag: str) -> dict:
        """Reference-check every kernel of a layer on batch `b` once per shape tag."""
        if tag not in self.checked:
            full = self.pool.get(self.total_sms)
            self.m.use_partition(b, full)
            with torch.cuda.stream(full.stream):
                self.checked[tag] = check_layer(self.m, b)
        return self.checked[tag]

    # -- per-op and whole-layer samples ------------------------------------------------------
    def layer_point(self, b, num_sms: int, shape: dict, split: str) -> None:
        """Per-op samples and one whole-layer sample of batch `b` on `num_sms` SMs.

        Every GEMM's path and the attention backend are chosen by measurement on this
        partition first (`LlamaModel.use_partition(select=True)`), as an engine does when
        it starts on its partitions; on held-out points too (the choice uses no sample
        time, so the held-out errors still test the profile's interpolation)."""
        phase = b.phase
        key = sample_key("layer", phase, "layer", num_sms, **shape)
        part = self.pool.get(num_sms)
        self.m.use_partition(b, part, select=True)
        ver = verify(self.probe, part)
        warm = time_kernels(self.m.layer_kernels(0, b), part.stream, 2, spin_us=0)
        t1 = max(min(warm.spans_ms), 1e-3)
        enq_us = warm.enqueue_us
        nl = max(2, min(self.m.num_layers, math.ceil(self.target_ms / t1)))
        ks = [k for i in range(nl) for k in self.m.layer_kernels(i, b)]
        spin_us = min(1.3 * enq_us * nl, 30000.0) if t1 * 1e3 < enq_us * 1.5 else 0.0
        kt = time_kernels(ks, part.stream, self.passes, spin_us=spin_us)
        heads = self.m.head_kernels(b)
        time_kernels(heads, part.stream, 1)
        ht = time_kernels(heads * 4, part.stream, self.passes, spin_us=min(1.3 * enq_us, 5000.0))
        common = {
            **self.base(),
            **ver,
            **shape,
            "phase": phase,
            "num_sms": num_sms,
            "split": split,
            "exec": "eager",
            "layers_timed": nl,
            "passes": self.passes,
            "attn_backend": b.attn_backend.name,
            "spin_us": round(spin_us),
        }
        names = self.m.kernel_names(b)
        occ = {
            op: sum(1 for n, _ in self.m.layer_kernels(0, b) if n == op)
            for op in (*LAYER_OPS, f"attn_{phase}")
        }
        ops_sum_s = 0.0
        for op, n_occ in occ.items():
            t = kt.op_ms(op, n_occ) / 1e3
            ops_sum_s += t
            self._add_op(common, phase, op, num_sms, shape, t, names)
        for op in ("final_norm", "lm_head"):
            # head kernels were timed 4x per pass: median of single occurrences
            self._add_op(
                common, phase, op, num_sms, shape, statistics.median(ht.per_op[op]) / 1e3, names
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
                "ops_sum_s": ops_sum_s,
            }
        )

    def _add_op(self, common, phase, op, num_sms, shape, t_s, names) -> None:
        row = {
            **common,
            "key": sample_key("op", phase, op, num_sms, **shape),
            "kind": "op",
            "op": op,
            "time_s": t_s,
        }
        if op in names:
            row["kernel"] = names[op]  # which kernel ran it (GEMM path or attention backend)
        self.store.add(row)

    # -- whole steps -------------------------------------------------------------------------
    def prefill_step_point(self, b, num_sms: int, shape: dict, key: str) -> None:
        """A whole eager prefill step (all layers + head) on `num_sms` SMs."""
        part = self.pool.get(num_sms)
        self.m.use_partition(b, part)
        ver = verify(self.probe, part)
        time_kernels(self.m.layer_kernels(0, b), part.stream, 1)
        kt = time_kernels(self.m.step_kernels(b), part.stream, 2, per_kernel=False)
        self.store.add(
            {
                **self.base(),
                **ver,
                **shape,
                "key": key,
                "kind": "step",
                "phase": "prefill",
                "op": "step",
                "num_sms": num_sms,
                "split": "heldout",
                "exec": "eager",
                "time_s": statistics.median(kt.spans_ms) / 1e3,
                "attn_backend": b.attn_backend.name,
            }
        )

    def decode_step_point(self, b, num_sms: int, shape: dict, key: str) -> None:
        """A whole decode step as a CUDA graph captured on the partition, replayed 7 times."""
        part = self.pool.get(num_sms)
        self.m.use_partition(b, part)
        ver = verify(self.probe, part)
        graph = capture_step(self.m, b, part)
        times_ms = time_graph(graph, part.stream, 7)
        del graph
        self.store.add(
            {
                **self.base(),
                **ver,
                **shape,
                "key": key,
                "kind": "step",
                "phase": "decode",
                "op": "step",
                "num_sms": num_sms,
                "split": "heldout",
                "exec": "graph",
                "time_s": statistics.median(times_ms) / 1e3,
                "time_min_s": min(times_ms) / 1e3,
                "attn_backend": b.attn_backend.name,
            }
        )

    # -- co-runs -----------------------------------------------------------------------------
    def corun_point(self, dec, pre, dk, shape_d, shape_p, k_dec, k_pre) -> None:
        """Decode step (graph) on `dk` SMs beside 4 prefill layers on the complement, both
        ways round: each side once as the victim timed inside the other's run."""
        d_part, p_part = self.pool.pair(dk)
        vd, vp = verify_pair(self.probe, d_part, p_part)
        # The graph keeps the kernels chosen for the decode partition; the eager prefill
        # launches after it use the prefill partition's.
        self.m.use_partition(dec, d_part, select=True)
        graph = capture_step(self.m, dec, d_part)
        self.m.use_partition(pre, p_part, select=True)
        alone_d_ms = statistics.median(time_graph(graph, d_part.stream, 5))
        nl = 4
        pks = [k for i in range(nl) for k in self.m.layer_kernels(i, pre)]
        time_kernels(pks, p_part.stream, 1, per_kernel=False)
        alone_p_ms = statistics.median(
            time_kernels(pks, p_part.stream, 2, per_kernel=False).spans_ms
        )
        # decode is the victim, prefill layers the aggressor (started first, outlasting it)
        reps = max(3, min(20, math.ceil(2 * alone_p_ms / alone_d_ms)))
        rounds = max(1, math.ceil(1.5 * (reps * alone_d_ms + 2.0) / alone_p_ms))
        agg = enqueue_kernels(pks * rounds, p_part.stream, spin_us=3000)
        vic = enqueue_graph(graph, d_part.stream, reps, spin_us=3000)
        ds = inside(vic, agg)
        # prefill is the victim, decode replays the aggressor
        agg2 = enqueue_graph(
            graph, d_part.stream, math.ceil(1.5 * alone_p_ms / alone_d_ms) + 4, spin_us=2000
        )
        vic2 = enqueue_kernels(pks, p_part.stream, spin_us=2000 + 1000 * alone_d_ms)
        ps = inside(vic2, agg2)
        del graph
        base = self.base()
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
                    "alone_s": alone_d_ms / 1e3,
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
                    "alone_s": alone_p_ms / nl / 1e3,
                    "n_inside": len(ps),
                }
            )
