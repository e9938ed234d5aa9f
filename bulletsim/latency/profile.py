"""`ProfileLatency`: the latency model of a calibrated profile (the simulator's predictor).

Inside the measured grid a kernel's time is interpolated (`log_grid.LogGrid`); outside it the
nearest edge point is scaled by the fitted SRM. The file format and its validation live in
`profile_format.py` (re-exported here for callers of the old single module).

`ProfileLatency.predict` is the simulator's hot path: the token-dependent part of a layer is
memoized per (tokens, SMs); attention is an interpolation of a few floats (a few us).
File length: ~450 lines, one class whose hot-path caches share state (kept together).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from bulletsim.core import CoRunner, WorkShape
from bulletsim.hardware import GPUSpec
from bulletsim.latency.collectives import AllReduceTable
from bulletsim.latency.contention import ContendedPredict
from bulletsim.latency.eager_attention import EagerPrefillAttention
from bulletsim.latency.graph_buckets import padded_rows
from bulletsim.latency.graph_scale import factor, table_of
from bulletsim.latency.host import gap_kind, host_from_dict
from bulletsim.latency.log_grid import LogGrid, bracket, fill, interp
from bulletsim.latency.moe_profile import reroute
from bulletsim.latency.ops import OP_CLASSES, OpCost, attention_coefficients, gemm, linear_ops
from bulletsim.latency.profile_floor import bad_prediction, check_floor
from bulletsim.latency.profile_format import (
    FORMAT,
    KINDS,
    LINEAR_OPS,
    PROFILE_DIR,
    REQUIRED_META,
    VERSION,
    find_profile,
    gpu_from_dict,
    profile_filename,
    profile_mechanism,
    read_profile,
    srm_from_dict,
    srm_to_dict,
    validate,
    write_profile,
)
from bulletsim.latency.roofline import op_time_split
from bulletsim.models import ModelSpec, get_model

_MEMO_LIMIT = 500_000
# The per-layer memo pays off on repeats close in time (a prefill batch priced at each window,
# a decode step by the policy then the engine); kept small, it costs one-off shapes little.
_LAYER_MEMO_LIMIT = 4096


class ProfileLatency(ContendedPredict):
    """`LatencyModel` from a calibrated profile: measured grid inside, fitted SRM outside.

    Inside the grid a kernel's time is interpolated from measured points (log-log); outside
    it the nearest edge point is scaled by the SRM's ratio between the query and that edge.
    The SRM's memory/compute split of each kernel decides which contention factor applies.
    Decode-only work runs as a CUDA graph (as engines do), which saves the measured per-layer
    launch gaps `exec.decode_graph_saving_per_layer_s` against eager kernels; with
    `exec.decode_graph_buckets` (the engine's capture sizes, `graph_buckets`) its linear
    kernels, norms and lm_head run the padded batch, and with
    `exec.decode_graph_bucket_scale` (fitted on live runs, `graph_scale`) such a step's kernel
    seconds are multiplied by its (SMs, bucket)'s factor. With `exec.eager_prefill_attention` (an
    engine whose eager batches run another prefill kernel than the profile timed,
    `eager_attention`) prefill attention is scaled by that kernel's measured factor.

    Terms fitted on live runs (`bulletsim calibrate --from-live`), each optional (absent =
    as before): `exec.kernel_scale` ({"memory", "compute"} factors on the measured kernel
    times, for kernels the engine runs differently from the calibrator) and the `host`
    section (`host.HostParams`): an eager step lasts at least its host launch time (their
    k-norm with `eager_overlap_exp`), and `launch_gap_s` prices the host's time before a
    launch.
    """

    def __init__(
        self,
        doc: dict,
        gpu: GPUSpec | None = None,
        model: ModelSpec | None = None,
        source: str = "(in memory)",
    ):
        """ValueError (one line, naming `source`: the file it was read from) when `doc` is
        not a valid profile, is for another GPU/model, or prices its cheapest work at a
        negative time (`profile_floor.check_floor`)."""
        validate(doc, f"profile {source}")
        self._given = doc  # as given (with_exec builds a sibling from it)
        self.source = source
        meta = doc["meta"]
        self.doc, self.meta = doc, meta
        self.gpu = gpu_from_dict(doc["gpu_spec"])
        if gpu is not None and gpu.name != self.gpu.name:
            raise ValueError(
                f"profile {source} is for GPU {self.gpu.name!r}, not {gpu.name!r} (the "
                f"run's --gpu; give --gpu {self.gpu.name} to use it)"
            )
        tp = int(meta.get("tp", 1))
        self.model = model or get_model(meta["model"], tp)
        if self.model.name != meta["model"]:
            raise ValueError(
                f"profile {source} is for model {meta['model']!r}, not {self.model.name!r}"
            )
        if self.model.tp != tp:
            raise ValueError(f"profile is for one GPU of tp={tp}, not tp={self.model.tp}")
        self.params = srm_from_dict(doc["srm"])
        # A MoE profile measured under one routing predicts the model's (moe_profile.py).
        doc = reroute(doc, self.model, self.gpu, self.params)
        self.doc, self.meta = doc, doc["meta"]
        self.mechanism = profile_mechanism(doc)  # what its partitions were measured under
        self.name = f"profile:{self.gpu.name}/{self.model.name} ({meta['kind']}, {self.mechanism})"
        if "live_refit" in meta:
            self.name += f" refitted on {len(meta['live_refit'].get('runs', []))} live runs"
        self.num_layers = self.model.num_layers
        self.total_sms = self.gpu.num_sms
        exec_ = doc.get("exec", {})
        self.graph_saving_s = float(exec_.get("decode_graph_saving_per_layer_s", 0))
        self.graph_buckets = tuple(exec_.get("decode_graph_buckets", ()))
        # per (SMs, bucket) factors of graph decode steps fitted on live runs (graph_scale)
        self.graph_scale = table_of(exec_)
        sec = exec_.get("eager_prefill_attention")
        self.eager_attn = None if sec is None else EagerPrefillAttention(sec)
        scale = exec_.get("kernel_scale", {})
        self._kscale = (float(scale.get("memory", 1.0)), float(scale.get("compute", 1.0)))
        self.host = host_from_dict(doc.get("host"))
        # A TP shard profile prices its group's two all-reduces per layer (Megatron: after O
        # and after down) from its `collectives` section; without one they are left out, as
        # in the single-GPU samples the fit compares against.
        sec = doc.get("collectives", {}).get("allreduce")
        self.allreduce = AllReduceTable(sec) if sec and self.model.tp > 1 else None
        if self.allreduce is not None and self.allreduce.tp != self.model.tp:
            raise ValueError(f"profile's all-reduce is for tp={self.allreduce.tp}, not {tp}")
        self._ar_bytes_per_token = self.model.hidden_size * self.model.dtype_bytes
        m = self.model
        attn = attention_coefficients(m)  # kept as floats: the hot path reads them
        self._flops_per_pair = attn.flops_per_pair
        self._kv_bytes = attn.kv_bytes_per_token
        self._q_bytes = attn.q_bytes_per_token
        grid = doc["grid"]
        sms = grid["sms"]
        lin = grid["linear"]
        self._grids: dict[str, LogGrid] = {}
        for k, op in enumerate(LINEAR_OPS):
            self._grids[op] = self._grid2(
                lin["tokens"], sms, lin["ops"][op], lambda t, k=k: linear_ops(m, int(t))[k]
            )
        fn, lm, ap = grid["final_norm"], grid["lm_head"], grid["attn_prefill"]
        self._grids["final_norm"] = self._grid2(fn["tokens"], sms, fn["time_s"], self.final_norm_op)
        self._grids["lm_head"] = self._grid2(lm["rows"], sms, lm["time_s"], self.lm_head_op)
        self._grids["attn_prefill"] = self._grid2(
            ap["pairs"], sms, ap["time_s"], self.attn_prefill_op
        )
        ad = grid["attn_decode"]
        planes = [
            self._filled(ad["ctx"], sms, plane, lambda c, b=b: self.attn_decode_op(b, b * (c + 1)))
            for b, plane in zip(ad["batch"], ad["time_s"], strict=True)
        ]
        self._grids["attn_decode"] = LogGrid([ad["batch"], ad["ctx"], sms], planes)
        self._memo_lin: dict[tuple[int, int], tuple[float, float]] = {}
        self._memo_head: dict[tuple[int, int, int], tuple[float, float]] = {}
        self._memo_layer: dict[tuple, tuple[float, float]] = {}
        self._last_step: WorkShape | None = None  # the last full-step shape and its parts
        self._last_step_parts: dict[int, tuple[float, float]] = {}
        self._linear_ops: dict[int, list[OpCost]] = {}  # tokens -> linear_ops (built once)
        self._factors: dict[tuple[int, str, int], tuple[float, float, int]] = {}
        # 1-D slices of the attention grids (multilinear interpolation is separable, so
        # fixing batch and SMs first gives the same value as the full interpolation)
        self._decode_slices: dict[tuple[int, int], tuple | None] = {}
        self._prefill_slices: dict[int, tuple | None] = {}
        self._linear_slices: dict[int, list[tuple] | None] = {}
        check_floor(self)

    @classmethod
    def load(
        cls, path: str | Path, gpu: GPUSpec | None = None, model: ModelSpec | None = None
    ) -> ProfileLatency:
        """Read, validate and build; `gpu`/`model`, when given, must match the profile."""
        return cls(read_profile(path), gpu, model, source=str(path))

    def _filled(self, axis, sms, rows, make_op) -> list[list[float]]:
        """Measured seconds with holes filled by the SRM times the nearest measured ratio."""
        srm = [[self._srm(make_op(x), n) for n in sms] for x in axis]
        ratio = [
            [None if t is None else t / s for t, s in zip(row, srow, strict=True)]
            for row, srow in zip(rows, srm, strict=True)
        ]
        ratio = fill(ratio)
        return [
            [r * s for r, s in zip(rr, sr, strict=True)] for rr, sr in zip(ratio, srm, strict=True)
        ]

    def _grid2(self, axis, sms, rows, make_op) -> LogGrid:
        return LogGrid([axis, sms], self._filled(axis, sms, rows, make_op))

    def _srm(self, op: OpCost, n: int) -> float:
        mem_s, cmp_s = op_time_split(op, n, self.gpu, self.params)
        return mem_s + cmp_s

    # -- SRM pieces ----------------------------------------------------------------------------
    # -- the op (FLOP, bytes) each grid's axis stands for (also used by derive.py) ----------
    def final_norm_op(self, tokens: float) -> OpCost:
        elems = 2 * tokens * self.model.hidden_size
        return OpCost(
            "final_norm", "elementwise", 2.0 * elems, float(self.model.dtype_bytes * elems)
        )

    def lm_head_op(self, rows: float) -> OpCost:
        m = self.model
        return gemm(
            "lm_head", int(rows), math.ceil(m.vocab_size / m.tp), m.hidden_size, m.dtype_bytes
        )

    def attn_prefill_op(
        self, pairs: float, kv_tokens: float | None = None, tokens: float | None = None
    ) -> OpCost:
        # A single sequence of T tokens has T(T+1)/2 pairs; invert that for the byte terms.
        t = tokens if tokens is not None else (math.sqrt(8 * pairs + 1) - 1) / 2
        kv = kv_tokens if kv_tokens is not None else t
        return OpCost(
            "attn_prefill",
            "attn_prefill",
            pairs * self._flops_per_pair,
            float(kv * self._kv_bytes + t * self._q_bytes),
        )

    def attn_decode_op(self, batch: float, kv_tokens: float) -> OpCost:
        return OpCost(
            "attn_decode",
            "attn_decode",
            kv_tokens * self._flops_per_pair,
            float(kv_tokens * self._kv_bytes + batch * self._q_bytes),
        )

    # -- per-kernel predictions (also used by the fit report) -------------------------------
    def op_time(self, name: str, shape: WorkShape, num_sms: int) -> float:
        """Seconds of one kernel (one layer's instance) for `shape` on `num_sms` SMs, alone."""
        return sum(self._op_parts(name, shape, num_sms))

    def _op_parts(self, name: str, shape: WorkShape, n: int) -> tuple[float, float]:
        t = shape.total_tokens
        if name in LINEAR_OPS:
            op, coords = linear_ops(self.model, t)[LINEAR_OPS.index(name)], (t, n)
        elif name == "final_norm":
            op, coords = self.final_norm_op(t), (t, n)
        elif name == "lm_head":
            op, coords = self.lm_head_op(shape.logits_tokens), (shape.logits_tokens, n)
        elif name == "attn_prefill":
            pairs = shape.prefill_attn_pairs
            op = self.attn_prefill_op(pairs, shape.prefill_kv_tokens, shape.prefill_tokens)
            coords = (pairs, n)
        elif name == "attn_decode":
            b = shape.decode_tokens
            op = self.attn_decode_op(b, shape.decode_ctx_tokens)
            coords = (b, max(shape.decode_ctx_tokens / b - 1, 1.0), n)
        else:
            valid = [*LINEAR_OPS, "final_norm", "lm_head", "attn_prefill", "attn_decode"]
            raise ValueError(f"unknown op {name!r}; valid: {valid}")
        return self._measured_parts(name, op, coords, n)

    def _measured_parts(self, name, op: OpCost, coords, n: int) -> tuple[float, float]:
        grid = self._grids[name]
        inside = grid.clamp(coords)
        t = grid(*inside)
        mem_s, cmp_s = op_time_split(op, n, self.gpu, self.params)
        if inside != coords:
            # Outside the measured range: scale the edge point by the SRM (same op at the edge).
            edge = self._edge_op(name, op, coords, inside)
            t *= (mem_s + cmp_s) / max(self._srm(edge, int(inside[-1])), 1e-30)
        return (t, 0.0) if mem_s >= cmp_s else (0.0, t)

    def _edge_op(self, name, op, coords, inside) -> OpCost:
        if coords[:-1] == inside[:-1]:
            return op
        if name in LINEAR_OPS:
            return linear_ops(self.model, int(inside[0]))[LINEAR_OPS.index(name)]
        if name == "final_norm":
            return self.final_norm_op(inside[0])
        if name == "lm_head":
            return self.lm_head_op(inside[0])
        if name == "attn_prefill":
            return self.attn_prefill_op(inside[0])
        b, c = inside[0], inside[1]
        return self.attn_decode_op(b, b * (c + 1))

    # -- hot path ---------------------------------------------------------------------------------
    def _parts(self, shape: WorkShape, n: int) -> tuple[float, float]:
        # One layer's parts are asked for again and again: a prefill batch is priced at every
        # window and split candidate (layer windows, value-keyed: merged windows are new
        # objects of equal values), a decode step by the policy and then by the engine (the
        # same immutable shape object). One-off full steps (chunked prefill) skip the key.
        if shape.num_layers is not None:
            key = (
                shape.prefill_tokens,
                shape.prefill_attn_pairs,
                shape.prefill_kv_tokens,
                shape.decode_tokens,
                shape.decode_ctx_tokens,
                n,
            )
            layer = self._memo_layer.get(key)
            if layer is None:
                if len(self._memo_layer) > _LAYER_MEMO_LIMIT:
                    self._memo_layer.clear()
                layer = self._memo_layer[key] = self._layer_parts(shape, n)
        elif shape is self._last_step:
            layer = self._last_step_parts.get(n)
            if layer is None:
                layer = self._last_step_parts[n] = self._layer_parts(shape, n)
        else:
            self._last_step = shape  # holding it keeps its identity unique
            layer = self._layer_parts(shape, n)
            self._last_step_parts = {n: layer}
        mem_s, cmp_s = layer
        ks_mem, ks_cmp = self._kscale
        if shape.num_layers is not None:
            return ks_mem * shape.num_layers * mem_s, ks_cmp * shape.num_layers * cmp_s
        tokens = shape.prefill_tokens + shape.decode_tokens
        hs = shape  # the head's rows: a decode graph's padded batch (graph_buckets)
        g = 1.0  # the live-fitted factor of this graph's (SMs, bucket) (graph_scale)
        if self.graph_buckets and not shape.prefill_tokens:
            pad = padded_rows(tokens, self.graph_buckets)
            if self.graph_scale:
                g = factor(self.graph_scale, n, pad)
            if pad != tokens:
                logits = pad if shape.logits_tokens else 0
                hs = replace(shape, decode_tokens=pad, logits_tokens=logits)
                tokens = pad
        key = (tokens, hs.logits_tokens, n)
        head = self._memo_head.get(key)
        if head is None:
            if len(self._memo_head) > _MEMO_LIMIT:
                self._memo_head.clear()
            a, b = self._op_parts("final_norm", hs, n) if tokens else (0.0, 0.0)
            if hs.logits_tokens:
                c, d = self._op_parts("lm_head", hs, n)
                a, b = a + c, b + d
            head = self._memo_head[key] = (a, b)
        return (
            g * ks_mem * (self.num_layers * mem_s + head[0]),
            g * ks_cmp * (self.num_layers * cmp_s + head[1]),
        )

    def _layer_parts(self, shape: WorkShape, n: int) -> tuple[float, float]:
        """(memory-bound, compute-bound) seconds of one layer of `shape` on n SMs. A decode-only
        step's linear kernels run its graph's padded batch when the profile names the engine's
        sizes (`graph_buckets`); its attention, the real requests."""
        tokens = shape.prefill_tokens + shape.decode_tokens
        if self.graph_buckets and not shape.prefill_tokens:
            tokens = padded_rows(tokens, self.graph_buckets)
        lin = self._memo_lin.get((tokens, n))
        if lin is None:
            if len(self._memo_lin) > _MEMO_LIMIT:
                self._memo_lin.clear()
            lin = self._linear_parts(tokens, n) if tokens else (0.0, 0.0)
            if tokens and self.allreduce is not None:
                ar_s = self.allreduce.time_s(tokens * self._ar_bytes_per_token, n)
                lin = (lin[0] + 2.0 * ar_s, lin[1])  # NCCL is bound by its links, not SMs
            self._memo_lin[(tokens, n)] = lin
        mem_s, cmp_s = lin
        if shape.prefill_tokens:
            a, b = self._attn_prefill_parts(shape, n)
            if self.eager_attn is not None:  # the engine's eager kernel, not the profile's
                seqs = max(shape.num_prefill_seqs, 1)
                prior = max(shape.prefill_kv_tokens - shape.prefill_tokens, 0) / seqs
                f = self.eager_attn.factor(shape.prefill_tokens / seqs, prior)
                a, b = a * f, b * f
            mem_s, cmp_s = mem_s + a, cmp_s + b
        if shape.decode_tokens:
            a, b = self._attn_decode_parts(shape, n)
            mem_s, cmp_s = mem_s + a, cmp_s + b
        return mem_s, cmp_s

    def _slice(self, name: str, axis: int, fixed: dict[int, float]) -> tuple | None:
        """Log-values of grid `name` along `axis` with the other coordinates fixed, or None
        when a fixed coordinate lies outside the grid (the slow path then extrapolates)."""
        g = self._grids[name]
        brackets: list = [None] * len(g.axes)
        for k, x in fixed.items():
            if not g.lo[k] <= x <= g.hi[k]:
                return None
            brackets[k] = bracket(g.axes[k], math.log(x))
        vals = []
        for i in range(len(g.axes[axis])):
            brackets[axis] = (i, i, 0.0)
            vals.append(interp(g.v, brackets))
        return g.lo[axis], g.hi[axis], g.axes[axis], vals

    @staticmethod
    def _along(sl: tuple, x: float) -> float:
        i, j, w = bracket(sl[2], math.log(x))
        v = sl[3]
        return math.exp(v[i] if w == 0.0 else v[i] + (v[j] - v[i]) * w)

    def _linear_parts(self, tokens: int, n: int) -> tuple[float, float]:
        """Sum of the linear layers' (memory, compute) seconds for `tokens` rows."""
        sls = self._linear_slices.get(n, False)
        if sls is False:
            sls = [self._slice(name, 0, {1: n}) for name in LINEAR_OPS]
            sls = self._linear_slices[n] = None if None in sls else sls
        mem_t = cmp_t = 0.0
        ops = self._linear_ops.get(tokens)
        if ops is None:  # a run sees a few thousand token counts, each on many SM counts
            if len(self._linear_ops) > _MEMO_LIMIT:
                self._linear_ops.clear()
            ops = self._linear_ops[tokens] = linear_ops(self.model, tokens)
        if sls is None or not sls[0][0] <= tokens <= sls[0][1]:
            for name, op in zip(LINEAR_OPS, ops, strict=False):
                a, b = self._measured_parts(name, op, (tokens, n), n)
                mem_t, cmp_t = mem_t + a, cmp_t + b
            return mem_t, cmp_t
        # Every linear op is measured on the one `linear.tokens` axis: bracket it once.
        i, j, w = bracket(sls[0][2], math.log(tokens))
        for op, sl in zip(ops, sls, strict=False):
            v = sl[3]
            t = math.exp(v[i] if w == 0.0 else v[i] + (v[j] - v[i]) * w)
            mem_s, cmp_s = op_time_split(op, n, self.gpu, self.params)
            if mem_s >= cmp_s:
                mem_t += t
            else:
                cmp_t += t
        return mem_t, cmp_t

    def _attn_decode_parts(self, shape: WorkShape, n: int) -> tuple[float, float]:
        b = shape.decode_tokens
        key = (b, n)
        sl = self._decode_slices.get(key, False)
        if sl is False:
            sl = self._slice("attn_decode", 1, {0: b, 2: n})
            if sl is not None:
                # memory- vs compute-bound at both ends of the slice; None if they differ
                ends = {self._decode_is_mem_bound(b, b * (c + 1), n) for c in (sl[0], sl[1])}
                sl = (*sl, ends.pop() if len(ends) == 1 else None)
            self._decode_slices[key] = sl
        c = max(shape.decode_ctx_tokens / b - 1, 1.0)
        if sl is None or not sl[0] <= c <= sl[1]:
            return self._op_parts("attn_decode", shape, n)
        t = self._along(sl, c)
        mem = sl[4]
        if mem is None:
            mem = self._decode_is_mem_bound(b, shape.decode_ctx_tokens, n)
        return (t, 0.0) if mem else (0.0, t)

    def _decode_is_mem_bound(self, batch: float, kv_tokens: float, n: int) -> bool:
        mem_s, cmp_s = op_time_split(
            self.attn_decode_op(batch, kv_tokens), n, self.gpu, self.params
        )
        return mem_s >= cmp_s

    def _attn_prefill_parts(self, shape: WorkShape, n: int) -> tuple[float, float]:
        sl = self._prefill_slices.get(n, False)
        if sl is False:
            sl = self._prefill_slices[n] = self._slice("attn_prefill", 0, {1: n})
        pairs = shape.prefill_attn_pairs
        if sl is None or not sl[0] <= pairs <= sl[1]:
            return self._op_parts("attn_prefill", shape, n)
        t = self._along(sl, pairs)
        op = self.attn_prefill_op(pairs, shape.prefill_kv_tokens, shape.prefill_tokens)
        mem_s, cmp_s = op_time_split(op, n, self.gpu, self.params)
        return (t, 0.0) if mem_s >= cmp_s else (0.0, t)

    def predict(self, shape: WorkShape, num_sms: int, co_runner: CoRunner | None = None) -> float:
        """`ContendedPredict.predict`; an eager step (any prefill tokens) is combined with the
        host's launch time when the profile has a `host` section (`host.overlap`: at least the
        longer of the two). ValueError (one line naming
        the profile file and the work, `profile_floor.bad_prediction`) for a negative or
        non-finite time: the profile's terms are wrong for this work."""
        t = ContendedPredict.predict(self, shape, num_sms, co_runner)
        if not 0.0 <= t < math.inf:
            raise ValueError(bad_prediction(self, t, shape, num_sms, co_runner))
        host = self.host
        if host is None or not shape.prefill_tokens:
            return t
        layers = self.num_layers if shape.num_layers is None else shape.num_layers
        return host.eager_step_s(t, layers)

    def host_launch_s(self, shape: WorkShape) -> float:
        """Host seconds enqueueing `shape`'s kernels: an eager launch's (`host.HostParams`),
        0 for a graph-replayed decode step or a profile without host terms."""
        if self.host is None or not shape.prefill_tokens:
            return 0.0
        layers = self.num_layers if shape.num_layers is None else shape.num_layers
        return self.host.eager_launch_s(layers)

    def launch_gap_s(self, shape: WorkShape, first_layer: int) -> float:
        """Host seconds a lane waits before launching `shape` (first layer `first_layer`, 0
        for a full step): the profile's `host.gap_s` of that launch kind, 0 without one."""
        if self.host is None:
            return 0.0
        kind = gap_kind(shape.prefill_tokens, first_layer)
        seqs = shape.decode_tokens + shape.num_prefill_seqs
        return self.host.gap(kind, seqs, shape.prefill_tokens)

    def time_split_s(self, shape: WorkShape, num_sms: int) -> tuple[float, float]:
        """(memory-bound, compute-bound) seconds of `shape`'s kernels on `num_sms` SMs alone,
        without overheads (times `exec.kernel_scale`); which kernel is which follows the
        fitted SRM's split."""
        return self._parts(shape, num_sms)

    def gpu_time_s(self, shape: WorkShape, num_sms: int) -> float:
        """Seconds of GPU work the calibrator times: the kernels and per-layer gaps alone,
        without host-side `step_overhead_s` (which a full step adds and the calibrator does not
        measure) or the host launch bound."""
        host_s = self.params.step_overhead_s if shape.num_layers is None else 0.0
        return ContendedPredict.predict(self, shape, num_sms) - host_s

    def overhead_s(self, shape: WorkShape) -> float:
        """Modelled seconds beyond the kernels: per-layer gaps (less the graph saving for
        decode-only work) and, for a full step, `step_overhead_s`."""
        return self._overhead(shape)

    def _overhead(self, shape: WorkShape) -> float:
        layers = self.num_layers if shape.num_layers is None else shape.num_layers
        per_layer = self.params.layer_overhead_s
        if shape.prefill_tokens == 0:
            per_layer -= self.graph_saving_s
        t = layers * per_layer
        return t if shape.num_layers is not None else t + self.params.step_overhead_s

    def with_exec(self, extra: dict) -> ProfileLatency:
        """This profile for an engine that runs as `extra` says (exec-section keys, e.g.
        `decode_graph_buckets`, `eager_prefill_attention`; they replace the profile's): a new
        model, this one unchanged. ValueError (one line) for a malformed value."""
        doc = dict(self._given)
        doc["exec"] = {**doc.get("exec", {}), **extra}
        return ProfileLatency(doc, None, self.model, source=self.source)

    def describe(self) -> dict:
        return {
            "kind": "profile",
            "name": self.name,
            "gpu": self.gpu.name,
            "model": self.model.name,
            "profile_kind": self.meta["kind"],
            "mechanism": self.mechanism,
            "tp": self.model.tp,
            "allreduce": None
            if self.allreduce is None
            else {"kind": self.allreduce.kind, "model": self.allreduce.model.to_dict()},
            "meta": self.meta,
            "params": srm_to_dict(self.params),
            "exec": self.doc.get("exec", {}),
            "host": None if self.host is None else self.host.to_dict(),
            "fit": self.doc.get("fit", {}).get("summary", {}),
        }


__all__ = [
    "FORMAT",
    "KINDS",
    "LINEAR_OPS",
    "OP_CLASSES",
    "PROFILE_DIR",
    "REQUIRED_META",
    "VERSION",
    "ProfileLatency",
    "find_profile",
    "profile_filename",
    "read_profile",
    "srm_to_dict",
    "validate",
    "write_profile",
]
