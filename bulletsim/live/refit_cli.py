"""`bulletsim calibrate --from-live RUN_DIR... [--profile P] --out FILE.json` (CPU only)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bulletsim.files import require_writable_file
from bulletsim.own_outputs import is_refit_profile


def check_out_file(out: Path | None) -> Path:
    """`out` if a refitted profile may be written there: a new .json file in an existing
    folder, or a profile an earlier `--from-live` wrote (replaced). ValueError otherwise."""
    if out is None:
        raise ValueError("--from-live needs --out FILE.json (where to write the profile)")
    if out.suffix != ".json" and not out.is_dir():
        raise ValueError(f"--out {out}: a profile is a .json file")
    return require_writable_file(
        out, "--out", _is_refit_profile, "a profile `calibrate --from-live` wrote", "refit.json"
    )


_is_refit_profile = is_refit_profile  # the name older callers use


def _base_profile(run_dirs: list[Path], profile: Path | None) -> dict:
    from bulletsim.files import require_file
    from bulletsim.latency.profile import read_profile
    from bulletsim.live.run_profile import run_profile_path

    if profile is not None:
        return read_profile(require_file(profile, "latency profile"))
    return read_profile(run_profile_path(run_dirs[0]))


def calibrate_from_live(run_dirs: list[Path], profile: Path | None, out: Path | None) -> None:
    """Refit `profile` (default: the installed one of the runs' GPU and model) on the live
    runs and write it to `out`; bad input is one line and exit code 2, Ctrl-C one line and
    exit code 130 (the profile, written last through a temporary file, left as it was)."""
    from bulletsim.cli_errors import interrupted

    try:
        _calibrate(run_dirs, profile, out)
    except KeyboardInterrupt:
        interrupted()


def _calibrate(run_dirs: list[Path], profile: Path | None, out: Path | None) -> None:
    from bulletsim.cli import USER_ERRORS, fail
    from bulletsim.latency.profile import write_profile
    from bulletsim.live.refit import refit_profile
    from bulletsim.live.rundir import check_live_runs, check_refit_runs

    try:  # every input and the output are checked before the fit
        if not run_dirs:
            raise ValueError("--from-live needs live run directories (bulletsim live --out DIR)")
        out = check_out_file(out)
        run_dirs = check_live_runs(run_dirs)
        check_refit_runs(run_dirs)
        doc = _base_profile(run_dirs, profile)
        new, report = refit_profile(doc, run_dirs)
    except USER_ERRORS as e:
        fail(str(e))
    _print_report(report, new)
    if "note" in report:
        typer.echo(f"note: {report['note']}")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.json")
    try:  # last, so that Ctrl-C before it leaves `out` as it was
        write_profile(new, tmp)
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        fail(f"--out {out}: could not write the profile ({e.strerror or e})")
    except KeyboardInterrupt:
        tmp.unlink(missing_ok=True)
        raise
    typer.echo(f"profile: {out}")


def _print_report(report: dict, doc: dict) -> None:
    from bulletsim.live.refit import CONTENTION

    con = Console()
    t = Table(title=f"terms refitted on {len(report['runs'])} live runs "
              f"({report['num_iterations']} iterations)")  # fmt: skip
    for name in ("term", "before", "after"):
        t.add_column(name, justify="left" if name == "term" else "right")
    for k, v in report["terms_after"].items():
        tag = (
            ""
            if k in report["fitted"]
            else (" (kept: no co-run iterations)" if k in CONTENTION else " (held at its bound)")
        )
        t.add_row(k + tag, _term(report["terms_before"][k]), _term(v))
    con.print(t)
    h = doc["host"]
    gaps = ", ".join(
        f"{k} {1e3 * h['gap_s'][k]:.2f} ms + {1e6 * h['gap_per_seq_s'][k]:.1f} us/seq + "
        f"{1e9 * h['gap_per_token_s'][k]:.0f} ns/prompt token "
        f"({report['gap_samples'][k]} gaps)"
        for k in h["gap_s"]
    )
    typer.echo(f"host gap before a launch: {gaps}")
    factors = report.get("decode_graph_bucket_scale", {}).get("factors") or {}
    shown = "; ".join(
        f"{n} SMs: " + ", ".join(f"{rows} rows x{f:.3f}" for rows, f in row.items())
        for n, row in factors.items()
    )
    typer.echo(
        "decode-graph step factors per (SMs, padded rows), fitted after the terms "
        f"(exec.decode_graph_bucket_scale): {shown or 'none (too few graph steps per key)'}"
    )
    r = Table(title="per-iteration error, modelled / measured - 1 (%), on the fitted runs")
    for name in ("phase", "SMs", "iterations", "median |err| before", "after", "p90 before",
                 "after", "median err before", "after"):  # fmt: skip
        r.add_column(name, justify="left" if name in ("phase", "SMs") else "right")
    for b, a in zip(report["residuals_before"], report["residuals_after"], strict=True):
        r.add_row(b["phase"], b["sms"], str(b["n"]), f"{b['median_abs_pct']:.1f}",
                  f"{a['median_abs_pct']:.1f}", f"{b['p90_abs_pct']:.1f}",
                  f"{a['p90_abs_pct']:.1f}", f"{b['median_pct']:+.1f}",
                  f"{a['median_pct']:+.1f}")  # fmt: skip
    con.print(r)


def _term(v: float | None) -> str:
    """A term's value; None is the overlap exponent's absent value: max (host.overlap)."""
    return "max" if v is None else f"{v:.4g}"
