"""Calibrated latency profiles: the file format, its loader, and `ProfileLatency`.

A profile (`bulletsim/data/profiles/<gpu>__<model>.json`, written by `bulletsim calibrate`)
holds, for one GPU and one model:
- `meta`: provenance — measured (GPU, driver, CUDA, torch, mechanism, granularity, timing
  method, date, git sha) or derived (from which measured profile, by which transfer);
- `gpu_spec` and `srm`: the datasheet numbers and the fitted SRM parameters
  (`bulletsim.latency.roofline.SRMParams`), so the profile predicts anywhere;
- `grid`: measured seconds per kernel on a grid (tokens x SMs for the linear kernels, pairs x
  SMs for prefill attention, batch x context x SMs for decode attention, rows x SMs for the
  lm_head). Predictions interpolate the *ratio* measured / SRM between grid points and scale
  the SRM by it, so measured points are reproduced exactly (non-monotonic GEMM steps
  included) and outside the grid the fitted SRM takes over;
- `fit`: held-out errors and the co-run table behind the contention parameters.

`ProfileLatency.predict` is the simulator's hot path: the token-dependent part of a layer is
memoized per (tokens, SMs); attention is an interpolation of a few floats (a few us).
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from dataclasses import asdict, fields
from pathlib import Path

from bulletsim.core import WorkShape
from bulletsim.hardware import GPUSpec, get_gpu
from bulletsim.latency.contention import ContendedPredict, ContentionParams
from bulletsim.latency.ops import OP_CLASSES, OpCost, attention_coefficients, gemm, linear_ops
from bulletsim.latency.roofline import SRMParams, op_time_split
from bulletsim.models import ModelSpec, get_model

FORMAT = "bulletsim-latency-profile"
VERSION = 1
PROFILE_DIR = Path(__file__).resolve().parent.parent / "data" / "profiles"
LINEAR_OPS = ("qkv", "o", "gate_up", "down", "norm_rope_act")
KINDS = ("measured", "derived")
REQUIRED_META = (
    "gpu",
    "model",
    "kind",
    "num_sms",
    "mechanism",
    "granularity_sms",
    "timing_method",
    "date",
)
_MEMO_LIMIT = 500_000
# The per-layer memo pays off on repeats close in time (a prefill batch priced at each window,
# a decode step by the policy then the engine); kept small, it costs one-off shapes little.
_LAYER_MEMO_LIMIT = 4096


def profile_filename(gpu: str, model: str) -> str:
    return f"{gpu}__{model}.json"


def find_profile(gpu: str, model: str, directory: Path | None = None) -> Path | None:
    """Path of the installed profile for (gpu, model), or None. Names are case-insensitive and
    GPU aliases resolve ("H200-SXM" -> h200)."""
    try:
        gpu_name = get_gpu(gpu).name
    except ValueError:
        gpu_name = gpu.strip().lower()
    path = (directory or PROFILE_DIR) / profile_filename(gpu_name, model.strip().lower())
    return path if path.is_file() else None


# -- file format ----------------------------------------------------------------------------


def srm_to_dict(p: SRMParams) -> dict:
    d = asdict(p)
    d["gemm_tile_mn"] = list(p.gemm_tile_mn)
    return d


def srm_from_dict(d: dict) -> SRMParams:
    d = dict(d)
    valid = {f.name for f in fields(SRMParams)}
    unknown = set(d) - valid
    if unknown:
        raise ValueError(f"unknown SRM parameters {sorted(unknown)}; valid: {sorted(valid)}")
    if "contention" in d:
        d["contention"] = ContentionParams(**d["contention"])
    if "gemm_tile_mn" in d:
        d["gemm_tile_mn"] = tuple(d["gemm_tile_mn"])
    return SRMParams(**d)


def gpu_from_dict(d: dict) -> GPUSpec:
    return GPUSpec(**d)


def validate(doc: dict, source: str = "profile") -> None:
    """Raise ValueError (one line, says what is wrong) unless `doc` is a valid profile."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{source}: not a bulletsim latency profile (format != {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ValueError(
            f"{source}: profile version {doc.get('version')!r} unsupported; this bulletsim "
            f"reads version {VERSION}"
        )
    missing = [k for k in ("meta", "gpu_spec", "srm", "grid") if k not in doc]
    if missing:
        raise ValueError(f"{source}: missing sections {missing}")
    meta = doc["meta"]
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"{source}: meta lacks {missing}")
    if meta["kind"] not in KINDS:
        raise ValueError(f"{source}: meta.kind must be one of {KINDS}, got {meta['kind']!r}")
    if meta["kind"] == "derived" and not meta.get("derived_from"):
        raise ValueError(f"{source}: a derived profile must name `derived_from`")
    if meta["num_sms"] != doc["gpu_spec"].get("num_sms"):
        raise ValueError(f"{source}: meta.num_sms != gpu_spec.num_sms")
    grid = doc["grid"]
    sms = grid.get("sms")
    if not sms or sorted(sms) != sms or sms[-1] > meta["num_sms"] or sms[0] < 1:
        raise ValueError(f"{source}: grid.sms must be increasing SM counts within 1..num_sms")
    n = len(sms)

    def check_2d(name: str, axis: list, values: list) -> None:
        if sorted(axis) != axis or len(set(axis)) != len(axis):
            raise ValueError(f"{source}: grid {name} axis must be strictly increasing")
        if len(values) != len(axis) or any(len(row) != n for row in values):
            raise ValueError(f"{source}: grid {name} must be {len(axis)} x {n} (axis x sms)")
        for row in values:
            for v in row:
                if v is not None and not (isinstance(v, (int, float)) and v > 0):
                    raise ValueError(f"{source}: grid {name} holds a non-positive time {v!r}")

    lin = grid["linear"]
    for op in LINEAR_OPS:
        if op not in lin["ops"]:
            raise ValueError(f"{source}: grid.linear lacks op {op!r}")
        check_2d(f"linear.{op}", lin["tokens"], lin["ops"][op])
    check_2d("final_norm", grid["final_norm"]["tokens"], grid["final_norm"]["time_s"])
    check_2d("lm_head", grid["lm_head"]["rows"], grid["lm_head"]["time_s"])
    check_2d("attn_prefill", grid["attn_prefill"]["pairs"], grid["attn_prefill"]["time_s"])
    dec = grid["attn_decode"]
    if len(dec["time_s"]) != len(dec["batch"]):
        raise ValueError(f"{source}: grid attn_decode must be batch x ctx x sms")
    for b_i, plane in enumerate(dec["time_s"]):
        check_2d(f"attn_decode[batch={dec['batch'][b_i]}]", dec["ctx"], plane)
    exec_ = doc.get("exec", {})
    saving = exec_.get("decode_graph_saving_per_layer_s", 0.0)
    if not isinstance(saving, (int, float)) or not 0.0 <= saving < 1e-2:
        raise ValueError(f"{source}: exec.decode_graph_saving_per_layer_s must be in [0, 0.01) s")
    # Only the SRM section's own constructor knows its rules; surface them as ValueError.
    try:
        srm_from_dict(doc["srm"])
        gpu_from_dict(doc["gpu_spec"])
    except TypeError as e:
        raise ValueError(f"{source}: bad srm/gpu_spec section: {e}") from None


def read_profile(path: str | Path) -> dict:
    """Load and validate a profile file; errors are one-line ValueError/FileNotFoundError."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"profile not found: {p}")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(
            f"profile {p} is not valid JSON ({e}); re-run bulletsim calibrate"
        ) from None
    validate(doc, str(p))
    return doc


def write_profile(doc: dict, path: str | Path) -> Path:
    validate(doc, str(path))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    tmp.replace(p)
    return p


# -- interpolation ----------------------------------------------------------------------------


def _bracket(axis: list[float], x: float) -> tuple[int, int, float]:
    """Indices (i, j) around x on an increasing axis and the weight of j (x within range)."""
    if x <= axis[0]:
        return 0, 0, 0.0
    if x >= axis[-1]:
        last = len(axis) - 1
        return last, last, 0.0
    j = bisect_right(axis, x)
    i = j - 1
    return i, j, (x - axis[i]) / (axis[j] - axis[i])


class LogGrid:
    """Multilinear interpolation of log(seconds) over log-scaled axes (the last one is SMs).

    Piecewise power laws: exact for t ~ tokens^a * sms^-b between grid points, and measured
    points (steps, non-monotonic ones included) are reproduced exactly.
    """

    __slots__ = ("axes", "lo", "hi", "v")

    def __init__(self, axes: list[list[float]], seconds):
        self.axes = [[math.log(a) for a in ax] for ax in axes]
        self.lo = [ax[0] for ax in axes]
        self.hi = [ax[-1] for ax in axes]
        self.v = _log_nested(seconds)

    def clamp(self, coords: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(
            min(max(c, lo), hi) for c, lo, hi in zip(coords, self.lo, self.hi, strict=True)
        )

    def __call__(self, *coords: float) -> float:
        """Seconds at `coords`, which must lie within the axes (see `clamp`)."""
        brackets = [_bracket(ax, math.log(c)) for ax, c in zip(self.axes, coords, strict=True)]
        return math.exp(_interp(self.v, brackets))


def _log_nested(x):
    return [_log_nested(e) for e in x] if isinstance(x, list) else math.log(x)


def _interp(v, brackets) -> float:
    i, j, w = brackets[0]
    if len(brackets) == 1:
        return v[i] if w == 0.0 else v[i] + (v[j] - v[i]) * w
    lo = _interp(v[i], brackets[1:])
    return lo if w == 0.0 else lo + (_interp(v[j], brackets[1:]) - lo) * w


def _fill(rows: list[list[float | None]]) -> list[list[float]]:
    """Fill None cells with the nearest filled cell of the same column (then row); 1.0 if none."""
    out = [list(r) for r in rows]
    n_rows, n_cols = len(out), len(out[0]) if out else 0
    for c in range(n_cols):
        known = [i for i in range(n_rows) if out[i][c] is not None]
        for i in range(n_rows):
            if out[i][c] is None and known:
                out[i][c] = out[min(known, key=lambda k: abs(k - i))][c]
    for i in range(n_rows):
        known = [c for c in range(n_cols) if out[i][c] is not None]
        for c in range(n_cols):
            if out[i][c] is None:
                out[i][c] = out[i][min(known, key=lambda k: abs(k - c))] if known else 1.0
    return out


# -- the latency model --------------------------------------------------------------------------


class ProfileLatency(ContendedPredict):
    """`LatencyModel` from a calibrated profile: measured grid inside, fitted SRM outside.

    Inside the grid a kernel's time is interpolated from measured points (log-log); outside
    it the nearest edge point is scaled by the SRM's ratio between the query and that edge.
    The SRM's memory/compute split of each kernel decides which contention factor applies.
    Decode-only work runs as a CUDA graph (as engines do), which saves the measured per-layer
    launch gaps `exec.decode_graph_saving_per_layer_s` against eager kernels.
    """

    def __init__(self, doc: dict, gpu: GPUSpec | None = None, model: ModelSpec | None = None):
        validate(doc)
        meta = doc["meta"]
        self.doc, self.meta = doc, meta
        self.gpu = gpu_from_dict(doc["gpu_spec"])
        if gpu is not None and gpu.name != self.gpu.name:
            raise ValueError(f"profile is for GPU {self.gpu.name!r}, not {gpu.name!r}")
        self.model = model or get_model(meta["model"])
        if self.model.name != meta["model"]:
            raise ValueError(f"profile is for model {meta['model']!r}, not {self.model.name!r}")
        self.params = srm_from_dict(doc["srm"])
        self.name = f"profile:{self.gpu.name}/{self.model.name} ({meta['kind']})"
        self.num_layers = self.model.num_layers
        self.total_sms = self.gpu.num_sms
        self.graph_saving_s = float(doc.get("exec", {}).get("decode_graph_saving_per_layer_s", 0))
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
        self._grids["final_norm"] = self._grid2(
            fn["tokens"], sms, fn["time_s"], self._final_norm_op
        )
        self._grids["lm_head"] = self._grid2(lm["rows"], sms, lm["time_s"], self._lm_head_op)
        self._grids["attn_prefill"] = self._grid2(
            ap["pairs"], sms, ap["time_s"], self._attn_prefill_op
        )
        ad = grid["attn_decode"]
        planes = [
            self._filled(ad["ctx"], sms, plane, lambda c, b=b: self._attn_decode_op(b, b * (c + 1)))
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

    @classmethod
    def load(
        cls, path: str | Path, gpu: GPUSpec | None = None, model: ModelSpec | None = None
    ) -> ProfileLatency:
        """Read, validate and build; `gpu`/`model`, when given, must match the profile."""
        return cls(read_profile(path), gpu, model)

    def _filled(self, axis, sms, rows, make_op) -> list[list[float]]:
        """Measured seconds with holes filled by the SRM times the nearest measured ratio."""
        srm = [[self._srm(make_op(x), n) for n in sms] for x in axis]
        ratio = [
            [None if t is None else t / s for t, s in zip(row, srow, strict=True)]
            for row, srow in zip(rows, srm, strict=True)
        ]
        ratio = _fill(ratio)
        return [
            [r * s for r, s in zip(rr, sr, strict=True)] for rr, sr in zip(ratio, srm, strict=True)
        ]

    def _grid2(self, axis, sms, rows, make_op) -> LogGrid:
        return LogGrid([axis, sms], self._filled(axis, sms, rows, make_op))

    def _srm(self, op: OpCost, n: int) -> float:
        mem_s, cmp_s = op_time_split(op, n, self.gpu, self.params)
        return mem_s + cmp_s

    # -- SRM pieces ----------------------------------------------------------------------------
    def _final_norm_op(self, tokens: float) -> OpCost:
        elems = 2 * tokens * self.model.hidden_size
        return OpCost(
            "final_norm", "elementwise", 2.0 * elems, float(self.model.dtype_bytes * elems)
        )

    def _lm_head_op(self, rows: float) -> OpCost:
        m = self.model
        return gemm(
            "lm_head", int(rows), math.ceil(m.vocab_size / m.tp), m.hidden_size, m.dtype_bytes
        )

    def _attn_prefill_op(
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

    def _attn_decode_op(self, batch: float, kv_tokens: float) -> OpCost:
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
            op, coords = self._final_norm_op(t), (t, n)
        elif name == "lm_head":
            op, coords = self._lm_head_op(shape.logits_tokens), (shape.logits_tokens, n)
        elif name == "attn_prefill":
            pairs = shape.prefill_attn_pairs
            op = self._attn_prefill_op(pairs, shape.prefill_kv_tokens, shape.prefill_tokens)
            coords = (pairs, n)
        elif name == "attn_decode":
            b = shape.decode_tokens
            op = self._attn_decode_op(b, shape.decode_ctx_tokens)
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
            return self._final_norm_op(inside[0])
        if name == "lm_head":
            return self._lm_head_op(inside[0])
        if name == "attn_prefill":
            return self._attn_prefill_op(inside[0])
        b, c = inside[0], inside[1]
        return self._attn_decode_op(b, b * (c + 1))

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
        if shape.num_layers is not None:
            return shape.num_layers * mem_s, shape.num_layers * cmp_s
        tokens = shape.prefill_tokens + shape.decode_tokens
        key = (tokens, shape.logits_tokens, n)
        head = self._memo_head.get(key)
        if head is None:
            if len(self._memo_head) > _MEMO_LIMIT:
                self._memo_head.clear()
            a, b = self._op_parts("final_norm", shape, n) if tokens else (0.0, 0.0)
            if shape.logits_tokens:
                c, d = self._op_parts("lm_head", shape, n)
                a, b = a + c, b + d
            head = self._memo_head[key] = (a, b)
        return self.num_layers * mem_s + head[0], self.num_layers * cmp_s + head[1]

    def _layer_parts(self, shape: WorkShape, n: int) -> tuple[float, float]:
        """(memory-bound, compute-bound) seconds of one layer of `shape` on n SMs."""
        tokens = shape.prefill_tokens + shape.decode_tokens
        lin = self._memo_lin.get((tokens, n))
        if lin is None:
            if len(self._memo_lin) > _MEMO_LIMIT:
                self._memo_lin.clear()
            lin = self._linear_parts(tokens, n) if tokens else (0.0, 0.0)
            self._memo_lin[(tokens, n)] = lin
        mem_s, cmp_s = lin
        if shape.prefill_tokens:
            a, b = self._attn_prefill_parts(shape, n)
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
            brackets[k] = _bracket(g.axes[k], math.log(x))
        vals = []
        for i in range(len(g.axes[axis])):
            brackets[axis] = (i, i, 0.0)
            vals.append(_interp(g.v, brackets))
        return g.lo[axis], g.hi[axis], g.axes[axis], vals

    @staticmethod
    def _along(sl: tuple, x: float) -> float:
        i, j, w = _bracket(sl[2], math.log(x))
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
        i, j, w = _bracket(sls[0][2], math.log(tokens))
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
            self._attn_decode_op(batch, kv_tokens), n, self.gpu, self.params
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
        op = self._attn_prefill_op(pairs, shape.prefill_kv_tokens, shape.prefill_tokens)
        mem_s, cmp_s = op_time_split(op, n, self.gpu, self.params)
        return (t, 0.0) if mem_s >= cmp_s else (0.0, t)

    def _overhead(self, shape: WorkShape) -> float:
        layers = self.num_layers if shape.num_layers is None else shape.num_layers
        per_layer = self.params.layer_overhead_s
        if shape.prefill_tokens == 0:
            per_layer -= self.graph_saving_s
        t = layers * per_layer
        return t if shape.num_layers is not None else t + self.params.step_overhead_s

    def describe(self) -> dict:
        return {
            "kind": "profile",
            "name": self.name,
            "gpu": self.gpu.name,
            "model": self.model.name,
            "profile_kind": self.meta["kind"],
            "meta": self.meta,
            "params": srm_to_dict(self.params),
            "exec": self.doc.get("exec", {}),
            "fit": self.doc.get("fit", {}).get("summary", {}),
        }


__all__ = [
    "FORMAT",
    "VERSION",
    "OP_CLASSES",
    "ProfileLatency",
    "find_profile",
    "read_profile",
    "validate",
    "write_profile",
]
