"""Records of JSON datasets: a JSON array or JSON lines, plain or gzipped, with locations.

Every record comes with where it is ("line 7" in JSON lines, "entry 6" in an array), so a
loader's one-line errors and per-row rejections name the row.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def open_text(path: Path):
    """Open a text file that may be gzipped (decided by the magic bytes, not the name)."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gzipped else open(path, encoding="utf-8")


def _first_char(path: Path) -> str:
    with open_text(path) as f:
        while chunk := f.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return stripped[0]
    return ""


def read_records(path: Path) -> list[tuple[str, object]]:
    """(location, parsed record) for every record of a JSON array or a JSON-lines file.

    A file starting with `[` is one JSON array ("entry i", 0-based); otherwise every
    non-blank line is one JSON value ("line n", 1-based). ValueError names the bad line.
    """
    try:
        first = _first_char(path)
    except (UnicodeDecodeError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: not a text file ({exc})") from None
    if not first:
        raise ValueError(f"{path}: empty file")
    if first == "[":
        try:
            with open_text(path) as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError, EOFError, OSError) as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        return [(f"entry {i}", rec) for i, rec in enumerate(data)]
    out = []
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append((f"line {n}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {n}: not JSON ({e.msg})") from None
    return out
