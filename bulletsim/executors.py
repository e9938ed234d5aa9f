"""Where a sweep's simulations run: this process, a local process pool, or a Ray cluster.

A caller hands independent tasks (pure functions of their arguments) to an executor from
`make_executor` and tracks them with `Tasks`, which keys them, submits a failed task again
and, after its last attempt, returns the failure as a value (`TaskFailed`) so the caller
reports it instead of losing it. Results never depend on the executor: every task is a pure
function and `Tasks.wait` hands back finished tasks in key order, so a caller that acts on
them in that order makes the same decisions whichever executor ran them and in whatever
order they finished. Ray is imported only by `make_executor("ray", ...)`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from dataclasses import dataclass
from typing import Any

EXECUTORS = ("local", "ray")
# Three tries in all: enough to ride out a lost worker or node, few enough that a task that
# raises deterministically (a bad config) is reported quickly.
DEFAULT_ATTEMPTS = 3

log = logging.getLogger(__name__)


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent, which says what was kept and ends them
    (otherwise every worker prints its own KeyboardInterrupt traceback)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass(frozen=True, slots=True)
class TaskFailed:
    """The result of a task that raised on every attempt: the last error, on one line."""

    attempts: int
    error: str


class InlineExecutor(Executor):
    """Runs each task in the calling process at submit time: no pickling, easy to profile."""

    def submit(self, fn, /, *args, **kwargs):
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 (delivered through the future)
            f.set_exception(e)
        return f


class LocalPool(Executor):
    """A process pool that starts a fresh pool when a worker died (the old one is broken).

    Tasks that were in flight on the broken pool fail with `BrokenProcessPool`; `Tasks`
    submits them again, and they land on the new pool. Thread-safe.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except BrokenExecutor:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers, initializer=_ignore_sigint
                )
                return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def make_executor(kind: str = "local", workers: int = 1, address: str | None = None) -> Executor:
    """An executor for independent tasks; use it as a context manager to release it.

    kind: "local" runs `workers` processes (in this process when workers == 1); "ray" runs
    Ray tasks on the cluster at `address` ("auto", "HOST:PORT", "ray://HOST:PORT"), or on a
    new local Ray instance with `workers` CPUs when address is None (all cores if workers
    is 0). Raises ValueError (one line) for an unknown kind, a missing `ray` package or an
    address that cannot be reached.
    """
    if kind == "local":
        if address is not None:
            raise ValueError("--ray-address needs --executor ray")
        return LocalPool(workers) if workers > 1 else InlineExecutor()
    if kind == "ray":
        from bulletsim.ray_executor import RayExecutor

        return RayExecutor(address=address, num_cpus=workers or None)
    raise ValueError(f"unknown executor {kind!r}; valid: {', '.join(EXECUTORS)}")


def one_line(exc: BaseException) -> str:
    """'TypeName: first line of the message' (a task's error as reported in result files)."""
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0]}" if msg else type(exc).__name__


class Tasks:
    """Keyed tasks in flight on one executor, each tried up to `attempts` times.

    Not thread-safe: one `Tasks` per caller loop; several may share one executor. Keys are
    hashable; `wait` orders finished tasks by `str(key)`.
    """

    def __init__(self, executor: Executor, attempts: int = DEFAULT_ATTEMPTS) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.executor = executor
        self.attempts = attempts
        self._pending: dict[Future, tuple[Hashable, Callable, tuple, int]] = {}

    def submit(self, key: Hashable, fn: Callable, *args: Any) -> None:
        assert key not in self, f"task {key!r} is already in flight"
        self._pending[self.executor.submit(fn, *args)] = (key, fn, args, 1)

    def __contains__(self, key: Hashable) -> bool:
        return any(k == key for k, *_ in self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)

    def keys(self) -> list[Hashable]:
        return [k for k, *_ in self._pending.values()]

    def wait(self) -> list[tuple[Hashable, Any]]:
        """Block until a task ends; (key, result or TaskFailed) for each finished, by key.

        A failed task with attempts left is submitted again and not returned, so the list
        may be empty while tasks remain in flight.
        """
        done, _ = wait(list(self._pending), return_when=FIRST_COMPLETED)
        out = []
        for f in done:
            key, fn, args, attempt = self._pending.pop(f)
            exc = f.exception()
            if exc is None:
                out.append((key, f.result()))
            elif attempt < self.attempts:
                log.warning("retrying %s (attempt %d/%d) after %s", key, attempt + 1,
                            self.attempts, one_line(exc))  # fmt: skip
                self._pending[self.executor.submit(fn, *args)] = (key, fn, args, attempt + 1)
            else:
                out.append((key, TaskFailed(attempt, one_line(exc))))
        return sorted(out, key=lambda kv: str(kv[0]))

    def map(self, fn: Callable, items: dict[Hashable, tuple]) -> dict[Hashable, Any]:
        """Run fn(*args) for every key -> args and wait for all: key -> result or TaskFailed."""
        for key, args in items.items():
            self.submit(key, fn, *args)
        results: dict[Hashable, Any] = {}
        while self:
            results.update(self.wait())
        return {k: results[k] for k in items}
