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
    from bulletsim.live.run_config import live_config
    from bulletsim.live.rundir import read_json_object

    f = Path(run_dir) / "config.json"
    cfg = live_config(read_json_object(f), f)
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


def profile_for_resimulation(run_dir: str | Path) -> tuple[dict | None, str | None]:
    """(profile document, note) for re-simulating `run_dir` without --profile: (None, None)
    when the run used no profile or the profile `run_profile_path` finds now is the one the
    run recorded (config.json's latency_model: meta, terms, kernel times and fit compared),
    so its recorded per-iteration predictions stay valid; else that profile's document, to
    re-simulate and re-price the iterations with, and a one-line note naming both."""
    import json

    from bulletsim.hardware import get_gpu
    from bulletsim.latency.profile import ProfileLatency, read_profile
    from bulletsim.live.run_config import live_config
    from bulletsim.live.rundir import read_json_object

    meta = read_json_object(Path(run_dir) / "config.json")
    recorded = meta.get("latency_model")
    if not isinstance(recorded, dict) or recorded.get("kind") != "profile":
        return None, None
    path = run_profile_path(run_dir)
    doc = read_profile(path)
    cfg = live_config(meta, Path(run_dir) / "config.json")
    now = ProfileLatency(doc, get_gpu(cfg.gpu), cfg.model_spec(), source=str(path)).describe()

    def canon(d: dict) -> str:
        return json.dumps({k: v for k, v in d.items() if k != "name"}, sort_keys=True,
                          default=str)  # fmt: skip

    if canon(now) == canon(json.loads(json.dumps(recorded, default=str))):
        return None, None
    return doc, (
        f"{run_dir}: the profile now at {path} is not the one the run recorded "
        f"({recorded.get('name', 'config.json latency_model')}, by content): re-simulated "
        f"and its iterations re-priced with {path}"
    )
