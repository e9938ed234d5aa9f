"""`bulletsim fidelity RUN_DIR...`: the simulator against live runs, one report per run."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def report_live_runs(
    run_dirs: list[Path],
    table: Path | None,
    correction_file: Path | None = None,
    profile: Path | None = None,
) -> None:
    """Print each run's comparison and iteration errors; optionally write the summary table.
    With `correction_file` (`bulletsim calibrate-live`), the latency model is corrected."""
    from bulletsim.cli import USER_ERRORS, fail
    from bulletsim.fidelity.report import print_comparison
    from bulletsim.live.fidelity import headline, markdown_table, resimulate_live

    con = Console()
    rows = []
    correction = None
    if correction_file is not None:
        from bulletsim.live.refit import LiveCorrection

        try:
            correction = LiveCorrection.load(correction_file)
        except USER_ERRORS as e:
            fail(str(e))
        fitted = {Path(p).resolve() for p in correction.fitted_on}
        for d in run_dirs:
            if Path(d).resolve() in fitted:
                typer.echo(f"note: {d} is one of the runs the correction was fitted on")
    for d in run_dirs:
        try:
            f = resimulate_live(d, correction, profile)
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


def calibrate_live(run_dirs: list[Path], out: Path) -> None:
    """Fit a live correction on `run_dirs` and write it to `out` (JSON, atomic)."""
    from bulletsim.cli import USER_ERRORS, fail
    from bulletsim.live.refit import check_out_path, fit_correction

    try:
        check_out_path(out)  # before the work, not after it
        c = fit_correction(run_dirs)
        c.save(out)
    except USER_ERRORS as e:
        fail(str(e))
    t = Table(title=f"live correction from {len(run_dirs)} runs: t' = scale * t + gap")
    for name in ("phase | SM group", "iterations", "scale"):
        t.add_column(name, justify="left" if name.startswith("phase") else "right")
    for k, v in sorted(c.scale.items()):
        t.add_row(k, str(c.num_iterations.get(k, "")), f"{v:.3f}")
    Console().print(t)
    gaps = ", ".join(f"{p} {1e3 * g:.2f} ms" for p, g in sorted(c.gap_s.items()))
    typer.echo(f"host gap per iteration: {gaps}")
    typer.echo(f"correction: {out}")
