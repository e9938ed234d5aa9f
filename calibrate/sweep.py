"""Walk a calibration grid: which (shape, SM count) points to measure, in which order.

Prefill and decode per-op/layer points, whole steps, co-runs; points already in the sample
store are skipped (resume), batches are built once per shape and checked against references
before their first timing, and samples that may hang (libsmctrl) run under a watchdog.
Measuring one point is `calibrate.measure.Measurer`. GPU-only module.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

from bulletsim.gpu.watchdog import Watchdog
from calibrate.grids import Grid
from calibrate.measure import Measurer
from calibrate.samples import SampleStore, sample_key
from calibrate.sweep_shapes import decode_shape, prefill_shape


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
        identity: dict | None = None,
    ):
        self.m, self.pool, self.grid, self.store = model, pool, grid, store
        self.measure = Measurer(
            model,
            pool,
            store,
            mechanism=mechanism,
            passes=grid.passes,
            target_ms=grid.target_ms,
            identity=identity,
        )
        self.progress = progress
        self.watchdog_s = watchdog_s
        self.total_sms = pool.total_sms

    @property
    def probe(self):
        return self.measure.probe

    @property
    def clocks(self):
        return self.measure.clocks

    def _guard(self, key: str):
        if self.watchdog_s > 0:
            self.store.mark_pending(key)
            return Watchdog(self.watchdog_s, key)
        return nullcontext()

    def _layer_points(self, phase: str, points, make_batch, shape_of, label) -> None:
        for args, split, sms_list in points:
            shape = shape_of(*args)
            todo = [
                k
                for k in sms_list
                if sample_key("layer", phase, "layer", k, **shape) not in self.store.done
            ]
            if not todo:
                continue
            b = make_batch(*args)
            self.measure.check(b, f"{phase} {label(*args)}")
            for k in todo:
                self.progress(f"{phase} {label(*args)} on {k} SMs")
                with self._guard(sample_key("layer", phase, "layer", k, **shape)):
                    self.measure.layer_point(b, k, shape, split)
            del b

    def prefill_ops(self) -> None:
        g = self.grid
        points = [((1, t), "train", g.sms) for t in g.prefill_tokens]
        points += [((1, t), "heldout", g.sms_heldout) for t in g.prefill_tokens]
        points += [((1, t), "heldout", g.sms) for t in g.prefill_tokens_heldout]
        points += [(ms, "heldout", g.sms) for ms in g.prefill_multi_heldout]
        self._layer_points(
            "prefill",
            points,
            lambda s, n: self.m.prefill_batch([n] * s),
            prefill_shape,
            lambda s, n: f"{s}x{n}",
        )

    def decode_ops(self) -> None:
        g = self.grid
        points = [((bb, c), "train", g.sms) for bb, c in g.decode_shapes()]
        points += [((bb, c), "heldout", g.sms_heldout) for bb, c in g.decode_shapes()]
        points += [((bb, c), "heldout", g.sms) for bb, c in g.decode_heldout]
        self._layer_points(
            "decode",
            points,
            self.m.decode_batch,
            decode_shape,
            lambda bb, c: f"b{bb} ctx{c}",
        )

    def steps(self) -> None:
        g = self.grid
        for s, n in g.step_prefill:
            shape, b = prefill_shape(s, n), None
            for k in g.step_sms:
                key = sample_key("step", "prefill", "step", k, **shape)
                if key in self.store.done:
                    continue
                b = b or self.m.prefill_batch([n] * s)
                self.progress(f"prefill step {s}x{n} on {k} SMs")
                with self._guard(key):
                    self.measure.prefill_step_point(b, k, shape, key)
        for bb, c in g.step_decode:
            shape, b = decode_shape(bb, c), None
            for k in g.step_sms:
                key = sample_key("step", "decode", "step", k, **shape)
                if key in self.store.done:
                    continue
                b = b or self.m.decode_batch(bb, c)
                self.progress(f"decode step b{bb} ctx{c} on {k} SMs (graph)")
                with self._guard(key):
                    self.measure.decode_step_point(b, k, shape, key)

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
                        self.measure.corun_point(dec, pre, dk, shape, shape_p, k_dec, k_pre)

    def run(self, phases=("prefill", "decode", "step", "corun")) -> None:
        steps = {
            "prefill": self.prefill_ops,
            "decode": self.decode_ops,
            "step": self.steps,
            "corun": self.coruns,
        }
        for ph in phases:
            steps[ph]()
