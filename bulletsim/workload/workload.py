"""The public result of loading a workload: requests plus where they came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bulletsim.core import RequestSpec


@dataclass(frozen=True, slots=True)
class Workload:
    """Requests sorted by arrival (ids 0..n-1) and an account of how they were made.

    `source` is the real file's path, or "embedded model <json> (computed from <file>)".
    `notes` are human-readable lines for the CLI (fallbacks, filters, resampling).
    `num_dropped` counts every request removed (empty rows, filters, over the length limit);
    `num_over_length` those removed because prompt + output exceeded `length_limit_tokens`
    (max_total_tokens or the model's context, whichever is smaller; None = no limit applied).
    """

    name: str
    source: str
    is_embedded_default: bool
    requests: tuple[RequestSpec, ...]
    num_dropped: int
    num_clipped: int
    notes: tuple[str, ...]
    num_over_length: int = 0
    length_limit_tokens: int | None = None
    convention: str = ""  # the workload convention's one-line summary (conventions.py)


def make_requests(
    arrival_s: np.ndarray, prompt_tokens: np.ndarray, output_tokens: np.ndarray
) -> tuple[RequestSpec, ...]:
    """RequestSpecs sorted by arrival (stable), numbered 0..n-1 in that order."""
    order = np.argsort(arrival_s, kind="stable")
    times = arrival_s[order].tolist()
    prompts = prompt_tokens[order].tolist()
    outputs = output_tokens[order].tolist()
    return tuple(
        RequestSpec(i, t, p, o)
        for i, (t, p, o) in enumerate(zip(times, prompts, outputs, strict=True))
    )
