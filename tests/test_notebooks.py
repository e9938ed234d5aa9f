"""Execute the notebooks on a small sweep so they can never silently rot (< 60 s)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from bulletsim.sweep import SweepSpec
from bulletsim.sweep_cli import run_and_write

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# Another helper's notebook is included only when it exists and runs without a GPU quickly.
OPTIONAL = ("calibration.ipynb",)


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "sweep"
    spec = SweepSpec(
        policies=("bullet", "chunked-1024"),
        traces=("sharegpt",),
        rates=(2.0, 6.0),
        num_requests=40,
        rel_tol=0.25,
        base={"latency": "roofline"},
    )
    run_and_write(spec, out, timeline=True, plots=False, quiet=True)
    return out


def _run(path: Path, env: dict[str, str]) -> None:
    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(
            nb,
            timeout=60,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_comparison_notebook(small_sweep):
    _run(NOTEBOOKS / "comparison.ipynb", {"BULLETSIM_SWEEP_DIR": str(small_sweep)})


@pytest.mark.parametrize("name", OPTIONAL)
def test_optional_notebooks(name, small_sweep):
    path = NOTEBOOKS / name
    if not path.is_file():
        pytest.skip(f"{name} not in this checkout")
    _run(path, {"BULLETSIM_SWEEP_DIR": str(small_sweep)})
