"""Assemble a tensor-parallel shard profile: one GPU's fitted kernels + its group's all-reduce
(CPU only).

    python -m calibrate.shard_profile RUN/h200__llama-3.1-70b__tp8.json \\
        --collectives bulletsim/data/collectives/h200__nccl-2gpu.json [--install]

The fitted profile of a shard calibration (`bulletsim calibrate --tp N`) prices the kernels
of one GPU only: its held-out errors compare against single-GPU samples, which have no
all-reduce. This adds the `collectives.allreduce` section for its tp from the measured
2-GPU NCCL table: measured when tp equals the measured group size, else the ring transfer of
`bulletsim.latency.collectives` (labelled derived, formula stored). The profile's meta says
per part which is which (`meta.parts`).
"""

from __future__ import annotations

import copy
from pathlib import Path

from bulletsim.files import require_writable_file
from bulletsim.latency.collectives import section_for
from bulletsim.latency.profile_format import PROFILE_DIR, read_profile, write_profile
from calibrate.tool_cli import ToolParser, read_json, run_tool

COLLECTIVES_DIR = PROFILE_DIR.parent / "collectives"
# What `section_for` reads of a measured table (`calibrate.collectives_fit` writes them).
TABLE_KEYS = ("format", "bytes", "sms", "time_s", "alpha_beta", "source", "measured_gpus")


def read_table(path: Path) -> dict:
    """A measured collectives table (`calibrate.collectives_fit --out`), checked."""
    table = read_json(path, "collectives table", TABLE_KEYS)
    if table["format"] != "bulletsim-collectives":
        raise ValueError(
            f"collectives table {path} has format {table['format']!r}, not "
            "'bulletsim-collectives' (write one with python -m calibrate.collectives_fit)"
        )
    return table


def _is_profile(path: Path) -> bool:
    try:
        read_profile(path)
        return True
    except (OSError, ValueError):
        return False


def attach(doc: dict, table: dict, interconnect_ratio: float = 1.0, note: str | None = None):
    """A copy of profile `doc` with the all-reduce section for its tp and `meta.parts`."""
    tp = int(doc["meta"].get("tp", 1))
    if tp < 2:
        raise ValueError("a single-GPU profile (tp=1) has no all-reduce to attach")
    out = copy.deepcopy(doc)
    sec = section_for(table, tp, interconnect_ratio, note)
    out.setdefault("collectives", {})["allreduce"] = sec
    from bulletsim.latency.factory import kernel_limits

    limited = kernel_limits(doc["meta"])
    note = f"; kernels limited to {limited}" if limited else ""
    out["meta"]["parts"] = {
        "layer_kernels": f"{doc['meta']['kind']} (one GPU at the TP-{tp} shard shapes{note})",
        "allreduce": f"{sec['kind']} ({sec['source']})"
        + (f"; {sec['transfer']}" if "transfer" in sec else ""),
    }
    return out


def main() -> None:
    ap = ToolParser(prog="calibrate.shard_profile", description=__doc__.splitlines()[0])
    ap.add_argument("profile", type=Path, help="fitted shard profile (calibrate --tp N)")
    ap.add_argument("--collectives", type=Path, required=True, help="measured NCCL table")
    ap.add_argument("--out", type=Path, help="where to write (default: beside the input)")
    ap.add_argument("--install", action="store_true", help="also copy into the profiles dir")
    args = ap.parse_args()
    doc, table = read_profile(args.profile), read_table(args.collectives)
    out = args.profile
    if args.out is not None:
        out = require_writable_file(args.out, "--out", _is_profile, "a profile", args.profile.name)
    try:
        doc = attach(doc, table)
    except (KeyError, TypeError) as e:
        raise ValueError(f"collectives table {args.collectives} is malformed ({e!r})") from None
    path = write_profile(doc, out)
    if args.install:
        write_profile(doc, PROFILE_DIR / path.name)
    print(f"{path}: {doc['meta']['parts']}")


if __name__ == "__main__":
    run_tool(main)
