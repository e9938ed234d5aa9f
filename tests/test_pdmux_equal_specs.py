"""A sweep refuses two spellings of one policy (defaults the GPU fills: pdmux's min_sms,
Bullet's remask_us; manual rows separated by ';' or '/'); PDMux: step_sms takes the GPU's own
step (the A100's 2); a manual row whose decode side is below min_sms is refused naming the row."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.hardware import get_gpu
from bulletsim.policies.pdmux_params import PDMuxParams, PDMuxSLOParams

runner = CliRunner()
SWEEP = ("sweep", "--trace", "alpaca", "-n", "20", "--rates", "4", "--seeds", "0",
         "--no-capacity", "--workers", "1", "-q", "--no-plots", "--no-timeline")  # fmt: skip


@pytest.mark.parametrize(
    "a, b",
    [
        ("pdmux", "pdmux:min_sms=8"),
        ("pdmux", "pdmux:step_sms=8,min_sms=8"),
        ("pdmux:sm_group_num=4,manual_divisions=112:20:0;96:36:32",
         "pdmux:sm_group_num=4,manual_divisions=112:20:0/96:36:32"),
        ("pdmux-slo", "pdmux-slo:min_sms=8"),
        ("bullet", "bullet:remask_us=1.54"),  # libsmctrl's measured cost on the H200
        ("bullet:mechanism=green", "bullet:mechanism=green-ctx,remask_us=0"),
    ],
)  # fmt: skip
def test_sweep_refuses_two_spellings_of_one_policy(tmp_path, monkeypatch, a, b):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, [*SWEEP, "--gpu", "h200", "--policy", a, "--policy", b])
    assert res.exit_code == 2, res.output
    assert "run the same policy with the same parameters" in res.output, res.output


def test_sweep_keeps_policies_that_differ(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, [*SWEEP, "--gpu", "h200", "--policy", "pdmux", "--policy",
                              "pdmux:min_sms=16", "--out", "s"])  # fmt: skip
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("cls", [PDMuxParams, PDMuxSLOParams])
def test_the_gpus_own_step_is_a_valid_step_sms(cls):
    a100 = get_gpu("a100")
    assert cls(step_sms=2).granularity(a100) == (4, 2, a100.name)
    with pytest.raises(ValueError, match="give a multiple of 2 >= 4"):
        cls(min_sms=2).granularity(a100)  # a group is >= the GPU's smallest (4)
    with pytest.raises(ValueError, match="step_sms = 3: .* multiple of 2 >= 2"):
        cls(step_sms=3).granularity(a100)


def test_run_takes_step_sms_2_on_the_a100():
    res = runner.invoke(app, ["run", "--trace", "alpaca", "-n", "10", "-q", "--no-write",
                              "--gpu", "a100", "--policy", "pdmux:step_sms=2"])  # fmt: skip
    assert res.exit_code == 0, res.output


def test_a_manual_row_below_min_sms_is_refused():
    p = PDMuxParams(sm_group_num=3, manual_divisions="112:20:1", min_sms=24)
    with pytest.raises(ValueError, match="row '112:20:1': decode gets 20 SMs, fewer than min_sms"):
        p.check_gpu(get_gpu("h200"), 132)
    PDMuxParams(sm_group_num=3, manual_divisions="104:28:1", min_sms=24).check_gpu(
        get_gpu("h200"), 132
    )
