"""`bulletsim` command line: run, sweep, traces, calibrate.

User errors (bad names, bad numbers, malformed files) print one line and exit with code 2;
they never show a traceback.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="bulletsim",
    help="Simulate, calibrate and compare Bullet (spatial-temporal GPU sharing) with chunked "
    "prefill for LLM serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

USER_ERRORS = (ValueError, FileNotFoundError)


def fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def parse_sets(sets: list[str] | None) -> dict:
    """`--set bullet.window_layers=4` -> {"bullet": {"window_layers": 4}} (TOML values)."""
    out: dict = {}
    for item in sets or []:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE (e.g. bullet.window_layers=4), got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


Opt = typer.Option


@app.command()
def run(
    trace: Annotated[
        str | None,
        Opt(
            help="Workload: splitwise (= splitwise-conv, the default), splitwise-code, sharegpt, "
            "sharegpt-sarathi, alpaca, arxiv, arxiv-long, csv."
        ),
    ] = None,
    trace_file: Annotated[
        Path | None, Opt(help="Read the workload from this file instead of looking it up.")
    ] = None,
    traces_dir: Annotated[
        Path | None, Opt(help="Folder holding the real trace files (env BULLETSIM_TRACES_DIR).")
    ] = None,
    arrival: Annotated[
        str | None,
        Opt(
            help="Arrivals: trace (the file's timestamps), poisson, gamma. Default: trace where "
            "timestamps exist, else poisson."
        ),
    ] = None,
    rate: Annotated[
        float | None, Opt(help="Request rate (req/s) for poisson/gamma arrivals.")
    ] = None,
    cv: Annotated[
        float | None, Opt(help="Coefficient of variation of gamma inter-arrival times.")
    ] = None,
    time_scale: Annotated[
        float | None,
        Opt(help="Multiply the trace's inter-arrival gaps by this (0.5 = twice the load)."),
    ] = None,
    num_requests: Annotated[
        int | None,
        Opt("--num-requests", "-n", help="Number of requests (default: the whole trace)."),
    ] = None,
    duration: Annotated[
        float | None, Opt(help="Keep requests arriving in the first DURATION seconds.")
    ] = None,
    max_total_tokens: Annotated[
        int | None, Opt(help="Drop (and count) requests whose prompt+output exceed this.")
    ] = None,
    over_length: Annotated[
        str | None, Opt(help="Requests over --max-total-tokens: drop, clip or error.")
    ] = None,
    tokenizer: Annotated[
        str | None,
        Opt(help="Tokenizer for text datasets: approx, sentencepiece:PATH, tiktoken:PATH."),
    ] = None,
    sharegpt_filter: Annotated[
        str | None, Opt(help="ShareGPT filter convention: vllm, sglang, none.")
    ] = None,
    policy: Annotated[
        str | None,
        Opt(
            help="Serving policy: chunked, bullet, static-split, naive, prefill-first "
            "(see `bulletsim policies`)."
        ),
    ] = None,
    gpu: Annotated[str | None, Opt(help="GPU: a100, h100, h20, h200.")] = None,
    model: Annotated[
        str | None, Opt(help="Model: llama-3.1-8b, llama-3.1-70b, qwen3-235b-a22b.")
    ] = None,
    tp: Annotated[int | None, Opt(help="Tensor-parallel degree (default: the model's).")] = None,
    latency: Annotated[
        str | None,
        Opt(
            help="Latency model: auto (calibrated profile if installed, else roofline), "
            "roofline, profile."
        ),
    ] = None,
    seed: Annotated[
        int | None, Opt(help="Random seed; same seed + inputs -> identical results.")
    ] = None,
    chunk_size: Annotated[
        int | None, Opt(help="Chunked prefill: token budget per iteration.")
    ] = None,
    variant: Annotated[
        str | None,
        Opt(
            help="Chunked prefill variant: mixed (Sarathi/vLLM) or prefill-first (SGLang default)."
        ),
    ] = None,
    max_running: Annotated[int | None, Opt(help="Chunked prefill: max running requests.")] = None,
    tpot_ms: Annotated[
        float | None, Opt(help="TPOT SLO in ms (default: per trace, Bullet paper Table 4).")
    ] = None,
    ttft_ms: Annotated[
        float | None, Opt(help="Absolute TTFT SLO in ms (replaces the normalized one).")
    ] = None,
    norm_ttft_ms: Annotated[
        float | None, Opt(help="Normalized TTFT SLO in ms per prompt token.")
    ] = None,
    kv_blocks: Annotated[int | None, Opt(help="Override the KV-cache capacity in blocks.")] = None,
    config: Annotated[Path | None, Opt(help="TOML config file; flags override it.")] = None,
    set_: Annotated[
        list[str] | None,
        Opt("--set", help="Any config key, e.g. --set bullet.window_layers=4 (repeatable)."),
    ] = None,
    out: Annotated[
        Path | None, Opt(help="Results directory (default results/runs/<name>).")
    ] = None,
    no_write: Annotated[
        bool, Opt("--no-write", help="Print the summary only; write no files.")
    ] = False,
    plots: Annotated[
        bool, Opt("--plots", help="Also write PNG/SVG plots into the results directory.")
    ] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Simulate one workload through one policy and report serving metrics."""
    cfg = config_from_options(locals())
    _run_and_report(cfg, out, no_write, plots, quiet)


def config_from_options(o: dict):
    """The RunConfig that `run`'s options (a dict of them by name) describe; shared by the
    commands that take run's options (`live`). User errors exit with code 2."""
    from bulletsim.config import load_config, merge_overrides

    overrides = {
        "policy": o["policy"],
        "gpu": o["gpu"],
        "model": o["model"],
        "tp": o["tp"],
        "latency": o["latency"],
        "seed": o["seed"],
        "workload": {
            "trace": o["trace"],
            "trace_file": str(o["trace_file"]) if o["trace_file"] else None,
            "traces_dir": str(o["traces_dir"]) if o["traces_dir"] else None,
            "arrival": o["arrival"],
            "rate": o["rate"],
            "cv": o["cv"],
            "time_scale": o["time_scale"],
            "num_requests": o["num_requests"],
            "duration_s": o["duration"],
            "max_total_tokens": o["max_total_tokens"],
            "over_length": o["over_length"],
            "tokenizer": o["tokenizer"],
            "sharegpt_filter": o["sharegpt_filter"],
        },
        "slo": {
            "tpot_ms": o["tpot_ms"],
            "ttft_ms": o["ttft_ms"],
            "norm_ttft_ms_per_token": o["norm_ttft_ms"],
        },
        "kv": {"capacity_blocks": o["kv_blocks"]},
        "chunked": {
            "chunk_size": o["chunk_size"],
            "variant": o["variant"],
            "max_running_requests": o["max_running"],
        },
    }
    try:
        return load_config(o["config"], merge_overrides(overrides, parse_sets(o["set_"])))
    except USER_ERRORS as e:
        fail(str(e))


def _run_and_report(cfg, out: Path | None, no_write: bool, plots: bool, quiet: bool) -> None:
    from bulletsim.report import print_summary, run_name
    from bulletsim.simulate import simulate

    try:
        if quiet or not sys.stderr.isatty():
            res = simulate(cfg)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            ) as bar:
                task = bar.add_task("simulating", total=None)

                def tick(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                res = simulate(cfg, progress=tick)
    except USER_ERRORS as e:
        fail(str(e))
    print_summary(res)
    if no_write:
        return
    from bulletsim.results import write_results

    out_dir = out or Path("results") / "runs" / run_name(res)
    write_results(res, out_dir)
    if plots:
        from bulletsim.plots import plot_run

        plot_run(out_dir)
    typer.echo(f"results: {out_dir}")


@app.command()
def policies() -> None:
    """List the serving policies and their parameters (TOML section = policy name)."""
    import dataclasses

    from bulletsim.policies.registry import POLICY_PARAMS, policy_names

    for name in policy_names():
        cls = POLICY_PARAMS[name]
        typer.echo(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0] if cls.__doc__ else ''}")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else "(computed)"
            typer.echo(f"    {name}.{f.name} = {default!r}")


def _register_optional() -> None:
    """Sub-commands that live in other modules (each imports its heavy parts lazily)."""
    for mod in (
        "bulletsim.workload.cli",
        "bulletsim.sweep_cli",
        "bulletsim.fidelity.cli",
        "bulletsim.design_cli",
        "bulletsim.live.cli",
        "calibrate.cli",
    ):
        try:
            module = __import__(mod, fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name and mod.startswith(e.name):
                continue
            raise
        module.register(app)


_register_optional()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
