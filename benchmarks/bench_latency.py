"""Microseconds per `RooflineLatency.predict` and `ProfileLatency.predict` (the measured H200
profile) call on a simulator-like stream of shapes.

A script, not a test: `python benchmarks/bench_latency.py` (with the package installed, or
`PYTHONPATH=.` from the repository root). The simulator budget is ~0.5 s for
~20,000 predictions (a 10,000-request run), i.e. < 25 us each; the target is < 5 us.
"""

from __future__ import annotations

import time

import numpy as np

from bulletsim.core import CoRunner, WorkShape
from bulletsim.hardware import get_gpu
from bulletsim.latency.profile import ProfileLatency
from bulletsim.latency.profile_format import read_profile
from bulletsim.latency.roofline import RooflineLatency
from bulletsim.models import get_model


def shapes(rng: np.random.Generator, n: int) -> list[WorkShape]:
    """Decode steps of a drifting batch, mixed chunks and layer windows, like a real run."""
    out = []
    batch = 32
    for i in range(n):
        batch = int(np.clip(batch + rng.integers(-2, 3), 1, 256))
        ctx = batch * int(rng.integers(500, 3000))
        kind = i % 4
        if kind == 0:  # mixed chunked-prefill iteration, budget 2048
            q = 2048 - batch
            out.append(
                WorkShape(
                    prefill_tokens=q,
                    prefill_attn_pairs=q * 1000 + q * (q + 1) / 2,
                    prefill_kv_tokens=q + 1000,
                    num_prefill_seqs=1,
                    decode_tokens=batch,
                    decode_ctx_tokens=ctx,
                    logits_tokens=batch + 1,
                )
            )
        elif kind == 1:  # layer window of a Bullet prefill batch
            q = int(rng.choice([512, 1024, 1664]))
            out.append(
                WorkShape(
                    prefill_tokens=q,
                    prefill_attn_pairs=q * (q + 1) / 2,
                    prefill_kv_tokens=q,
                    num_prefill_seqs=1,
                    num_layers=4,
                )
            )
        else:  # decode step
            out.append(WorkShape(decode_tokens=batch, decode_ctx_tokens=ctx, logits_tokens=batch))
    return out


def bench_profile(n: int = 20_000) -> None:
    """The measured H200 profile's predict (was a timed unit test: < 50 us per call)."""
    from pathlib import Path

    import bulletsim

    path = Path(bulletsim.__file__).parent / "data" / "profiles" / "h200__llama-3.1-8b.json"
    model = ProfileLatency(read_profile(path))
    rng = np.random.default_rng(0)
    work = shapes(rng, n)
    for label, co_runner in (("alone", None), ("co-run", CoRunner("decode", 68))):
        for rep in ("cold", "warm"):
            t0 = time.perf_counter()
            for shape in work:
                model.predict(shape, 64, co_runner)
            dt = time.perf_counter() - t0
            print(f"h200  profile (measured)   {label:6} {rep}: {dt / n * 1e6:5.2f} us/predict")


def bench(model_name: str, gpu_name: str, n: int = 20_000) -> None:
    model = RooflineLatency(get_gpu(gpu_name), get_model(model_name))
    rng = np.random.default_rng(0)
    work = shapes(rng, n)
    sms = [int(s) for s in rng.choice([40, 56, 64, 80, 92, model.total_sms], n)]
    co = CoRunner("prefill", 64)
    for label, co_runner in (("alone", None), ("co-run", co)):
        for rep in ("cold", "warm"):  # cold fills the memo, warm repeats the same stream
            t0 = time.perf_counter()
            for shape, n_sms in zip(work, sms, strict=True):
                model.predict(shape, n_sms, co_runner)
            dt = time.perf_counter() - t0
            print(f"{gpu_name:5} {model_name:16} {label:6} {rep}: {dt / n * 1e6:5.2f} us/predict")
    t0 = time.perf_counter()
    for shape, n_sms in zip(work[:2000], sms[:2000], strict=True):
        model.predict_ops(shape, n_sms)
    print(f"{'':22} predict_ops (slow path): {(time.perf_counter() - t0) / 2000 * 1e6:6.1f} us")


if __name__ == "__main__":
    for model_name in ("llama-3.1-8b", "qwen3-235b-a22b"):
        bench(model_name, "h200")
    bench_profile()
