"""Progress of long runs and sweeps on stderr, and the console the summaries print to.

On a terminal, a rich progress bar (removed when done). Piped or redirected, one plain line
every `PLAIN_EVERY_S` seconds, so a log shows the run is alive without a bar's control
codes. Summaries never wrap at 80 columns when piped (a pipe has no width).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

PLAIN_EVERY_S = 10.0
Tick = Callable[[str, int, int], None]  # (what, done, total known so far)


def stdout_console() -> Console:
    """A console for results: the terminal's width, or unwrapped lines when piped."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=1000, soft_wrap=True, force_terminal=False, no_color=True)


@contextmanager
def progress(label: str, quiet: bool = False) -> Iterator[Tick | None]:
    """Yield a tick(what, done, total) callback writing progress to stderr (None if quiet)."""
    if quiet:
        yield None
        return
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(label, total=None)

            def tick(what: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=what or label)

            yield tick
        return
    start = last = time.monotonic()

    def plain(what: str, done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PLAIN_EVERY_S:
            last = now
            msg = f"{what or label}: {done}/{total} done, {now - start:.0f} s"
            print(msg, file=sys.stderr, flush=True)

    yield plain
