"""Shape columns of a sample (CPU-only; shared by the GPU sweep and synthetic data)."""

from __future__ import annotations


def prefill_shape(num_seqs: int, seq_len: int) -> dict:
    t = num_seqs * seq_len
    return {
        "tokens": t,
        "num_seqs": num_seqs,
        "seq_len": seq_len,
        "pairs": num_seqs * seq_len * (seq_len + 1) // 2,
        "kv_tokens": t,
        "logits_tokens": num_seqs,
    }


def decode_shape(batch: int, ctx: int) -> dict:
    # The new token is appended first, so attention reads ctx + 1 tokens per request.
    return {
        "tokens": batch,
        "batch": batch,
        "ctx": ctx,
        "kv_tokens": batch * (ctx + 1),
        "logits_tokens": batch,
    }
