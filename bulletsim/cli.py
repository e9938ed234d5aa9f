"""`bulletsim` command line: run, sweep, traces, calibrate.

User errors (bad names, bad numbers, malformed files) print one line and exit with code 2;
they never show a traceback.

Longer than the house's ~300 lines because `run` declares its ~60 options in one typer
signature (most of this file); the option handling itself lives in `run_options.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bulletsim.cli_errors import USER_ERRORS, fail  # noqa: F401
from bulletsim.models import DEFAULT_TP_RULE

# re-exported: the other commands (live, sweep, design, fidelity) import these from here
from bulletsim.policies.registry import policy_choices
from bulletsim.run_options import (  # noqa: F401
    check_run_size,
    config_from_options,
    default_run_name,
    run_out_dir,
)

app = typer.Typer(
    name="bulletsim",
    help="Simulate, calibrate and compare Bullet (spatial-temporal GPU sharing) with chunked "
    "prefill for LLM serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def parse_sets(sets: list[str] | None) -> dict:
    """Moved to `bulletsim.config.parse_sets` (no import cycle); kept for older callers."""
    from bulletsim.config import parse_sets as parse

    return parse(sets)


Opt = typer.Option


@app.command()
def run(
    trace: Annotated[
        str | None,
        Opt(
            help="Workload: splitwise (= splitwise-conv), splitwise-code, sharegpt, "
            "sharegpt-sarathi, alpaca, arxiv, arxiv-long, csv (your --trace-file), random, fixed. "
            "(default: splitwise)"
        ),
    ] = None,
    trace_file: Annotated[
        Path | None, Opt(help="Read the workload from this file instead of looking it up.")
    ] = None,
    traces_dir: Annotated[
        Path | None,
        Opt(help="Folder holding the real trace files (env BULLETSIM_TRACES_DIR); must exist."),
    ] = None,
    arrival: Annotated[
        str | None,
        Opt(
            help="Arrivals: trace (the file's timestamps), poisson, gamma. (default: trace where "
            "timestamps exist and no --rate, else poisson)"
        ),
    ] = None,
    rate: Annotated[
        float | None,
        Opt(
            help="Request rate (req/s) for poisson/gamma arrivals; inf = every request at t = 0. "
            "(default: the trace's mean rate)"
        ),
    ] = None,
    cv: Annotated[
        float | None,
        Opt(
            help="Gamma arrivals only: CV of inter-arrival gaps (inf = all at t = 0). (default: 1)"
        ),
    ] = None,
    time_scale: Annotated[
        float | None,
        Opt(
            help="Multiply the trace's inter-arrival gaps by this (0.5 = twice the load). "
            "(default: 1)"
        ),
    ] = None,
    num_requests: Annotated[
        int | None,
        Opt("--num-requests", "-n", help="Number of requests. (default: the whole trace)"),
    ] = None,
    duration: Annotated[
        float | None, Opt(help="Keep requests arriving in the first DURATION seconds.")
    ] = None,
    max_total_tokens: Annotated[
        int | None,
        Opt(
            help="Length limit on prompt+output (tokens); the model's context always applies. "
            "(default: the model's context)"
        ),
    ] = None,
    over_length: Annotated[
        str | None,
        Opt(
            help="Requests over the length limit: drop (counted, as a server rejects them), "
            "clip (counted) or error. (default: drop)"
        ),
    ] = None,
    tokenizer: Annotated[
        str | None,
        Opt(
            help="Tokenizer for text datasets: approx, sentencepiece:PATH, tiktoken:PATH, "
            "hf:PATH (a tokenizer.json; the bulletsim[tokenizers] extra). "
            "(default: approx)"
        ),
    ] = None,
    sharegpt_filter: Annotated[
        str | None,
        Opt(help="ShareGPT filter: vllm, sglang, none. (default: the convention's)"),
    ] = None,
    convention: Annotated[
        str | None,
        Opt(
            help="Workload convention (token counts, BOS, chat template, filter, pairing): "
            "auto, sglang-llama3, sglang-llama3-chat, vllm-llama3, vllm-llama2, llama2-nobos, "
            "role-aware-llama3, arxiv-long; auto follows the simulated model. (default: auto)",
        ),
    ] = None,
    trace_format: Annotated[
        str | None,
        Opt(
            help="Format of --trace-file: auto (detected from its content), azure, burstgpt, "
            "mooncake, bailian, splitwise-sim, vidur, csv, length-table, custom, sharegpt, "
            "alpaca (traces/README.md). (default: the trace's; auto for --trace csv)"
        ),
    ] = None,
    timestamp_unit: Annotated[
        str | None,
        Opt(help="Unit of the file's timestamps: s, ms, us, ns. (default: the format's)"),
    ] = None,
    trace_model: Annotated[
        str | None, Opt(help="BurstGPT: keep this Model column's rows (ChatGPT, GPT-4).")
    ] = None,
    input_len: Annotated[
        int | None, Opt(help="random/fixed traces: prompt tokens (the mean for random).")
    ] = None,
    output_len: Annotated[
        int | None,
        Opt(help="random/fixed traces: output tokens; custom JSONL: lines without one."),
    ] = None,
    range_ratio: Annotated[
        float | None, Opt(help="random trace: spread of lengths around the mean. (default: 0)")
    ] = None,
    range_convention: Annotated[
        str | None,
        Opt(
            help="random trace: vllm ([L(1-r), L(1+r)]) or sglang ([L r, L]) rule. (default: vllm)"
        ),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        Opt(
            help="Benchmark client with at most N requests in flight (vLLM/SGLang "
            "--max-concurrency); with no --rate a closed loop of N users."
        ),
    ] = None,
    think_time: Annotated[
        float | None, Opt(help="Closed loop: seconds a user waits after a reply. (default: 0)")
    ] = None,
    model_config: Annotated[
        Path | None,
        Opt(
            help="A Hugging Face config.json (Llama, Qwen2/3, Mistral, Mixtral, Qwen3-MoE): the "
            "model's shape and context limit. Priced by the roofline unless an installed "
            "profile of the same model name was calibrated for exactly this shape (layer count "
            "aside); a run that skips such a profile says so."
        ),
    ] = None,
    policy: Annotated[
        str | None,
        Opt(
            help=f"Serving policy (case-insensitive): {policy_choices()}, or NAME:key=value,... "
            "(its parameters, as sweep's --policy); see `bulletsim policies`. (default: chunked)"
        ),
    ] = None,
    gpu: Annotated[
        str | None,
        Opt(help="GPU: a100, h100, h20, h200 (any case, nvidia- prefix). (default: a100)"),
    ] = None,
    model: Annotated[
        str | None,
        Opt(
            help="Model: llama-3.1-8b, llama-3.1-70b, qwen3-235b-a22b, or Hugging Face ids "
            "(meta-llama/Llama-3.1-8B-Instruct). (default: llama-3.1-8b)"
        ),
    ] = None,
    tp: Annotated[
        int | None, Opt(help=f"Tensor-parallel degree. (default: {DEFAULT_TP_RULE})")
    ] = None,
    latency: Annotated[
        str | None,
        Opt(
            help="Latency model: auto (the installed calibrated profile of this model and shape, "
            "else roofline), "
            "roofline, profile. The installed profile measured under the policy's SM partition "
            "mechanism is used when there is one, else the green-context one (the run names "
            "it and warns when they differ). (default: auto)"
        ),
    ] = None,
    profile: Annotated[
        Path | None,
        Opt(
            help="Latency-profile file to price the run by, instead of the installed one (e.g. "
            "results/mechanisms-h200/profile-libsmctrl/h200__llama-3.1-8b.libsmctrl.json)."
        ),
    ] = None,
    seed: Annotated[
        int | None, Opt(help="Random seed; same seed + inputs -> identical files. (default: 0)")
    ] = None,
    chunk_size: Annotated[
        int | None, Opt(help="Chunked prefill: token budget per iteration. (default: 2048)")
    ] = None,
    variant: Annotated[
        str | None,
        Opt(
            help="Chunked prefill variant: mixed (Sarathi/vLLM) or prefill-first (SGLang "
            "default). (default: mixed)"
        ),
    ] = None,
    max_running: Annotated[
        int | None, Opt(help="Chunked prefill: max running requests. (default: 256)")
    ] = None,
    tpot_ms: Annotated[
        float | None,
        Opt(help="TPOT SLO in ms. (default: per trace, Bullet paper Table 4: 150 ShareGPT)"),
    ] = None,
    ttft_ms: Annotated[
        float | None,
        Opt(
            help="Absolute TTFT SLO in ms (instead of the normalized one; not with --norm-ttft-ms)."
        ),
    ] = None,
    norm_ttft_ms: Annotated[
        float | None,
        Opt(help="Normalized TTFT SLO, ms per prompt token. (default: per trace, Table 4: 3)"),
    ] = None,
    kv_blocks: Annotated[
        int | None, Opt(help="Override the KV-cache capacity in blocks. (default: from memory)")
    ] = None,
    config: Annotated[Path | None, Opt(help="TOML config file; flags override it.")] = None,
    mechanism: Annotated[
        str | None,
        Opt(
            help="How Bullet partitions SMs: green (green contexts, 8 SMs on Hopper), libsmctrl "
            "(TPC masks, 2 SMs), mps (percentage caps), none; = --set bullet.mechanism (the two "
            "must agree). Its granularity and re-partition cost follow (measured on the H200, "
            "the paper's A100 figure, or derived: the run says which). Bullet only: "
            "static-split masks TPCs, pdmux uses green contexts. (default: libsmctrl, the "
            "paper's)"
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        Opt("--set", help="Any config key, e.g. --set bullet.window_layers=4 (repeatable)."),
    ] = None,
    out: Annotated[
        str | None,
        Opt(
            help="Results folder: new, empty, or one bulletsim wrote (its own files replaced; "
            "a fidelity table or refitted profile written from its run kept; a GPU live run's "
            "folder refused). "
            "(default: results/runs/<trace>-<policy>-<gpu>-<model>-s<seed>-<config hash>)"
        ),
    ] = None,
    no_write: Annotated[
        bool, Opt("--no-write", help="Print the summary only; write no files.")
    ] = False,
    plots: Annotated[
        bool, Opt("--plots", help="Also write PNG/SVG plots into the results directory.")
    ] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Simulate one workload through one policy and report serving metrics."""
    cfg = config_from_options(locals())
    out_dir = run_out_dir(cfg, out, no_write)
    _run_and_report(cfg, out_dir, plots, quiet)


def _run_and_report(cfg, out_dir: Path | None, plots: bool, quiet: bool) -> None:
    from bulletsim.progress import progress, stdout_console
    from bulletsim.report import print_summary
    from bulletsim.simulate import simulate

    done = {"n": 0, "total": 0}
    try:
        with progress("simulating", quiet) as tick:

            def on_progress(n: int, total: int) -> None:
                done["n"], done["total"] = n, total
                if tick:
                    tick("simulating", n, total)

            res = simulate(cfg, progress=on_progress)
    except USER_ERRORS as e:
        fail(str(e))
    except KeyboardInterrupt:
        typer.echo(f"interrupted: {_stopped_at(done['n'], done['total'])}; nothing was written",
                   err=True)  # fmt: skip
        raise typer.Exit(130) from None
    print_summary(res, stdout_console(), provenance=_transfer_note(cfg))
    if out_dir is None:
        return
    from bulletsim.outdir import staged_dir
    from bulletsim.results import write_run_files

    try:
        with staged_dir(out_dir, "run") as tmp:
            write_run_files(res, tmp)
            if plots:
                from bulletsim.plots import plot_result

                plot_result(res, tmp)
    except USER_ERRORS as e:
        fail(str(e))
    except KeyboardInterrupt:
        typer.echo(f"interrupted while writing: {out_dir} left as it was", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"results: {out_dir}")


def _stopped_at(n: int, total: int) -> str:
    """Where an interrupted run was: before simulating, during it, or after every request
    finished (collecting and checking the results, which is when 200/200 was reported)."""
    if not total:
        return "stopped before the simulation started (building the workload and model)"
    if n >= total:
        return f"all {total} requests had finished; stopped while collecting the results"
    return f"simulation stopped ({n}/{total} requests finished)"


def _transfer_note(cfg) -> str | None:
    """Where a derived or TP shard profile's numbers come from (measured / derived parts,
    estimated error; issues 9, 13): printed with the run's header, before its results."""
    from bulletsim.hardware import get_gpu
    from bulletsim.latency.factory import transfer_note

    return transfer_note(
        cfg.latency, get_gpu(cfg.gpu), cfg.model_spec(), cfg.partition_mechanism(), cfg.profile
    )


@app.command()
def policies(
    name: Annotated[
        str | None, typer.Argument(help="One policy to show (default: every policy).")
    ] = None,
) -> None:
    """List the serving policies and their parameters (TOML section = policy name): default,
    meaning, what 0 means and the source (in brackets) of each."""
    from bulletsim.config import resolve_policy
    from bulletsim.policies.describe import describe
    from bulletsim.policies.registry import policy_names

    try:
        names = [resolve_policy(name)[0]] if name is not None else policy_names()
        lines = [line for n in names for line in describe(n)]
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo("\n".join(lines))


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
