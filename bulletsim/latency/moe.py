"""Mixture-of-experts load: how tokens spread over experts, and what the busiest GPU must run.

A MoE layer's cost is not set by the token count alone: each token picks `k` of `E` experts
(Qwen3-235B-A22B: 8 of 128, `bulletsim.models`), so the work per expert and per GPU is a
random variable, and the layer finishes when the busiest GPU does. This module turns a token
count into the expected load of that GPU under a *routing distribution*; `ops.linear_ops`
prices the load with the roofline and a calibrated profile refines it (measured per-GPU MoE
kernels, `calibrate/moe_model.py`). Pure numpy/scipy: no torch, no simpy.

Routing distributions (`parse_routing`; the calibrator draws its token counts from the same):
- `uniform`: every expert equally likely; a token's k experts are k distinct draws.
- `zipf:S`: expert popularity w_i ~ 1 / i^S over popularity ranks i = 1..E, ranks assigned
  to expert ids by a permutation seeded with `seed` (so a GPU under EP holds a random mix of
  popular and rare experts); a token's k experts are drawn without replacement with
  probability proportional to w (Plackett-Luce, sampled exactly with Gumbel top-k). The
  project's skewed reference is `zipf:0.6` (SKEWED): a chosen parameter, not a measured
  router; its busiest expert gets ~4x the mean load (`expert_pick_probs`).

Layouts (`ExpertLayout`): `ep == 1` (SGLang's default, what `ModelSpec.tp` shards): every GPU
holds a 1/tp slice of every expert and runs all T*k token copies; `ep == tp`: GPU r holds
whole experts [r*E/ep, (r+1)*E/ep) and runs only the copies routed there, and the all-reduce
that ends the layer waits for the most loaded GPU. Grouped GEMM kernels pad each expert's rows
to the row tile (`tile_m`), which is what a skewed load costs *inside* one GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ROUTING_KINDS = ("uniform", "zipf")
# Rows of one tile of a grouped GEMM, the unit an expert's rows are padded to. Assumption:
# kernels size the row tile to the rows per expert (tuned fused-MoE configs are tables from
# batch size to tile; CUTLASS grouped GEMMs pick among 64/128-row tiles), so the model takes
# the smallest power of two >= the mean rows per touched expert, within [16, 128]. A fixed
# 128 made a decode batch of 64 on TP 8 (4 rows per expert) 32x padded and compute-bound on
# an H20; the measured profile carries the real kernel's padding.
MOE_TILE_M = 128
MOE_MIN_TILE_M = 16


def row_tile(rows_per_expert: float) -> int:
    """The padding tile for a mean of `rows_per_expert` rows (see MOE_TILE_M)."""
    tile = MOE_MIN_TILE_M
    while tile < MOE_TILE_M and tile < rows_per_expert:
        tile *= 2
    return tile


# The routing forms a user may give (every error about a routing spec names them).
ROUTING_FORMS = "uniform, zipf:S, zipf:S:SEED (S in (0, 4], SEED an integer >= 0)"
_MC_TOKENS = 32768  # Monte Carlo tokens behind a skewed distribution's pick probabilities
_MAX_DRAWS = 1024  # normal draws behind E[max over GPUs] (fixed seed: deterministic)


@dataclass(frozen=True, slots=True)
class Routing:
    """A distribution of expert choices. `exponent` is zipf's S; `seed` fixes which expert
    id gets which popularity rank (uniform ignores both)."""

    kind: str = "uniform"
    exponent: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ROUTING_KINDS:
            raise ValueError(f"unknown routing {self.kind!r}; valid: {ROUTING_FORMS}")
        if self.kind == "zipf" and not 0.0 < self.exponent <= 4.0:
            raise ValueError(
                f"zipf exponent must be in (0, 4], got {self.exponent:g}; valid: {ROUTING_FORMS}"
            )
        if self.seed < 0:  # numpy's generators take non-negative seeds only
            raise ValueError(f"zipf seed must be >= 0, got {self.seed}; valid: {ROUTING_FORMS}")

    @property
    def name(self) -> str:
        return "uniform" if self.kind == "uniform" else f"zipf:{self.exponent:g}"

    def popularity(self, num_experts: int) -> np.ndarray:
        """Weights per expert id (sum 1) that a token's picks are proportional to."""
        if self.kind == "uniform":
            return np.full(num_experts, 1.0 / num_experts)
        w = 1.0 / np.arange(1, num_experts + 1, dtype=np.float64) ** self.exponent
        w = w[np.random.default_rng(self.seed).permutation(num_experts)]
        return w / w.sum()

    def sample(self, num_tokens: int, num_experts: int, k: int, rng: np.random.Generator):
        """Expert ids [num_tokens, k] (distinct per token), drawn with `rng`."""
        if num_tokens == 0:
            return np.zeros((0, k), dtype=np.int64)
        logp = np.log(self.popularity(num_experts))
        keys = logp[None, :] + rng.gumbel(size=(num_tokens, num_experts))
        return np.argpartition(-keys, k - 1, axis=1)[:, :k].astype(np.int64)

    def counts(self, num_tokens: int, num_experts: int, k: int, rng: np.random.Generator):
        """Token copies per expert [num_experts] for `num_tokens` tokens (sums to T*k)."""
        ids = self.sample(num_tokens, num_experts, k, rng)
        return np.bincount(ids.ravel(), minlength=num_experts)


UNIFORM = Routing()
SKEWED = Routing("zipf", 0.6)


def parse_routing(spec: str) -> Routing:
    """`uniform` or `zipf:S` (optionally `zipf:S:SEED`); one-line ValueError otherwise."""
    parts = spec.strip().lower().split(":")
    if parts == ["uniform"]:
        return UNIFORM
    if parts[0] == "zipf" and len(parts) in (2, 3):
        try:
            seed = int(parts[2]) if len(parts) == 3 else 0
            return Routing("zipf", float(parts[1]), seed)
        except ValueError as e:
            if "zipf " in str(e):  # the exponent's or the seed's range
                raise
    raise ValueError(f"unknown routing {spec!r}; valid: {ROUTING_FORMS}")


@lru_cache(maxsize=64)
def _pick_stats(routing: Routing, num_experts: int, k: int, ep: int):
    """(pick probability per expert [E], variance per token of each EP group's pick count
    [ep]): exact for uniform, else Monte Carlo over `_MC_TOKENS` tokens (seed 1)."""
    g = num_experts // ep
    if routing.kind == "uniform":
        pi = np.full(num_experts, k / num_experts)
        # picks in one group of g experts: hypergeometric (k draws from E, g successes)
        var = k * (g / num_experts) * (1 - g / num_experts) * (num_experts - k)
        var /= max(num_experts - 1, 1)
        return pi, np.full(ep, var)
    ids = routing.sample(_MC_TOKENS, num_experts, k, np.random.default_rng(1))
    pi = np.bincount(ids.ravel(), minlength=num_experts) / _MC_TOKENS
    per_group = np.zeros((_MC_TOKENS, ep))
    np.add.at(per_group, (np.repeat(np.arange(_MC_TOKENS), k), (ids // g).ravel()), 1.0)
    return pi, per_group.var(axis=0)


def expert_pick_probs(routing: Routing, num_experts: int, k: int) -> np.ndarray:
    """Probability that one token picks each expert (sums to k)."""
    return _pick_stats(routing, num_experts, k, 1)[0].copy()


@lru_cache(maxsize=1)
def _normal_draws() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((_MAX_DRAWS, 64))


def expected_tiles(num_tokens: int, pi: np.ndarray, tile_m: int) -> float:
    """E[sum over experts of ceil(n_e / tile_m)] with n_e ~ Binomial(T, pi_e) (exact:
    E[ceil(n/B)] = sum_j P(n > j B))."""
    from scipy.stats import binom

    if num_tokens <= 0:
        return 0.0
    j = np.arange(math.ceil(num_tokens / tile_m)) * tile_m
    return float(binom.sf(j[None, :], num_tokens, pi[:, None]).sum())


@dataclass(frozen=True, slots=True)
class ExpertLoad:
    """What the busiest GPU's grouped GEMMs run in one MoE layer (expected values).

    copies: token copies (rows) it multiplies; padded_rows: rows after padding every expert
    to the row tile `tile_m`; experts_touched: experts with at least one row (their weights
    are read); mean_copies: the average over GPUs (copies / mean_copies is the EP
    imbalance)."""

    copies: float
    padded_rows: float
    experts_touched: float
    mean_copies: float
    tile_m: int = MOE_TILE_M

    @property
    def imbalance(self) -> float:
        return self.copies / self.mean_copies if self.mean_copies else 1.0


@lru_cache(maxsize=65536)
def expert_load(
    num_tokens: int,
    num_experts: int,
    k: int,
    ep: int,
    routing: Routing,
    tile_m: int | None = None,
) -> ExpertLoad:
    """Expected load of the busiest GPU for `num_tokens` tokens routed top-`k` of
    `num_experts` over `ep` expert-parallel GPUs (1 = every GPU runs every expert's slice).

    EP: GPU r's copies L_r are a sum of T i.i.d. per-token counts, so ~Normal(T m_r, T v_r);
    E[max_r L_r] is averaged over 1024 fixed normal draws. The busiest GPU is taken to hold
    the experts of the group with the largest mean (all equal when uniform). `tile_m`
    None: `row_tile` of the busiest GPU's mean rows per touched expert.
    """
    if num_experts % ep:
        raise ValueError(f"ep={ep} must divide num_experts={num_experts}")
    if num_tokens <= 0:
        return ExpertLoad(0.0, 0.0, 0.0, 0.0)
    pi, var = _pick_stats(routing, num_experts, k, ep)
    t = num_tokens
    touched_each = 1.0 - (1.0 - pi) ** t
    if ep == 1:
        copies, touched = float(t * k), float(touched_each.sum())
        tm = tile_m or row_tile(copies / touched)
        padded = tm * expected_tiles(t, pi, tm)
        return ExpertLoad(copies, padded, touched, copies, tm)
    g = num_experts // ep
    means = t * pi.reshape(ep, g).sum(axis=1)
    sd = np.sqrt(t * var)
    z = _normal_draws()[:, :ep]
    copies = float(np.maximum(means[None, :] + sd[None, :] * z, 0.0).max(axis=1).mean())
    r = int(np.argmax(means))
    mine = slice(r * g, (r + 1) * g)
    touched = float(touched_each[mine].sum())
    tm = tile_m or row_tile(copies / max(touched, 1e-9))
    pad = tm * expected_tiles(t, pi[mine], tm) - float(means[r])
    return ExpertLoad(copies, copies + pad, touched, t * k / ep, tm)
