"""CUDA-graph capture of a whole step on a partition's stream. GPU-only module.

A graph keeps the partition of the stream it was captured on (measured on the H200: a graph
captured on the full GPU used all 132 SMs when replayed on a 16-SM green stream; captured on
g16 it used 16 wherever replayed), so every partition gets its own capture.
"""

from __future__ import annotations

import torch


def capture_step(model, batch, partition, layers: range | None = None, head: bool = True):
    """Warm up, then capture `model.step_kernels(batch)` on `partition.stream`.

    Returns the `torch.cuda.CUDAGraph`; replaying it reruns the step on the batch's buffers
    (which the caller keeps alive)."""
    kernels = model.step_kernels(batch, layers, head)
    with torch.cuda.stream(partition.stream):
        for _, fn in kernels:
            fn()
    partition.stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=partition.stream):
        for _, fn in kernels:
            fn()
    return graph
