"""PD-Multiplexing's fixed table of (prefill SMs, decode SMs) splits and its row rule.

Read from SGLang's mainline code (sgl-project/sglang, late 2025), not copied:
`python/sglang/srt/multiplex/pdmux_context.py` (`PDMuxConfig`, `get_arch_constraints`,
`divide_sm`, `initialize_stream_groups`) and
`python/sglang/srt/multiplex/multiplexing_mixin.py` (`adjust_stream_groups`).

The table is built once at start-up. Row 0 gives the whole GPU to prefill, the last row the
whole GPU to decode; the `sm_group_num - 2` rows between are green-context splits where
prefill holds at least half the SMs and decode at least 16, at the architecture's
granularity (minimum `min_sms`, step `step_sms`: Hopper 8/8, Ampere 4/2). When more such
splits exist than rows, every `len // rows`-th one is taken, smallest prefill first, and the
rows are listed largest prefill first. On 132 SMs: (112,20) (104,28) (96,36) (88,44)
(80,52) (72,60); on 108 SMs at Ampere granularity: (84,24) (78,30) (72,36) (66,42) (60,48)
(54,54).
"""

from __future__ import annotations

MIN_DECODE_SMS = 16  # divide_sm's floor for the decode side of a split row


def split_rows(total_sms: int, min_sms: int, step_sms: int, num_rows: int) -> list[tuple[int, int]]:
    """The middle rows of the table: (prefill SMs, decode SMs), prefill descending.

    Raises ValueError when no split satisfies the constraints (SGLang refuses to start then).
    """
    if num_rows < 1 or min_sms < 1 or step_sms < 1:
        raise ValueError(
            f"pdmux: num_rows, min_sms and step_sms must be >= 1, got {num_rows}, {min_sms}, "
            f"{step_sms}"
        )
    candidates = [
        p
        for p in range(min_sms, total_sms - min_sms + 1, step_sms)
        if p >= total_sms - p and total_sms - p >= MIN_DECODE_SMS
    ]
    if not candidates:
        raise ValueError(
            f"pdmux: no prefill-majority split of {total_sms} SMs leaves decode >= "
            f"{MIN_DECODE_SMS} SMs at granularity {step_sms} (minimum {min_sms})"
        )
    if len(candidates) >= num_rows:
        candidates = candidates[:: max(1, len(candidates) // num_rows)][:num_rows]
    return [(p, total_sms - p) for p in reversed(candidates)]


def slo_rows(total_sms: int, min_sms: int, step_sms: int) -> list[tuple[int, int]]:
    """Every split at the granularity with decode >= 16 SMs and prefill >= `min_sms`,
    prefill descending: the candidates of the SLO-aware variant (not mainline SGLang)."""
    rows = [
        (p, total_sms - p)
        for p in range(min_sms, total_sms - MIN_DECODE_SMS + 1, step_sms)
        if total_sms - p >= MIN_DECODE_SMS
    ]
    if not rows:
        raise ValueError(f"pdmux-slo: no split of {total_sms} SMs at granularity {step_sms}")
    return sorted(rows, reverse=True)


def full_table(total_sms: int, middle: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Row 0 = all SMs to prefill, then `middle`, then all SMs to decode."""
    return ((total_sms, 0), *middle, (0, total_sms))


def parse_manual_divisions(text: str, total_sms: int) -> list[tuple[int, int, int]]:
    """`"112:20:0,104:28:16"` -> [(prefill SMs, decode SMs, decode-batch threshold), ...].

    The YAML key `manual_divisions` of SGLang's `--pdmux-config-path`, one row per entry.
    """
    rows = []
    for item in text.split(","):
        parts = item.strip().split(":")
        try:
            p, d, threshold = (int(x) for x in parts)
        except ValueError:
            raise ValueError(
                f"pdmux.manual_divisions entry {item.strip()!r} must be PREFILL:DECODE:THRESHOLD "
                "(three integers), e.g. '112:20:0,104:28:16'"
            ) from None
        if p < 1 or d < 1 or p + d > total_sms or threshold < 0:
            raise ValueError(
                f"pdmux.manual_divisions entry {item.strip()!r}: need prefill, decode >= 1, "
                f"prefill + decode <= {total_sms} SMs and threshold >= 0"
            )
        rows.append((p, d, threshold))
    return rows


def row_by_batch(decode_bs: int, num_groups: int, divisor: int) -> int:
    """SGLang's default rule: row clamp(decode_bs * (G - 2) // divisor, 1, G - 2), G = rows."""
    middle = num_groups - 2
    return max(1, min(middle, decode_bs * middle // divisor))


def row_by_threshold(decode_bs: int, thresholds: list[int]) -> int:
    """Manual rows: the last row (1-based among the middle rows) whose threshold <= decode_bs.

    SGLang leaves the row unset (an error) when the batch is below every threshold; here the
    first middle row is used then.
    """
    row = 1
    for i, threshold in enumerate(thresholds):
        if decode_bs >= threshold:
            row = i + 1
    return row
