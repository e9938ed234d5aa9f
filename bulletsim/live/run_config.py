"""The RunConfig a live run was made with, rebuilt from its config.json (`live_config`).

The check of a run folder (`rundir.check_live_run`) builds it before any simulation, so a
config.json the simulator would refuse (a wrong type, an unknown key, a value out of range,
an SLO <= 0) fails up front, the error prefixed by the file's path.
"""

from __future__ import annotations

import math
from pathlib import Path

from bulletsim.config import RunConfig, load_config
from bulletsim.live.offered import offered

# pdmux-slo's config.json listed these mainline table parameters (with no effect at these
# values) until issue 17 removed them from its parameters
_MAINLINE_ONLY = {"sm_group_num": 8, "manual_divisions": "", "decode_bs_divisor": 36}


def live_config(meta: dict, path: Path | None = None) -> RunConfig:
    """The RunConfig a live run was made with (`meta`: its config.json). With `path` (that
    file), a config the simulator refuses is a ValueError whose one line starts with it."""
    if path is None:
        return _live_config(meta)
    try:
        return _live_config(meta)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    except (KeyError, TypeError, AttributeError) as e:  # a section missing or not a table
        raise ValueError(f"{path} is not a run's config ({type(e).__name__}: {e})") from None


def _live_config(meta: dict) -> RunConfig:
    data = dict(meta["config"])
    wl = data["workload"] = dict(data["workload"])
    if wl.get("arrival") != "gamma":  # results written before cv became gamma-only
        wl.pop("cv", None)
    if wl.get("rate") is None and offered(meta)[1] == math.inf:  # JSON wrote --rate inf null
        wl["rate"] = math.inf
    params = data.pop("policy_params", {}) or {}
    slo = params.get("pdmux-slo")
    if isinstance(slo, dict):  # written before issue 17: mainline's table keys, at defaults
        params = {**params, "pdmux-slo": {
            k: v for k, v in slo.items() if _MAINLINE_ONLY.get(k, object()) != v}}  # fmt: skip
    data.update(params)
    return load_config(None, data)
