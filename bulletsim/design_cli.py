"""`bulletsim design FILE`: a TOML grid of GPUs x models x SLO sets x traces x policies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option


def design(
    file: Annotated[Path, typer.Argument(help="Design file (TOML); see `bulletsim.design`.")],
    workers: Annotated[
        int | None,
        Opt(help="Worker processes (default: all cores), or CPUs of the local Ray instance."),
    ] = None,
    executor: Annotated[
        str, Opt(help="Where points run: local (process pool) or ray (needs bulletsim[ray]).")
    ] = "local",
    ray_address: Annotated[
        str | None,
        Opt(help="Ray cluster to use (auto, HOST:PORT, ray://HOST:PORT); default: start one."),
    ] = None,
    out: Annotated[
        Path | None, Opt(help="Design folder (default results/designs/<file name>).")
    ] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Run every cell of a design space as one sweep; a summary table per axis."""
    from bulletsim.cli import USER_ERRORS, fail
    from bulletsim.design import DesignSpec, run_design
    from bulletsim.design_report import write_design
    from bulletsim.executors import InlineExecutor, make_executor
    from bulletsim.outdir import check_out_dir, staged_dir
    from bulletsim.progress import progress
    from bulletsim.sweep_cli import failure_summary

    out_dir = out or Path("results") / "designs" / file.stem
    try:
        spec = DesignSpec.load(file)
        cells = spec.cells()
        check_out_dir(out_dir, "design")  # before any work; replaced only if ours
        n = workers or (0 if executor == "ray" else os.cpu_count() or 1)
        with make_executor(executor, n, ray_address) as pool:
            parallel = not isinstance(pool, InlineExecutor)
            with progress("design", quiet) as tick:
                results = run_design(cells, pool, progress=tick, parallel=parallel)
        with staged_dir(out_dir, "design") as tmp:
            md = write_design(tmp, spec, cells, results)
        typer.echo(md)
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo(f"design: {out_dir}")
    failed = [f"{c.name}: {m}" for c in cells if (m := failure_summary(results[c.name][0]))]
    if failed:
        typer.echo(f"error: {'; '.join(failed)}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(design)
