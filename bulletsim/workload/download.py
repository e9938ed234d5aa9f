"""Fetch the real trace files from their public sources into a folder (default: user cache).

Downloads stream into a temporary file next to the target, are checked against the pinned
sha256 where PROVENANCE.md gives one, and only then replace the target (os.replace), so an
interrupted download never leaves a truncated trace behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bulletsim.workload.catalog import TRACE_NAMES, TraceFile, trace_info

MIRROR_ENV = "BULLETSIM_TRACES_MIRROR"
_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Fetched:
    """What happened to one file: "downloaded", "present" (already there) or "missing"."""

    file: str
    path: Path
    status: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, path: Path, sha256: str | None = None, timeout_s: float = 60) -> None:
    """Fetch `url` to `path` atomically; ConnectionError (one line) when it cannot be reached,
    ValueError when the content does not match `sha256`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as src:
            for block in iter(lambda: src.read(_BLOCK_BYTES), b""):
                digest.update(block)
                out.write(block)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ValueError(
                f"{url}: sha256 {digest.hexdigest()} does not match the pinned {sha256}"
            )
        os.replace(tmp, path)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(
            f"could not fetch {url} ({reason}); offline? copy the file to {path} by hand"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def _url(file: TraceFile, mirror: str | None) -> str | None:
    # A mirror (a base URL such as file:///data/traces) serves files by their bare names,
    # including the derived tables that have no public origin.
    if mirror:
        return f"{mirror.rstrip('/')}/{file.name}"
    return file.url


def download_traces(
    names: list[str] | None, dest: Path, mirror: str | None = None
) -> list[Fetched]:
    """Fetch the files of `names` (None: every trace) into `dest`, skipping those present.

    `mirror` (or env BULLETSIM_TRACES_MIRROR) replaces the public origins with one base URL
    that serves files by name, derived tables included. A file that cannot be fetched is
    reported as "missing"; ConnectionError only when a trace ends up with no file at all.
    """
    mirror = mirror or os.environ.get(MIRROR_ENV)
    done: dict[str, Fetched] = {}
    for name in names or [n for n in TRACE_NAMES if trace_info(n).files]:
        info = trace_info(name)
        errors = []
        for file in info.files:
            if file.name not in done:
                try:
                    done[file.name] = _fetch_one(file, dest, mirror)
                except ConnectionError as exc:
                    errors.append(str(exc))
                    done[file.name] = Fetched(file.name, dest / file.name, "missing")
        if info.files and all(done[f.name].status == "missing" for f in info.files):
            raise ConnectionError(errors[0] if errors else f"{name}: no public source")
    return list(done.values())


def _fetch_one(file: TraceFile, dest: Path, mirror: str | None) -> Fetched:
    path = dest / file.name
    if path.is_file() and (file.sha256 is None or sha256_of(path) == file.sha256):
        return Fetched(file.name, path, "present")
    url = _url(file, mirror)
    if url is None:
        return Fetched(file.name, path, "missing")
    download_file(url, path, file.sha256)
    return Fetched(file.name, path, "downloaded")
