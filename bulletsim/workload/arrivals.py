"""Arrival processes: a trace's own timestamps, Poisson, gamma, and a rate profile.

Every process starts at t = 0 and returns sorted float64 seconds. Randomness comes only
from the `numpy.random.Generator` passed in. `num` and `duration_s` both cut the output
(the first limit reached wins); at least one must be given for synthetic processes.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 4096


def _cut(times: np.ndarray, num: int | None, duration_s: float | None) -> np.ndarray:
    if num is not None:
        times = times[:num]
    if duration_s is not None:
        times = times[times < duration_s]
    return times


def trace_arrivals(
    arrival_s: np.ndarray,
    time_scale: float = 1.0,
    num: int | None = None,
    duration_s: float | None = None,
) -> np.ndarray:
    """The trace's timestamps relative to the first, gaps times `time_scale`.

    Asking for more requests or a longer duration than the trace holds repeats it back to
    back, one period being its span plus one mean gap, so the real burst pattern survives.
    """
    times = (arrival_s - arrival_s[0]) * time_scale
    mean_gap = times[-1] / (len(times) - 1) if len(times) > 1 else time_scale
    period = times[-1] + mean_gap
    if duration_s is not None and not period > 0:
        raise ValueError(
            "duration_s: every trace arrival is at the same instant, so a duration cannot "
            "bound the count; give num_requests (-n)"
        )
    repeats = 1
    if num is not None:
        repeats = max(repeats, -(-num // len(times)))
    if duration_s is not None:
        repeats = max(repeats, int(duration_s // period) + 1)
    if repeats > 1:
        times = (times[None, :] + period * np.arange(repeats)[:, None]).ravel()
    return _cut(times, num, duration_s)


def _renewal(sample_gaps, num: int | None, duration_s: float | None) -> np.ndarray:
    """Cumulative sums of `sample_gaps(k)` from t = 0 until `num` or `duration_s` is reached."""
    assert num is not None or duration_s is not None
    if num is not None:
        return _cut(np.concatenate(([0.0], np.cumsum(sample_gaps(num - 1)))), num, duration_s)
    chunks = [np.zeros(1)]
    end = 0.0
    while end < duration_s:
        chunk = end + np.cumsum(sample_gaps(_CHUNK))
        chunks.append(chunk)
        end = chunk[-1]
    return _cut(np.concatenate(chunks), None, duration_s)


def poisson_arrivals(
    rng: np.random.Generator, rate: float, num: int | None = None, duration_s: float | None = None
) -> np.ndarray:
    """Poisson process at `rate` req/s (exponential gaps, CV 1)."""
    return _renewal(lambda k: rng.exponential(1.0 / rate, k), num, duration_s)


def gamma_arrivals(
    rng: np.random.Generator,
    rate: float,
    cv: float,
    num: int | None = None,
    duration_s: float | None = None,
) -> np.ndarray:
    """Gamma renewal process: mean gap 1/rate, gap std/mean = `cv` (cv > 1 is bursty)."""
    shape = 1.0 / cv**2
    return _renewal(lambda k: rng.gamma(shape, 1.0 / (shape * rate), k), num, duration_s)


def profile_arrivals(
    rng: np.random.Generator,
    counts: np.ndarray,
    bin_s: float,
    cv: float,
    num: int | None = None,
    duration_s: float | None = None,
) -> np.ndarray:
    """Arrivals that follow a binned rate profile (`counts` per `bin_s`), repeated as needed.

    A unit-rate gamma renewal process with CV `cv` in "operational time" is mapped through
    the profile's cumulative count (time rescaling): each bin gets its share of arrivals in
    expectation and bursts inside bins keep the trace's CV. Empty bins stay idle.
    """
    counts = np.asarray(counts, dtype=np.float64)
    cum = np.concatenate(([0.0], np.cumsum(counts)))
    total, period = cum[-1], len(counts) * bin_s
    num_ops, ops_duration = num, None
    if num is None:
        # Operational time of duration_s (plus slack for the shift to t = 0 below).
        cycles, rest = divmod(duration_s + period / len(counts), period)
        edges = np.arange(len(cum)) * bin_s
        ops_duration = cycles * total + float(np.interp(rest, edges, cum))
    ops = gamma_arrivals(rng, 1.0, cv, num_ops, ops_duration)
    cycle, within = np.divmod(ops, total)
    index = np.searchsorted(cum, within, side="right") - 1
    times = cycle * period + (index + (within - cum[index]) / counts[index]) * bin_s
    times = np.sort(times - times[0])
    return _cut(times, num, duration_s)
