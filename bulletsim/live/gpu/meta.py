"""What a GPU live run ran on and with, for `live.json` (GPU-only: imports torch)."""

from __future__ import annotations

import torch

from bulletsim.live.gpu.graphs import BUCKETS

GEMM_RULE = (
    "per (op, rows, partition SMs): the calibrated profile's measured choice among cublas / "
    "cublaslt-sm-target / triton-persistent (meta.kernels.choices) at the nearest measured "
    "row count and, when the partition's SM count was not measured, the nearest measured "
    "count of the same kind (whole GPU; green-context group = multiple of 8; split "
    "remainder); the default rule (selection.default_gemm_path) where the profile has none. "
    "Decode graphs bake in the choice for their bucket's rows and partition"
)
ATTENTION_RULE = (
    "eager prefill and mixed batches: flashinfer paged prefill, fa2 kernel (the profile "
    "times ragged FA3/FA2/cuDNN prefill over new tokens only); decode CUDA graphs: flashinfer "
    "tensor-core paged decode (SGLang's rule; the profile's per-(batch, context, SMs) choice "
    "also picks triton-splitk or the CUDA-core kernel where they measured faster, which a "
    "graph fixed at capture cannot follow as the context grows)"
)


def _direct_launches() -> dict:
    """How the small Triton kernels were launched (`gpu.direct_launch`): per kernel, the
    launches that bypassed the JIT so far in this process, or the error that stopped that."""
    from bulletsim.gpu import kernels as kn

    return {name: d.error if d.error is not None else f"direct after the first: {d.direct}"
            for name, d in kn.DIRECT_LAUNCHES.items()}  # fmt: skip


def describe_executor(ex) -> dict:
    """Metadata of a `GpuExecutor` for `live.json`: device, versions, kernels, setup costs."""
    import flashinfer

    try:
        from bulletsim.gpu.timing import Clocks

        driver = Clocks().driver_version()
    except Exception:  # noqa: BLE001 - NVML is optional metadata
        driver = None
    props = torch.cuda.get_device_properties(0)
    return {
        "executor": ex.name,
        "measured": True,
        "device": props.name,
        "num_sms": props.multi_processor_count,
        "driver": driver,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "flashinfer": flashinfer.__version__,
        "model": ex.spec.name,
        "weights": ex.model.weights
        + (
            " (timing-equivalent for a dense model; sampled token ids are meaningless)"
            if ex.weights_dir is None
            else ""
        )
        + "; output lengths forced from the trace (EOS ignored)",
        "partitions": "green contexts, one split per size"
        if ex.lanes_map.pool is not None
        else "whole GPU",
        "attention": ATTENTION_RULE,
        "gemm": GEMM_RULE,
        "kernel_choices_from": ex.kernel_source,
        "gemm_paths_used": ex.model.gemm.paths_used(),
        "gemm_lt_failed_fell_back_to_cublas": sorted(
            f"{op}@{sms}" for op, sms in ex.model.gemm.lt_failed
        ),
        "elementwise": "Triton add+RMSNorm, SiLU*mul; RoPE + KV write + dense q in one kernel"
        if ex.model.fused_rope_store
        else "Triton add+RMSNorm, SiLU*mul, RoPE; KV write by index_copy_ (fused kernel "
        "disagreed with the unfused path at start-up)",
        "decode_graph_pdl": (
            "add+RMSNorm, RoPE+KV write, SiLU*mul launched with programmatic dependent launch "
            "in decode graphs (kernel times unchanged; the gaps the profile prices as graph "
            "decode's per-layer overhead shrink)"
            if ex.model.decode_pdl
            else "off (Triton without gdc_wait or a GPU before Hopper)"
        ),
        "decode_graph_buckets": list(BUCKETS) if ex.graphs is not None else [],
        "num_graphs": len(ex.graphs.graphs) if ex.graphs is not None else 0,
        "graph_capture_s": ex.graphs.capture_s if ex.graphs is not None else 0.0,
        "setup_s": ex.setup_s,
        "host_probe": ex.host_probe,
        "small_kernel_launch": _direct_launches(),
        "num_launches": dict(ex.num_launches),
        "kv_pages_peak": ex.pages.peak_pages,
    }
