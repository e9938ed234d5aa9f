"""Python's garbage collector during a live run: collected and frozen before the host loop.

After an executor's setup (weights, KV pool, CUDA graph capture, warm-up) the heap holds many
long-lived objects the loop never frees, and every full (generation 2) collection during the
run would traverse them all: a pause in the host loop that delays noticing a finished launch
and making the next. Production engines collect once after setup and move the survivors to
the permanent generation (`gc.freeze`): vLLM PR #44363 ("Freeze garbage collector in workers
after model initialization"), SGLang PR #8577; LightLLM PR #1382 measured ITL p99 -18.5% from
removing GC pauses. Collection stays enabled for what the loop itself allocates; afterwards
`gc.unfreeze` leaves the process as it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GC_NOTE = "collected and frozen before the loop, unfrozen after (vLLM #44363, SGLang #8577)"


@contextmanager
def frozen_heap() -> Iterator[str]:
    """Collect and freeze the heap for the body; yields what was done (for live.json).
    Afterwards the heap is unfrozen, unless objects were frozen before the run (torch or an
    embedding process froze its own: on the H200, 375 objects after setup, session S4):
    `gc.unfreeze` would release theirs too, so then ours stay frozen with them."""
    already = gc.get_freeze_count()
    gc.collect()
    gc.freeze()
    if already:
        yield (f"collected and frozen before the loop, left frozen after ({already} objects "
               "were frozen before the run) (vLLM #44363, SGLang #8577)")  # fmt: skip
        return
    try:
        yield GC_NOTE
    finally:
        gc.unfreeze()
