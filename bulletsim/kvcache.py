"""Paged KV-cache block accounting (no data, only counts)."""

from __future__ import annotations

from dataclasses import dataclass

from bulletsim.core import Request


def blocks_for(tokens: int, block_size: int) -> int:
    return -(-tokens // block_size)


@dataclass(frozen=True, slots=True)
class KVCapacity:
    """How many KV blocks fit on one GPU, and why."""

    num_blocks: int
    block_size: int
    bytes_per_token: int
    free_bytes: int

    @property
    def num_tokens(self) -> int:
        return self.num_blocks * self.block_size


def kv_capacity(
    memory_bytes: int,
    weight_bytes: int,
    bytes_per_token: int,
    *,
    block_size: int = 16,
    memory_fraction: float = 0.9,
    reserve_bytes: int = 2 * 1024**3,
) -> KVCapacity:
    """Blocks left after weights and a reserve (activations, CUDA graphs, allocator slack).

    `memory_fraction` mirrors vLLM's `gpu_memory_utilization` (0.9) and SGLang's
    `mem_fraction_static` (0.88 on 80 GB); the 2 GiB reserve is a typical activation +
    graph footprint for an 8B model at a few-thousand-token batch.
    """
    free = int(memory_bytes * memory_fraction) - weight_bytes - reserve_bytes
    if free <= 0:
        raise ValueError(
            f"model weights ({weight_bytes / 1e9:.1f} GB) leave no room for a KV cache on a "
            f"{memory_bytes / 1e9:.0f} GB GPU; use more tensor parallelism or a bigger GPU"
        )
    num_blocks = free // (bytes_per_token * block_size)
    return KVCapacity(int(num_blocks), block_size, bytes_per_token, int(free))


class KVCache:
    """Counts blocks held by requests; never lets usage pass capacity.

    Prefill allocates a request's blocks up front (`allocate`); decode growth is charged in
    bulk by the decode pool (`grow`), which knows how many members cross a block boundary on
    each step without visiting them.
    """

    __slots__ = ("block_size", "capacity_blocks", "used_blocks", "peak_used_blocks")

    def __init__(self, capacity_blocks: int, block_size: int = 16) -> None:
        assert capacity_blocks > 0 and block_size > 0
        self.block_size = block_size
        self.capacity_blocks = capacity_blocks
        self.used_blocks = 0
        self.peak_used_blocks = 0

    @property
    def free_blocks(self) -> int:
        return self.capacity_blocks - self.used_blocks

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def can_allocate(self, num_blocks: int) -> bool:
        return num_blocks <= self.capacity_blocks - self.used_blocks

    def allocate(self, request: Request, num_blocks: int) -> None:
        assert num_blocks <= self.free_blocks, "KV over capacity"
        request.num_blocks += num_blocks
        self.used_blocks += num_blocks
        if self.used_blocks > self.peak_used_blocks:
            self.peak_used_blocks = self.used_blocks

    def grow(self, num_blocks: int) -> None:
        """Charge decode growth already attributed to members by the decode pool."""
        assert num_blocks <= self.free_blocks, "KV over capacity"
        self.used_blocks += num_blocks
        if self.used_blocks > self.peak_used_blocks:
            self.peak_used_blocks = self.used_blocks

    def release(self, num_blocks: int) -> None:
        self.used_blocks -= num_blocks
        assert self.used_blocks >= 0
