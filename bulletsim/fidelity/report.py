"""Terminal report of a fidelity Comparison (a rich table, sim beside measured)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bulletsim.fidelity.compare import LATENCY_METRICS, STATS, Comparison

_RATES = (
    ("throughput_req_s", "throughput (req/s)", 1.0, 3),
    ("output_throughput_tok_s", "output throughput (tok/s)", 1.0, 1),
    ("slo_attainment", "SLO attainment (%)", 100.0, 1),
    ("ttft_attainment", "TTFT attainment (%)", 100.0, 1),
    ("tpot_attainment", "TPOT attainment (%)", 100.0, 1),
)


def _fmt(x: float | None, nd: int) -> str:
    """`x` with `nd` decimals; "n/a" for a figure without samples (None or NaN)."""
    return "n/a" if x is None or x != x else f"{x:.{nd}f}"


def print_comparison(c: Comparison, console: Console | None = None) -> None:
    """Print every row of `c`: value simulated, value measured, error in percent."""
    con = console or Console()
    for note in c.notes:
        con.print(f"[yellow]note:[/] {note}")
    t = Table(title=f"{c.sim_label} vs {c.measured_label} ({c.num_requests} requests)")
    for name in ("metric", "simulated", "measured", "error %"):
        t.add_column(name, justify="left" if name == "metric" else "right")
    for metric, label in LATENCY_METRICS:
        for stat in STATS:
            r = c.row(metric, stat)
            t.add_row(f"{label} {stat} (ms)", _fmt(r.sim, 2), _fmt(r.measured, 2),
                      _fmt(r.error_pct, 1))  # fmt: skip
    for metric, label, scale, nd in _RATES:
        r = c.row(metric)
        t.add_row(label, _fmt(r.sim * scale, nd), _fmt(r.measured * scale, nd),
                  _fmt(r.error_pct, 1))  # fmt: skip
    con.print(t)
    if any(r.sim != r.sim or r.measured != r.measured for r in c.rows):
        con.print("n/a: no samples (TPOT and ITL need requests with 2+ output tokens)")
    if c.per_request:
        pr = c.per_request
        con.print(
            "per request |sim - measured| / measured: "
            + ", ".join(
                f"{k.split('_')[0].upper()} p50 {pr[f'{k}_p50_pct']:.1f}% "
                f"p90 {pr[f'{k}_p90_pct']:.1f}%"
                for k in ("ttft_abs_rel_error", "e2e_abs_rel_error")
                if f"{k}_p50_pct" in pr
            )
        )
