"""`bulletsim live`: `bulletsim run`'s workload, policy, SLO and output options, served by a
real engine on a GPU (or by the fake executor, for trying the control loop anywhere)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import typer

EXECUTORS = ("gpu", "fake")


def _live(executor: str, decode_graphs: bool, weights: Path | None, cli_opts: dict) -> None:
    from bulletsim.cli import USER_ERRORS, config_from_options, fail, run_out_dir
    from bulletsim.report import print_summary

    if executor not in EXECUTORS:
        fail(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if weights is not None and executor != "gpu":
        fail(f"--weights needs --executor gpu (the {executor} executor runs no kernels)")
    cfg = config_from_options(cli_opts)
    if executor == "gpu" and cli_opts.get("mechanism"):
        mech = cfg.params().mechanism
        if mech not in ("green-ctx", "none"):  # an explicit ask is not silently replaced
            fail(f"--mechanism {mech}: the live GPU engine partitions SMs with green contexts "
                 "only; valid live: green, none (any with --executor fake)")  # fmt: skip
    if executor == "gpu":
        cfg = with_green_contexts(cfg)
    if weights is not None:
        try:
            check_weights(weights, cfg)
        except USER_ERRORS as e:
            fail(str(e))
    else:
        typer.echo(
            "note: random bf16 weights at the model's real shapes (timing-equivalent for a "
            "dense model; token ids are meaningless); --weights DIR loads a checkpoint",
            err=True,
        )
    out_dir = run_out_dir(cfg, cli_opts["out"], cli_opts["no_write"], suffix="-live")
    try:
        ex = make_executor(executor, cfg, decode_graphs=decode_graphs, weights_dir=weights)
        from bulletsim.live.run import live_run

        res = live_run(cfg, ex)
    except USER_ERRORS as e:
        fail(str(e))
    print_summary(res.result)
    lv = res.live
    typer.echo(
        f"live ({lv['executor']['executor']}): {lv['num_iterations']} iterations, host "
        f"{lv['host_ms_per_iteration']['mean']:.3f} ms/iteration vs device "
        f"{lv['device_ms_per_iteration']['mean']:.3f} ms/iteration"
    )
    if out_dir is None:
        return
    from bulletsim.results import write_results

    try:
        write_results(res.result, out_dir, extra_json={"live.json": res.live})
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo(f"results: {out_dir}")


def with_green_contexts(cfg):
    """The GPU executor partitions SMs with green contexts only: a policy whose mechanism is
    libsmctrl (Bullet's default) is run with green-ctx instead, and a note says so, so that
    its plans use the partition sizes the engine can make (the config written says green-ctx,
    so a re-simulation plans the same way)."""
    import dataclasses

    if getattr(cfg.params(), "mechanism", None) != "libsmctrl":
        return cfg
    section = {**cfg.policy_params.get(cfg.policy, {}), "mechanism": "green-ctx"}
    typer.echo(
        f"note: the live engine partitions SMs with green contexts; {cfg.policy}.mechanism "
        "= green-ctx (libsmctrl is not supported live)",
        err=True,
    )
    params = {**cfg.policy_params, cfg.policy: section}
    return dataclasses.replace(cfg, policy_params=params).validate()


def check_weights(folder: Path, cfg) -> None:
    """A checkpoint folder's tensors against the config's model (headers only, no GPU)."""
    from bulletsim.live.gpu.checkpoint import check_checkpoint
    from bulletsim.models import get_model

    spec = get_model(cfg.model, tp=cfg.tp)
    if spec.tp != 1 or spec.is_moe:
        raise ValueError("--weights: the live engine runs dense models on one GPU (tp=1)")
    check_checkpoint(folder, spec)


def make_executor(name: str, cfg, *, decode_graphs: bool = True, weights_dir=None):
    """The executor called `name` for `cfg` (the GPU one imports torch here, not before)."""
    if name == "fake":
        from bulletsim.live.fake import FakeExecutor

        return FakeExecutor()
    try:
        from bulletsim.live.gpu.executor import GpuExecutor
    except ImportError as e:
        raise ValueError(
            f"--executor gpu needs torch with CUDA and flashinfer ({e.name or e} is missing); "
            "install bulletsim[gpu] on a machine with an NVIDIA GPU, or use --executor fake"
        ) from None
    return GpuExecutor(cfg, decode_graphs=decode_graphs, weights_dir=weights_dir)


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
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in run_params] + extra

    def live(**opts) -> None:
        _live(opts.pop("executor"), opts.pop("decode_graphs"), opts.pop("weights"), opts)

    live.__signature__ = inspect.Signature(params, return_annotation=None)
    live.__annotations__ = {p.name: p.annotation for p in params}
    live.__doc__ = (
        "Serve one workload with one policy on a real GPU engine (Llama-3.1-8B shapes, random "
        "bf16 weights: timing-equivalent for a dense model) and record measured and predicted "
        "time per iteration."
    )
    app.command("live")(live)
