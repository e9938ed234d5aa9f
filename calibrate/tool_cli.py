"""The front door of calibrate's `python -m calibrate.<tool>` scripts: a bad flag, a bad input
file, a bad number or a machine without the GPU a tool needs is one line `error: ...` on
stderr and exit code 2, never a traceback (the same rule as `bulletsim`'s commands).

    def main() -> None:
        ap = ToolParser(prog="calibrate.x", description=...)
        ...
    if __name__ == "__main__":
        run_tool(main)

Inputs are read with `read_json` (a file, valid JSON, an object with the keys the tool needs)
and GPU tools call `require_gpu` before touching CUDA.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable
from pathlib import Path

from bulletsim.cli_errors import OneLineParser, doc_summary, run_script
from bulletsim.files import require_file

# One-line argparse errors, the help description (doc_summary: a docstring's first paragraph)
# and the user-error front door are bulletsim's (`python -m bulletsim.norm_latency` uses them).
ToolParser = OneLineParser
__all__ = ["ToolParser", "doc_summary", "run_tool"]
run_tool = run_script


def read_json(path: str | Path, what: str, keys: Iterable[str] = ()) -> dict:
    """The JSON object in `path`; ValueError naming `what` when the path is a folder, the text
    is not JSON or not an object, or one of `keys` is missing; FileNotFoundError when absent."""
    p = require_file(path, what)
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {p} is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{what} {p} holds a JSON {type(doc).__name__}, not an object")
    missing = [k for k in keys if k not in doc]
    if missing:
        raise ValueError(f"{what} {p} lacks {', '.join(map(repr, missing))}; is it the right file?")
    return doc


def require_folder(path: str | Path, what: str) -> Path:
    """`path` when it is an existing folder; FileNotFoundError / ValueError naming `what`."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p
    if p.exists():
        raise ValueError(f"{what} {p} is a file, not a folder")
    raise FileNotFoundError(f"{what} not found: {p}")


def require_out_folder(path: str | Path, flag: str) -> Path:
    """`path` when a tool may write into it: a folder or a new path (not a file)."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {p} is a file; give a folder (new or existing)")
    return p


def require_gpu(tool: str, min_gpus: int = 1) -> None:
    """Raise ValueError (one line) unless torch is installed and sees >= `min_gpus` CUDA GPUs.

    Called before any CUDA work, so a CPU-only machine hears what the tool needs."""
    try:
        import torch
    except ImportError:
        raise ValueError(
            f"{tool} measures on an NVIDIA GPU and needs torch with CUDA: torch is not "
            "installed (pip install torch); the CPU-only tools are calibrate.collectives_fit, "
            "calibrate.shard_profile, calibrate.derive_shard, calibrate.moe_fit and "
            "calibrate.mechanism_compare"
        ) from None
    if not torch.cuda.is_available():
        raise ValueError(
            f"{tool} measures on an NVIDIA GPU: torch {torch.__version__} sees no CUDA GPU; "
            "run it on a GPU machine (the CPU-only tools are calibrate.collectives_fit, "
            "calibrate.shard_profile, calibrate.derive_shard, calibrate.moe_fit and "
            "calibrate.mechanism_compare)"
        )
    count = torch.cuda.device_count()
    if count < min_gpus:
        raise ValueError(f"{tool} needs >= {min_gpus} GPUs (one process per GPU); {count} visible")


def positive_seconds(text: str) -> float:
    """argparse type for a duration: a finite number > 0 (not 0, negative, nan or inf)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a positive, finite number of seconds (e.g. 10)"
        )
    return v


def _int_at_least(text: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= {low}")
    return v


def positive_int(text: str) -> int:
    """argparse type for a count >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type for a count >= 0."""
    return _int_at_least(text, 0)


def require_libsmctrl(path: str | None) -> str:
    """The user-built libsmctrl.so (`path`, else $LIBSMCTRL_PATH) as a string; ValueError
    (one line: not configured, not found, a folder) before any GPU work."""
    from bulletsim.gpu.libsmctrl import LibsmctrlUnavailable, find_libsmctrl

    try:
        return str(find_libsmctrl(path))
    except LibsmctrlUnavailable as e:
        raise ValueError(str(e)) from None


def require_triton(tool: str) -> None:
    """ValueError unless triton imports (the persistent matmul path is a Triton kernel)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        raise ValueError(
            f"{tool} times the persistent Triton matmul and needs triton: it is not installed "
            "(pip install triton; it ships with CUDA builds of torch)"
        ) from None
