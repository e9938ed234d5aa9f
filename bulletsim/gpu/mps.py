"""MPS active-thread percentage: the two-process layout of Bullet's artifact.

`CUDA_MPS_ACTIVE_THREAD_PERCENTAGE` is read when a process creates its CUDA context, so a
partition here is a *worker process* started with the variable set; inside it, launches see
at most that share of the SMs. It is a cap, not a reservation: two workers at 50% may still
share SMs, so co-run samples under MPS measure contention, not isolation. Needs a running
MPS control daemon: `MpsDaemon` starts one with its own pipe and log folders (never the
system-wide /tmp/nvidia-mps) and always sends `quit` when it is left, also after an error or a
timeout; `MpsPool` only checks that one runs.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bulletsim.gpu.partition import Partition, PartitionPool

ENV_VAR = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"


def mps_env(num_sms: int, total_sms: int) -> dict[str, str]:
    """Environment for a worker capped at `num_sms` of `total_sms` SMs."""
    pct = min(100, math.ceil(100 * num_sms / total_sms))
    return {**os.environ, ENV_VAR: str(pct)}


def mps_daemon_running() -> bool:
    pipe = os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")
    return os.path.exists(os.path.join(pipe, "control"))


class MpsUnavailable(RuntimeError):
    """No MPS control binary, or the daemon did not come up."""


CONTROL = "nvidia-cuda-mps-control"


class MpsDaemon:
    """An MPS control daemon of our own: `with MpsDaemon() as d: subprocess.run(..., env=d.env())`.

    Pipe and log folders are fresh under `base` (default: a new /tmp/bulletsim-mps-* folder,
    removed again on leaving), so a system daemon is never touched. On leaving (normally, on
    an exception, on KeyboardInterrupt or when the daemon never came up) `quit` is sent and
    awaited for `quit_timeout_s`; `log_tail()` returns the control log. Shell scripts should
    still add `trap 'echo quit | CUDA_MPS_PIPE_DIRECTORY=... nvidia-cuda-mps-control' EXIT`
    around the Python process, for a kill -9."""

    def __init__(
        self,
        base: str | os.PathLike | None = None,
        start_timeout_s: float = 10.0,
        quit_timeout_s: float = 15.0,
    ) -> None:
        if shutil.which(CONTROL) is None:
            raise MpsUnavailable(f"{CONTROL} not found on PATH (NVIDIA driver utilities)")
        # A folder we make is ours to remove when the daemon is left (`close`); a `base`
        # given by the caller is theirs (a shell trap may still read its log afterwards).
        self.owns_base = not base
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="bulletsim-mps-"))
        self.pipe_dir, self.log_dir = self.base / "pipe", self.base / "log"
        self.start_timeout_s, self.quit_timeout_s = start_timeout_s, quit_timeout_s
        self.started = False
        self._final_log: str | None = None

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Environment of the control command (and the daemon it starts)."""
        return {
            **os.environ,
            "CUDA_MPS_PIPE_DIRECTORY": str(self.pipe_dir),
            "CUDA_MPS_LOG_DIRECTORY": str(self.log_dir),
            **(extra or {}),
        }

    def client_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Environment of a client process. A client numbers GPUs within the daemon's visible
        set, so CUDA_VISIBLE_DEVICES=1 given to the daemon becomes 0 for its clients (seen on
        the H200 machine: a client keeping "1" was refused, "not a valid GPU ID in the MPS
        visible set of devices")."""
        env = self.env(extra)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible and "CUDA_VISIBLE_DEVICES" not in (extra or {}):
            n = len([d for d in visible.split(",") if d.strip()])
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(n))
        return env

    def control(self, command: str, timeout_s: float = 10.0) -> str:
        r = subprocess.run(
            [CONTROL],
            input=command + "\n",
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        return (r.stdout + r.stderr).strip()

    def start(self) -> MpsDaemon:
        self.pipe_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            [CONTROL, "-d"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=self.start_timeout_s,
        )
        self.started = True  # from here on, leaving sends quit
        deadline = time.monotonic() + self.start_timeout_s
        while not (self.pipe_dir / "control").exists():
            if time.monotonic() > deadline:
                raise MpsUnavailable(
                    f"MPS daemon did not create {self.pipe_dir}/control within "
                    f"{self.start_timeout_s:.0f}s (exit {r.returncode}: {r.stderr.strip()})"
                )
            time.sleep(0.05)
        return self

    def quit(self) -> str:
        if not self.started:
            return ""
        self.started = False
        try:
            return self.control("quit", timeout_s=self.quit_timeout_s)
        except subprocess.TimeoutExpired:
            return f"quit timed out after {self.quit_timeout_s:.0f}s"

    def pid(self) -> int | None:
        """The control daemon's pid (from the pid file it writes into the pipe folder)."""
        f = self.pipe_dir / "nvidia-cuda-mps-control.pid"
        try:
            return int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self, pid: int | None) -> bool:
        """Whether `pid` is alive (a zombie left by the daemon's double fork counts as gone)."""
        if pid is None:
            return False
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")

    def log_tail(self, lines: int = 20) -> str:
        """The control log's last `lines` (after `close`, as it was when the daemon quit)."""
        if self._final_log is not None:
            return "\n".join(self._final_log.splitlines()[-lines:])
        f = self.log_dir / "control.log"
        try:
            return "\n".join(f.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> str:
        """`quit`, keep the control log's tail, and remove the folder if we made it."""
        reply = self.quit()
        if self._final_log is None:
            self._final_log = self.log_tail(200)
        if self.owns_base:
            shutil.rmtree(self.base, ignore_errors=True)
        return reply

    def __enter__(self) -> MpsDaemon:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


class MpsPool(PartitionPool):
    """In-process view: this process's own cap is the only partition it can time.

    Sweeps under MPS run one worker process per SM count (`mps_env`), each building this
    pool; co-runs need two such workers, started by the caller.
    """

    mechanism = "mps"

    def __init__(self) -> None:
        import torch

        if shutil.which("nvidia-cuda-mps-control") is None or not mps_daemon_running():
            raise RuntimeError(
                "MPS is not running: start `nvidia-cuda-mps-control -d` first, then run one "
                f"calibration worker per SM share with {ENV_VAR} set"
            )
        props = torch.cuda.get_device_properties(0)
        total = props.multi_processor_count
        pct = float(os.environ.get(ENV_VAR, "100"))
        super().__init__(total, 1)
        n = max(1, round(total * pct / 100))
        self._single[n] = Partition(f"mps{pct:g}", n, torch.cuda.Stream(), self.mechanism)
