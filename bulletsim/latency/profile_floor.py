"""A calibrated profile must never price work at a negative (or non-finite) time.

Every fitted term is checked on its own when the file is read (`profile_format.validate`:
positive grid times, SRM efficiencies > 0, overheads >= 0), but terms combine: a decode layer
pays `srm.layer_overhead_s - exec.decode_graph_saving_per_layer_s` on top of its kernels (the
graph saving is measured against eager kernel timings, so the difference is often negative), and
a small decode's kernels can be shorter than that saving. Such a profile used to fail a run deep
inside SimPy ("Negative delay"). Two checks name the profile file instead:

- `check_floor` (when a profile is built): predicts the cheapest work there is (one decode
  token over a one-token context, one prefill token, per layer and as a full step; the
  decode grid's smallest corner) on every measured SM count and the whole GPU, O(20 x grid SM
  counts) predictions (~ms);
- `bad_prediction` (at prediction time, the backstop for shapes the probe did not try): the
  one-line message for a prediction that is negative or not finite.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bulletsim.core import CoRunner, WorkShape
from bulletsim.latency.contention import ContendedPredict

if TYPE_CHECKING:
    from bulletsim.latency.profile import ProfileLatency


def probe_shapes(doc: dict) -> list[tuple[str, WorkShape]]:
    """(description, shape) of the cheapest work a profile prices: per layer and full step."""
    dec = doc["grid"]["attn_decode"]
    b, c = int(dec["batch"][0]), int(dec["ctx"][0])
    out = []
    for layers, what in ((1, "one layer"), (None, "a full step")):
        logits = 0 if layers else 1
        out += [
            (
                f"a decode of batch 1, context 1 ({what})",
                WorkShape(decode_tokens=1, decode_ctx_tokens=2, num_layers=layers,
                          logits_tokens=logits),
            ),
            (
                f"a decode of batch {b}, context {c} ({what}; the decode grid's corner)",
                WorkShape(decode_tokens=b, decode_ctx_tokens=b * (c + 1), num_layers=layers,
                          logits_tokens=logits * b),
            ),
            (
                f"a prefill of 1 token ({what})",
                WorkShape(prefill_tokens=1, prefill_attn_pairs=1.0, prefill_kv_tokens=1,
                          num_prefill_seqs=1, num_layers=layers, logits_tokens=logits),
            ),
        ]  # fmt: skip
    return out


def describe_shape(shape: WorkShape) -> str:
    """`shape` in a few words: its tokens, context and layers."""
    parts = []
    if shape.prefill_tokens:
        parts.append(
            f"prefill {shape.prefill_tokens} tokens ({shape.num_prefill_seqs} seqs, "
            f"{shape.prefill_kv_tokens} KV tokens)"
        )
    if shape.decode_tokens:
        parts.append(f"decode batch {shape.decode_tokens} (context {shape.decode_ctx_tokens})")
    layers = "all layers" if shape.num_layers is None else f"{shape.num_layers} layers"
    return f"{' + '.join(parts) or 'no tokens'}, {layers}"


def bad_prediction(
    pl: ProfileLatency,
    seconds: float,
    shape: WorkShape,
    num_sms: int,
    co_runner: CoRunner | None = None,
    what: str | None = None,
) -> str:
    """One line: profile `pl` predicted `seconds` (negative or not finite) for `shape`; names
    the file, the work, the SM count and the terms that add up to it."""
    mem_s, cmp_s = pl.time_split_s(shape, num_sms)
    beside = f" beside a {co_runner.phase} on {co_runner.num_sms} SMs" if co_runner else ""
    return (
        f"profile {pl.source} predicts {seconds!r} s for {what or describe_shape(shape)} on "
        f"{num_sms} SMs{beside} (kernels {mem_s + cmp_s:.3e} s + overheads "
        f"{pl.overhead_s(shape):.3e} s: srm.layer_overhead_s {pl.params.layer_overhead_s:.3e} "
        f"- exec.decode_graph_saving_per_layer_s {pl.graph_saving_s:.3e} per decode layer, "
        f"srm.step_overhead_s {pl.params.step_overhead_s:.3e}); a latency must be finite and "
        ">= 0: refit the profile (bulletsim calibrate-fit) or correct those terms"
    )


def check_floor(pl: ProfileLatency) -> None:
    """ValueError (one line, `bad_prediction`) when `pl` prices any probe shape
    (`probe_shapes`) on any measured SM count, or the whole GPU, at a negative or non-finite
    time."""
    sms = sorted({*pl.doc["grid"]["sms"], pl.total_sms})
    for what, shape in probe_shapes(pl.doc):
        for n in sms:
            # the kernels and overheads alone: an eager launch bound must not hide them
            t = ContendedPredict.predict(pl, shape, n)
            if not 0.0 <= t < math.inf:
                raise ValueError(bad_prediction(pl, t, shape, n, what=what))
