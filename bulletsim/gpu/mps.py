"""MPS active-thread percentage: the two-process layout of Bullet's artifact.

`CUDA_MPS_ACTIVE_THREAD_PERCENTAGE` is read when a process creates its CUDA context, so a
partition here is a *worker process* started with the variable set; inside it, launches see
at most that share of the SMs. It is a cap, not a reservation: two workers at 50% may still
share SMs, so co-run samples under MPS measure contention, not isolation. Needs a running
MPS control daemon (`nvidia-cuda-mps-control -d`), which this module never starts itself.
"""

from __future__ import annotations

import math
import os
import shutil

from bulletsim.gpu.partition import Partition, PartitionPool

ENV_VAR = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"


def mps_env(num_sms: int, total_sms: int) -> dict[str, str]:
    """Environment for a worker capped at `num_sms` of `total_sms` SMs."""
    pct = min(100, math.ceil(100 * num_sms / total_sms))
    return {**os.environ, ENV_VAR: str(pct)}


def mps_daemon_running() -> bool:
    pipe = os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")
    return os.path.exists(os.path.join(pipe, "control"))


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
