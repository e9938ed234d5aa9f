"""Map a CUDA device name to bulletsim's GPU key (CPU-only), through the shared table."""

from __future__ import annotations

from bulletsim.hardware import gpu_key


def gpu_key_from_device_name(name: str) -> str | None:
    """'NVIDIA H200' -> 'h200', 'NVIDIA A100-SXM4-80GB' -> 'a100'; None if unknown.

    The one alias table is `bulletsim.hardware.GPU_NAME_WORDS`.
    """
    return gpu_key(name)
