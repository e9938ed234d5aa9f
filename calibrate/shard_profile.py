"""Assemble a tensor-parallel shard profile: one GPU's fitted kernels + its group's all-reduce
(CPU only).

    python -m calibrate.shard_profile RUN/h200__llama-3.1-70b__tp8.json \\
        --collectives bulletsim/data/collectives/h200__nccl-2gpu.json [--install]

The fitted profile of a shard calibration (`bulletsim calibrate --tp N`) prices the kernels
of one GPU only: its held-out errors compare against single-GPU samples, which have no
all-reduce. This adds the `collectives.allreduce` section for its tp from the measured
2-GPU NCCL table: measured when tp equals the measured group size, else the ring transfer of
`bulletsim.latency.collectives` (labelled derived, formula stored). A table measured on
another GPU than the profile's is moved to the profile's GPU by the transfer the derived
profiles use (`calibrate.derive.move_allreduce`: NVLink datasheet ratio, SM axis as a share
of the GPU; labelled derived). The profile's meta says per part which is which (`meta.parts`).

Output: the input file itself, or --out (a new file, or the same fitted profile: never another
measured/installed one); its name, when it is a profile name `<gpu>__<model>__tp<N>.json`,
must be the profile's own. --install also writes `bulletsim/data/profiles/<that name>`
(`calibrate.install.install`): over an installed profile only when it is the same fit
(`fitted_digest`, a re-run) or with --replace, which keeps the sections this tool does not
write.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

from bulletsim.cli_errors import doc_summary
from bulletsim.files import require_writable_file
from bulletsim.hardware import get_gpu
from bulletsim.latency.collectives import section_for
from bulletsim.latency.profile_format import (
    PROFILE_DIR,
    profile_filename,
    profile_mechanism,
    read_profile,
    write_profile,
)
from calibrate.install import check_install, install
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


def attach(doc: dict, table: dict) -> dict:
    """A copy of profile `doc` with the all-reduce section for its tp and `meta.parts`; a
    table of another GPU (`table["gpu"]`) is moved to the profile's GPU
    (`calibrate.derive.move_allreduce`, labelled derived)."""
    tp = int(doc["meta"].get("tp", 1))
    if tp < 2:
        raise ValueError("a single-GPU profile (tp=1) has no all-reduce to attach")
    out = copy.deepcopy(doc)
    sec = section_for(table, tp)
    dst, src = get_gpu(doc["meta"]["gpu"]), get_gpu(table.get("gpu") or doc["meta"]["gpu"])
    if src.name != dst.name:
        from calibrate.derive import move_allreduce

        sec = move_allreduce(sec, src, dst)
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


def _describe(meta: dict) -> str:
    return f"{meta.get('kind')} {meta.get('gpu')} / {meta.get('model')} tp={meta.get('tp', 1)}"


def fitted_digest(doc: dict) -> str:
    """sha256 (12 hex digits) of profile `doc` less what `attach` writes (the `collectives`
    section, `meta.parts`): equal digests are the same fitted profile, whatever all-reduce it
    carries. (Its meta alone does not tell: two fits of one day share GPU, model, tp, kind and
    date, and a refit keeps the run's meta.)"""
    d = {k: v for k, v in doc.items() if k != "collectives"}
    d["meta"] = {k: v for k, v in doc["meta"].items() if k != "parts"}
    text = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def own_name(doc: dict) -> str:
    """The file name the profile lookup reads for `doc` (`<gpu>__<model>__tp<N>.json`)."""
    m = doc["meta"]
    return profile_filename(
        m["gpu"], m["model"], int(m.get("tp", 1)), m.get("mechanism", "green-ctx")
    )


def check_target(path: Path, doc: dict, flag: str, replace: bool = False) -> None:
    """ValueError unless profile `doc` may be written to `path`: a name shaped like a profile
    name must be `doc`'s own (another tp/GPU/model there would be read as that one); a file
    there that is not a profile is never replaced; a profile there is replaced when it is the
    same fitted profile (`fitted_digest`: a re-run, perhaps with another all-reduce table), or
    with `replace` (--install only)."""
    name = own_name(doc)
    if "__" in path.name and path.name != name:
        raise ValueError(
            f"{flag} {path}: the file name is not this profile's ({_describe(doc['meta'])}); "
            f"the profile lookup would read it as another one; name it {name}"
        )
    if not path.exists():
        return
    if not path.is_file() or not _is_profile(path):
        raise ValueError(
            f"{flag} {path} exists and is not a profile; it is not replaced (move it away)"
        )
    old = read_profile(path)
    have, new = fitted_digest(old), fitted_digest(doc)
    if have == new or replace:
        return
    how = (
        "add --replace to replace it (its sections this tool does not write are kept)"
        if flag == "--install"
        else "remove it yourself if that is what you want, or give a new file"
    )
    raise ValueError(
        f"{flag} {path} holds another profile ({_describe(old['meta'])}, "
        f"{old['meta'].get('date')}, fit {have}; this one: {_describe(doc['meta'])}, "
        f"{doc['meta'].get('date')}, fit {new}); it is not replaced: {how}"
    )


def main() -> None:
    ap = ToolParser(prog="calibrate.shard_profile", description=doc_summary(__doc__))
    ap.add_argument("profile", type=Path, help="fitted shard profile (calibrate --tp N)")
    ap.add_argument("--collectives", type=Path, required=True, help="measured NCCL table")
    ap.add_argument("--out", type=Path, help="file to write (default: the input profile, in place)")
    ap.add_argument(
        "--install",
        action="store_true",
        help="also write bulletsim/data/profiles/<gpu>__<model>__tp<N>.json",
    )
    ap.add_argument(
        "--replace",
        action="store_true",
        help="with --install: replace another installed profile of that name (keeping its "
        "sections this tool does not write)",
    )
    args = ap.parse_args()
    if args.replace and not args.install:
        raise ValueError("--replace applies only with --install")
    doc, table = read_profile(args.profile), read_table(args.collectives)
    out = args.profile
    if args.out is not None:
        out = require_writable_file(args.out, "--out", _is_profile, "a profile", own_name(doc))
    check_target(out, doc, "--out" if args.out is not None else "profile")
    if args.install:
        check_install(PROFILE_DIR / own_name(doc), profile_mechanism(doc), replace=True)
        check_target(PROFILE_DIR / own_name(doc), doc, "--install", args.replace)
    try:
        doc = attach(doc, table)
    except (KeyError, TypeError) as e:
        raise ValueError(f"collectives table {args.collectives} is malformed ({e!r})") from None
    path = write_profile(doc, out)
    print(f"{path}: {doc['meta']['parts']}")
    if args.install:  # check_target let an installed profile through: the same fit, or --replace
        for line in install(doc, path, None, True, PROFILE_DIR, own_name(doc)):
            print(line)


if __name__ == "__main__":
    run_tool(main)
