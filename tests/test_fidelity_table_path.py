"""`bulletsim fidelity --table` never overwrites a file it did not write, and refuses a folder,
before any simulation (new-user findings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulletsim.live.fidelity_cli import _check_table_path
from bulletsim.own_outputs import TABLE_HEAD, is_fidelity_table


def test_foreign_file_is_refused_and_kept(tmp_path: Path) -> None:
    f = tmp_path / "mine.json"
    f.write_text("mine\n")
    with pytest.raises(ValueError, match="not a fidelity table bulletsim wrote"):
        _check_table_path(f)
    assert f.read_text() == "mine\n"


def test_folder_and_missing_parent_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a folder"):
        _check_table_path(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        _check_table_path(tmp_path / "nope" / "t.md")


def test_own_table_and_new_file_are_accepted(tmp_path: Path) -> None:
    own = tmp_path / "fidelity.md"
    own.write_text(TABLE_HEAD + " live thr |\n|---|---|---:|---:|\n| a | b | 1 | 2 |\n")
    _check_table_path(own)
    _check_table_path(tmp_path / "new.md")


def test_committed_tables_are_recognised_as_its_own() -> None:
    root = Path(__file__).resolve().parents[1] / "results" / "live-h200"
    tables = sorted(root.glob("fidelity*.md"))
    assert tables
    for t in tables:
        assert t.read_text().startswith(TABLE_HEAD), t
        assert is_fidelity_table(t), t
