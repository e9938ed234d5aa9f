"""Derived profiles: transfer a measured profile to another GPU by datasheet ratios (CPU only).

The transfer, per grid cell (kernel k, shape x, SM count n on the measured GPU S):

    n_T  = n / N_S * N_T, rounded to the target's partition granularity (TPC pairs on Ampere,
           8 SMs for Hopper green contexts), the same *share* of the GPU;
    t_T(k, x, n_T) = t_S(k, x, n) * SRM_T(k, x, n_T) / SRM_S(k, x, n)

where SRM_G is the fitted SM-scaling roofline (same alpha, bandwidth-knee fraction and GEMM
tile) evaluated with G's datasheet peak bf16 FLOP/s, HBM bandwidth and SM count. So the
measured deviations from the roofline (wave steps, small-kernel latency, the efficiency of
each kernel class) carry over at the same share of the GPU, and the roofline ratio moves
compute-bound kernels by the per-SM compute ratio and memory-bound ones by the bandwidth
ratio. Contention factors, layer overhead and the CUDA-graph saving are kept as measured.
What this cannot know: a different GEMM library choice, different clocks under power limits,
and L2 sizes (A100 40 MB vs 50-60 MB) — hence every such profile is labelled `derived`.
"""

from __future__ import annotations

import copy
from pathlib import Path

from bulletsim.hardware import (
    GPUSpec,
    get_gpu,
    min_partition_sms,
    partition_unit_sms,
    resolve_mechanism,
)
from bulletsim.latency.collectives import rescale_section
from bulletsim.latency.ops import linear_ops
from bulletsim.latency.profile import (
    LINEAR_OPS,
    PROFILE_DIR,
    ProfileLatency,
    find_profile,
    profile_filename,
    read_profile,
    srm_from_dict,
    write_profile,
)
from bulletsim.latency.roofline import op_time_s
from bulletsim.models import get_model
from calibrate.transfer_error import self_transfer_errors, summary_line


def map_sms(
    sms: list[int], src: GPUSpec, dst: GPUSpec, mechanism: str = "green-ctx"
) -> list[tuple[int, int]]:
    """(source n, target n) pairs at the same GPU share, on the target's granularity."""
    g = partition_unit_sms(mechanism, dst, dst.num_sms)
    lo = min_partition_sms(mechanism, dst, dst.num_sms)
    out: dict[int, int] = {}
    for n in sms:
        if n == src.num_sms:
            t = dst.num_sms
        else:
            t = max(lo, min(dst.num_sms, round(n / src.num_sms * dst.num_sms / g) * g))
        out.setdefault(t, n)  # keep the first (smallest) source count for each target count
    return sorted((n, t) for t, n in out.items())


def derive(doc: dict, dst: GPUSpec) -> dict:
    """A derived profile document for `dst` from the measured profile `doc`."""
    shape_only = "tp" in doc["meta"].get("derived_from", {})  # same GPU, other TP shard
    if doc["meta"]["kind"] != "measured" and not shape_only:
        raise ValueError("derive from a measured profile, not from a derived one")
    src_model = ProfileLatency(doc)
    src, model = src_model.gpu, src_model.model
    params = srm_from_dict(doc["srm"])
    mechanism = resolve_mechanism(doc["meta"]["mechanism"])
    pairs = map_sms(doc["grid"]["sms"], src, dst, mechanism)
    col = {n: i for i, n in enumerate(doc["grid"]["sms"])}

    def scale(make_op, x, row):
        out = []
        for n_s, n_t in pairs:
            t = row[col[n_s]]
            if t is None:
                out.append(None)
                continue
            op = make_op(x)
            out.append(t * op_time_s(op, n_t, dst, params) / op_time_s(op, n_s, src, params))
        return out

    grid = copy.deepcopy(doc["grid"])
    grid["sms"] = [t for _, t in pairs]
    lin = grid["linear"]
    for k, name in enumerate(LINEAR_OPS):
        lin["ops"][name] = [
            scale(lambda x, k=k: linear_ops(model, int(x))[k], x, row)
            for x, row in zip(lin["tokens"], doc["grid"]["linear"]["ops"][name], strict=True)
        ]
    for key, axis, make in (
        ("final_norm", "tokens", src_model.final_norm_op),
        ("lm_head", "rows", src_model.lm_head_op),
        ("attn_prefill", "pairs", src_model.attn_prefill_op),
    ):
        g = grid[key]
        g["time_s"] = [
            scale(make, x, row) for x, row in zip(g[axis], doc["grid"][key]["time_s"], strict=True)
        ]
    ad = grid["attn_decode"]
    ad["time_s"] = [
        [
            scale(lambda c, b=b: src_model.attn_decode_op(b, b * (c + 1)), c, row)
            for c, row in zip(ad["ctx"], plane, strict=True)
        ]
        for b, plane in zip(ad["batch"], doc["grid"]["attn_decode"]["time_s"], strict=True)
    ]
    meta_src = doc["meta"]
    estimate = self_transfer_errors(doc, dst)
    estimate["summary_line"] = summary_line(estimate)
    from dataclasses import asdict

    meta = {
        "gpu": dst.name,
        "model": meta_src["model"],
        "tp": meta_src.get("tp", 1),
        "kind": "derived",
        "num_sms": dst.num_sms,
        "mechanism": mechanism,
        "granularity_sms": partition_unit_sms(mechanism, dst, dst.num_sms),
        "timing_method": "none on this GPU: derived (see transfer)",
        "date": meta_src["date"],  # the source's: same inputs -> identical file
        "git_sha": meta_src.get("git_sha"),
        "derived_from": {
            "gpu": src.name,
            "kind": "measured" if not shape_only else "derived (TP shard shape transfer)",
            "source_transfer": meta_src.get("transfer") if shape_only else None,
            "measured_tp": meta_src["derived_from"]["tp"] if shape_only else meta_src.get("tp", 1),
            "date": meta_src["date"],
            "calibrate_source_sha256": meta_src.get("calibrate_source_sha256"),
            "device": meta_src.get("gpu_device_name"),
        },
        "transfer": (
            "t_T(k,x,n_T) = t_S(k,x,n) * SRM_T(k,x,n_T) / SRM_S(k,x,n), n_T = n/N_S*N_T rounded "
            "to the target granularity; SRM with the measured fit (alpha, knee, tile) on each "
            "GPU's datasheet; contention, layer overhead and graph saving kept "
            "(calibrate/derive.py)"
        ),
        "datasheet_ratios": {
            "peak_bf16_flops": dst.peak_bf16_flops / src.peak_bf16_flops,
            "mem_bw": dst.mem_bw_bytes_s / src.mem_bw_bytes_s,
            "num_sms": dst.num_sms / src.num_sms,
            "flops_per_sm": (dst.peak_bf16_flops / dst.num_sms)
            / (src.peak_bf16_flops / src.num_sms),
        },
        "sm_map": [list(p) for p in pairs],
        "measured_vs_derived": "derived",
        "kernels_of_source": meta_src.get("kernels", {}).get("chosen_per_op"),
        "kernel_restrictions": meta_src.get("kernel_restrictions"),
        "error_estimate": estimate,
    }
    if "parts" in meta_src:
        meta["parts"] = {
            "layer_kernels": f"derived from the measured {src.name} TP shard (this transfer)",
        }
    params_doc = dict(doc["srm"])
    params_doc["provenance"] = f"derived from the {src.name} measured fit ({meta_src['date']})"
    out = {
        "format": doc["format"],
        "version": doc["version"],
        "meta": meta,
        "gpu_spec": asdict(dst),
        "srm": params_doc,
        "exec": doc.get("exec", {}),
        "grid": grid,
        "fit": {
            "summary": {
                "note": f"derived: no measurements on {dst.name}; estimated error: "
                + estimate["summary_line"]
            },
            "source_summary": doc.get("fit", {}).get("summary", {}),
        },
    }
    ar = doc.get("collectives", {}).get("allreduce")
    if ar is not None:
        sec = move_allreduce(ar, src, dst)
        out["collectives"] = {"allreduce": sec}
        meta.setdefault("parts", {})["allreduce"] = "derived: " + sec["transfer"]
    return out


def move_allreduce(sec: dict, src: GPUSpec, dst: GPUSpec) -> dict:
    """An all-reduce section priced on GPU `src` moved to GPU `dst`: the link bandwidth B
    scaled by the NVLink datasheet ratio (`GPUSpec.interconnect_bytes_s`, alpha kept) and the
    SM axis kept as the same share of the GPU (`rescale_section`); `kind: derived`, the step
    written into `transfer`. The one GPU transfer of all-reduce tables: derived profiles
    (`derive`) and tables attached to another GPU's profile (`calibrate.shard_profile`)."""
    ratio = dst.interconnect_bytes_s / src.interconnect_bytes_s
    note = f"{dst.name} / {src.name} NVLink datasheet"
    return rescale_section(sec, ratio, note, (src.num_sms, dst.num_sms))


def derive_to_file(
    source: str, gpu: str, model: str, out: Path | None = None, tp: int | None = None
) -> Path:
    src, dst, m = get_gpu(source), get_gpu(gpu), get_model(model, tp)
    if src.name == dst.name:
        raise ValueError(f"--from and --gpu are both {src.name}")
    path = find_profile(src.name, m.name, tp=m.tp)
    if path is None:
        raise FileNotFoundError(
            f"no profile for {src.name} / {m.name} at tp={m.tp} in {PROFILE_DIR}; "
            "calibrate it first"
        )
    if out is not None and out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (the profile is named for you)")
    doc = derive(read_profile(path), dst)
    target = (out or PROFILE_DIR) / profile_filename(dst.name, m.name, m.tp)
    if target.exists():  # only a derived profile is re-derived in place
        try:
            kind = read_profile(target)["meta"].get("kind")
        except (ValueError, KeyError, TypeError, OSError):
            kind = None
        if kind != "derived":
            what = "a measured profile" if kind else "a file that is not a derived profile"
            raise ValueError(
                f"{target} holds {what}; a derived profile does not replace it (move it, or "
                "give another --out folder)"
            )
    return write_profile(doc, target)
