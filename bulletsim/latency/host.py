"""Host (CPU) time of a serving engine's steps: launch-bound eager steps and inter-step gaps.

A GPU runs a step's kernels only as fast as the host enqueues them. An *eager* step (prefill,
mixed, or a prefill layer window) launches every kernel from Python, so on the device it lasts

    eager step (s) = max(GPU time, eager_fixed_s + launch_s * kernels_per_layer * layers)

(the first kernel starts when the first launch arrives; short steps wait for the host). A
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

from dataclasses import asdict, dataclass, field

GAP_KINDS = ("batch", "window", "graph")
KERNELS_PER_LAYER = 13  # counted in LiveModel.layer (see the module docstring)


@dataclass(frozen=True, slots=True)
class HostParams:
    """Host-side costs of an engine's steps (seconds); see the module docstring."""

    launch_s: float = 0.0  # CPU seconds per eager kernel launch
    eager_fixed_s: float = 0.0  # CPU seconds of an eager launch beyond its layers' kernels
    kernels_per_layer: int = KERNELS_PER_LAYER
    gap_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GAP_KINDS, 0.0))
    gap_per_seq_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GAP_KINDS, 0.0))
    gap_per_token_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GAP_KINDS, 0.0))
    source: dict = field(default_factory=dict)  # which live runs, fitted how, residuals

    def __post_init__(self) -> None:
        if min(self.launch_s, self.eager_fixed_s) < 0 or self.kernels_per_layer < 0:
            raise ValueError("host launch_s, eager_fixed_s and kernels_per_layer must be >= 0")
        for gaps in (self.gap_s, self.gap_per_seq_s, self.gap_per_token_s):
            bad = set(gaps) - set(GAP_KINDS)
            if bad:
                raise ValueError(f"unknown host gap kinds {sorted(bad)}; valid: {list(GAP_KINDS)}")
            if any(not isinstance(v, (int, float)) or not 0 <= v < 1 for v in gaps.values()):
                raise ValueError("host gaps must be seconds in [0, 1)")

    @property
    def layer_launch_s(self) -> float:
        """Host seconds to launch one eager decoder layer."""
        return self.launch_s * self.kernels_per_layer

    def eager_launch_s(self, num_layers: int) -> float:
        """Host seconds to enqueue an eager launch of `num_layers` layers."""
        return self.eager_fixed_s + self.layer_launch_s * num_layers

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
