"""`bulletsim fidelity RUN_DIR...`: the simulator against live runs, one report per run."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def report_live_runs(run_dirs: list[Path], table: Path | None) -> None:
    """Print each run's comparison and iteration errors; optionally write the summary table."""
    from bulletsim.cli import USER_ERRORS, fail
    from bulletsim.fidelity.report import print_comparison
    from bulletsim.live.fidelity import headline, markdown_table, resimulate_live

    con = Console()
    rows = []
    for d in run_dirs:
        try:
            f = resimulate_live(d)
        except USER_ERRORS as e:
            fail(str(e))
        typer.echo(f"live run {d}: {f.live_summary['policy']} on {f.live_summary['workload']}")
        print_comparison(f.comparison, con)
        t = Table(title="per-iteration prediction error, predicted / measured - 1 (%)")
        for name in ("phase", "SMs", "iterations", "median |err|", "p90 |err|", "median err"):
            t.add_column(name, justify="left" if name in ("phase", "SMs") else "right")
        for r in f.iterations.itertuples():
            t.add_row(r.phase, r.sms, str(r.n), f"{r.median_abs_pct:.1f}",
                      f"{r.p90_abs_pct:.1f}", f"{r.median_pct:+.1f}")  # fmt: skip
        con.print(t)
        rows.append(headline(f))
    if table is not None:
        tmp = table.with_name(f".{table.name}.tmp-{os.getpid()}")
        tmp.write_text(markdown_table(rows))
        tmp.replace(table)
        typer.echo(f"table: {table}")
