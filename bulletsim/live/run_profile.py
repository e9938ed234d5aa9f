"""The latency profile a live run is re-simulated or refitted with when none is given: the one
`bulletsim run` would pick for the run's config (`latency.factory.select_profile`: the run's
--profile file, else the installed profile of its GPU, model, tensor-parallel degree and SM
partition mechanism)."""

from __future__ import annotations

from pathlib import Path


def run_profile_path(run_dir: str | Path) -> Path:
    """The profile file for `run_dir`'s config. FileNotFoundError naming the run and what was
    looked for when there is none (the run's --profile file is gone, or none is installed)."""
    from bulletsim.hardware import get_gpu
    from bulletsim.latency.factory import select_profile
    from bulletsim.live.fidelity import live_config
    from bulletsim.live.rundir import read_json_object

    cfg = live_config(read_json_object(Path(run_dir) / "config.json"))
    if cfg.profile is not None and not Path(cfg.profile).expanduser().is_file():
        raise FileNotFoundError(
            f"{run_dir}: the run's --profile {cfg.profile} no longer exists (config.json "
            "records only its fitted terms, not the whole file); give --profile FILE"
        )
    kind = "profile" if cfg.latency == "roofline" else cfg.latency
    model = cfg.model_spec()
    path = select_profile(kind, get_gpu(cfg.gpu), model, cfg.partition_mechanism(), cfg.profile)
    if path is None:
        raise FileNotFoundError(
            f"no installed profile for {cfg.gpu} / {cfg.model} at tp={model.tp}; give --profile"
        )
    return path
