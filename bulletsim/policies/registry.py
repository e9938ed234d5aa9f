"""Policy names -> (parameter dataclass, constructor). Errors list the valid names.

The built-in policies are listed here, and their modules do not import this one (no
self-registration), so the import graph has no cycle. `register` adds a policy defined
outside the package (a plugin, a test); it must not be called from a built-in module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bulletsim.policies.ablations import (
    NaiveConcurrency,
    NaiveParams,
    PrefillFirst,
    PrefillFirstParams,
    StaticSplit,
    StaticSplitParams,
)
from bulletsim.policies.base import Policy
from bulletsim.policies.bullet import Bullet, BulletParams
from bulletsim.policies.chunked import ChunkedParams, ChunkedPrefill
from bulletsim.policies.pdmux import PDMux, PDMuxParams, PDMuxSLO, PDMuxSLOParams

# name -> parameter dataclass (its TOML section is [<name>])
POLICY_PARAMS: dict[str, type] = {
    "chunked": ChunkedParams,
    "bullet": BulletParams,
    "static-split": StaticSplitParams,
    "naive": NaiveParams,
    "prefill-first": PrefillFirstParams,
    "pdmux": PDMuxParams,
    "pdmux-slo": PDMuxSLOParams,
}
_BUILDERS: dict[str, Callable[[Any], Policy]] = {
    "chunked": ChunkedPrefill,
    "bullet": Bullet,
    "static-split": StaticSplit,
    "naive": NaiveConcurrency,
    "prefill-first": PrefillFirst,
    "pdmux": PDMux,
    "pdmux-slo": PDMuxSLO,
}


def register(name: str, params_cls: type, builder: Callable[[Any], Policy]) -> None:
    """Add a policy defined outside this package under `name`."""
    POLICY_PARAMS[name] = params_cls
    _BUILDERS[name] = builder


def policy_names() -> tuple[str, ...]:
    return tuple(POLICY_PARAMS)


def make_policy(name: str, params: Any = None) -> Policy:
    if name not in _BUILDERS:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(POLICY_PARAMS)}")
    return _BUILDERS[name](params if params is not None else POLICY_PARAMS[name]())
