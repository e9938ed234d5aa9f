"""`calibrate-fit` on partial or odd samples: one line naming the file, the column and what is
wrong (exit 2), and nothing left in --out: the fit runs before anything is written, and a
failure or Ctrl-C after that removes what the run created."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app

TP2 = Path(__file__).resolve().parent.parent / "results" / "large-models" / "device" / "tp2"
runner = CliRunner()


def samples_with(tmp: Path, edit) -> tuple[Path, Path]:
    df = edit(pd.read_parquet(TP2 / "samples.parquet"))
    (tmp / "in").mkdir()
    df.to_parquet(tmp / "in" / "samples.parquet")
    meta = json.loads((TP2 / "meta.json").read_text())
    if "t_unix" in df.columns and len(df):  # a partial run's meta is dated at its last sample
        from datetime import UTC, datetime

        last = datetime.fromtimestamp(int(df["t_unix"].max()), UTC)
        meta["date"] = last.isoformat(timespec="seconds")
    (tmp / "meta.json").write_text(json.dumps(meta))
    return tmp / "in" / "samples.parquet", tmp / "meta.json"


def set_time(value):
    def edit(df):
        df.loc[df.index[3], "time_s"] = value
        return df

    return edit


@pytest.mark.parametrize(
    "edit, needles",
    [
        (lambda df: df.head(5), ["do not make a profile", "op column holds"]),
        (lambda df: df.head(81), ["do not make a profile", "op column holds"]),
        (lambda df: df.head(500), ["do not make a profile", "op column holds"]),
        (set_time(-1e-3), ["column time_s holds 1 value(s)", "-0.001"]),
        (set_time(math.nan), ["column time_s holds 1 value(s)", "nan"]),
    ],
    ids=["first-5", "first-81", "first-500", "negative", "nan"],
)
def test_refused_in_one_line_and_out_left_empty(tmp_path, edit, needles):
    samples, meta = samples_with(tmp_path, edit)
    out = tmp_path / "out"
    res = runner.invoke(app, ["calibrate-fit", str(samples), "--meta", str(meta),
                              "--out", str(out)])  # fmt: skip
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: samples file"), res.output
    text = " ".join(res.output.split())
    assert all(n in text for n in needles), text
    assert not out.exists()


def test_an_interrupt_during_the_writes_leaves_only_what_was_there(tmp_path, monkeypatch):
    import calibrate.pipeline as pipeline

    d = tmp_path / "run"
    d.mkdir()
    for f in ("meta.json", "samples.parquet"):
        shutil.copyfile(TP2 / f, d / f)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "write_profile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.refit(d / "samples.parquet", d / "meta.json", out, install=False)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
