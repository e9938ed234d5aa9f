"""`bulletsim sweep`: policies x traces x rates in parallel, capacities, tables and plots.

Past ~300 lines because of the command's ~25 typer options; the work is in sweep.py,
sweep_capacity.py and sweep_report.py.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import typer

from bulletsim.models import DEFAULT_TP_RULE
from bulletsim.policies.registry import policy_choices

Opt = typer.Option
# --auto-length re-runs a sweep at most this many times in all (each round is a whole sweep)
AUTO_LENGTH_ROUNDS = 3


def _rates(text: str) -> tuple[float, ...]:
    parts = [x.strip() for x in text.split(",")]
    if not any(parts):
        raise ValueError("--rates: empty; give comma-separated req/s, e.g. --rates 2,4,8")
    try:
        return tuple(float(x) for x in parts if x)
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
            help=f"Policy variant (repeatable, case-insensitive): {policy_choices()}, or "
            "NAME:key=value,... (see `bulletsim policies`; a list value such as pdmux's "
            "manual_divisions separates its rows with ';' or '/') "
            "(default: bullet, chunked-1024, chunked-2048)",
        ),
    ] = None,
    trace: Annotated[
        list[str] | None,
        Opt(
            help="Workload trace (repeatable), e.g. sharegpt, splitwise-code, arxiv. "
            "(default: sharegpt)"
        ),
    ] = None,
    rates: Annotated[
        str, Opt(help="Grid of Poisson rates (req/s) for the curves, comma-separated.")
    ] = "2,4,8,16",
    num_requests: Annotated[int, Opt("--num-requests", "-n", help="Requests per point.")] = 2000,
    gpu: Annotated[
        str | None, Opt(help="GPU: a100, h100, h20, h200 (any case). (default: a100)")
    ] = None,
    model: Annotated[
        str | None, Opt(help="Model, e.g. llama-3.1-8b, llama3.1-8b. (default: llama-3.1-8b)")
    ] = None,
    tp: Annotated[
        int | None,
        Opt(help=f"Tensor-parallel degree (= --set tp=N). (default: {DEFAULT_TP_RULE})"),
    ] = None,
    latency: Annotated[
        str | None, Opt(help="Latency model: auto, roofline, profile. (default: auto)")
    ] = None,
    chunk_size: Annotated[
        int | None,
        Opt(
            help="Chunk size of the chunked variants that do not name one (`chunked`, "
            "`chunked:variant=prefill-first`; their other options kept, as run does)."
        ),
    ] = None,
    seeds: Annotated[
        str,
        Opt(
            help="Seeds, comma-separated: each searches its own capacity; the table shows "
            "their mean and 95% t-interval. The grid (curves) uses the first.",
        ),
    ] = "0,1,2",
    traces_dir: Annotated[Path | None, Opt(help="Folder holding the real trace files.")] = None,
    convention: Annotated[
        str | None,
        Opt(help="Workload convention (see `bulletsim run --help`); default auto."),
    ] = None,
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
    auto_length: Annotated[
        bool,
        Opt(
            "--auto-length/--no-auto-length",
            help="When a capacity interval is wider than +-10% or a run at capacity is not "
            "in steady state, run the sweep again with the -n the checks ask for (up to "
            "--max-requests; each round costs a whole sweep).",
        ),
    ] = False,
    max_requests: Annotated[int, Opt(help="Largest -n that --auto-length may use.")] = 40000,
    timeline: Annotated[
        bool,
        Opt(
            "--timeline/--no-timeline",
            help="Re-run the first Bullet variant at its capacity and keep its full results "
            "for the SM timeline.",
        ),
    ] = True,
    mechanism: Annotated[
        str | None,
        Opt(
            help="How Bullet partitions SMs: green, libsmctrl, mps, none (= --set "
            "bullet.mechanism; its granularity and re-partition cost follow, see `bulletsim "
            "run --help`)."
        ),
    ] = None,
    profile: Annotated[
        Path | None,
        Opt(
            help="Latency-profile file for every point (e.g. results/mechanisms-h200/"
            "profile-libsmctrl/h200__llama-3.1-8b.libsmctrl.json); default: the installed "
            "profile of each policy's mechanism, else the green-context one."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        Opt("--set", help="Any config key for every point, e.g. --set kv.block_size=32."),
    ] = None,
    out: Annotated[
        str | None,
        Opt(
            help="Sweep folder: new, empty, or a sweep bulletsim wrote (replaced whole). "
            "(default: results/sweeps/<gpu>-<traces>-<config hash>)"
        ),
    ] = None,
    plots: Annotated[bool, Opt("--plots/--no-plots", help="Write PNG and SVG plots.")] = True,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Compare policies across request rates and workloads; report each policy's capacity."""
    from bulletsim.cli import USER_ERRORS, check_run_size, fail
    from bulletsim.config import (
        check_flags_agree_with_sets,
        check_set_sections,
        merge_overrides,
        parse_sets,
    )
    from bulletsim.executors import EXECUTORS, make_executor
    from bulletsim.policy_spec import check_spec_agrees, parse_policy_spec
    from bulletsim.run_options import (
        check_mechanism_sources,
        mechanism_overrides,
        mechanism_sections,
    )
    from bulletsim.sweep import DEFAULT_POLICIES, DEFAULT_TRACES, SweepSpec

    try:
        check_mechanism_sources({"mechanism": mechanism, "set_": set_})
        flags = {
            "gpu": gpu, "model": model, "tp": tp, "latency": latency,
            "profile": str(profile.expanduser().resolve()) if profile else None,
            "workload": {
                "traces_dir": str(traces_dir) if traces_dir else None,
                "convention": convention,
            },
        }  # fmt: skip
        check_flags_agree_with_sets(flags, parse_sets(set_))
        base = merge_overrides(mechanism_overrides(mechanism, parse_sets(set_)), flags)
        policies = tuple(policy or DEFAULT_POLICIES)
        for text in policies:  # a spec's option and --set / --mechanism must agree
            _, name, params = parse_policy_spec(text)
            check_spec_agrees(text, name, params, parse_sets(set_), mechanism_sections(mechanism))
        _check_mechanism_applies(mechanism, policies)
        if chunk_size is not None:
            policies = _with_chunk_size(policies, chunk_size, defaults=not policy)
        if executor not in EXECUTORS:
            raise ValueError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
        if workers is not None and workers < 1:
            raise ValueError(f"--workers: must be >= 1, got {workers}")
        spec = SweepSpec(
            policies=policies,
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
        check_set_sections(
            parse_sets(set_), tuple(dict.fromkeys(v.policy for v in spec.variants()))
        )
        if not 0 < target <= 1:
            raise ValueError(f"--target: an attainment in (0, 1], got {target}")
        if not 0 < rel_tol < 1:
            raise ValueError(f"--rel-tol: in (0, 1), got {rel_tol}")
        if auto_length and max_requests < num_requests:
            raise ValueError(f"--max-requests {max_requests} is below -n {num_requests}")
        check_run_size((max_requests if auto_length else num_requests) * spec.workers, None, None)
        out_dir = _out_dir(spec, out)
    except USER_ERRORS as e:
        fail(str(e))
    pool = None
    try:
        pool = make_executor(executor, workers or (0 if executor == "ray" else spec.workers),
                             ray_address)  # fmt: skip
        with pool:
            failed = run_and_write(
                spec,
                out_dir,
                timeline=timeline,
                plots=plots,
                quiet=quiet,
                executor=pool,
                max_requests=max_requests if auto_length else None,
            )
    except USER_ERRORS as e:
        fail(str(e))
    except KeyboardInterrupt:
        typer.echo(f"interrupted: nothing written; {out_dir} left as it was", err=True)
        _stop_workers(pool)
        raise typer.Exit(130) from None
    typer.echo(f"sweep: {out_dir}")
    if failed:
        typer.echo(f"error: {failed}", err=True)
        raise typer.Exit(1)


def _stop_workers(pool) -> None:
    """After Ctrl-C: cancel what is queued and end the worker processes, so the command exits
    (a worker pool re-made after its workers took the interrupt kept the process alive)."""
    import multiprocessing

    try:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass
    for child in multiprocessing.active_children():
        child.terminate()
    for child in multiprocessing.active_children():
        child.join(timeout=5)


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


def _out_dir(spec, out: str | None) -> Path:
    """The checked sweep folder; by default named by GPU, traces and a hash of the spec."""
    from bulletsim.config import load_config
    from bulletsim.outdir import check_out_dir, config_hash, is_bulletsim_dir
    from bulletsim.sweep_points import point_overrides

    if out is not None:
        path = check_out_dir(out, "sweep")
    else:
        v = spec.variants()[0]
        gpu = load_config(None, point_overrides(spec, v, spec.traces[0], 1.0, spec.seeds[0])).gpu
        resolved = {**dataclasses.asdict(spec), "workers": None}  # results do not depend on it
        name = f"{gpu}-{'-'.join(spec.traces)}-{config_hash(resolved)}"
        path = check_out_dir(Path("results") / "sweeps" / name, "sweep")
        if is_bulletsim_dir(path, "sweep"):
            typer.echo(f"note: replacing the earlier sweep of this same config in {path}", err=True)
    return path


def _check_mechanism_applies(mechanism: str | None, policies: tuple[str, ...]) -> None:
    """`--mechanism` must reach a policy of the sweep that takes it (Bullet)."""
    from bulletsim.config import resolve_policy
    from bulletsim.run_options import check_mechanism_applies

    check_mechanism_applies(mechanism, tuple(resolve_policy(p.split(":")[0])[0] for p in policies))


def _with_chunk_size(
    policies: tuple[str, ...], chunk_size: int, defaults: bool = False
) -> tuple[str, ...]:
    """`--chunk-size N` gives the chunked specs that name no size that size and keeps their
    other options (`chunked:variant=prefill-first` -> `chunked-512:variant=prefill-first`, read
    by `parse_policy_spec` as run reads it). ValueError (one line) for a size below 1, a spec
    that names another size, and a sweep with no chunked policy (`--defaults`: the policies
    were not given, so the message names the defaults)."""
    from bulletsim.sweep import PolicyVariant

    if chunk_size < 1:
        raise ValueError(f"--chunk-size: a chunk size in tokens >= 1, got {chunk_size}")
    given = "the default policies" if defaults else "--policy"
    out = []
    for text in policies:
        v = PolicyVariant.parse(text)
        if v.policy != "chunked":
            out.append(text)
            continue
        size = dict(v.params).get("chunk_size")
        if size is not None and size != chunk_size:
            raise ValueError(
                f"--chunk-size {chunk_size} conflicts with {given} "
                f"({', '.join(policies)}): {text} names chunk size {size}; give --policy "
                f"chunked (its size then comes from --chunk-size) or drop --chunk-size"
            )
        name, colon, rest = text.partition(":")
        out.append(text if size is not None else f"chunked-{chunk_size}{colon}{rest}")
    if out == list(policies) and not any(PolicyVariant.parse(t).policy == "chunked" for t in out):
        raise ValueError(
            f"--chunk-size sets chunked prefill, but {given} ({', '.join(policies)}) include "
            "no chunked policy; add --policy chunked, or use --set POLICY.KEY=VALUE (see "
            "`bulletsim policies`)"
        )
    return tuple(out)


def _print_transfer_note(base: dict) -> None:
    """A sweep on a derived profile says so, with the profile's estimated error (issue 9)."""
    from bulletsim.config import load_config
    from bulletsim.hardware import get_gpu
    from bulletsim.latency.factory import transfer_note

    cfg = load_config(None, base)
    note = transfer_note(cfg.latency, get_gpu(cfg.gpu), cfg.model_spec(), profile=cfg.profile)
    if note:
        typer.echo(note, err=True)


def run_and_write(
    spec,
    out_dir: Path,
    *,
    timeline: bool,
    plots: bool,
    quiet: bool,
    executor=None,
    max_requests: int | None = None,
) -> str:
    """Run the sweep, write files (and the timeline run, plots), print the capacity table.

    With `max_requests`, a sweep whose checks ask for longer runs (`length_needed`) is run
    again with that many requests per point (at most `max_requests`), until they ask for no
    more, the cap is reached, or three rounds ran; the files are the last round's and say
    so. Everything is written into a staged folder that replaces `out_dir` at the end
    (`outdir.staged_dir`), so files of an earlier sweep never mix with this one's.
    Returns `failure_summary` of the points ('' when all ran); with failures the timeline
    run and plots are skipped.
    """
    from bulletsim.outdir import staged_dir
    from bulletsim.progress import progress
    from bulletsim.sweep import run_sweep
    from bulletsim.sweep_capacity import length_needed
    from bulletsim.sweep_report import write_sweep

    _print_transfer_note(spec.base)  # where the latency model's numbers come from, first
    notes: list[str] = []
    for round_ in range(1, AUTO_LENGTH_ROUNDS + 1):
        with progress("sweep", quiet) as tick:
            points, cap = run_sweep(spec, progress=tick, executor=executor)
        failed = failure_summary(points)
        if max_requests is None or failed:
            break
        need, why = length_needed(cap, spec)
        if need <= spec.num_requests:
            break
        if spec.num_requests >= max_requests or round_ == AUTO_LENGTH_ROUNDS:
            notes.append(
                f"--auto-length stopped at -n {spec.num_requests}: the checks ask for -n "
                f"{need} (at most --max-requests {max_requests} and {AUTO_LENGTH_ROUNDS} "
                "sweeps)"
            )
            break
        n = min(need, max_requests)
        note = f"--auto-length: -n {spec.num_requests} -> {n} ({'; '.join(why)})"
        typer.echo(note, err=True)
        notes.append(note)
        spec = dataclasses.replace(spec, num_requests=n)
    with staged_dir(out_dir, "sweep") as tmp:
        md = write_sweep(tmp, spec, points, cap, tuple(notes))
        if timeline and not failed:
            write_timeline(spec, cap, tmp)
        if plots and not failed:
            from bulletsim.plots import plot_sweep

            plot_sweep(tmp)
    typer.echo(md)
    return failed


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
