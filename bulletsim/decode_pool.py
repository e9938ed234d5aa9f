"""The set of requests in decode, stepped in O(1) per iteration.

Every member gains one token per decode step, so nothing per member needs touching on a step:
a member's progress is `step_index - join_step`. Sums the latency model needs (members,
context tokens), the KV blocks the step newly needs (members whose context sits on a block
boundary, counted by `(join_step - join_ctx) mod block_size`) and the members finishing on a
step (bucketed by step index) are all kept incrementally. Cost per request is O(1) at join
and leave; cost per step is O(1) plus the members that finish.
"""

from __future__ import annotations

from bulletsim.core import Request
from bulletsim.itl import ITLSamples
from bulletsim.kvcache import KVCache


class DecodePool:
    __slots__ = (
        "kv",
        "members",
        "pending",
        "step_index",
        "ctx_tokens",
        "member_blocks",
        "final_blocks",
        "_phase_count",
        "_finish_at",
        "_new_this_step",
        "last_step_end_s",
        "in_step",
    )

    def __init__(self, kv: KVCache) -> None:
        self.kv = kv
        self.members: dict[int, Request] = {}  # insertion order = join order (LIFO victims)
        self.pending: list[Request] = []  # prefilled, waiting for the next step to start
        self.step_index = 0
        self.ctx_tokens = 0  # sum of members' KV context tokens
        self.member_blocks = 0  # KV blocks held by members
        self.final_blocks = 0  # blocks members will hold when they finish
        self._phase_count = [0] * kv.block_size
        self._finish_at: dict[int, list[Request]] = {}
        self._new_this_step: list[Request] = []
        self.last_step_end_s = 0.0
        self.in_step = False

    def __len__(self) -> int:
        return len(self.members)

    @property
    def num_waiting_to_join(self) -> int:
        return len(self.pending)

    @property
    def outstanding_blocks(self) -> int:
        """Blocks members still need before they finish (for admission reservations)."""
        return self.final_blocks - self.member_blocks

    def add(self, request: Request) -> None:
        """A prefilled request with decode steps left joins at the next step."""
        self.pending.append(request)

    def context_of(self, request: Request) -> int:
        return request.join_ctx_tokens + (self.step_index - request.join_step)

    def _join(self, r: Request) -> None:
        bs = self.kv.block_size
        remaining_steps = r.spec.output_tokens - r.generated_tokens
        assert remaining_steps >= 1
        r.join_step = self.step_index
        r.join_ctx_tokens = r.prefill_target_tokens
        self.members[r.id] = r
        self.ctx_tokens += r.join_ctx_tokens
        self.member_blocks += r.num_blocks
        self.final_blocks += -(-(r.join_ctx_tokens + remaining_steps) // bs)
        self._phase_count[(r.join_step - r.join_ctx_tokens) % bs] += 1
        self._finish_at.setdefault(r.join_step + remaining_steps - 1, []).append(r)

    def _leave(self, r: Request) -> None:
        """Remove a member, settle its counters and free its blocks."""
        bs = self.kv.block_size
        del self.members[r.id]
        ctx = self.context_of(r)
        blocks = -(-ctx // bs)
        remaining_steps = r.spec.output_tokens - r.generated_tokens
        self.ctx_tokens -= ctx
        self.member_blocks -= blocks
        self.final_blocks -= -(-(r.join_ctx_tokens + remaining_steps) // bs)
        self._phase_count[(r.join_step - r.join_ctx_tokens) % bs] -= 1
        r.generated_tokens += self.step_index - r.join_step
        r.num_blocks = 0
        self.kv.release(blocks)

    def blocks_needed_next_step(self) -> int:
        """Blocks the next step allocates for current members (pending joins included)."""
        bs = self.kv.block_size
        need = self._phase_count[self.step_index % bs]
        for r in self.pending:
            if (self.step_index - r.prefill_target_tokens) % bs == 0:
                need += 1
        return need

    def begin_step(self) -> list[Request]:
        """Merge pending joins and charge this step's KV growth; `in_step` says if one began.

        Returns the members that must be preempted first because the cache cannot hold the
        step's new tokens (youngest first); the caller preempts them and calls again.
        """
        assert not self.in_step
        for r in self.pending:
            self._join(r)
        self._new_this_step.extend(self.pending)
        self.pending = []
        if not self.members:
            return []
        need = self._phase_count[self.step_index % self.kv.block_size]
        if need > self.kv.free_blocks:
            return [next(reversed(self.members.values()))]
        self.kv.grow(need)
        self.member_blocks += need
        self.in_step = True
        return []

    def preempt(self, request: Request, now_s: float) -> None:
        """Take a member out (recompute later): frees its blocks, keeps generated tokens."""
        assert not self.in_step
        was_in_last_step = request.join_step < self.step_index
        self._leave(request)
        request.last_token_s = self.last_step_end_s if was_in_last_step else request.last_token_s
        if request in self._new_this_step:
            self._new_this_step.remove(request)

    def end_step(self, now_s: float, itl: ITLSamples) -> list[Request]:
        """Complete the step in flight at `now_s`; return the members that finished.

        Adds inter-token latency samples to `itl`: one weighted sample for every member that also
        took part in the previous step, one sample for each member that just joined.
        """
        assert self.in_step
        self.in_step = False
        new = self._new_this_step
        num_continuing = len(self.members) - len(new)
        itl_values, itl_weights = itl.values, itl.weights
        if num_continuing:
            itl_values.append(now_s - self.last_step_end_s)
            itl_weights.append(num_continuing)
        for r in new:
            itl_values.append(now_s - r.last_token_s)
            itl_weights.append(1)
        self._new_this_step = []
        self.ctx_tokens += len(self.members)
        finished = self._finish_at.pop(self.step_index, None) or []
        self.step_index += 1
        done = []
        for r in finished:
            if (
                self.members.get(r.id) is r
                and r.join_step + (r.spec.output_tokens - r.generated_tokens) == self.step_index
            ):
                self._leave(r)
                r.finish_s = now_s
                r.last_token_s = now_s
                done.append(r)
        self.last_step_end_s = now_s
        return done
