"""Arrival processes: rates, CVs, cuts, time scaling, tiling, rate profiles, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from bulletsim.workload.arrival_profile import gap_cv
from bulletsim.workload.arrivals import (
    gamma_arrivals,
    poisson_arrivals,
    profile_arrivals,
    trace_arrivals,
)


def test_poisson_rate_and_cv():
    t = poisson_arrivals(np.random.default_rng(1), 10.0, num=40_000)
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0) and len(t) == 40_000
    assert len(t) / t[-1] == pytest.approx(10.0, rel=0.02)
    assert gap_cv(t) == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("cv", [0.5, 3.0])
def test_gamma_cv(cv):
    t = gamma_arrivals(np.random.default_rng(2), 5.0, cv, num=60_000)
    assert len(t) / t[-1] == pytest.approx(5.0, rel=0.04)
    assert gap_cv(t) == pytest.approx(cv, rel=0.05)


def test_duration_cut_and_both_limits():
    t = poisson_arrivals(np.random.default_rng(3), 50.0, duration_s=100.0)
    assert t.max() < 100.0 and len(t) == pytest.approx(5000, rel=0.05)
    assert len(poisson_arrivals(np.random.default_rng(3), 50.0, 10, 100.0)) == 10
    assert len(gamma_arrivals(np.random.default_rng(3), 1.0, 2.0, 10_000, 5.0)) < 100


def test_same_seed_same_arrivals():
    a = gamma_arrivals(np.random.default_rng(7), 3.0, 2.0, duration_s=50.0)
    b = gamma_arrivals(np.random.default_rng(7), 3.0, 2.0, duration_s=50.0)
    c = gamma_arrivals(np.random.default_rng(8), 3.0, 2.0, duration_s=50.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c[: len(a)])


def test_trace_timestamps_time_scale_and_tiling():
    stamps = np.array([10.0, 11.0, 13.0, 16.0])
    assert trace_arrivals(stamps).tolist() == [0.0, 1.0, 3.0, 6.0]
    assert trace_arrivals(stamps, 0.5).tolist() == [0.0, 0.5, 1.5, 3.0]
    assert trace_arrivals(stamps, num=2).tolist() == [0.0, 1.0]
    assert trace_arrivals(stamps, duration_s=2.0).tolist() == [0.0, 1.0]
    # Period = span 6 s + mean gap 2 s.
    assert trace_arrivals(stamps, num=6).tolist() == [0.0, 1.0, 3.0, 6.0, 8.0, 9.0]
    assert trace_arrivals(stamps, duration_s=12.0).tolist() == [0.0, 1.0, 3.0, 6.0, 8.0, 9.0, 11.0]


def test_profile_keeps_idle_bins_and_totals():
    counts = np.array([100, 0, 300])
    t = profile_arrivals(np.random.default_rng(4), counts, 10.0, 1.0, duration_s=3000.0)
    within = t % 30.0
    assert not np.any((within >= 10.0) & (within < 20.0))  # the empty bin stays empty
    assert len(t) / 3000.0 == pytest.approx(400 / 30, rel=0.03)
    first, last = (within < 10).sum(), (within >= 20).sum()
    assert last / first == pytest.approx(3.0, rel=0.1)
