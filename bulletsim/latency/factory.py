"""Pick the latency model for a run: a calibrated profile when one exists, else the roofline."""

from __future__ import annotations

from bulletsim.hardware import GPUSpec
from bulletsim.latency.base import LatencyModel
from bulletsim.models import ModelSpec


def build_latency(kind: str, gpu: GPUSpec, model: ModelSpec) -> LatencyModel:
    """`auto`: the profile for (gpu, model) if one is installed, else the analytic roofline;
    `profile`: that profile or a FileNotFoundError; `roofline`: the analytic model."""
    from bulletsim.latency.roofline import RooflineLatency

    if kind == "roofline":
        return RooflineLatency(gpu, model)
    from bulletsim.latency.profile import ProfileLatency, find_profile

    path = find_profile(gpu.name, model.name) if model.tp == 1 else None
    if path is not None:
        return ProfileLatency.load(path, gpu, model)
    if kind == "profile":
        raise FileNotFoundError(
            f"no calibrated profile for {gpu.name} / {model.name} (tp={model.tp}); "
            "run `bulletsim calibrate` or use --latency roofline"
        )
    return RooflineLatency(gpu, model)


def transfer_note(kind: str, gpu: GPUSpec, model: ModelSpec) -> str | None:
    """The line to print with a run whose latency model is a *derived* profile: where its
    kernel times come from and their estimated error (None for measured or analytic
    models). Reads only the profile's metadata."""
    if kind == "roofline" or model.tp != 1:
        return None
    from bulletsim.latency.profile import find_profile, read_profile

    path = find_profile(gpu.name, model.name)
    if path is None:
        return None
    meta = read_profile(path)["meta"]
    if meta["kind"] != "derived":
        return None
    src = meta.get("derived_from", {}).get("gpu", "?")
    est = meta.get("error_estimate", {}).get("summary_line", "error estimate: none stored")
    return f"derived profile {gpu.name}/{model.name} (from the measured {src} profile): {est}"
