"""Policy names -> (parameter dataclass, constructor). Errors list the valid names."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from bulletsim.policies.base import Policy
from bulletsim.policies.chunked import ChunkedParams, ChunkedPrefill

# name -> parameter dataclass (its TOML section is [<name>])
POLICY_PARAMS: dict[str, type] = {
    "chunked": ChunkedParams,
}
_BUILDERS: dict[str, Callable[[Any], Policy]] = {
    "chunked": ChunkedPrefill,
}


def register(name: str, params_cls: type, builder: Callable[[Any], Policy]) -> None:
    POLICY_PARAMS[name] = params_cls
    _BUILDERS[name] = builder


def policy_names() -> tuple[str, ...]:
    _load_builtin()
    return tuple(POLICY_PARAMS)


def make_policy(name: str, params: Any = None) -> Policy:
    _load_builtin()
    if name not in _BUILDERS:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(POLICY_PARAMS)}")
    return _BUILDERS[name](params if params is not None else POLICY_PARAMS[name]())


def _load_builtin() -> None:
    """Import the policy modules that register themselves (Bullet, the ablations, PDMux)."""
    for module in ("bulletsim.policies.bullet", "bulletsim.policies.pdmux"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:  # not written yet in a partial checkout
            if e.name != module:
                raise
