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


def split_candidates(total_sms: int, min_sms: int, step_sms: int) -> list[int]:
    """The prefill sides divide_sm picks the middle rows from, ascending: `min_sms` + k *
    `step_sms` SMs with prefill >= half the GPU and decode >= max(16, `min_sms`)."""
    return [
        p
        for p in range(min_sms, total_sms - min_sms + 1, step_sms)
        if p >= total_sms - p and total_sms - p >= MIN_DECODE_SMS
    ]


def split_rows(total_sms: int, min_sms: int, step_sms: int, num_rows: int) -> list[tuple[int, int]]:
    """The middle rows of the table: (prefill SMs, decode SMs), prefill descending.

    Raises ValueError when no split satisfies the constraints (SGLang refuses to start then).
    With fewer candidates than `num_rows` every candidate is a row (SGLang's divide_sm);
    `PDMuxParams.check_gpu` refuses a given `sm_group_num` that asks for more.
    """
    if num_rows < 1 or min_sms < 1 or step_sms < 1:
        raise ValueError(
            f"pdmux: num_rows, min_sms and step_sms must be >= 1, got {num_rows}, {min_sms}, "
            f"{step_sms}"
        )
    candidates = split_candidates(total_sms, min_sms, step_sms)
    if not candidates:
        raise ValueError(
            f"pdmux: no prefill-majority split of {total_sms} SMs leaves decode >= "
            f"{MIN_DECODE_SMS} SMs at granularity {step_sms} (minimum {min_sms})"
        )
    if len(candidates) >= num_rows:
        candidates = candidates[:: max(1, len(candidates) // num_rows)][:num_rows]
    return [(p, total_sms - p) for p in reversed(candidates)]


def slo_candidates(total_sms: int, min_sms: int, step_sms: int) -> list[int]:
    """The prefill sides of `slo_rows`, ascending (both sides >= `min_sms`, decode >= 16)."""
    floor = max(MIN_DECODE_SMS, min_sms)
    return list(range(min_sms, total_sms - floor + 1, step_sms))


def slo_rows(total_sms: int, min_sms: int, step_sms: int) -> list[tuple[int, int]]:
    """Every split at the granularity with both sides >= `min_sms` and decode >= 16 SMs,
    prefill descending: the candidates of the SLO-aware variant (not mainline SGLang)."""
    rows = [(p, total_sms - p) for p in slo_candidates(total_sms, min_sms, step_sms)]
    if not rows:
        raise ValueError(
            f"pdmux-slo: no split of {total_sms} SMs at granularity {step_sms} leaves both "
            f"sides >= {min_sms} SMs and decode >= {MIN_DECODE_SMS}"
        )
    return sorted(rows, reverse=True)


def values_text(values: list[int]) -> str:
    """[8, 16, 24, 32] -> "8..32 in steps of 8"; [8, 24] -> "8, 24"; [] -> "none"."""
    if len(values) >= 3 and len({b - a for a, b in zip(values, values[1:], strict=False)}) == 1:
        return f"{values[0]}..{values[-1]} in steps of {values[1] - values[0]}"
    return ", ".join(map(str, values)) or "none"


def full_table(total_sms: int, middle: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Row 0 = all SMs to prefill, then `middle`, then all SMs to decode."""
    return ((total_sms, 0), *middle, (0, total_sms))


MANUAL_FORMAT = (
    "PREFILL:DECODE:THRESHOLD rows separated by ',', ';' or '/', e.g. 112:20:0;104:28:16"
)


def parse_manual_divisions(text: str) -> list[tuple[int, int, int]]:
    """`"112:20:0,104:28:16"` -> [(prefill SMs, decode SMs, decode-batch threshold), ...].

    The YAML key `manual_divisions` of SGLang's `--pdmux-config-path`, one row per entry;
    rows are separated by `,`, `;` or `/`. Checks what needs no GPU (three integers, both
    sides >= 1 SM, thresholds >= 0 and non-decreasing: a row after a higher threshold could
    never be chosen); `check_divisions` checks the rows against the GPU.
    """
    items = text.replace(";", ",").replace("/", ",").split(",")
    rows: list[tuple[int, int, int]] = []
    for item in (x.strip() for x in items):
        try:
            p, d, threshold = (int(x) for x in item.split(":"))
        except ValueError:
            raise ValueError(
                f"pdmux.manual_divisions row {item!r} is not three integers; {MANUAL_FORMAT}"
            ) from None
        wrong = [
            f"{name} must be >= {lo}, got {v}"
            for name, v, lo in (
                ("prefill SMs", p, 1),
                ("decode SMs", d, 1),
                ("threshold", threshold, 0),
            )
            if v < lo
        ]
        if rows and threshold < rows[-1][2]:
            wrong.append(f"threshold {threshold} is below the previous row's {rows[-1][2]}")
        if wrong:
            raise ValueError(f"pdmux.manual_divisions row {item!r}: {'; '.join(wrong)}")
        rows.append((p, d, threshold))
    return rows


def check_divisions(
    rows: list[tuple[int, int, int]], total_sms: int, min_sms: int, step_sms: int, gpu: str
) -> None:
    """Every manual row is a split green contexts can make on `gpu` (`total_sms` SMs, groups
    of `min_sms` + k * `step_sms`): the prefill side a group, the decode side a group or the
    rest of the GPU (as the computed rows, e.g. (112, 20) on 132), and decode >= `min_sms`
    (the guarantee min_sms gives every split). ValueError naming the row."""

    def group(n: int) -> bool:
        return n >= min_sms and (n - min_sms) % step_sms == 0

    top = min_sms + (total_sms - MIN_DECODE_SMS - min_sms) // step_sms * step_sms
    for p, d, t in rows:
        row = f"pdmux.manual_divisions row '{p}:{d}:{t}'"
        if p + d > total_sms:
            raise ValueError(
                f"{row}: prefill + decode = {p + d} SMs, more than the {gpu}'s {total_sms}"
            )
        if d < min_sms:  # as every computed split: both sides get >= min_sms
            raise ValueError(
                f"{row}: decode gets {d} SMs, fewer than min_sms = {min_sms}; give rows with "
                f"decode >= {min_sms}, or a smaller min_sms"
            )
        if not group(p) or not (group(d) or p + d == total_sms):
            raise ValueError(
                f"{row}: green contexts on the {gpu} ({total_sms} SMs) are groups of "
                f"{min_sms} + k * {step_sms} SMs; prefill must be one and decode one or the rest "
                f"({total_sms} - prefill), e.g. {top}:{total_sms - top}:0"
            )


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
