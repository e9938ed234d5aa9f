"""Policy parameters the GPU or model cannot honour are refused, not silently clipped: pdmux's
sm_group_num above the GPU's splits (was: a shorter table), min_sms / step_sms that leave no
split (was: an error without the valid values, at bind), Bullet's window_layers above the
model's layers (was: one whole-model window) and a reorder window too short to reorder.
Each is one line naming the value and the valid range, exit 2, whichever way it was given."""

from __future__ import annotations

import pytest

from bulletsim.config import load_config
from bulletsim.hardware import get_gpu
from bulletsim.policies.pdmux import PDMux
from bulletsim.policies.pdmux_params import PDMuxParams
from bulletsim.policies.pdmux_table import split_candidates, values_text

ENV = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}
RUN = ("run", "--trace", "alpaca", "-n", "10", "-q", "--gpu", "h200", "--no-write")
SWEEP = ("sweep", "-n", "10", "--rates", "4", "--no-capacity", "--workers", "1", "-q")
SWEEP += ("--gpu", "h200", "--seeds", "0", "--no-timeline", "--no-plots")
STEP_16_GROUP_6 = "pdmux.sm_group_num=6"
GROUP_9 = "pdmux.sm_group_num = 9: the h200's 132 SMs make 6 prefill-majority splits"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((*RUN, "--policy", "pdmux", "--set", "pdmux.sm_group_num=9"), GROUP_9),
        ((*RUN, "--policy", "pdmux", "--set", "pdmux.sm_group_num=100"), "valid: 3..8"),
        ((*RUN, "--policy", "pdmux", "--config", "@group.toml"), GROUP_9),
        ((*SWEEP, "--policy", "pdmux:sm_group_num=9"), GROUP_9),
        ((*SWEEP, "--policy", "pdmux", "--set", "pdmux.sm_group_num=9"), GROUP_9),
        # step 16: splits 72, 88, 104 only -> at most 5 rows
        (
            (*RUN, "--policy", "pdmux", "--set", "pdmux.step_sms=16", "--set", STEP_16_GROUP_6),
            "make 3 prefill-majority splits with decode >= 16 SMs in groups of 8 + k * 16, so "
            "the table has at most 5 rows; valid: 3..5",
        ),
        # the H20's 78 SMs: 40, 48, 56
        ((*RUN, "--gpu", "h20", "--policy", "pdmux", "--set", "pdmux.sm_group_num=8"), "3..5"),
        (
            (*RUN, "--policy", "pdmux", "--set", "pdmux.min_sms=64"),
            "pdmux.min_sms = 64: no split of the h200's 132 SMs in groups of 64 + k * 8 SMs has "
            "prefill >= half and decode >= 16; valid min_sms: 0 (the GPU's) or 8..56 in steps "
            "of 8",
        ),
        ((*RUN, "--policy", "pdmux", "--set", "pdmux.min_sms=200"), "or 8..56 in steps of 8"),
        ((*RUN, "--policy", "pdmux", "--set", "pdmux.step_sms=128"), "valid step_sms: 0 (the"),
        (
            (*RUN, "--policy", "pdmux-slo", "--set", "pdmux-slo.min_sms=72"),
            "both sides >= min_sms and decode >= 16; valid min_sms: 0 (the GPU's) or 8..64",
        ),
        ((*RUN, "--policy", "pdmux", "--set", "pdmux.min_sms=12"), "give a multiple of 8 >= 8"),
        (
            (*RUN, "--policy", "bullet", "--set", "bullet.window_layers=33"),
            "bullet.window_layers = 33: llama-3.1-8b has 32 layers; valid: 1..32",
        ),
        ((*SWEEP, "--policy", "bullet:window_layers=40"), "has 32 layers; valid: 1..32"),
        ((*RUN, "--policy", "bullet", "--set", "bullet.reorder_window=1"), "reorder_window"),
    ],
)
def test_out_of_range_is_one_line_exit_2(tmp_path, monkeypatch, refused, args, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "group.toml").write_text("[pdmux]\nsm_group_num = 9\n")
    refused([a.replace("@", "") for a in args], needle, ENV)
    assert not (tmp_path / "results").exists()


def test_the_edges_of_the_ranges_run():
    # the largest table the H200 makes, and the largest min_sms that leaves a split (72 / 60)
    for over in ({"sm_group_num": 8}, {"min_sms": 56}, {"step_sms": 16, "sm_group_num": 5}):
        load_config(None, {"policy": "pdmux", "gpu": "h200", "pdmux": over})
    load_config(None, {"policy": "bullet", "bullet": {"window_layers": 32}})
    # SGLang's default 8 on the H20 (3 splits) is not the user's: every split, as SGLang does
    cfg = load_config(None, {"policy": "pdmux", "gpu": "h20"})
    assert cfg.params().sm_group_num == 8


def test_every_valid_min_sms_builds_a_table_and_the_next_does_not():
    gpu = get_gpu("h200")
    valid = [m for m in range(8, 133, 8) if split_candidates(132, m, 8)]
    assert values_text(valid) == "8..56 in steps of 8"
    for m in (56, 64):
        params = PDMuxParams(min_sms=m)
        if m in valid:
            params.check_gpu(gpu, 132, frozenset({"min_sms"}))
            assert PDMux(params).params.min_sms == m
        else:
            with pytest.raises(ValueError, match="valid min_sms"):
                params.check_gpu(gpu, 132, frozenset({"min_sms"}))
    assert values_text([8, 24]) == "8, 24" and values_text([]) == "none"
