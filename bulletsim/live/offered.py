"""What load a live run offered, from its config.json: the rate its arrivals were drawn at
(`--rate R`, inf for all at once, or the rate a Poisson/gamma process chose without --rate:
the trace's mean or its default, as the workload's note records it), a closed loop of N
requests in flight (`--max-concurrency N`), or a replayed trace's own timestamps."""

from __future__ import annotations

import math
import re

# workload.loader._rate's note: "<process> at 5.0 req/s", "... at the trace's mean rate,
# 3.210 req/s", "... at splitwise's default 19.0 req/s", "...: every request arrives at t = 0"
_RATE_NOTE = re.compile(r"arrivals(?: \(cv [^)]*\))? at (?:the trace's mean rate, |\S+ default )?"
                        r"([0-9.eE+-]+) req/s")  # fmt: skip
_INF_NOTE = "every request arrives at t = 0"


def offered(meta: dict) -> tuple[str, float | None]:
    """(label, rate in req/s) of the load a run offered: ("5", 5.0), ("inf", inf),
    ("closed-loop 8", None), ("trace", None) for a replayed trace's timestamps. `meta`: the
    run's config.json."""
    wl = meta["config"]["workload"]
    notes = [str(n) for n in (meta.get("workload") or {}).get("notes", [])]
    rate = wl.get("rate")
    if rate is None:
        if any(_INF_NOTE in n for n in notes):
            rate = math.inf
        else:
            found = [float(m.group(1)) for n in notes if (m := _RATE_NOTE.search(n))]
            rate = found[0] if found else None
    closed = wl.get("max_concurrency")
    if closed is not None:  # the loop, not the arrival rate, sets the load
        at = f" ({float(rate):g} req/s)" if rate is not None and math.isfinite(rate) else ""
        return f"closed-loop {closed}{at}", None
    if rate is None:
        return "trace", None
    return format(float(rate), "g"), float(rate)
