"""The package maps in `bulletsim/__init__.py` and `calibrate/__init__.py` match the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def entries(package: Path) -> set[str]:
    """Top-level modules (`x.py`) and subpackages (`x/`) of `package`, as the map names them."""
    out = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    out |= {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    return out


def named_in_map(package: Path) -> set[str]:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    return set(re.findall(r"(?<![\w/.])([a-z_][a-z0-9_]*(?:\.py|/))", doc))


@pytest.mark.parametrize("name", ["bulletsim", "calibrate"])
def test_every_module_is_on_the_map(name):
    package = ROOT / name
    missing = entries(package) - named_in_map(package)
    assert not missing, f"{name}/__init__.py's map does not name {sorted(missing)}"


@pytest.mark.parametrize("name", ["bulletsim", "calibrate"])
def test_the_map_names_only_what_exists(name):
    package = ROOT / name
    # a map may name files of subpackages (latency/roofline.py is "roofline" under latency/)
    known = (
        entries(package)
        | {p.name for p in package.rglob("*.py") if p.parent != package}
        | {f"{p.name}/" for p in package.rglob("*") if p.is_dir()}
    )
    known |= {f"{p.name}/" for p in ROOT.iterdir() if p.is_dir()}  # the repository's folders
    stale = named_in_map(package) - known
    assert not stale, f"{name}/__init__.py's map names {sorted(stale)}, which do not exist"
