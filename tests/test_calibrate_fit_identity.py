"""`calibrate-fit SAMPLES --meta OTHER/meta.json` refuses another run's meta: one line naming
both identities and what differs, exit 2, nothing written. Each case records the samples' run
in a different place (`calibrate.sample_identity`): the run's own meta.json beside them (or an
installed samples file's profile), the samples' gpu/model/tp columns, the identity a refit's
parquet carries, the SM counts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.latency.profile_format import PROFILE_DIR

DEV = Path(__file__).resolve().parent.parent / "results" / "large-models" / "device"
SAMPLES_8B = PROFILE_DIR / "h200__llama-3.1-8b.samples.parquet"
runner = CliRunner()


def fit(*args) -> tuple[int, str]:
    res = runner.invoke(app, ["calibrate-fit", *map(str, args)])
    return res.exit_code, " ".join(res.output.split())


def run_dir(tmp: Path, name: str, tp: int) -> Path:
    """A copy of the TP-`tp` calibration (samples.parquet + its meta.json)."""
    d = tmp / name
    d.mkdir()
    for f in ("meta.json", "samples.parquet"):
        shutil.copyfile(DEV / f"tp{tp}" / f, d / f)
    return d


def snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def case_inputs(case: str, tmp: Path) -> tuple[Path, Path, list[str]]:
    """(samples, meta, text the error line must hold) of each way to give another's meta."""
    tp2, tp4 = run_dir(tmp, "tp2", 2), run_dir(tmp, "tp4", 4)
    if case == "the run's own meta.json":
        return tp2 / "samples.parquet", tp4 / "meta.json", [str(tp2 / "meta.json"), "tp 2 vs 4"]
    lone = tmp / "lone"
    lone.mkdir()
    if case == "samples' model column":  # Llama-8B samples as a sweep now writes them
        df = pd.read_parquet(SAMPLES_8B)
        df["gpu"], df["model"], df["tp"] = "h200", "llama-3.1-8b", 1
        df.to_parquet(lone / "samples.parquet")
        return (
            lone / "samples.parquet",
            tp2 / "meta.json",
            [
                "h200 / llama-3.1-8b tp=1 (its gpu/model/tp columns)",
                "model llama-3.1-8b vs llama-3.1-70b; tp 1 vs 2",
            ],
        )
    if case == "installed samples' profile":  # the brief's 8B samples as a 70B TP-2 profile
        for f in (SAMPLES_8B, PROFILE_DIR / "h200__llama-3.1-8b.json"):
            shutil.copyfile(f, lone / f.name)
        return (
            lone / SAMPLES_8B.name,
            tp2 / "meta.json",
            [
                f"(its run's {lone / 'h200__llama-3.1-8b.json'})",
                "model llama-3.1-8b vs llama-3.1-70b; tp 1 vs 2",
            ],
        )
    if case == "refit parquet's identity":  # a refit's samples.parquet, copied on its own
        code, out = fit(tp4 / "samples.parquet", "--out", tmp / "refit4")
        assert code == 0, out
        shutil.copyfile(tmp / "refit4" / "samples.parquet", lone / "samples.parquet")
        return (
            lone / "samples.parquet",
            tp2 / "meta.json",
            [
                "(the identity its parquet metadata records)",
                "tp 4 vs 2",
            ],
        )
    if case == "SM counts":  # H200 samples (132 SMs) under an A100 (108 SMs) meta
        shutil.copyfile(tp2 / "samples.parquet", lone / "samples.parquet")
        meta = json.loads((tp2 / "meta.json").read_text())
        (tmp / "a100.json").write_text(json.dumps({**meta, "gpu": "a100", "num_sms": 108}))
        return lone / "samples.parquet", tmp / "a100.json", ["up to 132 SMs", "num_sms 132 vs 108"]
    raise AssertionError(case)


CASES = ["the run's own meta.json", "samples' model column", "installed samples' profile",
         "refit parquet's identity", "SM counts"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_another_runs_meta_is_refused_in_one_line_and_nothing_is_written(tmp_path, case):
    samples, meta, needles = case_inputs(case, tmp_path)
    before = snapshot(tmp_path)
    code, out = fit(samples, "--meta", meta, "--out", tmp_path / "out", "--no-install")
    assert code == 2, out
    assert out.startswith("error: ") and out.count("error:") == 1 and "Traceback" not in out
    assert f"samples file {samples}" in out and f"meta file {meta}" in out, out
    for n in needles:
        assert n in out, (n, out)
    assert not (tmp_path / "out").exists() and snapshot(tmp_path) == before


def test_the_same_runs_meta_still_fits_and_the_parquet_records_its_identity(tmp_path):
    tp2 = run_dir(tmp_path, "tp2", 2)
    code, out = fit(tp2 / "samples.parquet", "--meta", tp2 / "meta.json", "--out", tmp_path / "o")
    assert code == 0, out
    from calibrate.sample_identity import parquet_identity

    ident = parquet_identity(tmp_path / "o" / "samples.parquet")
    assert ident is not None
    assert (ident["gpu"], ident["model"], ident["tp"], ident["num_sms"]) == (
        "h200",
        "llama-3.1-70b",
        2,
        132,
    )


def test_samples_mixing_two_runs_are_refused(tmp_path):
    df = pd.read_parquet(DEV / "tp2" / "samples.parquet")
    df["model"], df["tp"] = "llama-3.1-70b", [2 if i % 2 else 4 for i in range(len(df))]
    (tmp_path / "s").mkdir()
    df.to_parquet(tmp_path / "s" / "samples.parquet")
    code, out = fit(tmp_path / "s" / "samples.parquet", "--meta", DEV / "tp2" / "meta.json")
    assert code == 2 and "mixes runs: its tp column holds 2, 4" in out, out
