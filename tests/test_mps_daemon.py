"""MpsDaemon (CPU, with a stand-in control binary): own pipe/log folders, and `quit` is sent
on every way out, an exception inside the block included; no binary is a clean error."""

from __future__ import annotations

import pytest

from bulletsim.gpu.mps import MpsDaemon, MpsUnavailable

FAKE_CONTROL = """#!/bin/sh
if [ "$1" = -d ]; then
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" && touch "$CUDA_MPS_PIPE_DIRECTORY/control"
  echo 4242 > "$CUDA_MPS_PIPE_DIRECTORY/nvidia-cuda-mps-control.pid"
  exit 0
fi
read cmd; echo "$cmd" >> "$CUDA_MPS_LOG_DIRECTORY/commands.txt"; echo ok
"""


@pytest.fixture
def fake_control(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    ctl = bindir / "nvidia-cuda-mps-control"
    ctl.write_text(FAKE_CONTROL)
    ctl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    return tmp_path


def test_no_control_binary(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MpsUnavailable, match="nvidia-cuda-mps-control not found"):
        MpsDaemon(tmp_path / "mps")


def test_quit_after_an_error_inside(fake_control):
    base = fake_control / "mps"
    with pytest.raises(RuntimeError, match="boom"), MpsDaemon(base) as d:
        assert d.pid() == 4242
        env = d.env({"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "25"})
        assert env["CUDA_MPS_PIPE_DIRECTORY"] == str(base / "pipe")
        assert env["CUDA_MPS_LOG_DIRECTORY"] == str(base / "log")
        raise RuntimeError("boom")
    assert (base / "log" / "commands.txt").read_text().split() == ["quit"]


def test_quit_once(fake_control):
    d = MpsDaemon(fake_control / "mps")
    with d:
        assert d.control("get_server_list") == "ok"
    d.quit()  # a second quit sends nothing
    assert (d.log_dir / "commands.txt").read_text().split() == ["get_server_list", "quit"]


def test_clients_number_gpus_within_the_daemons_set(fake_control, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    d = MpsDaemon(fake_control / "mps")
    assert d.env()["CUDA_VISIBLE_DEVICES"] == "1"  # the daemon keeps the machine's index
    assert d.client_env({"X": "1"})["CUDA_VISIBLE_DEVICES"] == "0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert d.client_env()["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_running_treats_zombies_and_missing_as_gone(fake_control):
    import os

    d = MpsDaemon(fake_control / "mps")
    assert d.running(os.getpid()) and not d.running(None) and not d.running(2**22 + 12345)
