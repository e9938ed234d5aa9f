"""Files bulletsim writes from a live run outside a results folder, recognised by content so
they may be replaced (and a run folder holding them reused): a fidelity table
(`fidelity --table`) and a refitted profile (`calibrate --from-live --out`)."""

from __future__ import annotations

import json
from pathlib import Path

TABLE_HEAD = "| workload | policy | rate (req/s) |"


def is_fidelity_table(path: Path) -> bool:
    """Whether every line of `path` is part of one fidelity table as `markdown_table` writes
    it: its head, the alignment row, then rows of as many cells (a file with the user's notes
    appended, or anything else after the table, is not)."""
    try:
        lines = path.read_text().split("\n")
    except (OSError, UnicodeDecodeError):
        return False
    if lines[-1] == "":
        lines.pop()
    if len(lines) < 2 or not lines[0].startswith(TABLE_HEAD):
        return False
    cells = lines[0].count("|")
    align = lines[1]
    if align.count("|") != cells or set(align) - set("|-:"):
        return False
    return all(ln.startswith("| ") and ln.endswith(" |") and ln.count("|") == cells
               for ln in lines[2:])  # fmt: skip


def is_refit_profile(path: Path) -> bool:
    """Whether `path` is a profile `calibrate --from-live` wrote (meta.live_refit)."""
    try:
        return "live_refit" in json.loads(path.read_text())["meta"]
    except (ValueError, KeyError, TypeError, OSError, UnicodeDecodeError):
        return False
