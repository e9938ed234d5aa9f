"""The random-dataset length rules of vLLM and SGLang, bounds worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bulletsim.workload.synthetic import length_bounds, random_lengths


@pytest.mark.parametrize(
    ("length", "ratio", "convention", "bounds"),
    [
        (1024, 0.0, "vllm", (1024, 1024)),  # fixed
        (1024, 0.5, "vllm", (512, 1536)),  # floor(512), ceil(1536)
        (100, 0.25, "vllm", (75, 125)),
        (3, 0.9, "vllm", (1, 6)),  # floor(0.3) = 0 -> at least 1; ceil(5.7) = 6
        (1024, 0.0, "sglang", (1, 1024)),  # SGLang's default spans 1..L
        (1024, 0.5, "sglang", (512, 1024)),
        (1024, 1.0, "sglang", (1024, 1024)),  # fixed
    ],
)
def test_bounds(length, ratio, convention, bounds):
    assert length_bounds(length, ratio, convention) == bounds


@pytest.mark.parametrize(
    ("ratio", "convention", "message"),
    [
        (1.0, "vllm", r"must be in \[0, 1\) for the vllm convention"),
        (-0.1, "sglang", r"must be in \[0, 1\] for the sglang convention"),
        (0.5, "trt", "range_convention: unknown 'trt'; valid: vllm, sglang"),
    ],
)
def test_bad_ratios(ratio, convention, message):
    with pytest.raises(ValueError, match=message):
        length_bounds(100, ratio, convention)


def test_draws_fill_the_range_uniformly():
    rng = np.random.default_rng(0)
    p, o = random_lengths(rng, 200_000, 100, 10, 0.5, "vllm")
    assert (p.min(), p.max(), o.min(), o.max()) == (50, 150, 5, 15)
    assert p.mean() == pytest.approx(100, rel=0.005) and o.mean() == pytest.approx(10, rel=0.01)
    p, o = random_lengths(rng, 10, 64, 8, 0.0, "vllm")
    assert set(p) == {64} and set(o) == {8}
