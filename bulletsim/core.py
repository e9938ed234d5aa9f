"""Shared vocabulary: what a request is, what a lane runs, and what gets recorded.

Everything here is plain data. Policies, engines (simulated and live), latency models and
metrics all speak in these types; none of them imports simpy or torch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

Phase = Literal["prefill", "decode", "mixed"]


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request of a workload: when it arrives and how many tokens go in and come out."""

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.output_tokens < 1:
            raise ValueError(
                f"request {self.id}: prompt_tokens and output_tokens must be >= 1, "
                f"got {self.prompt_tokens} and {self.output_tokens}"
            )
        if not self.arrival_s >= 0.0:
            raise ValueError(f"request {self.id}: arrival_s must be >= 0, got {self.arrival_s}")


@dataclass(slots=True, eq=False)
class Request:
    """Run state of one request inside an engine.

    A request is prefilled (possibly in chunks, possibly more than once after a preemption)
    and then decoded. `prefill_target_tokens` is what the current prefill must process: the
    prompt, or prompt + generated tokens when it is recomputed after a preemption.
    """

    spec: RequestSpec
    prefill_target_tokens: int = 0
    prefilled_tokens: int = 0
    generated_tokens: int = 0
    num_blocks: int = 0
    admitted_s: float = -1.0
    first_token_s: float = -1.0
    last_token_s: float = -1.0
    finish_s: float = -1.0
    num_preemptions: int = 0
    # decode-pool bookkeeping (see DecodePool): step index at join, context at join
    join_step: int = -1
    join_ctx_tokens: int = 0

    @property
    def id(self) -> int:
        return self.spec.id

    @property
    def remaining_prefill_tokens(self) -> int:
        return self.prefill_target_tokens - self.prefilled_tokens

    @property
    def finished(self) -> bool:
        return self.finish_s >= 0.0


@dataclass(frozen=True, slots=True)
class WorkShape:
    """What a unit of work costs, as a latency model sees it (no request identities).

    Attention work is summarised so that any batch is O(1) to describe:
    a prefill chunk of q new tokens over c already-cached tokens does causal attention over
    q*c + q*(q+1)/2 (query, key) pairs and reads c + q tokens of KV; a decode request with
    context c does c pairs and reads c tokens of KV.
    """

    prefill_tokens: int = 0  # new tokens being prefilled in this work, all chunks together
    prefill_attn_pairs: float = 0.0  # sum of q*c + q*(q+1)/2 over chunks
    prefill_kv_tokens: int = 0  # sum of (c + q) over chunks
    num_prefill_seqs: int = 0  # number of chunks (sequences) in the prefill part
    decode_tokens: int = 0  # decode requests, one new token each
    decode_ctx_tokens: int = 0  # sum of context lengths the decode tokens attend to
    num_layers: int | None = None  # None = every layer of the model (a full step)
    logits_tokens: int = 0  # rows that go through lm_head (sequences emitting a token)

    @property
    def total_tokens(self) -> int:
        return self.prefill_tokens + self.decode_tokens

    @property
    def phase(self) -> Phase:
        if self.prefill_tokens and self.decode_tokens:
            return "mixed"
        return "prefill" if self.prefill_tokens else "decode"


@dataclass(frozen=True, slots=True)
class CoRunner:
    """What runs at the same time on the other SM partition (for contention)."""

    phase: Phase
    num_sms: int


@functools.cache
def co_runner(phase: Phase, num_sms: int) -> CoRunner:
    """`CoRunner(phase, num_sms)`, one shared object per value (it is frozen): engines and
    split planning ask for the same few hundred values tens of thousands of times a run."""
    return CoRunner(phase, num_sms)


def co_runner_beside(lane: str, running: Iterable[tuple[str, Phase, int]]) -> CoRunner | None:
    """The co-runner of work launched now on `lane`: the other lane's running work, as
    (lane, phase, SMs it runs on) entries of `running`; None when no other lane runs. The one
    rule both engines price a launch by (the live loop with a launch's physical SMs, the
    simulator with the SMs the other lane runs on or is being resized to)."""
    for other, phase, sms in running:
        if other != lane:
            return co_runner(phase, sms)
    return None


@dataclass(frozen=True, slots=True)
class SLO:
    """Service-level objectives; a request meets them when both hold.

    TTFT is judged per prompt token when `norm_ttft_s_per_token` is set (the Bullet paper's
    normalized TTFT), else against `ttft_s`.
    """

    tpot_s: float
    ttft_s: float | None = None
    norm_ttft_s_per_token: float | None = None

    def ttft_limit_s(self, prompt_tokens: int) -> float:
        if self.norm_ttft_s_per_token is not None:
            return self.norm_ttft_s_per_token * prompt_tokens
        assert self.ttft_s is not None
        return self.ttft_s


@dataclass(slots=True)
class PrefillChunk:
    """`num_tokens` new tokens of `request`, on top of `start_tokens` already prefilled."""

    request: Request
    start_tokens: int
    num_tokens: int

    @property
    def completes_prefill(self) -> bool:
        return self.start_tokens + self.num_tokens >= self.request.prefill_target_tokens


class Work(NamedTuple):
    """One lane iteration as a policy decided it: what to run, on how many SMs, overheads.

    A policy builds it; an engine runs it and never changes it (it is immutable: a named
    tuple, because a policy builds one per iteration and a frozen dataclass costs ~4x more to
    build). What actually ran, e.g. the SMs after a mid-iteration resize, goes into the
    engine's iteration record. `num_sms` is the lane's allocation when the work starts.
    `prefill` is the chunks it advances (a policy's batch list; not copied). `layers` is the
    (first, end) layer window for layer-windowed prefill, None for a full step. `overhead_s`
    is *modelled* time the simulator adds to the predicted latency (handoff, re-masking,
    prediction cost); a live engine does not sleep it, it measures what those steps take.
    """

    lane: str
    shape: WorkShape
    num_sms: int
    prefill: Sequence[PrefillChunk] = ()
    decode: bool = False  # a decode step over every member of the decode pool
    layers: tuple[int, int] | None = None
    overhead_s: float = 0.0
    tag: str = ""  # free-form label a policy may use ("window 3/8", "batch 17")
