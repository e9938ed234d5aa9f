"""`bulletsim fidelity --measured FILE | RUN_DIR...`: re-simulate a vLLM / SGLang benchmark run
or live runs (`bulletsim live`), and compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option


# Options that apply to one kind of input only: giving one with the other kind is an error
# (it would be silently ignored). A live run's config.json fixes everything --measured asks.
LIVE_ONLY = ("table", "profile", "policy_profile", "held_out")
MEASURED_ONLY = ("measured_format", "result_index", "gpu", "model", "model_config", "tp",
                 "policy", "latency", "chunk_size", "variant", "max_running", "tpot_ms",
                 "ttft_ms", "seed", "set_")  # fmt: skip


def fidelity(
    ctx: typer.Context,
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Live run directories (`bulletsim live`): re-simulate each run's exact "
            "requests and config and compare, with the per-iteration prediction error.",
            show_default=False,
        ),
    ] = None,
    measured: Annotated[
        Path | None,
        Opt(
            help="A vLLM `bench serve --save-result --save-detailed` JSON or an SGLang "
            "`bench_serving --output-details` JSONL file."
        ),
    ] = None,
    table: Annotated[
        Path | None, Opt(help="Live runs: also write the one-line-per-run table (Markdown).")
    ] = None,
    profile: Annotated[
        Path | None,
        Opt(
            help="Live runs: re-simulate with this latency profile file and re-price the "
            "iterations with it [default: the profile each run's config picks now (its "
            "--profile file, else the installed one of its GPU, model, tp and mechanism); "
            "when that is not the one the run recorded, a note says so and the iterations "
            "are re-priced with it]"
        ),
    ] = None,
    policy_profile: Annotated[
        Path | None,
        Opt(
            help="Live runs: the profile the simulated policy predicts with, when not --profile "
            "(the one the live policy used) [default: --profile; with --held-out, the "
            "unrefitted --profile]."
        ),
    ] = None,
    held_out: Annotated[
        str | None,
        Opt(
            help="Live runs: judge each group of runs (workload | load) with the profile "
            "refitted on the other groups only (`calibrate --from-live` per fold)."
        ),
    ] = None,
    measured_format: Annotated[
        str, Opt(help="Result file format: auto (from its keys), vllm, sglang.")
    ] = "auto",
    result_index: Annotated[
        int | None, Opt(help="Which run of a file holding several appended runs (-1 = last).")
    ] = None,
    gpu: Annotated[str, Opt(help="GPU the measurement ran on: a100, h100, h20, h200.")] = "h200",
    model: Annotated[
        str | None,
        Opt(
            help="Model that served it (see `bulletsim run --help`). [default: the file's "
            "model_id when it names a known model, else llama-3.1-8b]"
        ),
    ] = None,
    model_config: Annotated[
        Path | None, Opt(help="A Hugging Face config.json for the model's shape instead.")
    ] = None,
    tp: Annotated[int | None, Opt(help="Tensor-parallel degree.")] = None,
    policy: Annotated[str, Opt(help="Policy that stands for the server's scheduler.")] = "chunked",
    latency: Annotated[str, Opt(help="Latency model: auto, roofline, profile.")] = "auto",
    chunk_size: Annotated[
        int | None, Opt(help="The server's token budget per step (vLLM max_num_batched_tokens).")
    ] = None,
    variant: Annotated[
        str | None,
        Opt(help="Chunked prefill variant; default mixed for vLLM, prefill-first for SGLang."),
    ] = None,
    max_running: Annotated[int | None, Opt(help="The server's max running requests.")] = None,
    tpot_ms: Annotated[float | None, Opt(help="TPOT SLO in ms.")] = None,
    ttft_ms: Annotated[float | None, Opt(help="Absolute TTFT SLO in ms.")] = None,
    seed: Annotated[int, Opt(help="Seed for arrival draws the file does not hold.")] = 0,
    set_: Annotated[
        list[str] | None, Opt("--set", help="Any config key, e.g. --set kv.memory_fraction=0.9.")
    ] = None,
) -> None:
    """Re-simulate the requests of a measured benchmark run (--measured FILE) or of live runs
    (RUN_DIR...) and compare, metric by metric."""
    from bulletsim.cli import USER_ERRORS, fail
    from bulletsim.cli_errors import given_options

    if run_dirs:
        if measured is not None:
            fail("give live run directories or --measured FILE, not both")
        wrong = given_options(ctx, MEASURED_ONLY)
        if wrong:
            fail(
                f"{', '.join(wrong)}: for --measured FILE only (a live run's config.json fixes "
                "them); with live runs: --table, --profile, --policy-profile, --held-out"
            )
        from bulletsim.live.fidelity_cli import report_live_runs

        report_live_runs(run_dirs, table, profile, held_out, policy_profile)
        return
    if measured is None:
        fail("nothing to compare: give live run directories or --measured FILE")
    wrong = given_options(ctx, LIVE_ONLY)
    if wrong:
        fail(f"{', '.join(wrong)}: for live run directories only, not --measured FILE")
    from bulletsim.config import check_set_sections, load_config, merge_overrides, parse_sets
    from bulletsim.fidelity.reader import read_measured

    try:
        run = read_measured(measured, measured_format, result_index)
        model_note = None
        if model is None and model_config is None:
            model, model_note = _model_of(run)
        chunked = {
            "chunk_size": chunk_size,
            "variant": variant or ("prefill-first" if run.tool == "sglang" else "mixed"),
            "max_running_requests": max_running,
        }
        overrides = {
            "policy": policy, "gpu": gpu, "model": model, "tp": tp, "latency": latency,
            "model_config": str(model_config) if model_config else None,
            "seed": seed, "slo": {"tpot_ms": tpot_ms, "ttft_ms": ttft_ms},
            "chunked": chunked if policy == "chunked" else {},
        }  # fmt: skip
        cfg = load_config(None, merge_overrides(overrides, parse_sets(set_)))
        check_set_sections(parse_sets(set_), (cfg.policy,))  # would do nothing: refused
        from bulletsim.fidelity.resimulate import resimulate

        res, comparison = resimulate(run, cfg)
    except USER_ERRORS as e:
        fail(str(e))
    from bulletsim.fidelity.report import print_comparison
    from bulletsim.report import parallelism

    if model_note:
        typer.echo(f"note: {model_note}")
    for note in res.workload.notes:
        typer.echo(f"note: {note}")
    s = res.summary
    typer.echo(
        f"{run.tool} result {measured}: {len(run.requests)} completed requests "
        f"({run.num_failed} left out), measured over {run.duration_s:.3f} s; simulated "
        f"{s['policy']} on {s['gpu']} / {s['model']} ({parallelism(s)}), latency "
        f"{s['latency_model']}"
    )
    from bulletsim.hardware import get_gpu
    from bulletsim.latency.factory import transfer_note

    # which parts of the latency model are measured and which derived, before the comparison
    provenance = transfer_note(cfg.latency, get_gpu(cfg.gpu), cfg.model_spec())
    if provenance:
        typer.echo(provenance)
    slo = s["slo"]
    ttft = (f"TTFT <= {slo['ttft_ms']:g} ms" if slo["ttft_ms"] is not None
            else f"TTFT <= {slo['norm_ttft_ms_per_token']:g} ms/token")  # fmt: skip
    typer.echo(f"SLO: {ttft}, TPOT <= {slo['tpot_ms']:g} ms ({s['slo_source']})")
    print_comparison(comparison)


def _model_of(run) -> tuple[str, str]:
    """The model to simulate when none is given: the file's, when it names a known one."""
    from bulletsim.models import model_key

    if run.model_id and model_key(run.model_id):
        return run.model_id, f"model {run.model_id} taken from the result file"
    named = (
        f"the file's model {run.model_id!r} is not a built-in model"
        if run.model_id
        else ("the file names no model")
    )
    return "llama-3.1-8b", f"{named}: simulating llama-3.1-8b (give --model or --model-config)"


def register(app: typer.Typer) -> None:
    app.command()(fidelity)
