"""Which requests a workload keeps: the ShareGPT benchmark filter, then the length cap.

Nothing is shortened silently: over-length requests are dropped, clipped or rejected as
`over_length` says, and every drop and clip is counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bulletsim.workload.sharegpt import sharegpt_keep


@dataclass(frozen=True, slots=True)
class KeptLengths:
    """The requests that survived, and how many were filtered, dropped for length or clipped."""

    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    index: np.ndarray  # positions of the survivors in the input arrays
    num_filtered: int
    num_over_length: int
    num_clipped: int


def apply_length_rules(
    prompt: np.ndarray,
    output: np.ndarray,
    sharegpt_filter: str | None,
    max_total_tokens: int | None,
    over_length: str,
    bos_counted: bool = False,
) -> KeptLengths:
    """Filter (`sharegpt_filter` None = not a ShareGPT trace), then cap prompt + output.

    `bos_counted`: the counts already include BOS (the filter then adds none).
    over_length: "drop" removes the request, "clip" shortens the prompt (to 1 token at least,
    then the output), "error" raises ValueError naming the first offender.
    """
    keep = (prompt >= 1) & (output >= 1)
    if sharegpt_filter is not None:
        keep &= sharegpt_keep(prompt, output, sharegpt_filter, bos_counted)
    num_filtered = int((~keep).sum())
    prompt, output = prompt.copy(), output.copy()
    num_over = num_clipped = 0
    if max_total_tokens is not None:
        over = keep & (prompt + output > max_total_tokens)
        if over.any() and over_length == "error":
            i = int(np.flatnonzero(over)[0])
            raise ValueError(
                f"request {i}: prompt {prompt[i]} + output {output[i]} tokens > the length limit "
                f"{max_total_tokens} (max_total_tokens or the model's context); set "
                "over_length to drop or clip"
            )
        if over_length == "drop":
            keep &= ~over
            num_over = int(over.sum())
        elif over_length == "clip":
            prompt[over] = np.maximum(1, max_total_tokens - output[over])
            output[over] = np.minimum(output[over], max_total_tokens - prompt[over])
            num_clipped = int(over.sum())
    index = np.flatnonzero(keep)
    return KeptLengths(prompt[index], output[index], index, num_filtered, num_over, num_clipped)
