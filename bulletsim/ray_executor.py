"""Ray as a sweep executor: each submitted task is a Ray task with one CPU.

Imported only when `--executor ray` is asked for (`pip install "bulletsim[ray]"`). Connects
to a running cluster (`address`; "auto" finds one on this machine) or starts a new local
Ray instance (never joining a cluster by accident); on a cluster the driver's
`bulletsim` package is shipped to the workers (Ray `runtime_env` `py_modules`), so every
node runs the same simulator code as the driver. Ray's own task retries are off
(`max_retries=0`): `executors.Tasks` retries every kind of failure the same way for every
executor, and a task's error reaches the caller as the exception the task raised, not
Ray's wrapper.
"""

from __future__ import annotations

import logging
import socket
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

# Seconds to wait for a TCP connection to the cluster before calling it unreachable; Ray's
# own connect retries for a minute or more before giving up.
CONNECT_TIMEOUT_S = 5.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError(
            'the ray executor needs Ray: pip install "bulletsim[ray]" (or pip install "ray>=2.40")'
        ) from None
    return ray


def check_reachable(address: str) -> None:
    """Raise ValueError unless `address` ("auto", "[ray://]HOST:PORT") accepts a connection."""
    if address == "auto":
        return  # ray.init finds the local cluster or raises ConnectionError
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(
            f"--ray-address must be auto, HOST:PORT or ray://HOST:PORT, got {address!r}"
        )
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise ValueError(f"cannot reach the Ray cluster at {address}: {e}") from None


def _call(fn, args: tuple, kwargs: dict) -> Any:
    return fn(*args, **kwargs)


def _settle(ray_future: Future, out: Future) -> None:
    exc = ray_future.exception()
    if exc is None:
        out.set_result(ray_future.result())
    else:  # RayTaskError wraps what the task raised; report that, as the local pool does
        out.set_exception(getattr(exc, "cause", None) or exc)


class RayExecutor(Executor):
    """`concurrent.futures` view of Ray: submit -> Future settled when the Ray task ends.

    Starts Ray when it is not running yet and then shuts it down again on `shutdown`; a Ray
    session the caller started (`ray.init` before) is used and left running.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        ray = _import_ray()
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            quiet = {"logging_level": logging.WARNING}
            if address is None:
                ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
            else:
                check_reachable(address)
                pkg = str(Path(__file__).resolve().parent)
                auth = getattr(ray.exceptions, "AuthenticationError", ConnectionError)
                try:
                    ray.init(address=address, runtime_env={"py_modules": [pkg]}, **quiet)
                except (ConnectionError, auth) as e:
                    raise ValueError(
                        f"cannot reach the Ray cluster at {address}: {str(e).splitlines()[0]} "
                        "(a cluster with token authentication also needs RAY_AUTH_TOKEN here)"
                    ) from None
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_call)

    def submit(self, fn, /, *args, **kwargs):
        out: Future = Future()
        ref = self._remote.remote(fn, args, kwargs)
        ref.future().add_done_callback(lambda f: _settle(f, out))
        return out

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
