"""`bulletsim sweep`: policies x traces x rates in parallel, capacities, tables and plots."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option


def _rates(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--rates expects comma-separated numbers, got {text!r}") from None


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--seeds expects comma-separated integers, got {text!r}") from None


def sweep(
    policy: Annotated[
        list[str] | None,
        Opt(
            help="Policy variant (repeatable): bullet, chunked-1024, chunked-2048, "
            "static-split, naive, prefill-first, or NAME:key=value,...",
        ),
    ] = None,
    trace: Annotated[
        list[str] | None,
        Opt(help="Workload trace (repeatable), e.g. sharegpt, splitwise-code, arxiv."),
    ] = None,
    rates: Annotated[
        str, Opt(help="Grid of Poisson rates (req/s) for the curves, comma-separated.")
    ] = "2,4,8,16",
    num_requests: Annotated[int, Opt("--num-requests", "-n", help="Requests per point.")] = 2000,
    gpu: Annotated[str | None, Opt(help="GPU: a100, h100, h20, h200.")] = None,
    model: Annotated[str | None, Opt(help="Model, e.g. llama-3.1-8b.")] = None,
    latency: Annotated[str | None, Opt(help="Latency model: auto, roofline, profile.")] = None,
    seeds: Annotated[
        str,
        Opt(
            help="Seeds, comma-separated: each searches its own capacity; the table shows "
            "their mean and 95% t-interval. The grid (curves) uses the first.",
        ),
    ] = "0,1,2",
    traces_dir: Annotated[Path | None, Opt(help="Folder holding the real trace files.")] = None,
    capacity: Annotated[
        bool,
        Opt(
            "--capacity/--no-capacity",
            help="Search each policy's capacity (rate at the attainment target).",
        ),
    ] = True,
    target: Annotated[float, Opt(help="SLO attainment that defines capacity.")] = 0.9,
    early_stop: Annotated[
        bool,
        Opt(
            "--early-stop/--no-early-stop",
            help="Stop a run once its SLO misses make attainment below the target certain "
            "(its attainment is then an upper bound).",
        ),
    ] = True,
    rel_tol: Annotated[
        float, Opt(help="Stop the capacity bisection when hi/lo - 1 <= this.")
    ] = 0.02,
    workers: Annotated[
        int | None,
        Opt(
            help="Worker processes (default: all cores), or CPUs of the local Ray instance. "
            "Results do not depend on it.",
        ),
    ] = None,
    executor: Annotated[
        str,
        Opt(help="Where points run: local (process pool) or ray (needs bulletsim[ray])."),
    ] = "local",
    ray_address: Annotated[
        str | None,
        Opt(help="Ray cluster to use (auto, HOST:PORT, ray://HOST:PORT); default: start one."),
    ] = None,
    timeline: Annotated[
        bool,
        Opt(
            "--timeline/--no-timeline",
            help="Re-run the first Bullet variant at its capacity and keep its full results "
            "for the SM timeline.",
        ),
    ] = True,
    set_: Annotated[
        list[str] | None,
        Opt("--set", help="Any config key for every point, e.g. --set kv.block_size=32."),
    ] = None,
    out: Annotated[
        Path | None, Opt(help="Sweep directory (default results/sweeps/<gpu>-<traces>).")
    ] = None,
    plots: Annotated[bool, Opt("--plots/--no-plots", help="Write PNG and SVG plots.")] = True,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Compare policies across request rates and workloads; report each policy's capacity."""
    from bulletsim.cli import USER_ERRORS, fail, parse_sets
    from bulletsim.config import merge_overrides
    from bulletsim.executors import make_executor
    from bulletsim.sweep import DEFAULT_POLICIES, DEFAULT_TRACES, SweepSpec

    try:
        base = merge_overrides(
            parse_sets(set_),
            {
                "gpu": gpu, "model": model, "latency": latency,
                "workload": {"traces_dir": str(traces_dir) if traces_dir else None},
            },
        )  # fmt: skip
        spec = SweepSpec(
            policies=tuple(policy or DEFAULT_POLICIES),
            traces=tuple(trace or DEFAULT_TRACES),
            rates=_rates(rates),
            num_requests=num_requests,
            seeds=_seeds(seeds),
            early_stop=early_stop,
            capacity=capacity,
            target_attainment=target,
            rel_tol=rel_tol,
            workers=workers or os.cpu_count() or 1,
            base=base,
        ).validate()
    except USER_ERRORS as e:
        fail(str(e))
    out_dir = out or Path("results") / "sweeps" / f"{gpu or 'a100'}-{'-'.join(spec.traces)}"
    try:
        pool = make_executor(executor, workers or (0 if executor == "ray" else spec.workers),
                             ray_address)  # fmt: skip
        with pool:
            failed = run_and_write(
                spec, out_dir, timeline=timeline, plots=plots, quiet=quiet, executor=pool
            )
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo(f"sweep: {out_dir}")
    if failed:
        typer.echo(f"error: {failed}", err=True)
        raise typer.Exit(1)


def failure_summary(points) -> str:
    """'' when every job ran, else one line naming the failed ones and the first error."""
    bad = points[points["error"] != ""]
    if bad.empty:
        return ""
    names = ", ".join(
        f"{r.label} {r.trace} seed {r.seed} "
        + (f"{r.rate_req_s:g} req/s" if r.rate_req_s else r.kind)
        for r in bad.itertuples()
    )
    return (
        f"{len(bad)} job(s) failed ({names}); their policies have no capacity and their rows "
        f"in points.csv say why; first: {bad['error'].iloc[0]}"
    )


def run_and_write(
    spec, out_dir: Path, *, timeline: bool, plots: bool, quiet: bool, executor=None
) -> str:
    """Run the sweep, print the capacity table, write files (and the timeline run, plots).

    Returns `failure_summary` of the points ('' when all ran); with failures the timeline
    run and plots are skipped.
    """
    from bulletsim.sweep import run_sweep
    from bulletsim.sweep_report import write_sweep

    if quiet or not sys.stderr.isatty():
        points, cap = run_sweep(spec, executor=executor)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("sweep", total=None)

            def tick(msg: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=msg)

            points, cap = run_sweep(spec, progress=tick, executor=executor)
    md = write_sweep(out_dir, spec, points, cap)
    typer.echo(md)
    failed = failure_summary(points)
    if failed:
        return failed
    if timeline:
        write_timeline(spec, cap, out_dir)
    if plots:
        from bulletsim.plots import plot_sweep

        plot_sweep(out_dir)
    return ""


def write_timeline(spec, cap, out_dir: Path) -> None:
    """Keep one full run (first Bullet-like variant, first trace, at its capacity)."""
    from bulletsim.config import load_config
    from bulletsim.results import write_results
    from bulletsim.simulate import simulate
    from bulletsim.sweep_points import point_overrides

    variants = spec.variants()
    v = next((x for x in variants if x.policy == "bullet"), variants[0])
    trace = spec.traces[0]
    row = cap[(cap.label == v.label) & (cap.trace == trace)]
    rate = float(row["capacity_req_s"].iloc[0]) if len(row) else float("nan")
    if not rate > 0:
        rate = max(spec.rates)
    res = simulate(load_config(None, point_overrides(spec, v, trace, rate, spec.seeds[0])))
    write_results(res, out_dir / "timeline")


def register(app: typer.Typer) -> None:
    app.command()(sweep)
