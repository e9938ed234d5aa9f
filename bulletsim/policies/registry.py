"""Policy names -> (parameter dataclass, constructor). Errors list the valid names.

The built-in policies are listed here, and their modules do not import this one (no
self-registration), so the import graph has no cycle. `register` adds a policy defined
outside the package (a plugin, a test); it must not be called from a built-in module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from bulletsim.policies.ablations import (
    STATIC_SPLIT_MECHANISM,
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
from bulletsim.policies.pdmux import PDMux, PDMuxSLO
from bulletsim.policies.pdmux_params import PDMuxParams, PDMuxSLOParams

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


def lanes_of(name: str) -> tuple[str, ...] | None:
    """The lanes policy `name` runs (e.g. ("main",) or ("prefill", "decode")); None for a
    name not built in."""
    return getattr(_BUILDERS.get(name), "lanes", None)


# Policies with SM partitions whose mechanism their design fixes (`--mechanism` is Bullet's
# parameter only): static-split masks whole TPCs (libsmctrl, ablations.py); pdmux and
# pdmux-slo choose among green-context splits (SGLang's PD multiplexing, pdmux.py).
FIXED_MECHANISMS: dict[str, str] = {
    "static-split": STATIC_SPLIT_MECHANISM,
    "pdmux": "green-ctx",
    "pdmux-slo": "green-ctx",
}
# Policies without SM partitions: what their lanes hold instead.
_UNPARTITIONED = {
    "chunked": "one lane on every SM",
    "prefill-first": "one lane on every SM",
    "naive": "both lanes on every SM at once",
}


def has_mechanism_param(name: str) -> bool:
    """True when policy `name` takes its SM partition mechanism as a parameter (Bullet)."""
    return "mechanism" in {f.name for f in dataclasses.fields(POLICY_PARAMS[name])}


def mechanism_of(name: str, params: Any) -> str | None:
    """The SM partition mechanism policy `name` runs with `params`: its parameter, the one its
    design fixes (FIXED_MECHANISMS), or None for a policy without SM partitions."""
    if has_mechanism_param(name):
        return params.mechanism
    return FIXED_MECHANISMS.get(name)


def mechanism_note(name: str) -> str:
    """Why `--mechanism` does not apply to policy `name` (one clause)."""
    if name in FIXED_MECHANISMS:
        return f"{name} partitions SMs with {FIXED_MECHANISMS[name]}, fixed by its design"
    return f"{name} runs {_UNPARTITIONED.get(name, 'without SM partitions')}"


def partitioning_of(name: str, params: Any, gpu: Any, total_sms: int) -> Any:
    """The `partitioning.Partitioning` policy `name` runs with on `gpu` (a GPUSpec or None),
    or None for a policy without SM partitions."""
    from bulletsim.partitioning import resolve_partitioning

    mech = mechanism_of(name, params)
    if mech is None:
        return None
    if has_mechanism_param(name):
        return resolve_partitioning(mech, gpu, total_sms, getattr(params, "remask_us", None))
    part = resolve_partitioning(mech, gpu, total_sms, fixed=True)
    step, low = getattr(params, "step_sms", 0), getattr(params, "min_sms", 0)  # pdmux's own
    return dataclasses.replace(part, unit_sms=step or part.unit_sms, min_sms=low or part.min_sms)


def register(name: str, params_cls: type, builder: Callable[[Any], Policy]) -> None:
    """Add a policy defined outside this package under `name`."""
    POLICY_PARAMS[name] = params_cls
    _BUILDERS[name] = builder


def policy_names() -> tuple[str, ...]:
    return tuple(POLICY_PARAMS)


def unused_policy_sections(table: dict, policies: tuple[str, ...]) -> list[str]:
    """The keys of `table` (a config's top level: `--set`, a config file, a design's [base])
    that name a registered policy (any case) not in `policies`: sections that would do nothing."""
    names = policy_names()
    return [
        k for k in table if isinstance(k, str) and k.lower() in names and k.lower() not in policies
    ]


def policy_choices() -> str:
    """The policy names as `--policy` takes them, for help texts: "chunked, chunked-N (chunk
    size N), bullet, ..." (every registered policy, so a new one is listed everywhere)."""
    rest = [n for n in POLICY_PARAMS if n != "chunked"]
    return ", ".join(["chunked", "chunked-N (chunk size N)", *rest])


def make_policy(name: str, params: Any = None) -> Policy:
    if name not in _BUILDERS:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(POLICY_PARAMS)}")
    return _BUILDERS[name](params if params is not None else POLICY_PARAMS[name]())
