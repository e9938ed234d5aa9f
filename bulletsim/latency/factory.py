"""Pick the latency model for a run: a calibrated profile when one exists, else the roofline."""

from __future__ import annotations

from pathlib import Path

from bulletsim.hardware import GPUSpec
from bulletsim.latency.base import LatencyModel
from bulletsim.models import ModelSpec

# The calibrator's GEMM paths (bulletsim.gpu.selection.GEMM_PATHS, not imported: latency code
# stays clear of engine code; tests/test_collectives.py checks the two agree).
ALL_GEMM_PATHS = frozenset({"cublas", "cublaslt-sm-target", "triton-persistent"})

# The ModelSpec fields a profile's kernel times depend on: a profile is used only for a model
# whose values equal those of the registered model it was calibrated for (the layer count may
# differ: the profile prices per layer and is rescaled).
SHAPE_FIELDS = (
    "hidden_size",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "intermediate_size",
    "num_experts",
    "experts_per_token",
    "moe_intermediate_size",
    "vocab_size",
    "dtype_bytes",
)


def shape_mismatch(model: ModelSpec, profile_model: str | None = None) -> list[str]:
    """`field run-value vs profile-value` for each `SHAPE_FIELDS` entry where `model` differs
    from the registered model `profile_model` (default: the model of `model`'s name, whose
    installed profiles a run finds by name); [] when they agree or the name is unregistered."""
    from bulletsim.models import MODELS

    ref = MODELS.get((profile_model or model.name).strip().lower())
    if ref is None:
        return []
    return [
        f"{f} {getattr(model, f)} vs {getattr(ref, f)}"
        for f in SHAPE_FIELDS
        if getattr(model, f) != getattr(ref, f)
    ]


def unmatched_profile(
    kind: str, gpu: GPUSpec, model: ModelSpec, mechanism: str | None = None
) -> str | None:
    """One line when an installed profile carries the model's name but not its shape (a
    --model-config that changes, e.g., top-k): that profile is not used; None otherwise."""
    from bulletsim.latency.profile import find_profile

    if kind == "roofline":
        return None
    diff = shape_mismatch(model)
    if not diff:
        return None
    found = [find_profile(gpu.name, model.name, tp=model.tp)]
    if mechanism not in (None, "none"):
        found.append(find_profile(gpu.name, model.name, tp=model.tp, mechanism=mechanism))
    path = next((p for p in found if p is not None), None)
    if path is None:
        return None
    return (
        f"profile {path.name} not used: it was calibrated for the registered {model.name}, whose "
        f"shape differs from this model's ({'; '.join(diff)}); priced by the roofline"
    )


def select_profile(
    kind: str,
    gpu: GPUSpec,
    model: ModelSpec,
    mechanism: str | None = None,
    profile: str | Path | None = None,
) -> Path | None:
    """The profile file a run uses (None: the roofline, or no profile installed).

    `profile`: that file (FileNotFoundError when missing; ValueError with `kind` roofline).
    Else, unless `kind` is roofline, the installed profile of (gpu, model, tp) measured under
    `mechanism` (the policy's SM partition mechanism) when one is installed, else the
    default (green-context) one; the run names the profile's mechanism and a caveat says
    when it differs (`partitioning.mechanism_caveat`)."""
    from bulletsim.files import require_file
    from bulletsim.latency.profile import find_profile

    if profile is not None:
        assert kind != "roofline", "RunConfig.validate refuses a profile with the roofline"
        path = require_file(Path(profile).expanduser(), "profile")
        from bulletsim.latency.profile import read_profile

        prof_model = str(read_profile(path)["meta"].get("model", ""))
        diff = shape_mismatch(model, prof_model) if prof_model else []
        if diff:
            raise ValueError(
                f"profile {path} was calibrated for {prof_model}, whose shape differs from "
                f"{model.name}'s ({'; '.join(diff)}); use --latency roofline, or a profile of "
                "this shape"
            )
        return path
    if kind == "roofline":
        return None
    line = unmatched_profile(kind, gpu, model, mechanism)
    if line is not None:
        if kind == "profile":
            raise ValueError(line.replace("; priced by the roofline", "; use --latency roofline"))
        return None
    if mechanism not in (None, "none"):
        path = find_profile(gpu.name, model.name, tp=model.tp, mechanism=mechanism)
        if path is not None:
            return path
    return find_profile(gpu.name, model.name, tp=model.tp)


def build_latency(
    kind: str,
    gpu: GPUSpec,
    model: ModelSpec,
    mechanism: str | None = None,
    profile: str | Path | None = None,
) -> LatencyModel:
    """`auto`: the profile `select_profile` finds, else the analytic roofline; `profile`:
    that profile or a FileNotFoundError naming the installed tp degrees; `roofline`: the
    analytic model. `mechanism`, `profile`: see `select_profile`."""
    from bulletsim.latency.roofline import RooflineLatency

    path = select_profile(kind, gpu, model, mechanism, profile)
    if kind == "roofline":
        return RooflineLatency(gpu, model)
    from bulletsim.latency.profile import ProfileLatency
    from bulletsim.latency.profile_format import (
        PROFILE_DIR,
        installed_for_model,
        installed_tps,
        profile_filename,
    )

    if path is not None:
        return ProfileLatency.load(path, gpu, model)
    if kind == "profile":
        tps = installed_tps(gpu.name, model.name)
        have = f"installed for tp {', '.join(map(str, tps))}" if tps else "none installed"
        others = [f"{g} tp {t}" for g, t in installed_for_model(model.name) if g != gpu.name]
        elsewhere = f"; other GPUs: {', '.join(others)}" if others else ""
        raise FileNotFoundError(
            f"no calibrated profile for {gpu.name} / {model.name} at tp={model.tp} ({have}"
            f"{elsewhere}): looked for {profile_filename(gpu.name, model.name, model.tp)} in "
            f"{PROFILE_DIR}; run `bulletsim calibrate --tp {model.tp}` or use --latency roofline"
        )
    return RooflineLatency(gpu, model)


def transfer_note(
    kind: str,
    gpu: GPUSpec,
    model: ModelSpec,
    mechanism: str | None = None,
    profile: str | Path | None = None,
) -> str | None:
    """The lines to print with a run whose latency model is a *derived* profile (where its
    kernel times come from and their estimated error) or a tensor-parallel shard profile
    (which parts are measured and which derived); None for a measured single-GPU profile
    or the roofline. Reads only the profile's metadata (`select_profile`'s file)."""
    from bulletsim.latency.profile import read_profile

    path = select_profile(kind, gpu, model, mechanism, profile)
    if path is None:
        lines = [unmatched_profile(kind, gpu, model, mechanism)]
        if model.tp > 1:
            lines.append(roofline_allreduce_line(gpu, model))
        return "\n".join(x for x in lines if x) or None
    doc = read_profile(path)
    meta = doc["meta"]
    lines = []
    if meta["kind"] == "derived":
        src = meta.get("derived_from", {}).get("gpu", "?")
        est = meta.get("error_estimate", {}).get("summary_line", "error estimate: none stored")
        d = meta.get("derived_from", {})
        what = f"measured {src}"
        if src == gpu.name:
            what = f"measured {src} TP-{d.get('tp')} shard"
        elif "shape" in str(d.get("kind", "")):
            what = f"derived {src} TP-{model.tp} (TP-{d.get('measured_tp')} shape transfer)"
        lines.append(f"derived profile {gpu.name}/{model.name} (from the {what} profile): {est}")
    if model.tp > 1:
        lines.append(tp_parts_line(doc, gpu.name, model))
    return "\n".join(lines) or None


def roofline_allreduce_line(gpu: GPUSpec, model: ModelSpec) -> str:
    """Where the roofline's all-reduce comes from, for a tp > 1 run (one line)."""
    from bulletsim.latency.roofline import NCCL_SOURCE, SRMParams

    p = SRMParams()
    bus = gpu.interconnect_bytes_s / p.alpha["allreduce"]
    measured = model.tp == 2 and gpu.name == "h200"
    how = "fitted to" if measured else "derived (ring formula"
    if not measured:
        how += f", n={model.tp}" + ("" if gpu.name == "h200" else f", {gpu.name} NVLink") + ") from"
    alpha2_us = 1e6 * p.allreduce_latency_s
    return (
        f"roofline all-reduce (2 per layer, tp={model.tp}): t = (n-1) x {alpha2_us:.2f} us + "
        f"2(n-1)/n S / {bus / 1e9:.0f} GB/s, {how} NCCL measured on 2 H200s ({NCCL_SOURCE})"
    )


def tp_parts_line(doc: dict, gpu: str, model: ModelSpec) -> str:
    """Which parts of a TP shard profile are measured and which derived (one line)."""
    meta = doc["meta"]
    d = meta.get("derived_from", {})
    src = d.get("gpu", gpu)
    measured_tp = d.get("tp", d.get("measured_tp", model.tp))
    if meta["kind"] == "measured":
        kernels = f"layer kernels measured on one {gpu.upper()} at the TP-{model.tp} shard shapes"
    elif src == gpu:
        kernels = (
            f"layer kernels derived from the {src.upper()} TP-{measured_tp} shard measurements "
            f"by the shape transfer to TP-{model.tp}"
        )
    else:
        kernels = f"layer kernels derived from {src.upper()} TP-{measured_tp} shard measurements"
        if measured_tp != model.tp:
            kernels += f" (shape transfer to TP-{model.tp}, then the GPU transfer)"
    mlp = f"intermediate {model.intermediate_size // model.tp}"
    if model.is_moe:  # the experts one GPU holds (TP: every expert's slice; EP: whole experts)
        mlp = (
            f"{model.num_experts // model.ep} experts x "
            f"{model.moe_intermediate_size // model.moe_shards} ({model.moe_routing} routing)"
        )
    shard = (
        f"(hidden {model.hidden_size}, {model.q_heads_per_gpu} q / {model.kv_heads_per_gpu} kv "
        f"heads, {mlp}, vocab {model.vocab_size // model.tp} per GPU)"
    )
    limited = kernel_limits(meta)
    if limited:
        kernels += f" (kernels limited to {limited})"
    if model.is_moe:
        from bulletsim.latency.moe_profile import measured_routing

        measured = measured_routing(doc)
        if measured != model.moe_routing:  # moe_profile.reroute: derived, first-order
            kernels += (
                f"; MoE kernels measured under {measured} routing, rescaled to "
                f"{model.moe_routing} by the roofline's load ratio (derived; fit.routing_check)"
            )
    ar = doc.get("collectives", {}).get("allreduce")
    if ar is None:
        ar_text = "all-reduce NOT priced (no collectives section)"
    elif ar["kind"] == "measured":
        ar_text = f"all-reduce (2 per layer) measured: NCCL on {ar['measured_gpus']} GPUs"
    else:
        ar_text = (
            f"all-reduce (2 per layer) derived from NCCL measured on {ar['measured_gpus']} "
            f"H200s: {ar.get('transfer', 'ring transfer')}"
        )
    return f"tp={model.tp} shard profile {gpu}/{model.name}: {kernels} {shard}; {ar_text}"


def kernel_limits(meta: dict) -> dict:
    """The kernel restrictions a calibration ran under (`meta.kernel_restrictions`), less
    the entries that restrict nothing ("all", "auto", every GEMM path)."""
    limits = meta.get("kernel_restrictions") or {}
    return {
        k: v
        for k, v in limits.items()
        if v not in ("all", "auto") and not (isinstance(v, list) and set(v) >= ALL_GEMM_PATHS)
    }
