"""What a calibration measures: the standard and `--quick` sweep grids. CPU-only data.

SM counts are the mechanism's granularity (8 on Hopper green contexts: groups of 8k SMs, and
the whole GPU). Held-out points are measured but never enter the fitted profile: SM counts
that only exist as split remainders (4 mod 8 on a 132-SM part) and token counts between grid
points, so the reported errors are honest interpolation errors. Prefill token counts are dense
around 128-token tile boundaries and the wave boundaries of the model's GEMMs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Grid:
    name: str
    sms: tuple[int, ...]
    sms_heldout: tuple[int, ...]
    prefill_tokens: tuple[int, ...]
    prefill_tokens_heldout: tuple[int, ...]
    prefill_multi_heldout: tuple[tuple[int, int], ...]  # (num_seqs, tokens per seq)
    decode_batch: tuple[int, ...]
    decode_ctx: tuple[int, ...]
    decode_heldout: tuple[tuple[int, int], ...]  # (batch, ctx)
    decode_max_kv_tokens: int  # skip batch x ctx above this (KV pool and time)
    step_sms: tuple[int, ...]
    step_prefill: tuple[tuple[int, int], ...]  # (num_seqs, tokens per seq)
    step_decode: tuple[tuple[int, int], ...]
    corun_decode_sms: tuple[int, ...]  # decode partition; prefill gets the rest
    corun_decode: tuple[tuple[int, int], ...]
    corun_prefill_tokens: tuple[int, ...]
    target_ms: float  # GPU time aimed at per timed pass (more layers for short kernels)
    passes: int  # timed passes per point (median over passes x layers)

    def decode_shapes(self) -> list[tuple[int, int]]:
        return [
            (b, c)
            for b in self.decode_batch
            for c in self.decode_ctx
            if b * c <= self.decode_max_kv_tokens
        ]

    def counts(self) -> dict[str, int]:
        """Number of measurement points per phase (for progress bars and docs)."""
        n_sms = len(self.sms) + len(self.sms_heldout)
        pre = n_sms * len(self.prefill_tokens) + len(self.sms) * (
            len(self.prefill_tokens_heldout) + len(self.prefill_multi_heldout)
        )
        dec = n_sms * len(self.decode_shapes()) + len(self.sms) * len(self.decode_heldout)
        steps = len(self.step_sms) * (len(self.step_prefill) + len(self.step_decode))
        corun = (
            2 * len(self.corun_decode_sms) * len(self.corun_decode) * len(self.corun_prefill_tokens)
        )
        return {"prefill": pre, "decode": dec, "step": steps, "corun": corun}


STANDARD = Grid(
    name="standard",
    sms=(8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 132),
    sms_heldout=(20, 44, 68, 92, 116),
    prefill_tokens=(
        32,
        64,
        128,
        256,
        384,
        512,
        640,
        768,
        1024,
        1152,
        1536,
        2048,
        2560,
        3072,
        4096,
        6144,
        8192,
    ),
    prefill_tokens_heldout=(192, 1664, 3584),
    prefill_multi_heldout=((4, 512), (8, 256), (2, 2048)),
    decode_batch=(1, 8, 32, 64, 128, 256),
    decode_ctx=(512, 2048, 8192),
    decode_heldout=((16, 1024), (96, 4096)),
    decode_max_kv_tokens=512 * 1024,
    step_sms=(16, 32, 64, 96, 132),
    step_prefill=((1, 512), (1, 2048), (1, 8192), (4, 1024)),
    step_decode=((8, 2048), (64, 2048), (256, 512), (32, 8192)),
    corun_decode_sms=(16, 32, 48, 64, 96),
    corun_decode=((64, 2048), (128, 512)),
    corun_prefill_tokens=(1024, 4096),
    target_ms=15.0,
    passes=3,
)

QUICK = Grid(
    name="quick",
    sms=(8, 16, 32, 48, 64, 96, 128, 132),
    sms_heldout=(44, 116),
    prefill_tokens=(64, 128, 256, 512, 1024, 2048, 4096, 8192),
    prefill_tokens_heldout=(1664,),
    prefill_multi_heldout=((4, 512),),
    decode_batch=(1, 8, 32, 128, 256),
    decode_ctx=(512, 2048, 8192),
    decode_heldout=((16, 1024),),
    decode_max_kv_tokens=512 * 1024,
    step_sms=(32, 132),
    step_prefill=((1, 2048),),
    step_decode=((64, 2048),),
    corun_decode_sms=(32, 96),
    corun_decode=((64, 2048),),
    corun_prefill_tokens=(4096,),
    target_ms=8.0,
    passes=2,
)

# Issue 16: libsmctrl TPC masks beside green contexts. Training SM counts are on the green
# profile's grid (equal-SM comparison); held-out counts are 2-SM steps green contexts cannot
# make (18 = 9 TPCs, 42, 66, 98, 122); co-runs as the standard grid's at decode 64 x 2048.
MECHANISMS = Grid(
    name="mechanisms",
    sms=(8, 16, 32, 48, 64, 96, 128, 132),
    sms_heldout=(18, 42, 66, 98, 122),
    prefill_tokens=(128, 512, 1024, 2048, 4096, 8192),
    prefill_tokens_heldout=(1664,),
    prefill_multi_heldout=(),
    decode_batch=(8, 64, 256),
    decode_ctx=(512, 2048, 8192),
    decode_heldout=((16, 1024),),
    decode_max_kv_tokens=512 * 1024,
    step_sms=(32, 64, 132),
    step_prefill=((1, 2048),),
    step_decode=((64, 2048),),
    corun_decode_sms=(16, 32, 48, 64, 96),
    corun_decode=((64, 2048),),
    corun_prefill_tokens=(4096,),
    target_ms=8.0,
    passes=2,
)

# Per-GPU shards of tensor-parallel models (issue 13: Llama-3.1-70B at TP 2, 4, 8 in ~250 s of
# one H200 together): QUICK's SM and token axes, the standard decode batches, and whole steps
# on four SM counts so the held-out step errors compare with the 8B profile's.
SHARD = Grid(
    name="shard",
    sms=(8, 16, 32, 48, 64, 96, 128, 132),
    sms_heldout=(44, 116),
    prefill_tokens=(32, 64, 128, 256, 512, 1024, 2048, 4096, 8192),
    prefill_tokens_heldout=(192, 1664),
    prefill_multi_heldout=((4, 512),),
    decode_batch=(1, 8, 32, 64, 128, 256),
    decode_ctx=(512, 2048, 8192),
    decode_heldout=((16, 1024), (96, 4096)),
    decode_max_kv_tokens=512 * 1024,
    step_sms=(16, 32, 64, 132),
    step_prefill=((1, 512), (1, 2048)),
    step_decode=((8, 2048), (64, 2048)),
    corun_decode_sms=(32, 96),
    corun_decode=((64, 2048),),
    corun_prefill_tokens=(4096,),
    target_ms=8.0,
    passes=2,
)

GRIDS = {"standard": STANDARD, "quick": QUICK, "mechanisms": MECHANISMS, "shard": SHARD}
