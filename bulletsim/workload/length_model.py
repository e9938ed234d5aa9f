"""A compact joint model of (prompt, output) lengths: two quantile tables + an empirical copula.

Marginals are inverse CDFs tabulated at fixed probabilities (dense in the upper tail, where
the mean lives) and interpolated linearly. Dependence is an empirical copula: counts of
requests on a K x K grid of (prompt rank, output rank) cells. Sampling picks a cell by its
count, a uniform point inside it, and maps both coordinates through the marginals. Unlike a
Gaussian copula this keeps non-linear structure such as arXiv's total <= 4,096 cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# 0, 1/256, ..., 1 plus upper-tail points down to 1e-4 of the mass.
_TAIL = 1.0 - np.array([3e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4])
PROBS = np.unique(np.concatenate((np.linspace(0.0, 1.0, 257), _TAIL)))


@dataclass(frozen=True, slots=True)
class LengthModel:
    """Quantile tables of prompt and output tokens at `probs`, and the copula grid counts."""

    probs: np.ndarray
    prompt_quantiles: np.ndarray
    output_quantiles: np.ndarray
    copula_counts: np.ndarray  # (K, K): rows = prompt rank cells, columns = output rank cells

    def sample(self, rng: np.random.Generator, num: int) -> tuple[np.ndarray, np.ndarray]:
        """`num` (prompt, output) pairs as int64 arrays (may contain 0: callers filter)."""
        grid = self.copula_counts.shape[0]
        weights = self.copula_counts.ravel() / self.copula_counts.sum()
        cells = rng.choice(len(weights), size=num, p=weights)
        jitter = rng.random((2, num))
        u_prompt = (cells // grid + jitter[0]) / grid
        u_output = (cells % grid + jitter[1]) / grid
        prompt = np.rint(np.interp(u_prompt, self.probs, self.prompt_quantiles))
        output = np.rint(np.interp(u_output, self.probs, self.output_quantiles))
        return prompt.astype(np.int64), output.astype(np.int64)

    def to_json(self) -> dict:
        return {
            "probs": [round(float(p), 6) for p in self.probs],
            "prompt_quantiles": [round(float(q), 1) for q in self.prompt_quantiles],
            "output_quantiles": [round(float(q), 1) for q in self.output_quantiles],
            "copula_counts": self.copula_counts.astype(int).tolist(),
        }

    @classmethod
    def from_json(cls, doc: dict) -> LengthModel:
        return cls(
            np.asarray(doc["probs"], dtype=np.float64),
            np.asarray(doc["prompt_quantiles"], dtype=np.float64),
            np.asarray(doc["output_quantiles"], dtype=np.float64),
            np.asarray(doc["copula_counts"], dtype=np.int64),
        )


def _rank_cells(values: np.ndarray, grid: int) -> np.ndarray:
    # Ordinal ranks (ties broken by position) give every cell row the same mass, so the
    # copula's marginals are uniform and the quantile tables alone set the marginals.
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks * grid // len(values)


def fit_length_model(
    prompt: np.ndarray, output: np.ndarray, probs: np.ndarray = PROBS
) -> LengthModel:
    """Fit the model to real per-request counts; the grid has ~10+ requests per cell.

    `probs`: where the quantile tables are taken (default `PROBS`; a short stretch of a
    trace with a few hundred requests needs far fewer, see `build_defaults.SEGMENT_PROBS`).
    """
    grid = int(np.clip(np.sqrt(len(prompt) / 10), 4, 24))
    cells = _rank_cells(prompt, grid) * grid + _rank_cells(output, grid)
    counts = np.bincount(cells, minlength=grid * grid).reshape(grid, grid)
    return LengthModel(
        probs,
        np.quantile(prompt.astype(np.float64), probs),
        np.quantile(output.astype(np.float64), probs),
        counts,
    )
