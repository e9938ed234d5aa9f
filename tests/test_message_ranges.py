"""Messages that name what is valid: a bool's spellings, a bounded fraction's real range (NaN
included, every such field), a run's iterations.parquet given as samples, a JSON file given as
the TOML --config."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app

ROOT = Path(__file__).resolve().parent.parent
RUN = ("run", "--trace", "alpaca", "-n", "5", "-q", "--no-write")
runner = CliRunner()


def one_line_error(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return " ".join(res.output.split())


def test_a_bool_names_its_spellings():
    out = one_line_error(*RUN, "--policy", "bullet:reorder=True")
    assert "must be bool (true or false, lower case), got str 'True'" in out


@pytest.mark.parametrize(
    "args, want",
    [
        (("--policy", "bullet:tpot_target_frac=nan"), "bullet.tpot_target_frac must be in (0, 1]"),
        (("--policy", "pdmux-slo:tpot_target_frac=nan"), "tpot_target_frac must be in (0, 1]"),
        (("--policy", "static-split:prefill_fraction=nan"), "prefill_fraction must be in (0, 1)"),
        (("--set", "kv.memory_fraction=nan"), "kv.memory_fraction must be in (0, 1]"),
        (("--set", "kv.reserve_fraction=nan"), "kv.reserve_fraction must be in [0, 1]"),
        (("--set", "kv.memory_fraction=1e9"), "kv.memory_fraction must be in (0, 1]"),
    ],
)
def test_a_fraction_names_its_own_range(args, want):
    out = one_line_error(*RUN, *args)
    assert want in out and "1e+09" not in out, out


def test_a_runs_iterations_file_is_not_samples():
    it = next((ROOT / "results").rglob("iterations.parquet"))
    out = one_line_error("calibrate-fit", str(it), "--meta", str(ROOT / "results" / "large-models"
                         / "device" / "tp2" / "meta.json"))  # fmt: skip
    assert f"{it} is not a calibration samples file: it lacks column(s) key" in out


def test_a_json_config_asks_for_toml(tmp_path):
    (tmp_path / "config.json").write_text('{"policy": "bullet"}\n')
    out = one_line_error(*RUN, "--config", str(tmp_path / "config.json"))
    assert "is not a TOML config file" in out and "but JSON" in out
