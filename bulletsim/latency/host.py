"""Host (CPU) time of a serving engine's steps: launch-bound eager steps and inter-step gaps.

A GPU runs a step's kernels only as fast as the host enqueues them. An *eager* step (prefill,
mixed, or a prefill layer window) launches every kernel from Python, so on the device it lasts

    eager step (s) = max(GPU time, eager_fixed_s + launch_s * kernels_per_layer * layers)

(the first kernel starts when the first launch arrives; short steps wait for the host), or,
when the profile has `eager_overlap_exp` k, the k-norm of the two

    eager step (s) = (GPU time ** k + host launch time ** k) ** (1 / k)

k -> infinity is the max above (host and GPU overlap perfectly: the longer hides the other);
k = 1 is their sum (no overlap). Measured on the H200 live runs: an eager mixed step of a
few hundred prompt tokens lasted 17-18 ms on the device while its host enqueue took 12 ms
and its kernels ~14 ms (results/live-h200/NOTES.md, session S3): the host runs ahead of the
GPU only between the long kernels (GEMMs, attention) and the GPU waits on the host at every
short one (norms, RoPE, SiLU), so the two only partly overlap. k is fitted on live runs. A
decode step replayed as a CUDA graph is one launch: its span is the GPU time. Between two
back-to-back launches of a lane the host also commits the finished step and prepares the next
one (batch metadata, attention plan, copies); the engine measured no overlap of that with the
GPU, so a lane waits gap_s[kind] + gap_per_seq_s[kind] * (sequences in the launch) +
gap_per_token_s[kind] * (prefill tokens in the launch: batch metadata grows with them), where
kind is

    "batch"   an eager launch that starts a batch (a full step or a first layer window)
    "window"  a later layer window of the same batch (nothing to prepare)
    "graph"   a graph-replayed decode step

(live runs on an H200 showed ~0.5-1.5 ms fixed plus ~5-10 us per request of the batch).

`HostParams` lives in a profile's `host` section (optional: a profile without one has no host
terms and predicts exactly as before). Its numbers are fitted on live runs by
`bulletsim calibrate --from-live`, which writes where they came from into `source`. Only the
product launch_s * kernels_per_layer is identifiable from step times; `kernels_per_layer` is
the count of launches in the live engine's decoder layer (`bulletsim/live/gpu/model.py`
`LiveModel.layer`: 2 add+RMSNorm, 4 GEMMs, RoPE, 2 KV index_copy, the q copy, attention, and
SiLU*mul = 12, plus flashinfer's own launch = 13).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

GAP_KINDS = ("batch", "window", "graph")
KERNELS_PER_LAYER = 13  # counted in LiveModel.layer (see the module docstring)
# the k-norm is within 1.1% of the max at k = 64 (2 ** (1 / 64)): the largest k a fit needs
MAX_OVERLAP_EXP = 64.0


def overlap(gpu_s, launch_s, k: float | None):
    """An eager step's seconds from its GPU time and host launch time (floats or numpy
    arrays, >= 0): max(gpu_s, launch_s) when `k` is None, else their k-norm
    (gpu_s ** k + launch_s ** k) ** (1 / k), k >= 1 (see the module docstring)."""
    if k is None or math.isinf(k):
        return np.maximum(gpu_s, launch_s)
    top = np.maximum(gpu_s, launch_s)
    safe = np.where(top > 0, top, 1.0)
    out = top * ((gpu_s / safe) ** k + (launch_s / safe) ** k) ** (1.0 / k)
    return out if np.ndim(out) else float(out)


@dataclass(frozen=True, slots=True)
class HostParams:
    """Host-side costs of an engine's steps (seconds); see the module docstring."""

    launch_s: float = 0.0  # CPU seconds per eager kernel launch
    eager_fixed_s: float = 0.0  # CPU seconds of an eager launch beyond its layers' kernels
    kernels_per_layer: int = KERNELS_PER_LAYER
    eager_overlap_exp: float | None = None  # k of the k-norm; None: max (module docstring)
    gap_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GAP_KINDS, 0.0))
    gap_per_seq_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GAP_KINDS, 0.0))
    gap_per_token_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GAP_KINDS, 0.0))
    source: dict = field(default_factory=dict)  # which live runs, fitted how, residuals

    def __post_init__(self) -> None:
        for name in ("launch_s", "eager_fixed_s", "kernels_per_layer"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"host {name} must be a finite number >= 0, got {v!r}")
        for name in ("gap_s", "gap_per_seq_s", "gap_per_token_s"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"host {name} must map gap kinds {list(GAP_KINDS)} to seconds")
        if min(self.launch_s, self.eager_fixed_s) < 0 or self.kernels_per_layer < 0:
            raise ValueError("host launch_s, eager_fixed_s and kernels_per_layer must be >= 0")
        k = self.eager_overlap_exp
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, float))
                              or not 1.0 <= k <= MAX_OVERLAP_EXP):  # fmt: skip
            raise ValueError(
                f"host eager_overlap_exp must be a number in [1, {MAX_OVERLAP_EXP:g}] or "
                f"absent (max), got {k!r}"
            )
        for name in ("gap_s", "gap_per_seq_s", "gap_per_token_s"):
            gaps = getattr(self, name)
            bad = set(gaps) - set(GAP_KINDS)
            if bad:
                raise ValueError(f"unknown host gap kinds {sorted(bad)}; valid: {list(GAP_KINDS)}")
            for kind, v in gaps.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                    raise ValueError(f"host {name}[{kind!r}] must be seconds in [0, 1), got {v!r}")

    @property
    def layer_launch_s(self) -> float:
        """Host seconds to launch one eager decoder layer."""
        return self.launch_s * self.kernels_per_layer

    def eager_launch_s(self, num_layers: int) -> float:
        """Host seconds to enqueue an eager launch of `num_layers` layers."""
        return self.eager_fixed_s + self.layer_launch_s * num_layers

    def eager_step_s(self, gpu_s: float, num_layers: int) -> float:
        """Device seconds of an eager launch of `num_layers` layers whose kernels take
        `gpu_s`: `overlap` of the GPU time and the host launch time."""
        return float(overlap(gpu_s, self.eager_launch_s(num_layers), self.eager_overlap_exp))

    def gap(self, kind: str, num_seqs: int = 0, prefill_tokens: int = 0) -> float:
        """Host seconds before a launch of `kind` over `num_seqs` sequences, `prefill_tokens`
        of them new prompt tokens."""
        return (
            self.gap_s.get(kind, 0.0)
            + self.gap_per_seq_s.get(kind, 0.0) * num_seqs
            + self.gap_per_token_s.get(kind, 0.0) * prefill_tokens
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("gap_s", "gap_per_seq_s", "gap_per_token_s"):
            d[key] = {k: float(getattr(self, key).get(k, 0.0)) for k in GAP_KINDS}
        return d


def host_from_dict(d: dict | None) -> HostParams | None:
    """`HostParams` of a profile's `host` section (None when absent); ValueError naming the
    unknown keys or bad values."""
    if d is None:
        return None
    valid = set(HostParams.__dataclass_fields__)
    unknown = set(d) - valid
    if unknown:
        raise ValueError(f"unknown host parameters {sorted(unknown)}; valid: {sorted(valid)}")
    try:
        return HostParams(**d)
    except TypeError as e:
        raise ValueError(f"bad host section: {e}") from None


def gap_kind(prefill_tokens: int, first_layer: int) -> str:
    """Which host gap precedes a launch: a graph decode step, a later window, or a batch."""
    if not prefill_tokens:
        return "graph"
    return "window" if first_layer > 0 else "batch"
