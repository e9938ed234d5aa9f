"""Installing a fitted profile into `bulletsim/data/profiles/` (CPU only).

An install never replaces an installed (shipped or committed) profile silently: without
`replace` it is refused, naming the file; with it, the sections the fit does not produce
(e.g. a TP shard's `collectives` all-reduce table, attached by `calibrate.shard_profile`, and
its `meta.parts` entry) are carried over from the replaced profile, and said. A profile of
another mechanism there is never replaced, and mechanism `none` (no SM partition) has no
installed name the simulator reads. The caller prints the returned lines (what went where).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

from bulletsim.latency.profile_format import profile_mechanism, read_profile
from bulletsim.latency.profile_format import write_profile as _write_profile

# Mechanisms whose profile the simulator looks up by name (latency.factory.profile_path).
INSTALLABLE = ("green-ctx", "libsmctrl", "mps")


def samples_name(profile_name: str) -> str:
    return profile_name.replace(".json", ".samples.parquet")


def check_install(dst: Path, mechanism: str, replace: bool = False) -> None:
    """ValueError unless a profile measured under `mechanism` may be installed at `dst`:
    the mechanism is installable, and `dst` (and its samples file) is absent, or holds a
    profile of the same mechanism and `replace` is given."""
    if mechanism not in INSTALLABLE:
        raise ValueError(
            f"a profile measured under mechanism {mechanism!r} is not installed (the simulator "
            f"reads installed profiles of {', '.join(INSTALLABLE)}); use --no-install and "
            "--profile FILE"
        )
    samples = dst.with_name(samples_name(dst.name))
    if not dst.is_file():
        if samples.exists() and not replace:
            raise ValueError(
                f"{samples} is already installed; add --replace to replace it, or --no-install"
            )
        return
    try:
        theirs = profile_mechanism(read_profile(dst))
    except ValueError as e:
        raise ValueError(f"{dst} is not a profile this tool wrote ({e}); not replaced") from None
    if theirs != mechanism:
        raise ValueError(
            f"{dst} holds a profile measured under {theirs}; a {mechanism} profile does not "
            "replace it (install the other one under its own name, or move it first)"
        )
    if not replace:
        raise ValueError(
            f"{dst} is already installed (a shipped or earlier profile); --install does not "
            "replace it: add --replace (its sections the fit does not produce, e.g. "
            "collectives, are kept), or --no-install"
        )


def kept_sections(new: dict, old: dict) -> dict:
    """`new` plus what `old` has and the fit does not produce: top-level sections (e.g.
    `collectives`) and `meta.parts` entries other than the fitted layer kernels."""
    out = copy.deepcopy(new)
    for key, value in old.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
    parts = (old.get("meta") or {}).get("parts")
    if isinstance(parts, dict) and "parts" not in out["meta"]:
        m = out["meta"]
        tp = int(m.get("tp", 1))
        shard = f" (one GPU at the TP-{tp} shard shapes; refit by calibrate-fit)" if tp > 1 else ""
        out["meta"]["parts"] = {**parts, "layer_kernels": f"{m['kind']}{shard}"}
    return out


def install(
    doc: dict,
    path: Path,
    samples: Path | None,
    replace: bool,
    folder: Path,
    name: str | None = None,
) -> list[str]:
    """Copy profile `doc` (written at `path`) and its `samples` parquet (None: a profile
    without one, e.g. `calibrate.moe_fit`'s or `calibrate.shard_profile`'s) into the profiles
    `folder` as `name` (default `path`'s name), atomically; `check_install` first. Returns the
    lines to print."""
    dst = folder / (name or path.name)
    check_install(dst, profile_mechanism(doc), replace)
    lines = []
    if dst.is_file():
        old = read_profile(dst)
        merged = kept_sections(doc, old)
        kept = [k for k in merged if k not in doc]
        if "parts" in merged["meta"] and "parts" not in doc["meta"]:
            kept.append("meta.parts")
        doc = merged
        lines.append(f"replaced {dst}" + (f" (kept from it: {', '.join(kept)})" if kept else ""))
    copied = ""
    if samples is not None:
        sdst = folder / samples_name(dst.name)
        tmp = sdst.with_name(f".{sdst.name}.tmp")
        shutil.copyfile(samples, tmp)
        tmp.replace(sdst)
        copied = f" (samples: {sdst})"
    _write_profile(doc, dst)
    lines.append(f"installed: {dst}{copied}")
    return lines
