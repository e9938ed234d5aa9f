"""The GPU runtime's CPU-side contract: no torch at import, no pool import cycle, one
mechanism vocabulary and one source of partition granularity (bulletsim.hardware)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from bulletsim.hardware import (
    MECHANISMS,
    get_gpu,
    min_partition_sms,
    partition_unit_sms,
)
from bulletsim.policies.split_planner import MECHANISMS as POLICY_MECHANISMS

GPU_DIR = Path(__file__).resolve().parent.parent / "bulletsim" / "gpu"


def _imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
    return mods


def test_partition_interface_imports_no_mechanism():
    mods = _imports(GPU_DIR / "partition.py")
    assert not {m for m in mods if m.startswith("bulletsim.gpu.")}, mods
    for mech in ("green", "libsmctrl", "mps"):
        assert "bulletsim.gpu.pools" not in _imports(GPU_DIR / f"{mech}.py")


def test_importing_the_runtime_needs_no_torch():
    code = (
        "import sys, bulletsim.gpu, bulletsim.gpu.partition, bulletsim.gpu.pools, "
        "bulletsim.gpu.libsmctrl, bulletsim.gpu.mps, bulletsim.gpu.watchdog, "
        "bulletsim.gpu.green; "
        "assert 'torch' not in sys.modules, 'torch imported at module load'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_calibrate_measures_through_the_runtime_only():
    """No GPU-runtime module is left inside calibrate/ (it imports them from bulletsim.gpu)."""
    cal = GPU_DIR.parent.parent / "calibrate"
    for name in ("partition", "llama", "kernels", "attention", "timing", "probe", "watchdog"):
        assert not (cal / f"{name}.py").exists()


def test_one_mechanism_vocabulary():
    assert set(POLICY_MECHANISMS) == set(MECHANISMS)
    from bulletsim.gpu.pools import make_pool

    with pytest.raises(ValueError, match=r"valid: green \(= green-ctx\), libsmctrl, mps, none"):
        make_pool("tpc")


@pytest.mark.parametrize(
    ("gpu", "mechanism", "unit", "minimum"),
    [
        ("h200", "green-ctx", 8, 8),
        ("a100", "green-ctx", 2, 4),
        ("h200", "libsmctrl", 2, 2),
        ("a100", "mps", 2, 2),
        ("h200", "none", 132, 132),
    ],
)
def test_partition_granularity_comes_from_the_gpu_spec(gpu, mechanism, unit, minimum):
    spec = get_gpu(gpu)
    assert partition_unit_sms(mechanism, spec, spec.num_sms) == unit
    assert min_partition_sms(mechanism, spec, spec.num_sms) == minimum
