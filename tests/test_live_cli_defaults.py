"""`bulletsim live`'s help and defaults say what runs: every policy, green contexts, the GPU
present (or the H200), the fake executor's own note; the config written names what ran
(CPU only: the fake executor, and a GPU 'present' by monkeypatching)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import bulletsim.live.cli as live_cli
from bulletsim.cli import app
from bulletsim.policies.registry import policy_names

LIVE = ["live", "-n", "12", "--rate", "10"]


def _invoke(args: list[str]):
    return CliRunner().invoke(app, args, env={"COLUMNS": "200"})


def test_help_lists_every_policy_and_lives_own_defaults():
    r = _invoke(["live", "--help"])
    assert r.exit_code == 0
    text = " ".join(r.output.replace("│", " ").split())
    for name in policy_names():
        assert name in text, name
    assert "(default: green)" in text and "libsmctrl, mps" in text
    assert "else h200" in text and "(default: a100)" not in text


def test_run_keeps_its_own_defaults():
    text = " ".join(_invoke(["run", "--help"]).output.replace("│", " ").split())
    assert "(default: a100)" in text and "(default: libsmctrl, the paper's)" in text
    assert "pdmux, pdmux-slo" in text


def _config(out) -> dict:
    return json.loads((out / "config.json").read_text())["config"]


def test_fake_bullet_defaults_to_h200_and_green_contexts_and_says_so(tmp_path):
    r = _invoke([*LIVE, "--executor", "fake", "--policy", "bullet", "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    cfg = _config(tmp_path / "b")
    assert cfg["gpu"] == "h200"
    bullet = cfg["policy_params"]["bullet"]
    assert bullet["mechanism"] == "green-ctx"
    assert bullet["remask_us"] is None  # the cost follows the mechanism, as --mechanism green
    part = json.loads((tmp_path / "b" / "summary.json").read_text())["partitioning"]
    assert (part["mechanism"], part["remask_us"]) == ("green-ctx", 0.0)
    assert "fake executor: no GPU, no model" in r.output and "weights" not in r.output
    assert "predicted device" in r.output


@pytest.mark.parametrize(
    ("extra", "mechanism"),
    [
        (["--mechanism", "libsmctrl"], "libsmctrl"),  # the fake emulates any mechanism
        (["--set", "bullet.mechanism=mps"], "mps"),  # --set wins over live's default
        (["--config", "FILE"], "mps"),  # so does the config file's [bullet] mechanism
    ],
)
def test_an_explicit_mechanism_is_recorded_as_given(tmp_path, extra, mechanism):
    out = tmp_path / "b"
    (tmp_path / "c.toml").write_text('[bullet]\nmechanism = "mps"\n')
    extra = [str(tmp_path / "c.toml") if x == "FILE" else x for x in extra]
    r = _invoke([*LIVE, "--executor", "fake", "--policy", "bullet", *extra, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert _config(out)["policy_params"]["bullet"]["mechanism"] == mechanism


def test_a_policy_without_partitions_takes_no_mechanism(tmp_path):
    r = _invoke([*LIVE, "--executor", "fake", "--policy", "pdmux", "--no-write"])
    assert r.exit_code == 0, r.output


def test_a_config_files_gpu_is_kept(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('gpu = "h100"\n')
    out = tmp_path / "r"
    r = _invoke([*LIVE, "--executor", "fake", "--config", str(toml), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert _config(out)["gpu"] == "h100"


def _no_gpu_engine(monkeypatch):
    def refuse(*a, **k):
        raise ValueError("no GPU engine in this test")

    monkeypatch.setattr(live_cli, "make_executor", refuse)


def test_the_gpu_executor_defaults_to_the_gpu_present(monkeypatch):
    _no_gpu_engine(monkeypatch)
    monkeypatch.setattr(live_cli, "present_gpu", lambda: "NVIDIA H100 80GB HBM3")
    r = _invoke([*LIVE, "--executor", "gpu", "--no-write"])
    assert "note: --gpu h100 (the GPU present: NVIDIA H100 80GB HBM3)" in r.output
    assert r.exit_code == 2 and "error: no GPU engine in this test" in r.output
    monkeypatch.setattr(live_cli, "present_gpu", lambda: None)  # none seen: the H200
    assert live_cli.default_gpu("gpu") == "h200"


@pytest.mark.parametrize(
    ("present", "args", "msg"),
    [
        ("NVIDIA H200", ["--gpu", "h100"], "h100 (--gpu or --config), but the GPU present is"),
        ("NVIDIA GeForce RTX 4090", [], "(NVIDIA GeForce RTX 4090) is not one bulletsim has specs"),
        ("NVIDIA H200", ["--policy", "bullet", "--set", "bullet.mechanism=libsmctrl"],
         "bullet.mechanism = libsmctrl: the live GPU engine partitions SMs with green contexts"),
        ("NVIDIA H200", ["--policy", "bullet", "--mechanism", "mps"], "valid live: green, none"),
        ("NVIDIA H200", ["--model", "llama-3.1-70b"], "runs dense models on one GPU (tp=1)"),
        ("NVIDIA H200", ["--model", "qwen3-235b-a22b", "--tp", "8"], "tp=8, MoE"),
    ],
)  # fmt: skip
def test_the_gpu_executor_refuses_what_it_cannot_run(monkeypatch, present, args, msg):
    _no_gpu_engine(monkeypatch)
    monkeypatch.setattr(live_cli, "present_gpu", lambda: present)
    r = _invoke([*LIVE, "--executor", "gpu", *args, "--no-write"])
    assert r.exit_code == 2, r.output
    assert msg in r.output and "no GPU engine" not in r.output
    assert r.output.strip().splitlines()[-1].startswith("error: ")


def test_no_decode_graphs_needs_the_gpu_executor():
    r = _invoke([*LIVE, "--executor", "fake", "--no-decode-graphs", "--no-write"])
    assert r.exit_code == 2 and "--no-decode-graphs needs --executor gpu" in r.output


def test_a_negative_seed_is_one_line():
    r = _invoke([*LIVE, "--executor", "fake", "--seed", "-1", "--no-write"])
    assert (
        r.exit_code == 2 and r.output.strip().splitlines()[-1] == "error: seed must be >= 0, got -1"
    )


def test_an_interrupted_live_run_writes_nothing(monkeypatch, tmp_path):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("bulletsim.live.run.live_run", interrupted)
    out = tmp_path / "r"
    r = _invoke([*LIVE, "--executor", "fake", "--out", str(out)])
    assert r.exit_code == 130 and "Traceback" not in r.output
    assert r.output.strip().splitlines()[-1] == "interrupted: live run stopped; nothing was written"
    assert not out.exists()
