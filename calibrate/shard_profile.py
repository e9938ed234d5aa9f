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

import argparse
import copy
import json
from pathlib import Path

from bulletsim.latency.collectives import section_for
from bulletsim.latency.profile_format import PROFILE_DIR, read_profile, write_profile

COLLECTIVES_DIR = PROFILE_DIR.parent / "collectives"


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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile", type=Path, help="fitted shard profile (calibrate --tp N)")
    ap.add_argument("--collectives", type=Path, required=True, help="measured NCCL table")
    ap.add_argument("--out", type=Path, help="where to write (default: beside the input)")
    ap.add_argument("--install", action="store_true", help="also copy into the profiles dir")
    args = ap.parse_args()
    doc = attach(read_profile(args.profile), json.loads(args.collectives.read_text()))
    path = write_profile(doc, args.out or args.profile)
    if args.install:
        write_profile(doc, PROFILE_DIR / path.name)
    print(f"{path}: {doc['meta']['parts']}")


if __name__ == "__main__":
    main()
