"""Output files a calibrate tool wrote, recognised by a provenance marker, and atomic writes.

A tool may replace a file in its output folder only when the file is its own: a JSON object
whose `"written_by"` is the tool's name (`python -m` module), a text file (markdown, log)
whose first line is `marker_line(tool)`, a CSV whose header is the tool's. Anything else there
(a user's `compare.md`, a `masked_gemm.json` of another program, `{"mine": 1}`) makes the tool
stop before it measures or writes anything, naming the file (`check_outputs`). Files are
written to a hidden sibling and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

MARK_KEY = "written_by"


def marker_line(tool: str) -> str:
    """First line of a text file `tool` writes (an HTML comment: invisible in markdown)."""
    return f"<!-- written by {tool} -->"


def stamped(tool: str, doc: dict) -> dict:
    """`doc` with the provenance field first."""
    return {MARK_KEY: tool, **{k: v for k, v in doc.items() if k != MARK_KEY}}


def is_own_json(path: Path, tool: str) -> bool:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get(MARK_KEY) == tool


def _first_line(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\n")
    except (OSError, ValueError):
        return None


def is_own_text(path: Path, tool: str) -> bool:
    return _first_line(path) == marker_line(tool)


def csv_with_header(header: str) -> Callable[[Path], bool]:
    """A recogniser for a CSV whose first line starts with `header`."""
    return lambda path: (_first_line(path) or "\x00").startswith(header)


def check_outputs(folder: Path, owned: Mapping[str, Callable[[Path], bool]], tool: str) -> None:
    """Raise ValueError unless every file of `owned` (name -> recogniser) that exists in
    `folder` is a regular file the recogniser accepts (never overwrite a user's file)."""
    for name, ours in owned.items():
        p = folder / name
        if p.is_symlink() or (p.exists() and not p.is_file()):
            raise ValueError(f"{p} exists and is not a regular file; choose another --out folder")
        if p.exists() and not ours(p):
            raise ValueError(
                f"{p} exists and was not written by {tool} (no provenance marker); "
                "move it away or choose another --out folder"
            )


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, tool: str, doc: dict) -> None:
    """`doc`, stamped with `tool`, as indented JSON."""
    write_text_atomic(path, json.dumps(stamped(tool, doc), indent=1) + "\n")


def is_own_jsonl(path: Path, tool: str) -> bool:
    """A JSON-lines log whose first record is `header(tool)`."""
    line = _first_line(path)
    try:
        doc = json.loads(line) if line else None
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get(MARK_KEY) == tool


def jsonl_header(tool: str) -> str:
    """First line of a JSON-lines log `tool` writes (readers skip it: it has no "key")."""
    return json.dumps({MARK_KEY: tool}) + "\n"


def is_own_parquet(path: Path, tool: str) -> bool:
    """A parquet file whose schema metadata says `written_by: tool` (`write_parquet_atomic`)."""
    try:
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
    except (OSError, ValueError, ImportError):
        return False
    return meta.get(MARK_KEY.encode()) == tool.encode()


def write_parquet_atomic(path: Path, tool: str, df) -> None:
    """`df` (a pandas DataFrame, index dropped) as zstd parquet, `written_by: tool` in the
    schema metadata; written to a hidden sibling and renamed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), MARK_KEY.encode(): tool.encode()}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_own_profile(path: Path, tool: str) -> bool:
    """A profile JSON whose `meta.written_by` is `tool` (profiles keep their top-level keys)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    meta = doc.get("meta") if isinstance(doc, dict) else None
    return isinstance(meta, dict) and meta.get(MARK_KEY) == tool
