"""`bulletsim live`: `bulletsim run`'s workload, policy, SLO and output options, served by a
real engine on a GPU (or by the fake executor, for trying the control loop anywhere)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import typer

EXECUTORS = ("gpu", "fake")


# What `live` runs when not told otherwise (the simulator's `run` keeps its own defaults): the
# GPU present (the GPU executor) or the H200 the live engine was built and measured on, and
# green contexts, the one SM-partition mechanism the GPU engine makes (`--mechanism`).
LIVE_GPU = "h200"
LIVE_MECHANISM = "green"
LIVE_MECHANISMS_GPU = ("green-ctx", "none")


def _live(executor: str, decode_graphs: bool, weights: Path | None, cli_opts: dict) -> None:
    from bulletsim.cli import USER_ERRORS, fail, run_out_dir
    from bulletsim.report import print_summary

    if executor not in EXECUTORS:
        fail(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if weights is not None and executor != "gpu":
        fail(f"--weights needs --executor gpu (the {executor} executor runs no kernels)")
    if not decode_graphs and executor != "gpu":
        fail(f"--no-decode-graphs needs --executor gpu (the {executor} executor runs no graphs)")
    cfg = live_run_config(executor, cli_opts)
    if weights is not None:
        try:
            check_weights(weights, cfg)
        except USER_ERRORS as e:
            fail(str(e))
    elif executor == "gpu":
        typer.echo(
            "note: random bf16 weights at the model's real shapes (timing-equivalent for a "
            "dense model; token ids are meaningless); --weights DIR loads a checkpoint",
            err=True,
        )
    else:
        typer.echo(
            "note: fake executor: no GPU, no model, no kernels; every launch takes the latency "
            "model's predicted time on a virtual clock (the control loop's behaviour, not a "
            "measurement)",
            err=True,
        )
    out_dir = run_out_dir(cfg, cli_opts["out"], cli_opts["no_write"], suffix="-live")
    try:
        ex = make_executor(executor, cfg, decode_graphs=decode_graphs, weights_dir=weights)
        from bulletsim.live.run import live_run

        res = live_run(cfg, ex)
    except USER_ERRORS as e:
        fail(str(e))
    except KeyboardInterrupt:
        typer.echo("interrupted: live run stopped; nothing was written", err=True)
        raise typer.Exit(130) from None
    print_summary(res.result)
    lv = res.live
    device = "device" if executor == "gpu" else "predicted device"
    typer.echo(
        f"live ({lv['executor']['executor']}): {lv['num_iterations']} iterations, host "
        f"{lv['host_ms_per_iteration']['mean']:.3f} ms/iteration vs {device} "
        f"{lv['device_ms_per_iteration']['mean']:.3f} ms/iteration"
        + (f", SM clock p50 {mhz:.0f} MHz" if (mhz := lv.get("sm_clock_mhz_p50")) else "")
    )
    if out_dir is None:
        return
    from bulletsim.results import write_results

    try:
        write_results(
            res.result, out_dir, extra_json={"live.json": res.live}, digests_in="live.json"
        )
    except USER_ERRORS as e:
        fail(str(e))
    except KeyboardInterrupt:
        typer.echo(f"interrupted while writing: {out_dir} left as it was", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"results: {out_dir}")


def live_run_config(executor: str, opts: dict):
    """The RunConfig `live` runs for `run`'s options `opts`, with live's own defaults: the GPU
    (not given by --gpu or the config file) is the one present for the GPU executor, else
    `LIVE_GPU`; a policy with SM partitions and no mechanism given (--mechanism, --set, the
    config file) uses `LIVE_MECHANISM` as `--mechanism green` would (its measured
    re-partition cost too). The GPU executor refuses a mechanism it cannot make. The config
    written with the run names what ran. Exits 2 with one line on bad input."""
    from bulletsim.cli import config_from_options, fail
    from bulletsim.run_options import mechanism_given

    opts = dict(opts)
    named = opts.get("gpu") is not None or _file_sets(opts.get("config"), "gpu")
    if not named:
        opts["gpu"] = default_gpu(executor)
    cfg = config_from_options(opts)
    if named and executor == "gpu":
        check_gpu_present(cfg.gpu)
    if not mechanism_given(opts) and hasattr(cfg.params(), "mechanism"):
        cfg = config_from_options(opts | {"mechanism": LIVE_MECHANISM})
    spec = cfg.model_spec()
    if executor == "gpu" and (spec.tp != 1 or spec.is_moe):
        fail(
            f"--model {cfg.model} (tp={spec.tp}{', MoE' if spec.is_moe else ''}): the live GPU "
            "engine runs dense models on one GPU (tp=1), e.g. llama-3.1-8b; any with "
            "--executor fake"
        )
    mech = getattr(cfg.params(), "mechanism", None)
    if executor == "gpu" and mech is not None and mech not in LIVE_MECHANISMS_GPU:
        fail(
            f"{cfg.policy}.mechanism = {mech}: the live GPU engine partitions SMs with green "
            "contexts only; valid live: green, none (any with --executor fake)"
        )
    return cfg


def default_gpu(executor: str) -> str:
    """The GPU `live` runs when none is named: for the GPU executor the one torch sees
    (device 0), when bulletsim knows it; else `LIVE_GPU`. A note says which."""
    from bulletsim.cli import fail
    from bulletsim.hardware import GPUS, gpu_key

    name = present_gpu() if executor == "gpu" else None
    if name is None:
        return LIVE_GPU
    key = gpu_key(name)
    if key is None:
        fail(
            f"the GPU present ({name}) is not one bulletsim has specs for; valid --gpu: "
            f"{', '.join(sorted(GPUS))}"
        )
    typer.echo(f"note: --gpu {key} (the GPU present: {name})", err=True)
    return key


def check_gpu_present(gpu: str) -> None:
    """Exit 2 when the GPU executor would run on another GPU than the config names (its
    profile, its specs and the config written would all describe a GPU that did not run)."""
    from bulletsim.cli import fail
    from bulletsim.hardware import gpu_key

    name = present_gpu()
    key = gpu_key(name) if name else None
    if key is not None and key != gpu:
        fail(
            f"the run names GPU {gpu} (--gpu or --config), but the GPU present is {name}: "
            f"give --gpu {key} or leave it out"
        )


def present_gpu() -> str | None:
    """The name of the CUDA device the GPU executor would use, or None (no torch, no CUDA)."""
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except (ImportError, RuntimeError, AssertionError):
        return None


def _file_sets(config: Path | None, key: str) -> bool:
    """Whether the TOML config file sets the top-level `key` (False when it cannot be read:
    reading it for the run reports that)."""
    import tomllib

    if config is None:
        return False
    try:
        return key in tomllib.loads(Path(config).expanduser().read_text())
    except (OSError, ValueError):
        return False


def check_weights(folder: Path, cfg) -> None:
    """A checkpoint folder's tensors against the config's model (headers only, no GPU)."""
    from bulletsim.live.gpu.checkpoint import check_checkpoint
    from bulletsim.models import get_model

    spec = get_model(cfg.model, tp=cfg.tp)
    if spec.tp != 1 or spec.is_moe:
        raise ValueError("--weights: the live engine runs dense models on one GPU (tp=1)")
    check_checkpoint(folder, spec)


def uses_green_contexts(cfg) -> bool:
    """Whether the GPU engine would run `cfg`'s policy on green-context pairs: Bullet with
    mechanism green-ctx, PDMux always (`policies.registry.mechanism_of`)."""
    from bulletsim.policies.registry import mechanism_of

    return mechanism_of(cfg.policy, cfg.params()) == "green-ctx"


def make_executor(name: str, cfg, *, decode_graphs: bool = True, weights_dir=None):
    """The executor called `name` for `cfg` (the GPU one imports torch here, not before)."""
    if name == "fake":
        from bulletsim.live.fake import FakeExecutor

        # partitions as the GPU engine makes them wherever it would make green contexts
        return FakeExecutor(green=uses_green_contexts(cfg))
    try:
        from bulletsim.live.gpu.executor import GpuExecutor
    except ImportError as e:
        raise ValueError(
            f"--executor gpu needs torch with CUDA and flashinfer ({e.name or e} is missing); "
            "install bulletsim[gpu] on a machine with an NVIDIA GPU, or use --executor fake"
        ) from None
    return GpuExecutor(cfg, decode_graphs=decode_graphs, weights_dir=weights_dir)


def _live_help(p: inspect.Parameter) -> inspect.Parameter:
    """`run`'s option `p` as `live` documents it: live's own defaults and policies."""
    from bulletsim.policies.registry import policy_choices

    text = {
        "policy": f"Serving policy (case-insensitive): {policy_choices()}, or "
        "NAME:key=value,... (its parameters); see `bulletsim policies`. (default: chunked)",
        "gpu": "GPU: a100, h100, h20, h200 (any case, nvidia- prefix). (default: with --executor "
        f"gpu the GPU present, else {LIVE_GPU}; the live engine was measured on an H200)",
        "mechanism": "How Bullet partitions SMs: green (green contexts, 8 SMs on Hopper; the "
        "only one the GPU engine makes), none; with --executor fake also libsmctrl, mps. Sets "
        f"bullet.mechanism and its measured re-partition cost. (default: {LIVE_MECHANISM})",
    }.get(p.name)
    if text is None:
        return p
    return p.replace(annotation=Annotated[str | None, typer.Option(help=text)])


def register(app: typer.Typer) -> None:
    from bulletsim.cli import run

    run_params = [
        p
        for p in inspect.signature(run, eval_str=True).parameters.values()
        if p.name not in ("plots",)
    ]
    extra = [
        inspect.Parameter(
            "executor",
            inspect.Parameter.KEYWORD_ONLY,
            default="gpu",
            annotation=Annotated[
                str, typer.Option(help="gpu (the real engine) or fake (predicted-time timers).")
            ],
        ),
        inspect.Parameter(
            "decode_graphs",
            inspect.Parameter.KEYWORD_ONLY,
            default=True,
            annotation=Annotated[
                bool,
                typer.Option(help="Decode steps as CUDA graphs per (partition, batch bucket)."),
            ],
        ),
        inspect.Parameter(
            "weights",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                Path | None,
                typer.Option(
                    help="Folder of a Hugging Face safetensors checkpoint of the model (bf16); "
                    "default: random bf16 weights (timing-equivalent).",
                    show_default=False,
                ),
            ],
        ),
    ]
    params = [_live_help(p).replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in run_params]
    params += extra

    def live(**opts) -> None:
        _live(opts.pop("executor"), opts.pop("decode_graphs"), opts.pop("weights"), opts)

    live.__signature__ = inspect.Signature(params, return_annotation=None)
    live.__annotations__ = {p.name: p.annotation for p in params}
    live.__doc__ = (
        "Serve one workload with one policy on a real GPU engine (Llama-3.1-8B shapes, random "
        "bf16 weights: timing-equivalent for a dense model) and record measured and predicted "
        "time per iteration; --executor fake runs the same loop on CPU with predicted times."
    )
    app.command("live")(live)
