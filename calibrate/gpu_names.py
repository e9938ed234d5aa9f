"""Map a CUDA device name to bulletsim's GPU key (CPU-only)."""

from __future__ import annotations

import re

# Most specific first: "H200" must not match as "H20", "H100" not as "H10".
_PATTERNS = (
    (r"\bH200\b", "h200"),
    (r"\bH100\b", "h100"),
    (r"\bH20\b", "h20"),
    (r"\bA100\b", "a100"),
)


def gpu_key_from_device_name(name: str) -> str | None:
    """'NVIDIA H200' -> 'h200', 'NVIDIA A100-SXM4-80GB' -> 'a100'; None if unknown."""
    for pattern, key in _PATTERNS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return key
    return None
