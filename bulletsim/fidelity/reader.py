"""Read a benchmark client's result file: detect vLLM or SGLang and dispatch to its reader."""

from __future__ import annotations

from pathlib import Path

from bulletsim.fidelity.measured import (
    MEASURED_FORMATS,
    MeasuredRun,
    detect_tool,
    pick_result,
    read_json_objects,
)
from bulletsim.fidelity.sglang_result import read_sglang_result
from bulletsim.fidelity.vllm_result import read_vllm_result
from bulletsim.files import require_file


def read_measured(
    path: str | Path, fmt: str = "auto", result_index: int | None = None
) -> MeasuredRun:
    """Read a vLLM or SGLang benchmark result file (`fmt` auto-detects from its keys)."""
    p = Path(path)
    if fmt not in MEASURED_FORMATS:
        raise ValueError(
            f"--measured-format: unknown {fmt!r}; valid: {', '.join(MEASURED_FORMATS)}"
        )
    p = require_file(p, "--measured file")
    obj = pick_result(read_json_objects(p), result_index, p)
    tool = detect_tool(obj, p) if fmt == "auto" else fmt
    return read_vllm_result(obj, p) if tool == "vllm" else read_sglang_result(obj, p)
