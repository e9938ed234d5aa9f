"""Calibrate Qwen3-235B-A22B per-GPU layers (TP 8 or EP 8) under green-context partitions.

    python3 -m calibrate.moe_calibrate --job tp8 --out DIR    (GPU; then fit on any machine:
    bulletsim calibrate-fit DIR/uniform/samples.jsonl)

One job = one layout: the model's 94 layers at one GPU's shapes (attention 8 query heads / 1
KV head of 64 / 4, QK-norm; TP 8: 128 experts x 192 wide; EP 8: 16 experts x 1536 wide of the
busiest GPU) with random bf16 weights, measured by the same `calibrate.sweep.Sweep` as the
dense profile (per-kernel + whole-layer points on training and held-out SM counts and token
counts, whole steps, co-runs), every shape reference-checked first
(`moe_model.check_moe_layer`). Routing: `uniform` on the profile grid (`MOE_GRID`) into
DIR/uniform, then `zipf:0.6` on a small grid (`SKEW_GRID`) into DIR/zipf, which the fit never
sees: it tests how the latency model prices a skewed load. The grouped GEMM path is chosen
by timing each available one on 2048 tokens on the whole GPU (recorded in meta.json).
GPU-only module.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bulletsim.cli_errors import doc_summary
from calibrate.grids import QUICK
from calibrate.tool_cli import ToolParser, require_gpu, require_out_folder, run_tool

JOBS = {
    "tp8": "qwen3-235b-a22b",
    "ep8": "qwen3-235b-a22b-ep8",
    "smoke": "qwen3-235b-a22b",
    "probe": "qwen3-235b-a22b",
}
# --safe: what an R1 failure pointed at (both sweeps of these shapes stalled with no sample;
# the live engine logged cuBLASLt CUBLAS_STATUS_EXECUTION_FAILED with an SM target on green
# contexts on the same machine): plain cuBLAS + the persistent Triton matmul, SDPA's flash
# prefill kernel (no flashinfer JIT, no cuDNN graph build).
SAFE_GEMM_PATHS = ("cublas", "triton-persistent")
ROUTING_DIRS = {"uniform": "uniform", "zipf:0.6": "zipf"}

# The quick grid less two SM counts and one token count (8..132 SMs, held-out 44 and 116;
# prefill 64..8192 tokens, held-out 1664 and 4 x 512; decode batch 1..256 x context
# 512..8192; steps on 32 and 132 SMs; co-runs decode on 32/96 SMs): ~190 points, what the
# round's ~85 s per layout allows.
MOE_GRID = replace(
    QUICK,
    name="moe-quick",
    sms=(8, 16, 32, 64, 96, 132),
    prefill_tokens=(64, 256, 512, 1024, 2048, 4096, 8192),
)
SKEW_GRID = replace(
    QUICK,
    name="moe-skew",
    sms=(16, 64, 132),
    sms_heldout=(),
    prefill_tokens=(256, 1024, 4096),
    prefill_tokens_heldout=(),
    prefill_multi_heldout=(),
    decode_batch=(8, 128),
    decode_ctx=(2048,),
    decode_heldout=(),
    step_sms=(),
    corun_decode_sms=(),
)
SMOKE_GRID = replace(
    QUICK,
    name="moe-smoke",
    sms=(32, 132),
    sms_heldout=(44,),
    prefill_tokens=(256, 1024),
    prefill_tokens_heldout=(),
    prefill_multi_heldout=(),
    decode_batch=(8,),
    decode_ctx=(512,),
    decode_heldout=(),
    step_sms=(132,),
    step_prefill=((1, 512),),
    step_decode=((8, 512),),
    corun_decode_sms=(32,),
    corun_decode=((8, 512),),
    corun_prefill_tokens=(1024,),
)


def choose_path(spec, ep: int, log) -> tuple[str, dict]:
    """The fastest correct grouped GEMM path on 2048 tokens (whole GPU), and every time."""
    import torch

    from bulletsim.latency.moe import UNIFORM
    from calibrate import moe_kernels as mk
    from calibrate.moe_bench import _grouped, _median_ms
    from calibrate.moe_model import MoeBlock, draw_route

    route = draw_route(2048, spec, ep, UNIFORM, seed=5)
    h = torch.randn(2048, spec.hidden_size, device="cuda", dtype=torch.bfloat16)
    times: dict[str, float | None] = {}
    for path in ("torch-grouped-mm", "triton-grouped"):
        if path == "torch-grouped-mm" and not mk.has_torch_grouped_mm():
            times[path] = None
            continue
        blk = MoeBlock(spec, ep, 1, path, seed=1)
        order, counts, ends = mk.align(route.expert, blk.num_local)
        rows = h.index_select(0, route.token.index_select(0, order))
        buf = torch.full((rows.shape[0], blk.wgu[0].shape[1]), float("nan"), device="cuda")
        buf = buf.to(torch.bfloat16)
        try:
            got = _grouped(path, rows, blk.wgu[0], route, counts, ends, buf)
            err = mk.rel_err(got, mk.grouped_reference(rows, blk.wgu[0], route.counts_host))
            if not err < 2e-2:
                raise AssertionError(f"rel err {err:.2e}")
            stream = torch.cuda.current_stream()
            times[path] = _median_ms(
                lambda p=path, b=blk, r=rows, c=counts, e=ends, o=buf: _grouped(
                    p, r, b.wgu[0], route, c, e, o
                ),
                stream,
            )
        except Exception as e:  # noqa: BLE001 - a failing path is not a candidate
            log(f"grouped path {path} unusable: {e!r}"[:200])
            times[path] = None
        del blk
    ok = {p: t for p, t in times.items() if t is not None}
    if not ok:
        raise RuntimeError("no grouped GEMM path ran correctly")
    return min(ok, key=ok.get), times


def build_model(spec, path: str, layers: int, safe: bool, pool):
    """The Qwen3MoeModel a job measures (uniform routing to start; `safe`: see SAFE_*)."""
    from bulletsim.latency.moe import UNIFORM
    from calibrate.moe_model import Qwen3MoeModel

    kw = {"gemm_paths": SAFE_GEMM_PATHS, "prefill_backend": "sdpa"} if safe else {}
    if safe:  # SDPA's flash kernel only (cuDNN builds a graph per shape: a stall suspect too)
        from torch.nn.attention import SDPBackend

        from bulletsim.gpu import attention

        attention.sdpa_backends = lambda: [SDPBackend.FLASH_ATTENTION]
    model = Qwen3MoeModel(spec, spec.ep, UNIFORM, path, num_layers=layers, kv_pool_bytes=8e9, **kw)
    # safe: no partition counts as a whole unit, so the default GEMM rule is plain cuBLAS
    model.gemm.unit_sms = 10**6 if safe else pool.granularity
    return model


def probe(out: Path, safe: bool, log) -> None:
    """Time each stage of one prefill and one decode point on 32 SMs (2 layers): where a
    sweep of these shapes spends its first seconds. Writes probe.json stage by stage."""
    import torch

    from bulletsim.gpu.graphs import capture_step
    from bulletsim.gpu.pools import make_pool
    from bulletsim.gpu.timing import time_graph, time_kernels
    from bulletsim.hardware import get_gpu
    from bulletsim.models import get_model
    from calibrate.moe_model import check_moe_layer

    out.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    t = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal t
        stages[name] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        log(f"probe stage {name}: {stages[name]} s")
        (out / "probe.json").write_text(json.dumps({"safe": safe, "stages_s": stages}) + "\n")

    spec = get_model("qwen3-235b-a22b")
    pool = make_pool("green-ctx", get_gpu("h200"))
    model = build_model(spec, "torch-grouped-mm", 2, safe, pool)
    stage("model")
    part = pool.get(32)
    b = model.prefill_batch([512])
    stage("prefill_batch")
    model.use_partition(b, pool.get(pool.total_sms))
    check_moe_layer(model, b)
    stage("prefill_check")
    model.use_partition(b, part)
    with torch.cuda.stream(part.stream):
        for op, x, w, o in model.gemm_operands(b):
            for gemm_path in model.gemm.paths:
                model.gemm.launch(gemm_path, x, w, o)
                part.stream.synchronize()
                stage(f"gemm_{op}_{gemm_path}_32sms")
        for name, be in b.backends.items():
            b.attn_backend = be
            model.layer_kernels(0, b)[4][1]()
            part.stream.synchronize()
            stage(f"attn_{name}_32sms")
    model.use_partition(b, part, select=True)
    stage("prefill_select_32sms")
    kt = time_kernels(model.layer_kernels(0, b), part.stream, 2)
    stage(f"prefill_layer_{min(kt.spans_ms):.3f}ms")
    d = model.decode_batch(8, 512)
    model.use_partition(d, part, select=True)
    stage("decode_select_32sms")
    g = capture_step(model, d, part)
    ms = time_graph(g, part.stream, 3)
    stage(f"decode_graph_{min(ms):.3f}ms")
    torch.cuda.synchronize()


def run_job(job: str, out: Path, layers: int, safe: bool, log) -> None:
    import torch

    from bulletsim.gpu.pools import make_pool
    from bulletsim.latency.moe import parse_routing
    from bulletsim.models import get_model
    from calibrate.moe_model import check_moe_layer
    from calibrate.run import (
        TIMING_METHOD,
        _version,
        detect_gpu,
        kernel_metadata,
        source_digest,
    )
    from calibrate.samples import SampleStore
    from calibrate.sweep import Sweep

    t0 = time.perf_counter()
    gpu, device_name = detect_gpu("h200")
    spec = get_model(JOBS[job])
    pool = make_pool("green-ctx", gpu)
    path, path_times = choose_path(spec, spec.ep, log)
    log(f"{job}: grouped GEMM path {path} ({path_times})")
    model = build_model(spec, path, layers, safe, pool)
    b = model.decode_batch(16, 1000)
    try:
        decode_check = check_moe_layer(model, b)
        decode_note = None
    except AssertionError as e:
        model.set_decode_backend("triton-splitk")
        decode_note = f"{b.default_backend} failed its check ({str(e)[:160]}); using Triton"
        decode_check = None
    del b
    log(f"{job}: model of {layers} layers built, decode check {decode_check} {decode_note or ''}")
    grids = {"smoke": [("uniform", SMOKE_GRID)]}.get(
        job, [("uniform", MOE_GRID), ("zipf:0.6", SKEW_GRID)]
    )
    for routing, grid in grids:
        sub = out / ROUTING_DIRS[routing]
        sub.mkdir(parents=True, exist_ok=True)
        model.routing = parse_routing(routing)
        store = SampleStore(sub / "samples.jsonl", resume=False)
        checks: dict[str, dict] = {}
        sweep = Sweep(model, pool, grid, store, mechanism="green-ctx", progress=log)

        def check(b, tag, checks=checks, routing=routing):
            if tag not in checks:
                full = pool.get(pool.total_sms)
                model.use_partition(b, full)
                with torch.cuda.stream(full.stream):
                    checks[tag] = check_moe_layer(model, b)
                log(f"{job} {routing} check {tag}: {checks[tag]}")
            return checks[tag]

        sweep.measure.check = check
        ts = time.perf_counter()

        def write_meta(
            done, sweep=sweep, grid=grid, ts=ts, routing=routing, checks=checks, sub=sub
        ):
            meta = {
                "gpu": gpu.name,
                "gpu_device_name": device_name,
                "model": spec.name,
                "kind": "measured",
                "num_sms": gpu.num_sms,
                "mechanism": "green-ctx",
                "granularity_sms": pool.granularity,
                "partition_pool": pool.describe(),
                "timing_method": TIMING_METHOD,
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "calibrate_source_sha256": source_digest(),
                "driver": sweep.clocks.driver_version(),
                "cuda": torch.version.cuda,
                "torch": torch.__version__,
                "triton": _version("triton"),
                "kernels": kernel_metadata(model),
                "sm_probe": sweep.probe.kind,
                "grid": grid.name,
                "command": f"python3 -m calibrate.moe_calibrate --job {job} --layers {layers}"
                + (" --safe" if safe else ""),
                "sweep_wall_s": round(time.perf_counter() - ts, 1) if done else None,
                "measured_vs_derived": "measured (per-GPU shapes of one GPU of 8; the all-reduces "
                "are not in these samples)",
                "moe": {
                    "layout": job,
                    "tp": spec.tp,
                    "ep": spec.ep,
                    "routing": routing,
                    "grouped_gemm_path": path,
                    "grouped_gemm_path_ms_2048": path_times,
                    "experts_per_gpu": spec.num_experts // spec.ep,
                    "expert_width": spec.moe_intermediate_size // spec.moe_shards,
                    "load": "EP: the copies of the most loaded of the 8 GPUs of each draw; TP: "
                    "every copy; draws seeded per token count (moe_model.draw_route)",
                    "layers_built": layers,
                    "checks": checks,
                    "decode_check": decode_check,
                    "decode_backend_note": decode_note,
                    "safe_mode": safe,
                    "gemm_paths": list(model.gemm.paths),
                    "prefill_backend_pref": model.prefill_backend_pref,
                },
            }
            (sub / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
            return meta

        write_meta(False)  # a run cut short by its time limit still leaves a usable meta
        try:
            sweep.run()
        except Exception:  # noqa: BLE001 - keep what was measured; the next routing still runs
            log(f"{job} {routing}: sweep failed:\n{traceback.format_exc()}")
        store.close()
        meta = write_meta(True)
        log(f"{job} {routing}: {len(store.records)} samples in {meta['sweep_wall_s']} s")
    log(f"{job}: done in {time.perf_counter() - t0:.1f} s")


def main() -> None:
    ap = ToolParser(prog="calibrate.moe_calibrate", description=doc_summary(__doc__))
    ap.add_argument("--job", choices=tuple(JOBS), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=None, help="layers built (default 94; smoke 4)")
    ap.add_argument("--safe", action="store_true", help="no cuBLASLt SM target, SDPA prefill")
    ap.add_argument(
        "--stack-after", type=float, default=0, help="dump every thread's stack each S seconds"
    )
    args = ap.parse_args()
    if args.layers is not None and not 1 <= args.layers <= 94:
        raise ValueError(f"--layers {args.layers}: must be 1..94 (Qwen3-235B-A22B has 94)")
    if not args.stack_after >= 0:
        raise ValueError(f"--stack-after {args.stack_after}: must be >= 0 seconds")
    require_out_folder(args.out, "--out")
    require_gpu("calibrate.moe_calibrate")
    if args.stack_after > 0:  # a stall (R1) then names its Python line in the log
        import faulthandler

        faulthandler.dump_traceback_later(args.stack_after, repeat=True)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    if args.job == "probe":
        probe(Path(args.out), args.safe, log)
        return
    layers = args.layers or (4 if args.job == "smoke" else 94)
    run_job(args.job, Path(args.out), layers, args.safe, log)


if __name__ == "__main__":
    run_tool(main)
