"""`bulletsim calibrate`, `calibrate-fit` and `calibrate-derive` (registered on the main app).

Importing this module needs no torch: the GPU code is imported only inside `calibrate`, and a
machine without torch/CUDA gets a one-line error. Also runnable on its own
(`python -m calibrate ...`), e.g. on a GPU box without the simulator's dependencies.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option
GPU_HINT = "needs torch with CUDA; install bulletsim[gpu] on a machine with an NVIDIA GPU"


def _fail(msg: str) -> None:
    """One line and exit code 2, as every bulletsim command reports what the user must fix
    (a bad name or file, or a machine without torch/CUDA)."""
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _require_gpu(libsmctrl: str | None, needs_libsmctrl: bool) -> None:
    """Fail in one line (exit 2) unless torch sees a CUDA GPU and, when `needs_libsmctrl`,
    the libsmctrl library (`libsmctrl` path or LIBSMCTRL_PATH) can be found."""
    if needs_libsmctrl:
        from bulletsim.gpu.libsmctrl import LibsmctrlUnavailable, find_libsmctrl

        try:
            find_libsmctrl(libsmctrl)
        except LibsmctrlUnavailable as e:
            _fail(str(e))
    try:
        import torch
    except ImportError:
        _fail(GPU_HINT)
    if not torch.cuda.is_available():
        _fail(GPU_HINT)


@contextlib.contextmanager
def _progress(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<48}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as prog:
        task = prog.add_task("calibrating", total=total)

        def advance(desc: str) -> None:
            prog.update(task, advance=1, description=desc)

        yield advance


REPLACE_HELP = (
    "With --install: replace an installed profile of the same GPU, model, tp and mechanism "
    "(sections the fit does not produce, e.g. collectives, are kept); without it, refused."
)

# What `--from-live` reads: every other option measures kernels and would be ignored by it.
FROM_LIVE_OPTIONS = ("from_live", "run_dirs", "profile", "out")


def calibrate(
    ctx: typer.Context,
    gpu: Annotated[
        str | None,
        Opt(help="GPU to calibrate; must match the GPU found (h200, h100, a100, h20)."),
    ] = None,
    model: Annotated[str, Opt(help="Model whose kernels are measured.")] = "llama-3.1-8b",
    tp: Annotated[
        int | None,
        Opt(help="Tensor-parallel degree: measure one GPU's shard (default: the model's own)."),
    ] = None,
    mechanism: Annotated[
        str, Opt(help="SM partitioning: green (= green-ctx) | libsmctrl | mps | none.")
    ] = "green-ctx",
    quick: Annotated[bool, Opt("--quick", help="Short pass (~2 min of GPU time).")] = False,
    grid: Annotated[
        str | None,
        Opt(help="Sweep grid: standard | quick | mechanisms | shard (overrides --quick)."),
    ] = None,
    out: Annotated[
        Path | None,
        Opt(
            help="Output directory (samples, profile, report); with --from-live, the "
            "profile file (.json)."
        ),
    ] = None,
    resume: Annotated[
        bool, Opt("--resume/--no-resume", help="Keep samples an interrupted run measured.")
    ] = True,
    libsmctrl: Annotated[
        str | None,
        Opt(
            "--libsmctrl",
            envvar="LIBSMCTRL_PATH",
            help="Path of your libsmctrl.so (mechanism libsmctrl).",
        ),
    ] = None,
    install: Annotated[
        bool, Opt("--install/--no-install", help="Copy the profile into bulletsim/data/profiles.")
    ] = True,
    replace: Annotated[bool, Opt("--replace", help=REPLACE_HELP)] = False,
    gemm_paths: Annotated[
        str | None,
        Opt(help="GEMM paths to choose from, comma-separated (default: all of them)."),
    ] = None,
    prefill_backend: Annotated[
        str, Opt(help="Prefill attention candidates: auto | flashinfer | sdpa.")
    ] = "auto",
    watchdog_s: Annotated[
        float | None,
        Opt(help="A sample longer than this exits (resume skips it); default: libsmctrl only."),
    ] = None,
    decode_backend: Annotated[
        str,
        Opt(
            help="Decode attention: auto (fastest correct per partition, SGLang's rule as "
            "default) | flashinfer-tc | flashinfer-cc | triton-splitk | sdpa-gather."
        ),
    ] = "auto",
    from_live: Annotated[
        bool,
        Opt(
            "--from-live",
            help="Instead of measuring: refit a profile's overhead, contention, kernel-scale "
            "and host terms on live runs (RUN_DIR...; CPU only); --out FILE.json.",
        ),
    ] = False,
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="--from-live: live run directories to fit on.", show_default=False),
    ] = None,
    profile: Annotated[
        Path | None,
        Opt(help="--from-live: the profile to refit (default: the installed one)."),
    ] = None,
) -> None:
    """Measure prefill/decode kernels under SM partitions on this GPU and fit a profile, or
    (--from-live) refit a profile on live runs."""
    if from_live:
        from bulletsim.cli_errors import given_options
        from bulletsim.live.refit_cli import calibrate_from_live

        others = tuple(p.name for p in ctx.command.params if p.name not in FROM_LIVE_OPTIONS)
        wrong = given_options(ctx, others)
        if wrong:
            _fail(
                f"{', '.join(wrong)}: not with --from-live (it refits on the runs' own GPU "
                "and model); valid with it: RUN_DIR..., --profile, --out"
            )

        calibrate_from_live(run_dirs or [], profile, out)
        return
    if run_dirs or profile is not None:
        _fail("run directories and --profile go with --from-live")
    if gpu is None:
        _fail("--gpu is required (h200, h100, a100, h20), or --from-live RUN_DIR...")
    _check_watchdog(watchdog_s)
    from bulletsim.gpu.selection import check_decode_backend
    from bulletsim.hardware import get_gpu, resolve_mechanism
    from bulletsim.models import get_model
    from calibrate.grids import GRIDS

    try:
        spec, mspec = get_gpu(gpu), get_model(model, tp)
        mechanism = resolve_mechanism(mechanism)  # the alias table run/sweep/live use
        if grid is not None and grid not in GRIDS:
            raise ValueError(f"unknown grid {grid!r}; valid: {', '.join(GRIDS)}")
        check_decode_backend(decode_backend)
        paths = _gemm_paths(gemm_paths)
        if prefill_backend not in ("auto", "flashinfer", "sdpa"):
            raise ValueError(
                f"unknown prefill backend {prefill_backend!r}; valid: auto, flashinfer, sdpa"
            )
        if replace and not install:
            raise ValueError("--replace goes with --install (it replaces an installed profile)")
        if install:  # an installed profile is never replaced silently: say so before the GPU
            from bulletsim.latency.profile import profile_filename
            from calibrate.pipeline import check_install, installed_path

            name = profile_filename(spec.name, mspec.name, mspec.tp, mechanism)
            check_install(installed_path(name), mechanism, replace)
    except ValueError as e:
        _fail(str(e))
    _require_gpu(libsmctrl, mechanism == "libsmctrl")
    from calibrate.pipeline import finish
    from calibrate.run import run_calibration

    grid = grid or ("quick" if quick else "standard")
    tp_tag = f"__tp{mspec.tp}" if mspec.tp > 1 else ""
    suffix = "" if grid == "standard" else f"-{grid}"
    out = out or Path("results") / "calibration" / f"{spec.name}__{mspec.name}{tp_tag}{suffix}"
    try:  # the files the fit writes at the end: refused now if they are not the tool's own
        from bulletsim.latency.profile import profile_filename
        from calibrate.own_files import check_outputs
        from calibrate.pipeline import TOOL, owned_outputs

        name = profile_filename(spec.name, mspec.name, mspec.tp, mechanism)
        check_outputs(out, owned_outputs(name, True), TOOL)
    except ValueError as e:
        _fail(str(e))
    try:
        meta = run_calibration(
            spec.name,
            mspec.name,
            mechanism,
            grid,
            out,
            resume,
            libsmctrl,
            os.environ.get("BULLETSIM_GIT_SHA"),
            typer.echo,
            _progress,
            decode_backend,
            mspec.tp,
            paths,
            prefill_backend,
            watchdog_s,
        )
    except (ValueError, RuntimeError) as e:
        _fail(str(e))
    try:
        path, doc = finish(out, meta, install=install, replace=replace, say=typer.echo)
    except ValueError as e:
        _fail(str(e))
    s = doc["fit"]["summary"]
    typer.echo(f"profile: {path}  (sweep {meta['sweep_wall_s']:.0f}s)")
    typer.echo(
        f"held-out kernels: median {s['heldout_ops'].get('median_pct')}%, "
        f"max {s['heldout_ops'].get('max_pct')}%; steps: "
        + ", ".join(
            f"{k} median {v.get('median_pct')}% max {v.get('max_pct')}%"
            for k, v in s["steps"].items()
        )
    )


def _gemm_paths(text: str | None) -> tuple[str, ...] | None:
    """`--gemm-paths` as a tuple (None: all); ValueError naming the valid paths."""
    if text is None:
        return None
    from bulletsim.gpu.selection import GEMM_PATHS

    paths = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in paths if p not in GEMM_PATHS]
    if bad or not paths:
        raise ValueError(f"--gemm-paths: unknown {bad or text!r}; valid: {', '.join(GEMM_PATHS)}")
    return paths


def calibrate_fit(
    samples: Annotated[
        Path, typer.Argument(help="samples.jsonl or .parquet of a calibration run.")
    ],
    meta: Annotated[
        Path | None, Opt(help="meta.json of that run (default: beside the samples).")
    ] = None,
    out: Annotated[
        Path | None, Opt(help="Output directory (default: the samples' directory).")
    ] = None,
    install: Annotated[
        bool, Opt("--install/--no-install", help="Copy the profile into bulletsim/data/profiles.")
    ] = False,
    replace: Annotated[bool, Opt("--replace", help=REPLACE_HELP)] = False,
) -> None:
    """Re-fit a profile from calibration samples (CPU only). Everything is checked before
    anything is written; only files this tool wrote are replaced in the output folder."""
    from calibrate.pipeline import refit

    if replace and not install:
        _fail("--replace goes with --install (it replaces an installed profile)")
    meta = meta or samples.parent / "meta.json"
    try:
        path, doc = refit(samples, meta, out or samples.parent, install, replace, typer.echo)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    typer.echo(f"profile: {path}")


def calibrate_derive(
    gpu: Annotated[str, Opt(help="Target GPU (a100, h100, h20).")],
    source: Annotated[
        str, Opt("--from", help="GPU of the measured profile to transfer from.")
    ] = "h200",
    model: Annotated[str, Opt(help="Model of both profiles.")] = "llama-3.1-8b",
    out: Annotated[
        Path | None, Opt(help="Where to write (default: bulletsim/data/profiles).")
    ] = None,
    tp: Annotated[int | None, Opt(help="Tensor-parallel degree of the shard profile.")] = None,
) -> None:
    """Derive a profile for another GPU from a measured one (datasheet ratios; CPU only)."""
    from calibrate.derive import derive_to_file

    try:
        path = derive_to_file(source, gpu, model, out, tp)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    typer.echo(f"derived profile: {path}")


SELF_TESTS = ("libsmctrl",)


def calibrate_selftest(
    mechanism: Annotated[str, typer.Argument(help="What to test: libsmctrl.")],
    libsmctrl: Annotated[
        str | None,
        Opt("--libsmctrl", envvar="LIBSMCTRL_PATH", help="Path of your libsmctrl.so."),
    ] = None,
    out: Annotated[Path | None, Opt(help="Write selftest.json and graph.json here.")] = None,
    watchdog_s: Annotated[float, Opt(help="A probe longer than this is a hang.")] = 20.0,
) -> None:
    """Prove with the %smid probe that masked kernels run exactly on their TPCs (GPU)."""
    if mechanism not in SELF_TESTS:
        _fail(f"no self-test for {mechanism!r}; valid: {', '.join(SELF_TESTS)}")
    _check_watchdog(watchdog_s)
    from calibrate.libsmctrl_check import main as check_main
    from calibrate.libsmctrl_check import parse_args

    argv = ["selftest", "graph", "--watchdog-s", str(watchdog_s)]
    argv += ["--libsmctrl", libsmctrl] if libsmctrl else []
    argv += ["--out", str(out)] if out else []
    try:
        parse_args(argv)  # --out: a folder, holding no file of the user's by our names
    except (ValueError, OSError) as e:
        _fail(str(e))
    _require_gpu(libsmctrl, True)
    try:
        rc = check_main(argv)
    except (ValueError, OSError) as e:
        _fail(str(e))
    raise typer.Exit(rc)


def _check_watchdog(watchdog_s: float | None) -> None:
    """--watchdog-s must be a positive, finite number of seconds (checked before the GPU)."""
    import math

    if watchdog_s is not None and not (math.isfinite(watchdog_s) and watchdog_s > 0):
        _fail(f"--watchdog-s {watchdog_s}: give a positive, finite number of seconds (e.g. 20)")


def register(app: typer.Typer) -> None:
    """Add the calibration commands to the bulletsim CLI."""
    app.command("calibrate")(calibrate)
    app.command("calibrate-selftest")(calibrate_selftest)
    app.command("calibrate-fit")(calibrate_fit)
    app.command("calibrate-derive")(calibrate_derive)


def main() -> None:
    app = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        help="bulletsim calibrator (standalone entry point).",
    )
    register(app)
    app()


if __name__ == "__main__":
    main()
