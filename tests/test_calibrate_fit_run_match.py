"""A meta.json of the same model/GPU but another run (or only part of a run's samples) is
refused: meta.date is the last sample's t_unix on every committed run, and every partition
measured is a size of the meta's partition_pool (`calibrate.sample_identity`)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.latency.profile_format import PROFILE_DIR
from calibrate.sample_identity import check_identity

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "results" / "large-models" / "device"
COMMITTED = [
    (DEV / "tp2" / "samples.parquet", DEV / "tp2" / "meta.json"),
    (DEV / "tp8" / "samples.parquet", DEV / "tp8" / "meta.json"),
    (PROFILE_DIR / "h200__llama-3.1-8b.samples.parquet", None),
]
runner = CliRunner()


@pytest.mark.parametrize("samples, meta_path", COMMITTED, ids=["tp2", "tp8", "8b-shipped"])
def test_every_committed_run_matches_its_own_meta(samples, meta_path):
    if meta_path is None:  # the shipped profile carries its run's meta
        meta_path = samples.with_name(samples.name.replace(".samples.parquet", ".json"))
        meta = json.loads(meta_path.read_text())["meta"]
    else:
        meta = json.loads(meta_path.read_text())
    check_identity(pd.read_parquet(samples), meta, samples, meta_path)  # raises on a mismatch


def lone(tmp: Path, rows: slice | None = None, num_sms: int | None = None) -> Path:
    df = pd.read_parquet(DEV / "tp2" / "samples.parquet")
    df = df.iloc[rows] if rows else df
    if num_sms is not None:
        df.loc[df.index[0], "num_sms"] = num_sms
    (tmp / "lone").mkdir()
    df.to_parquet(tmp / "lone" / "samples.parquet")
    return tmp / "lone" / "samples.parquet"


@pytest.mark.parametrize(
    "how, meta_tp, needle",
    [
        ("another run's meta", 8, "is dated 2026-12-01T00:04:59+00:00: not the same run"),
        ("part of the run", 2, "not the same run (another run's meta, or only part"),
        ("a size outside the pool", 2, "measured partitions of 50 SMs, not sizes of"),
    ],
)
def test_refused_in_one_line_nothing_written(tmp_path, how, meta_tp, needle):
    rows = slice(0, 81) if how == "part of the run" else None
    samples = lone(tmp_path, rows, 50 if "pool" in how else None)
    meta = DEV / f"tp{meta_tp}" / "meta.json"
    out = tmp_path / "out"
    res = runner.invoke(app, ["calibrate-fit", str(samples), "--meta", str(meta), "--out",
                              str(out), "--no-install"])  # fmt: skip
    text = " ".join(res.output.split())
    assert res.exit_code == 2, text
    assert text.startswith("error: ") and needle in text and "Traceback" not in text, text
    assert not out.exists() and sorted(p.name for p in samples.parent.iterdir()) == [
        "samples.parquet"
    ]


def test_samples_of_another_grid_are_refused(tmp_path):
    meta = json.loads((DEV / "tp8" / "meta.json").read_text())  # grid "shard"
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({**meta, "grid": "quick"}))
    samples = DEV / "tp8" / "samples.parquet"
    with pytest.raises(ValueError, match="measured seq_len 32, 192, not points of .*'quick'"):
        check_identity(pd.read_parquet(samples), {**meta, "grid": "quick"}, samples, path)
