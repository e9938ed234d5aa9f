"""`bulletsim calibrate` on the GPU: check the GPU, build model + partitions, sweep, fit, write.

The sweep writes samples as it goes (`<out>/samples.jsonl`, resumable); the fit, the profile
and the report are CPU work done at the end (and can be redone with `calibrate-fit`).
GPU-only module (imported by the CLI only when a calibration actually runs).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from bulletsim.hardware import GPUSpec, get_gpu
from bulletsim.models import get_model
from calibrate.gemm_faults import MASK_MIN_ROWS
from calibrate.gpu_names import gpu_key_from_device_name
from calibrate.grids import GRIDS
from calibrate.samples import SampleStore

MASK_HANGING_PATHS = ("cublaslt-sm-target",)
GRID_FLAGS = {"standard": "", "quick": " --quick"}
# A masked sample longer than this is a hang (the slowest sample of the mechanisms grid,
# kernel selection and Triton compiles included, took a few seconds in round R3).
LIBSMCTRL_WATCHDOG_S = 20.0
TIMING_METHOD = (
    "CUDA events between kernels (eager, spin kernel ahead so launches queue) or around "
    "CUDA-graph replays (decode steps); warm-up pass first; median over passes x distinct "
    "layers (weights/KV of successive layers rotate inputs past the 60 MB L2); NVML SM clock "
    "and the %smid-probed SM set recorded with every sample"
)


def detect_gpu(requested: str) -> tuple[GPUSpec, str]:
    """The spec of the GPU actually present; ValueError if it is not the one `--gpu` names."""
    spec = get_gpu(requested)
    if not torch.cuda.is_available():
        raise RuntimeError("needs torch with CUDA and a visible GPU; none found")
    name = torch.cuda.get_device_name(0)
    found = gpu_key_from_device_name(name)
    if found != spec.name:
        raise ValueError(
            f"--gpu {requested} does not match the GPU found: {name!r} ({found or 'unknown'})"
        )
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    if sms != spec.num_sms:
        raise ValueError(f"{name} reports {sms} SMs; the {spec.name} spec says {spec.num_sms}")
    return spec, name


def _version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def source_digest() -> str:
    """sha256 of the calibrator's sources (the tree may be uncommitted when it runs)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for p in sorted(
        [*root.glob("calibrate/*.py"), *root.glob("bulletsim/gpu/*.py"), *root.glob("native/*.cu")]
    ):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def check_default_decode(model, log) -> str | None:
    """Reference-check the default decode backend (SGLang's rule) on a whole layer; on
    failure restrict decode to the Triton split-K kernel and say why."""
    from bulletsim.gpu.check import check_layer

    b = model.decode_batch(16, 1000)
    try:
        check_layer(model, b)
        return None
    except (AssertionError, RuntimeError) as e:
        model.set_decode_backend("triton-splitk")
        reason = f"{b.default_backend} failed its reference check ({str(e)[:160]}); using Triton"
        log(reason)
        return reason


def kernel_metadata(model) -> dict:
    """What the profile says about its kernels: every measured choice (key -> kernel) and,
    per op, how many (size, SMs) keys chose each kernel; the defaults that apply elsewhere."""
    from bulletsim.gpu.selection import sglang_decode_backend

    gemm, attn = model.gemm.table, model.attn_table
    return {
        "gemm_paths": list(model.gemm.paths),
        "gemm_default_rule": "cublaslt-sm-target on partitions of whole mechanism units "
        f"({model.gemm.unit_sms} SMs; rows > 1), else cublas (whole GPU, split remainders)",
        "decode_default_rule": "SGLang should_use_tensor_core: "
        + sglang_decode_backend(model.qh, model.kvh, "bfloat16", True),
        "chosen_per_op": {**gemm.summary(), **attn.summary()},
        "choices": {
            **{k: c.kernel for k, c in gemm.choices.items()},
            **{k: c.kernel for k, c in attn.choices.items()},
        },
    }


def run_calibration(
    gpu: str,
    model_name: str,
    mechanism: str,
    grid_name: str,
    out: Path,
    resume: bool,
    libsmctrl: str | None,
    git_sha: str | None,
    log,
    make_progress,
    decode_backend: str = "auto",
    tp: int | None = None,
    gemm_paths: tuple[str, ...] | None = None,
    prefill_backend: str = "auto",
    watchdog_s: float | None = None,
) -> dict:
    from bulletsim.gpu.llama import LlamaModel
    from bulletsim.gpu.pools import make_pool
    from calibrate.sweep import Sweep

    t_start = time.perf_counter()
    spec, device_name = detect_gpu(gpu)
    model_spec = get_model(model_name, tp)
    grid = GRIDS[grid_name]
    out.mkdir(parents=True, exist_ok=True)
    store = SampleStore(out / "samples.jsonl", resume=resume)
    if resume and store.done:
        log(f"resuming: {len(store.done)} samples already in {out / 'samples.jsonl'}")
    pool = make_pool(mechanism, spec, libsmctrl)
    free, _ = torch.cuda.mem_get_info()
    kv_bytes = max(4e9, min(40e9, free - 24e9))
    extra = {"gemm_paths": gemm_paths} if gemm_paths else {}
    model = LlamaModel(
        model_spec,
        kv_pool_bytes=kv_bytes,
        decode_backend=decode_backend,
        prefill_backend=prefill_backend,
        **extra,
    )
    model.gemm.unit_sms = pool.granularity  # default rule tells groups from remainders
    if mechanism == "libsmctrl":
        # cuBLASLt with an SM-count target hung under TPC masks of 4-16 SMs on the H200
        # (calibrate/NOTES.md, issue 16, masked GEMMs); plain cuBLAS and Triton ran.
        model.gemm.paths = tuple(p for p in model.gemm.paths if p not in MASK_HANGING_PATHS)
        # plain cuBLAS hung for 64 rows under <= 8 TPCs and 1 row under 4 TPCs (round R3);
        # it ran for 128-8192 rows under every mask; below that the Triton matmul runs
        model.gemm.min_rows = dict(MASK_MIN_ROWS)
    fallback = check_default_decode(model, log)
    counts = grid.counts()
    with make_progress(sum(counts.values())) as advance:
        sweep = Sweep(
            model,
            pool,
            grid,
            store,
            mechanism=mechanism,
            identity={"gpu": spec.name, "model": model_spec.name, "tp": model_spec.tp},
            progress=advance,
            watchdog_s=watchdog_s
            if watchdog_s is not None
            else (LIBSMCTRL_WATCHDOG_S if mechanism == "libsmctrl" else 0.0),
        )
        sweep.run()
    store.close()
    sweep_s = time.perf_counter() - t_start
    _write_choices(out / "kernel_choices.json", model)
    from bulletsim.gpu.attention import flashinfer_available

    probe_kind = sweep.probe.kind
    meta = {
        "gpu": spec.name,
        "gpu_device_name": device_name,
        "model": model_spec.name,
        "tp": model_spec.tp,
        "shard_shapes": shard_shapes(model_spec),
        "kind": "measured",
        "num_sms": spec.num_sms,
        "mechanism": mechanism,
        "granularity_sms": pool.granularity,
        "partition_pool": pool.describe(),
        "timing_method": TIMING_METHOD,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": git_sha or "unknown",
        "calibrate_source_sha256": source_digest(),
        "driver": sweep.clocks.driver_version(),
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "triton": _version("triton"),
        "cuda_bindings": _version("cuda-bindings") or _version("cuda-python"),
        "flashinfer": _version("flashinfer-python") if flashinfer_available() else None,
        "prefill_attention": model.prefill_batch([128]).default_backend,
        "decode_attention": model.decode_batch(64, 2048).default_backend,
        "decode_backend_note": fallback,
        "kernel_restrictions": {
            "gemm_paths": list(gemm_paths) if gemm_paths else "all",
            "prefill_backend": prefill_backend,
            "decode_backend": decode_backend,
        },
        "kernels": kernel_metadata(model),
        "sm_probe": probe_kind,
        "grid": grid.name,
        "command": f"bulletsim calibrate --gpu {gpu} --model {model_name} "
        + (f"--tp {model_spec.tp} " if model_spec.tp > 1 else "")
        + "--mechanism "
        f"{mechanism}{GRID_FLAGS.get(grid_name, ' --grid ' + grid_name)}",
        "sweep_wall_s": round(sweep_s, 1),
        "measured_vs_derived": "measured",
    }
    return meta


def shard_shapes(m) -> dict:
    """The per-GPU shapes one GPU of the TP group runs (what the samples measured)."""
    return {
        "hidden": m.hidden_size,
        "q_heads": m.q_heads_per_gpu,
        "kv_heads": m.kv_heads_per_gpu,
        "intermediate": m.intermediate_size // m.tp,
        "vocab": m.vocab_size // m.tp,
        "note": "one GPU of a Megatron TP group: QKV/gate-up column-parallel, O/down "
        "row-parallel; the all-reduces are measured separately (calibrate.collectives)"
        if m.tp > 1
        else "whole model on one GPU",
    }


def _write_choices(path: Path, model) -> None:
    """Every candidate's time and error behind each kernel choice (atomic write)."""
    import json

    doc = {"gemm": model.gemm.table.to_dict(), "attention": model.attn_table.to_dict()}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
