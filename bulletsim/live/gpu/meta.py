"""What a GPU live run ran on and with, for `live.json` (GPU-only: imports torch)."""

from __future__ import annotations

import torch

from bulletsim.live.gpu.graphs import BUCKETS


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
        "weights": "random bf16 at the real shapes (timing-equivalent for a dense model; "
        "sampled token ids are meaningless, output lengths forced from the trace)",
        "partitions": "green contexts, one split per size"
        if ex.lanes_map.pool is not None
        else "whole GPU",
        "attention": "flashinfer fa2 paged prefill (eager); tensor-core paged decode in "
        "CUDA graphs",
        "gemm": "torch.mm (cuBLAS), as the calibrated profile measured",
        "decode_graph_buckets": list(BUCKETS) if ex.graphs is not None else [],
        "num_graphs": len(ex.graphs.graphs) if ex.graphs is not None else 0,
        "graph_capture_s": ex.graphs.capture_s if ex.graphs is not None else 0.0,
        "setup_s": ex.setup_s,
        "num_launches": dict(ex.num_launches),
        "kv_pages_peak": ex.pages.peak_pages,
    }
