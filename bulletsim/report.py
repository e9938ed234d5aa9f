"""Terminal summary of a run (rich table) and the default run name."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bulletsim.partitioning import Partitioning
from bulletsim.run import RunResult


def run_name(res: RunResult) -> str:
    cfg = res.config
    parts = [res.workload.name, res.meta["policy"], cfg.gpu, cfg.model]
    if cfg.workload.rate is not None:
        parts.append(f"r{cfg.workload.rate:g}")
    parts.append(f"s{cfg.seed}")
    return "-".join(parts)


NA = "n/a"  # a metric with no samples (NaN in summary.json, null once written)


def _fmt(x: float | None, nd: int = 1) -> str:
    return NA if x is None or x != x else f"{x:.{nd}f}"


def _rate(x: float | None, note: str) -> str:
    if x is None or x != x or x == float("inf"):
        return f"{'inf' if x == float('inf') else NA} ({note})"
    return f"{x:.2f} req/s"


_TABLE_KEYS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "norm_ttft_ms_per_token")
_TABLE_LABELS = ("TTFT (ms)", "TPOT (ms)", "ITL (ms)", "E2E (ms)", "norm. TTFT (ms/tok)")


def parallelism(meta: dict) -> str:
    """How the model is split over GPUs, as a run's header says it: `tp=8`, or for MoE
    `tp=8 attention, ep=8 experts, uniform routing` (TP experts: `experts tp=8`)."""
    if "ep" not in meta:
        return f"tp={meta['tp']}"
    experts = f"ep={meta['ep']} experts" if meta["ep"] > 1 else f"experts tp={meta['tp']}"
    return f"tp={meta['tp']} attention, {experts}, {meta['moe_routing']} routing"


def print_summary(
    res: RunResult, console: Console | None = None, provenance: str | None = None
) -> None:
    """The run's header (policy, GPU, model and its parallelism, latency model, then
    `provenance`: which parts of the latency model are measured and which derived),
    workload, SLO, the metrics table and the throughput lines."""
    c = console or Console()
    m, s = res.meta, res.metrics
    for note in res.workload.notes:
        c.print(f"[yellow]note:[/] {note}")
    # drops and clips over the length limit are in the workload's notes (only when the limit
    # removed something); the other drops are counted here, apart from them
    other = m["num_dropped"] - m.get("num_over_length", 0)
    if other:
        c.print(
            f"[yellow]note:[/] {other} requests dropped in all as empty, failed or filtered "
            "out (the rows the notes above count are among them)"
        )
    c.print(
        f"[bold]{m['policy']}[/] on {m['gpu']} / {m['model']} ({parallelism(m)}), latency "
        f"model: {m['latency_model']}"
    )
    if provenance:
        c.print(provenance, markup=False, highlight=False)
    if m.get("partitioning"):
        c.print(Partitioning(**m["partitioning"]).line(), markup=False, highlight=False)
    if m.get("mechanism_caveat"):
        c.print(m["mechanism_caveat"], style="yellow", markup=False, highlight=False)
    c.print(f"workload {m['workload']}: {s['num_requests']} requests from {m['workload_source']}")
    c.print(f"convention: {m['convention']}")
    slo = s["slo"]
    ttft = (
        f"TTFT <= {slo['norm_ttft_ms_per_token']:g} ms/token"
        if slo["norm_ttft_ms_per_token"] is not None
        else f"TTFT <= {slo['ttft_ms']:g} ms"
    )
    c.print(f"SLO: {ttft}, TPOT <= {slo['tpot_ms']:g} ms ({m['slo_source']})")
    t = Table(show_header=True, header_style="bold")
    t.add_column("metric")
    for col in ("mean", "p50", "p90", "p99"):
        t.add_column(col, justify="right")
    for key, label in zip(_TABLE_KEYS, _TABLE_LABELS, strict=True):
        row = s[key]
        t.add_row(
            label,
            *(
                _fmt(row[k], 2 if key.startswith("norm") else 1)
                for k in ("mean", "p50", "p90", "p99")
            ),
        )
    c.print(t)
    if any(v != v for key in _TABLE_KEYS for v in s[key].values()):
        c.print(
            f"{NA}: no samples (TPOT and ITL need requests with 2+ output tokens; "
            "summary.json holds null)"
        )
    offered = _rate(s["offered_rate_req_s"], s.get("offered_rate_note", ""))
    c.print(
        f"throughput {s['throughput_req_s']:.2f} req/s "
        f"({s['output_throughput_tok_s']:.0f} out tok/s)"
        f" | offered {offered} | SLO attainment "
        f"{100 * s['slo_attainment']:.1f}% (TTFT {100 * s['ttft_attainment']:.1f}%, TPOT "
        f"{100 * s['tpot_attainment']:.1f}%) | goodput {s['goodput_req_s']:.2f} req/s"
    )
    c.print(
        f"preemptions {s['num_preemptions']} | KV peak {s['kv_peak_used_blocks']}/"
        f"{m['kv_capacity_blocks']} blocks (iterations.parquet, used at iteration ends: "
        f"peak {s.get('kv_peak_used_blocks_at_iteration_end', NA)}) | "
        f"{s['num_iterations']} iterations"
    )
