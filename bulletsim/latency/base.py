"""The latency-model interface every engine and policy uses.

`predict(shape, num_sms, co_runner)` returns seconds for one unit of work on `num_sms` SMs,
optionally while `co_runner` runs on the other partition. Implementations: the analytic
SM-scaling roofline (`roofline.py`), a calibrated profile (`profile.py`) and a constant model
for tests (`constant.py`).

A model may also price the host's time between a lane's launches (`launch_gap_s`, see
`host.py`); engines ask for it through `launch_gap_fn`, so a model without it has no gaps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from bulletsim.core import CoRunner, WorkShape


@runtime_checkable
class LatencyModel(Protocol):
    """Predicts how long a unit of work takes on a partition of the GPU."""

    name: str  # e.g. "roofline", "profile:h200/llama-3.1-8b (measured)", "constant"
    num_layers: int  # layers of the model a full step runs (for layer windows)
    total_sms: int  # SMs of the GPU the model describes

    def predict(self, shape: WorkShape, num_sms: int, co_runner: CoRunner | None = None) -> float:
        """Seconds to run `shape` on `num_sms` SMs (1..total_sms), alone or beside `co_runner`."""
        ...

    def describe(self) -> dict:
        """Metadata for results files: kind, parameters, measured/derived provenance."""
        ...


def _no_gap(shape: WorkShape, first_layer: int) -> float:
    return 0.0


def launch_gap_fn(latency: LatencyModel) -> Callable[[WorkShape, int], float]:
    """`latency.launch_gap_s(shape, first_layer)` (host seconds a lane waits before launching
    `shape`, whose first layer is `first_layer`: 0 for a full step), or a function returning
    0 for a model that has no host terms."""
    return getattr(latency, "launch_gap_s", _no_gap)


def _no_host(shape: WorkShape) -> float:
    return 0.0


def host_launch_fn(latency: LatencyModel) -> Callable[[WorkShape], float]:
    """`latency.host_launch_s(shape)` (host seconds spent enqueueing `shape`'s kernels after
    its gap: an eager launch's), or a function returning 0 for a model without host terms."""
    return getattr(latency, "host_launch_s", _no_host)
