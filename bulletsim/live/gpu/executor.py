"""`GpuExecutor`: the live engine's kernels on a real GPU, lanes on green-context partitions.

Lanes and partitions: `lanes.py` (green-context groups for decode, remainders for prefill).

Work. Decode-only steps replay a CUDA graph captured for (partition, padded batch); prefill
windows and mixed batches run eagerly over flashinfer's paged prefill (causal over cached
context, decode rows as one-token sequences), as SGLang runs them. GEMMs run the kernel the
calibrated profile measured for (op, rows, partition) (`meta.GEMM_RULE`). Sampling is greedy; the
policy forces output lengths (EOS ignored). Each launch is bracketed by CUDA events on its
stream; device times are mapped to the run clock through a reference event.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from bulletsim.gpu.selection import lt_failures
from bulletsim.live.executor import Launch
from bulletsim.live.gpu.batches import (
    BatchMeta,
    build_batch,
    decode_members,
    graph_step_inputs,
)
from bulletsim.live.gpu.graphs import DecodeGraphs
from bulletsim.live.gpu.lanes import LANES, LanePartitions
from bulletsim.live.gpu.model import LiveModel
from bulletsim.live.green_lanes import GRANULE
from bulletsim.live.pages import PageTable
from bulletsim.models import get_model
from bulletsim.policies.base import PolicyContext

WARM_UP_TOKENS = (256, 255, 64, 7)
# the host-speed probe (`GpuExecutor._host_probe`): an eager prefill step of this many tokens,
# timed this many times (~8 ms each on the lent H200's host)
PROBE_TOKENS, PROBE_REPS = 64, 15


@dataclass(slots=True)
class Inflight:
    start: torch.cuda.Event
    end: torch.cuda.Event


@dataclass(slots=True)
class LaneBatch:
    """A prefill batch whose layer windows are still running (activations kept)."""

    prefill: list
    meta: BatchMeta
    acts: object
    dev: torch.Tensor  # ids, positions, kv slots, logit rows, logit slots, decode slots


class GpuExecutor:
    name = "gpu"

    def __init__(self, cfg, *, decode_graphs: bool = True, weights_dir=None) -> None:
        self.cfg = cfg
        self.weights_dir = weights_dir
        self.spec = get_model(cfg.model, tp=cfg.tp)
        if self.spec.tp != 1 or self.spec.is_moe:
            raise ValueError("the live engine runs dense models on one GPU (tp=1)")
        self.use_graphs = decode_graphs
        self.model: LiveModel | None = None
        self.graphs: DecodeGraphs | None = None
        self.lanes_map: LanePartitions | None = None
        self.setup_s = 0.0
        self.clocks = None  # bulletsim.gpu.timing.Clocks (NVML), made in begin
        self._keys_captured: set[str] = set()
        self._warm: set[tuple[str, str]] = set()
        self._warm_gemm = False
        self.host_probe: dict | None = None  # `_host_probe`, measured in begin

    # -- setup (before the run clock starts) -------------------------------------------------
    def begin(self, ctx: PolicyContext, lanes: tuple[str, ...]) -> None:
        t0 = time.perf_counter()
        if not torch.cuda.is_available():
            raise ValueError(
                f"--executor gpu needs a CUDA GPU, and torch {torch.__version__} sees none "
                "(CPU-only build or no device); use --executor fake to run without one"
            )
        torch.cuda.init()
        props = torch.cuda.get_device_properties(0)
        self.total = props.multi_processor_count
        if self.total != ctx.total_sms:
            raise ValueError(
                f"the config's GPU has {ctx.total_sms} SMs but this {props.name} has "
                f"{self.total}; pass the matching --gpu"
            )
        self.ctx, self.state, self.lanes = ctx, ctx.state, lanes
        kv = ctx.state.kv
        specs = ctx.state.specs
        max_tokens = max(s.prompt_tokens + s.output_tokens for s in specs)
        num_slots = 8193  # rows of the block table (the model keeps one token per row)
        if self.lanes_map is None:
            self.lanes_map = LanePartitions(self.total)
        if len(lanes) > 1:
            from bulletsim.hardware import get_gpu

            self.lanes_map.enable_green(get_gpu(self.cfg.gpu))
        if self.model is None:
            try:
                self.model = LiveModel(
                    self.spec,
                    kv.capacity_blocks + 1,
                    kv.block_size,
                    8193,
                    unit_sms=GRANULE,
                    weights_dir=self.weights_dir,
                )
            except torch.OutOfMemoryError as e:
                raise ValueError(
                    f"a KV pool of {kv.capacity_blocks} blocks does not fit on this GPU; "
                    "pass a smaller --kv-blocks"
                ) from e
            import flashinfer

            self.prefill_ws = {
                lane: torch.empty(128 * 2**20, dtype=torch.uint8, device="cuda")
                for lane in ("main", "prefill")
            }
            self.prefill_wrappers = {
                lane: flashinfer.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD", backend="fa2")
                for lane, ws in self.prefill_ws.items()
            }
            self.kernel_source = self._use_profile_choices(ctx.latency)
            if self.use_graphs:
                self.graphs = DecodeGraphs(self.model, kv.capacity_blocks + 1)
        assert self.model.k.shape[1] == kv.capacity_blocks + 1, "one executor per KV size"
        self.pages = PageTable(
            kv.capacity_blocks + 1, kv.block_size, num_slots, -(-max_tokens // kv.block_size) + 1
        )
        ctx.state.observe(self)  # admits, preemptions and finishes (StateObserver)
        self.lane_batch: dict[str, LaneBatch | None] = dict.fromkeys(lanes)
        if not hasattr(self, "dev_bufs"):
            # pinned, so the per-launch copies are asynchronous; a lane's buffer is reused only
            # after its previous launch finished (one launch in flight per lane)
            self.host_bufs = {
                lane: torch.zeros(1 << 20, dtype=torch.int64).pin_memory().numpy() for lane in LANES
            }
            self.dev_bufs = {
                lane: torch.zeros(1 << 20, dtype=torch.int64, device="cuda") for lane in LANES
            }
        if self.graphs is not None:
            for lane in lanes:
                if lane == "prefill":
                    continue
                for key, stream, phys in self.lanes_map.partitions(lane):
                    if key not in self._keys_captured:
                        self.graphs.capture(key, stream, self.pages.scratch_slot, phys)
                        self._keys_captured.add(key)
        self.num_launches = {"graph": 0, "eager": 0}
        self._warm_up(lanes)
        self.host_probe = self._host_probe(lanes)
        self.num_launches = {"graph": 0, "eager": 0}
        torch.cuda.synchronize()
        if self.clocks is None:
            from bulletsim.gpu.timing import Clocks

            self.clocks = Clocks.of_cuda_device(0)
        self.setup_s += time.perf_counter() - t0

    def start_clock(self) -> None:
        """Run clock 0: a reference event on the main stream, host time taken once it ran."""
        self.ref = torch.cuda.Event(enable_timing=True)
        self.ref.record(self.lanes_map.full_streams["main"])
        self.ref.synchronize()
        self.t0 = time.perf_counter()

    def eager_prefill(self, lane: str, stream, phys: int, n: int, request_id: int = 10**9) -> float:
        """One eager prefill of an `n`-token prompt on `lane`'s `stream` (`phys` SMs), outside
        the run (the GPU idle before and after; its pages given back): host seconds its launch
        took. Warm-up, the host probe and benchmarks/eager_host_ops.py use it."""
        from bulletsim.core import PrefillChunk, Request, RequestSpec, Work, WorkShape

        r = Request(RequestSpec(request_id, 0.0, n, 2), prefill_target_tokens=n)
        work = Work(lane, WorkShape(prefill_tokens=n), self.total, [PrefillChunk(r, 0, n)])
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        self._eager(Launch(lane, work, phys, None, 0.0, 0.0), stream)
        host_s = time.perf_counter() - t0
        torch.cuda.synchronize()
        self.lane_batch[lane] = None
        self.pages.release(request_id)
        return host_s

    def _warm_up(self, lanes) -> None:
        """A small eager prefill on every partition a lane can run eager work on, so that no
        launch of the run pays for JIT compilation, cuBLAS workspaces or first plans."""
        self._warm_persistent_gemm()
        for lane in lanes:
            if lane == "decode":
                continue
            streams = {}
            for sms in range(1, self.total + 1):
                stream, phys, key = self._stream(lane, sms)
                streams.setdefault(key, (stream, phys))
            for key, (stream, phys) in streams.items():
                if (lane, key) in self._warm:
                    continue
                self.model.set_num_sms(phys)
                # row counts on both sides of 128 rows (the GEMM paths' tile configs) and of the
                # Triton kernels' specialisations (odd and even counts: the alignment of the
                # per-token metadata slices; divisible by 16 or not): no compile during the run
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    for n in WARM_UP_TOKENS:
                        self.eager_prefill(lane, stream, phys, n)
                # cuBLASLt with an SM target failed on some split remainders of the H200
                # (o and down at 255-256 rows, 2026-11-30 R1): plain cuBLAS there instead
                for op in lt_failures(caught, self.model.gemm_shapes()):
                    self.model.gemm.avoid_lt(op, phys)
                self._warm.add((lane, key))

    def _host_probe(self, lanes) -> dict:
        """This machine's host speed as the run starts, recorded in live.json: the median host
        time to enqueue one eager prefill step of `PROBE_TOKENS` tokens on the whole GPU (the
        GPU idle before each), after warm-up. Eager steps' host time moved by 45% between lent
        machines for the same config (results/live-h200/NOTES.md, S4); the probe read 5.8-11.4
        ms within one process and did not track a run's own host time (S5), so nothing
        prices with it."""
        import gc

        lane = next(ln for ln in lanes if ln != "decode")
        stream, phys, _ = self._stream(lane, self.total)
        self.model.set_num_sms(phys)
        n = PROBE_TOKENS
        # without collector pauses (the heap before the run's freeze holds the previous run's
        # results: a first probe with the collector on read 6.6-11.8 ms on one machine)
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            times = [self.eager_prefill(lane, stream, phys, n, 10**9 + k)
                     for k in range(PROBE_REPS)]  # fmt: skip
        finally:
            if was_enabled:
                gc.enable()
        ms = np.asarray(times) * 1e3
        return {
            "eager_step_ms": float(np.median(ms)),
            "min_ms": float(ms.min()),
            "p90_ms": float(np.percentile(ms, 90)),
            "tokens": n,
            "reps": PROBE_REPS,
            "method": f"median host ms to enqueue one eager prefill step of {n} tokens on the "
            f"whole GPU ({lane} lane's stream, GPU idle before each, garbage collector off), "
            "after warm-up",
        }

    def _warm_persistent_gemm(self) -> None:
        """Compile the persistent Triton GEMM's two tile configs (below and from 128 rows) for
        every GEMM weight of the model, whichever keys the profile gives it: its row count
        and grid are unspecialised (`triton_matmul`), so these are all the compiles it needs."""
        from bulletsim.gpu.triton_matmul import persistent_matmul

        if self._warm_gemm:
            return
        m = self.model
        w0 = m.layers[0]
        for w in (w0.wqkv, w0.wo, w0.wgu, w0.wd, m.base.lm_head):
            for rows in (1, 128):
                x = torch.zeros(rows, w.shape[1], device="cuda", dtype=w.dtype)
                y = torch.empty(rows, w.shape[0], device="cuda", dtype=w.dtype)
                persistent_matmul(x, w, y, self.total)
        torch.cuda.synchronize()
        self._warm_gemm = True

    def _use_profile_choices(self, latency) -> str:
        """Load the calibrated profile's kernel choices into the model's GEMMs (the rule is
        `meta.GEMM_RULE`); returns where the choices came from."""
        from bulletsim.gpu.selection import ChoiceTable

        meta = getattr(latency, "meta", None) or {}
        names = meta.get("kernels", {}).get("choices")
        if not names:
            return "default rule (the latency model has no measured kernel choices)"
        self.model.use_choices(ChoiceTable.from_kernel_names(names))
        return f"{getattr(latency, 'name', 'profile')}: meta.kernels.choices ({len(names)} keys)"

    # -- partitions ---------------------------------------------------------------------------
    def _stream(self, lane: str, sms: int):
        return self.lanes_map.stream(lane, sms)

    def physical_sms(self, lane: str, num_sms: int) -> int:
        return self._stream(lane, num_sms)[1]

    # -- the run clock ------------------------------------------------------------------------
    def now(self) -> float:
        return time.perf_counter() - self.t0

    def _event_s(self, ev: torch.cuda.Event) -> float:
        return self.ref.elapsed_time(ev) / 1e3

    # -- launches -----------------------------------------------------------------------------
    def launch(self, x: Launch) -> None:
        t = time.perf_counter()
        stream, phys, key = self._stream(x.lane, x.work.num_sms)
        self.model.set_num_sms(phys)
        w = x.work
        if w.decode and not w.prefill and self.graphs is not None:
            members, ctx = decode_members(self.state)
            b = DecodeGraphs.bucket(len(members))
            if b is not None:
                self._graph_step(x, stream, key, b, members, ctx)
                x.host_s = time.perf_counter() - t
                return
        self._eager(x, stream)
        x.host_s = time.perf_counter() - t

    def _graph_step(self, x: Launch, stream, key: str, b: int, members, ctx) -> None:
        h = self.host_bufs[x.lane]
        indptr, indices, last = graph_step_inputs(self.pages, members, ctx, b, h)
        g = self.graphs
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(stream):
            g.inputs[b].view(-1).copy_(torch.from_numpy(h[: 3 * b]), non_blocking=True)
            g.plan(b, indptr, indices, last)
            start.record(stream)
            g.graphs[(key, b)].replay()
            end.record(stream)
        x.handle = Inflight(start, end)
        self.num_launches["graph"] += 1

    def _eager(self, x: Launch, stream) -> None:
        m, w = self.model, x.work
        L = m.num_layers
        first, end_layer = w.layers or (0, L)
        lb = self.lane_batch.get(x.lane)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(stream):
            if first == 0:
                meta = build_batch(w, self.state, self.pages, self.spec.vocab_size)
                lb = self._stage(x.lane, w, meta)
            else:
                assert lb is not None and lb.prefill is w.prefill, "window of an unknown batch"
            meta, a, dev = lb.meta, lb.acts, lb.dev
            t, nd, r = meta.num_tokens, meta.num_decode, len(meta.logit_rows)
            ids, pos, kvs = dev[:t], dev[t : 2 * t], dev[2 * t : 3 * t]
            rows, rslots = dev[3 * t : 3 * t + r], dev[3 * t + r : 3 * t + 2 * r]
            wrapper = self.prefill_wrappers["prefill" if x.lane == "prefill" else "main"]

            def attn(i, q, k_cache, v_cache, out):
                wrapper.run(q, (k_cache, v_cache), out=out)

            start.record(stream)
            if first == 0:
                if nd:
                    dslots = dev[3 * t + 2 * r : 3 * t + 2 * r + nd]
                    ids[:nd].copy_(m.last_token.index_select(0, dslots))
                m.embed_into(a, ids)
            for i in range(first, end_layer):
                m.layer(i, a, pos, kvs, attn)
            if end_layer == L:
                m.head(a, rows, rslots)
            end.record(stream)
        if end_layer == L:
            self.lane_batch[x.lane] = None
        x.handle = Inflight(start, end)
        self.num_launches["eager"] += 1

    def _stage(self, lane: str, w, meta: BatchMeta) -> LaneBatch:
        """Copy the batch's metadata to the device and plan its attention (lane stream)."""
        t, nd, r = meta.num_tokens, meta.num_decode, len(meta.logit_rows)
        h = self.host_bufs[lane]
        n = 3 * t + 2 * r + nd
        if n > len(h):
            raise RuntimeError(f"batch of {t} tokens exceeds the staging buffer")
        h[nd:t] = meta.prompt_ids
        h[t : 2 * t] = meta.positions
        h[2 * t : 3 * t] = meta.kv_slots
        h[3 * t : 3 * t + r] = meta.logit_rows
        h[3 * t + r : 3 * t + 2 * r] = meta.logit_slots
        h[3 * t + 2 * r : n] = meta.slots[:nd]
        dev = self.dev_bufs[lane]
        dev[:n].copy_(torch.from_numpy(h[:n]), non_blocking=True)
        qo = np.zeros(len(meta.q_lens) + 1, np.int32)
        np.cumsum(meta.q_lens, out=qo[1:])
        indptr, indices, last = self.pages.csr(meta.slots, meta.kv_lens)
        m = self.model
        wrapper = self.prefill_wrappers["prefill" if lane == "prefill" else "main"]
        layout = (torch.from_numpy(a) for a in (qo, indptr, indices, last))
        wrapper.plan(*layout, *m.paged_heads(), causal=True, **m.PLAN_DTYPES)
        lb = LaneBatch(w.prefill, meta, m.acts(t), dev)
        self.lane_batch[lane] = lb
        return lb

    # -- completion ---------------------------------------------------------------------------
    def poll(self, x: Launch) -> bool:
        h: Inflight = x.handle
        if not h.end.query():
            return False
        x.start_s = self._event_s(h.start)
        x.end_s = self._event_s(h.end)
        x.measured_s = h.start.elapsed_time(h.end) / 1e3
        return True

    def sm_clock_mhz(self) -> float:
        """NVML's current SM clock (one ctypes call, ~10-30 us of host time); NaN if NVML
        cannot be read."""
        mhz = self.clocks.sm_mhz() if self.clocks is not None else None
        return float("nan") if mhz is None else float(mhz)

    def wait(self, until_s: float | None, in_flight: list[Launch]) -> None:
        while True:
            for x in in_flight:
                if x.handle.end.query():
                    return
            if until_s is not None and self.now() >= until_s:
                return
            time.sleep(0)

    # -- StateObserver: the page table follows KVCache's ownership changes ------------------
    def on_admit(self, request, num_blocks: int, now_s: float) -> None:
        pass  # pages are taken as tokens are written (never more than KVCache charges)

    def on_preempt(self, request, now_s: float) -> None:
        self.pages.release(request.spec.id)

    def on_finish(self, request, now_s: float) -> None:
        self.pages.release(request.spec.id)

    def describe(self) -> dict:
        from bulletsim.live.gpu.meta import describe_executor

        return describe_executor(self)
