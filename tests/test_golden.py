"""Golden runs: small configs whose summary.json and table fingerprints are committed.

A refactor or speed-up must leave every simulated number as it was: each config in
`tests/golden/*.toml` is run on its embedded (offline) workload and written with
`write_results`; its `summary.json` must equal the committed `tests/golden/<name>.summary.json`
byte for byte, and the SHA-256 of each table (requests, iterations, SM timeline, rendered
as CSV with round-trip float text) must equal `tests/golden/<name>.tables.json`.

A deliberate change of behaviour regenerates them, and the diff shows what moved:

    BULLETSIM_UPDATE_GOLDEN=1 PYTHONPATH=$PWD python -m pytest -q tests/test_golden.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from bulletsim.config import load_config

GOLDEN = Path(__file__).resolve().parent / "golden"
CONFIGS = sorted(p.stem for p in GOLDEN.glob("*.toml"))
TABLES = ("requests", "iterations", "sm_timeline")


def table_fingerprint(df: pd.DataFrame) -> str:
    """SHA-256 of the table as CSV (floats as their shortest round-trip text)."""
    return hashlib.sha256(df.to_csv(index=False, lineterminator="\n").encode()).hexdigest()


def run_golden(name: str, out: Path) -> tuple[bytes, dict[str, str]]:
    """Simulate golden config `name`, write its results under `out`; (summary bytes, hashes)."""
    from bulletsim.results import load_results, write_results
    from bulletsim.run import simulate

    res = simulate(load_config(GOLDEN / f"{name}.toml"))
    run_dir = write_results(res, out / name)
    back = load_results(run_dir)
    hashes = {t: table_fingerprint(back[t]) for t in TABLES}
    hashes["num_rows"] = {t: len(back[t]) for t in TABLES}
    return (run_dir / "summary.json").read_bytes(), hashes


def test_there_are_golden_configs():
    assert {"chunked", "bullet", "naive", "static-split"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_golden_run_is_unchanged(name, tmp_path, monkeypatch):
    # only the embedded workload models, whatever real files this machine has
    monkeypatch.setenv("BULLETSIM_TRACES_DIR", "")
    monkeypatch.setenv("BULLETSIM_CACHE_DIR", str(tmp_path / "no-cache"))
    summary, hashes = run_golden(name, tmp_path)
    assert json.loads(summary)["workload_is_embedded_default"] is True
    want_summary = GOLDEN / f"{name}.summary.json"
    want_tables = GOLDEN / f"{name}.tables.json"
    if os.environ.get("BULLETSIM_UPDATE_GOLDEN") == "1":
        want_summary.write_bytes(summary)
        want_tables.write_text(json.dumps(hashes, indent=2, sort_keys=True) + "\n")
    assert summary.decode() == want_summary.read_text(), f"{name}: summary.json changed"
    assert hashes == json.loads(want_tables.read_text()), f"{name}: a results table changed"
