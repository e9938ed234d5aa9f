"""`bulletsim traces ...`: list the named traces, download their real files, rebuild defaults.

Imports of the heavy parts (pandas via the loaders) happen inside the commands, so that
registering the group costs nothing at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _fail(exc: Exception) -> typer.Exit:
    """One line; exit 2 for bad input (names, paths), 1 when the network fails."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1 if isinstance(exc, ConnectionError) else 2)


def list_traces(
    traces_dir: Annotated[
        str | None, typer.Option("--traces-dir", help="Folder searched before the cache.")
    ] = None,
) -> None:
    """Each named trace: format, where its real file is (or would be) found, its source."""
    from bulletsim.workload.catalog import TRACES
    from bulletsim.workload.resolve import find_trace_file, search_dirs

    try:
        first_dir = search_dirs(traces_dir)[0]
    except FileNotFoundError as exc:
        raise _fail(exc) from None
    for info in TRACES.values():
        if info.format == "synthetic":
            typer.echo(f"{info.name:17} {info.format:12} no file             {info.description}")
            continue
        if not info.files:
            typer.echo(f"{info.name:17} {info.format:12} needs --trace-file  {info.description}")
            continue
        found = find_trace_file(info, None, traces_dir, strict=False)
        where = f"present {found}" if found else f"missing {first_dir / info.files[0].name}"
        fallback = "" if found or not info.embedded else f" (embedded: {info.embedded})"
        typer.echo(f"{info.name:17} {info.format:12} {where}{fallback}")
        typer.echo(f"{'':30} {info.description}; licence: {info.licence}")
        for file in info.files:
            typer.echo(f"{'':30} {file.name}: {file.url or 'derived, no public copy'}")


def download(
    names: Annotated[list[str] | None, typer.Argument(help="Trace names; none = all.")] = None,
    dest: Annotated[
        Path | None, typer.Option("--dest", help="Target folder (default: the user cache).")
    ] = None,
    mirror: Annotated[
        str | None, typer.Option("--mirror", help="Base URL serving the files by name.")
    ] = None,
) -> None:
    """Fetch the real trace files from their public sources (sha256-checked where pinned)."""
    from bulletsim.workload.download import download_traces
    from bulletsim.workload.resolve import cache_dir

    try:
        fetched = download_traces(names, dest or cache_dir(), mirror)
    except (ValueError, ConnectionError) as exc:
        raise _fail(exc) from None
    for item in fetched:
        typer.echo(f"{item.status:10} {item.path}")


def build_defaults(
    from_dir: Annotated[Path, typer.Option("--from", help="Folder holding the real trace files.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Where to write (default: the package).")
    ] = None,
) -> None:
    """Recompute the embedded default models (bulletsim/workload/data/*.json)."""
    from bulletsim.workload.build_defaults import build_defaults as build
    from bulletsim.workload.embedded import DATA_DIR

    try:
        written = build(from_dir, out_dir or DATA_DIR)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(exc) from None
    for path in written:
        typer.echo(f"wrote {path} ({path.stat().st_size:,} bytes)")


def register(app: typer.Typer) -> None:
    """Add the `traces` command group to `app`."""
    traces = typer.Typer(help="Real workload traces: list, download, rebuild defaults.")
    traces.command("list")(list_traces)
    traces.command("download")(download)
    traces.command("build-defaults")(build_defaults)
    app.add_typer(traces, name="traces")
