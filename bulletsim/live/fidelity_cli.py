"""`bulletsim fidelity RUN_DIR...`: the simulator against live runs, one report per run;
with `--held-out`, each run is judged by a profile refitted on the other runs only."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bulletsim.files import require_writable_file
from bulletsim.own_outputs import is_fidelity_table


def report_live_runs(
    run_dirs: list[Path],
    table: Path | None,
    profile: Path | None = None,
    held_out: str | None = None,
    policy_profile: Path | None = None,
) -> None:
    """Print each run's comparison and iteration errors; optionally write the summary table.
    `held_out` ("workload" or "load"): refit `profile` (default: installed) per fold and judge
    the held-out runs with it (`live.fidelity_folds`), the simulated policy predicting with
    `policy_profile` (default: `profile`, unrefitted: the live runs' own). Ctrl-C: one line,
    exit code 130, the table (written last, through a temporary file) left as it was."""
    from bulletsim.cli_errors import interrupted

    try:
        _report(run_dirs, table, profile, held_out, policy_profile)
    except KeyboardInterrupt:
        interrupted()


def _report(
    run_dirs: list[Path],
    table: Path | None,
    profile: Path | None,
    held_out: str | None,
    policy_profile: Path | None,
) -> None:
    from bulletsim.cli import USER_ERRORS, fail
    from bulletsim.files import require_file
    from bulletsim.live.fidelity import headline, markdown_table, resimulate_live
    from bulletsim.live.fidelity_folds import HELD_OUT
    from bulletsim.live.rundir import check_live_runs

    con = Console()
    rows = []
    try:  # every input and the output are checked before any simulation or fit
        if table is not None:
            _check_table_path(table)
        if held_out is not None and held_out not in HELD_OUT:
            raise ValueError(f"--held-out {held_out}: valid: {', '.join(HELD_OUT)}")
        if policy_profile is not None:
            if profile is None and held_out is None:
                raise ValueError(
                    "--policy-profile goes with --profile or --held-out (it is the profile "
                    "the policy predicts with beside that one)"
                )
            require_file(policy_profile, "--policy-profile")
        run_dirs = check_live_runs(run_dirs)
        plan, decide = _plan(run_dirs, profile, held_out)
        if policy_profile is not None:
            decide = policy_profile
    except USER_ERRORS as e:
        fail(str(e))
    if decide is not None:
        typer.echo(
            "the simulated policy predicts with the unrefitted profile (as the live one did)"
        )
    for d, prof, fit_on in plan:
        try:
            f = resimulate_live(d, prof, decide)
        except USER_ERRORS as e:  # which of several runs: its folder, where the error has none
            fail(str(e) if str(d) in str(e) else f"live run {d}: {e}")
        typer.echo(f"live run {d}: {f.live_summary['policy']} on {f.live_summary['workload']}")
        if fit_on:
            typer.echo(f"profile refitted on: {fit_on}")
        if prof is None:
            typer.echo(
                "note: per-iteration errors are of the predictions the live run recorded "
                "(predicted_s: its policy's profile, without the engine's padded decode graphs "
                "or eager attention kernel, which the simulated clock prices); --profile P "
                "re-prices every iteration as the engine ran it"
            )
        for note in (_rescale_note(f), _engine_note(d)):
            if note:
                typer.echo(f"note: {note}")
        _print_run(f, con)
        rows.append(headline(f) | ({"fit_on": fit_on} if fit_on else {}))
    if table is not None:
        tmp = table.with_name(f".{table.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(markdown_table(rows))
            tmp.replace(table)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            fail(f"--table {table}: could not write the table ({e.strerror or e})")
        except KeyboardInterrupt:
            tmp.unlink(missing_ok=True)
            raise
        typer.echo(f"table: {table}")


def _plan(run_dirs: list[Path], profile: Path | None, held_out: str | None) -> tuple:
    """([(run, profile document, what it was fitted on)] for every run to judge, the profile
    the simulated policy predicts with when not that one)."""
    from bulletsim.files import require_file
    from bulletsim.latency.profile import read_profile

    doc = read_profile(require_file(profile, "latency profile")) if profile is not None else None
    if held_out is None:
        fitted = {Path(p).resolve() for p in ((doc or {}).get("meta", {}).get("live_refit") or {})
                  .get("runs", [])}  # fmt: skip
        for d in run_dirs:
            if Path(d).resolve() in fitted:
                typer.echo(f"note: {d} is one of the runs the profile was refitted on")
        if doc is None:  # each run with the profile run would pick, its iterations priced
            return [(d, *_current_profile(d)) for d in run_dirs], None
        return [(d, doc, "") for d in run_dirs], None
    from bulletsim.live.fidelity_folds import folds, load_groups
    from bulletsim.live.refit import refit_profile
    from bulletsim.live.rundir import check_refit_runs

    note = check_refit_runs(run_dirs)  # before any fit: no fake runs beside GPU ones
    if doc is None:
        doc = _installed_profile(run_dirs[0])
    plan, fold_list = [], folds(run_dirs, held_out)
    if held_out == "load":  # equal ranks are not equal loads: say what each group pairs
        typer.echo(f"load groups: {load_groups(run_dirs)}")
    if note:
        typer.echo(f"note: {note}")
    for fold in fold_list:
        new, _ = refit_profile(doc, list(fold.fit))
        runs = "run" if len(fold.fit) == 1 else "runs"
        fit_on = f"{held_out}: the {len(fold.fit)} {runs} not in {fold.name}"
        plan += [(d, new, fit_on) for d in fold.judge]
    order = {Path(d): i for i, d in enumerate(run_dirs)}
    return sorted(plan, key=lambda x: order[Path(x[0])]), doc


def _engine_note(run_dir: Path) -> str | None:
    """A GPU run that recorded no decode-graph batch sizes (written before they were): its
    decode steps are priced at their exact rows, which its engine may not have run."""
    from bulletsim.live.engine_exec import run_engine_exec
    from bulletsim.live.rundir import host_times_measured

    if host_times_measured(run_dir) and "decode_graph_buckets" not in run_engine_exec(run_dir):
        return (f"{run_dir} records no decode-graph batch sizes (live.json "
                "executor.decode_graph_buckets): its decode steps are priced at their exact "
                "rows")  # fmt: skip
    return None


def _current_profile(run_dir: Path) -> tuple[dict | None, str]:
    """(profile document or None, "") to re-simulate `run_dir` with: None when it is the one
    the run recorded (`live.run_profile.profile_for_resimulation`), else the note printed."""
    from bulletsim.live.run_profile import profile_for_resimulation

    doc, note = profile_for_resimulation(run_dir)
    if note:
        typer.echo(f"note: {note}")
    return doc, ""


def _rescale_note(f) -> str | None:
    """One line when a fake-executor run cannot be re-simulated exactly: the simulator shrank
    running steps after a re-split (libsmctrl / mps: per-kernel re-masking), which the fake
    loop does not do (a launch keeps its partition; `live.fake`); None otherwise."""
    from bulletsim.live.rundir import read_json_object

    executor = read_json_object(f.run_dir / "live.json")["executor"].get("executor")
    it = f.sim.iterations
    n = int((it["num_rescales"] > 0).sum()) if "num_rescales" in it else 0
    if executor != "fake" or n == 0:
        return None
    return (
        f"the simulator resized {n} running steps after a re-split "
        f"({f.sim.config.partition_mechanism()}: per-kernel re-masking) where the fake "
        "executor keeps a launch's partition: its errors here are that difference, not the "
        "latency model's (green contexts or one lane re-simulate exactly)"
    )


def _installed_profile(run_dir: Path) -> dict:
    from bulletsim.latency.profile import read_profile
    from bulletsim.live.run_profile import run_profile_path

    return read_profile(run_profile_path(run_dir))


def _print_run(f, con: Console) -> None:
    from bulletsim.fidelity.report import print_comparison

    print_comparison(f.comparison, con)
    t = Table(title="per-iteration prediction error, predicted / measured - 1 (%)")
    for name in ("phase", "SMs", "iterations", "median |err|", "p90 |err|", "median err"):
        t.add_column(name, justify="left" if name in ("phase", "SMs") else "right")
    for r in f.iterations.itertuples():
        t.add_row(r.phase, r.sms, str(r.n), f"{r.median_abs_pct:.1f}",
                  f"{r.p90_abs_pct:.1f}", f"{r.median_pct:+.1f}")  # fmt: skip
    con.print(t)
    if f.iterations.attrs.get("note"):
        typer.echo(f"note: {f.iterations.attrs['note']}")


def _check_table_path(table: Path) -> None:
    """Refuse, before any simulation, a --table this tool may not write: a folder, a file in a
    missing folder, or an existing file that is not a fidelity table it wrote. ValueError."""
    require_writable_file(
        table, "--table", is_fidelity_table, "a fidelity table bulletsim wrote", "fidelity.md"
    )
