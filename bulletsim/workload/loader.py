"""`load_workload`: from a WorkloadConfig to requests, via a real file or the embedded model.

File length: ~370 lines, one pipeline kept in its order (resolve the source, read it, apply
the counting convention and filters, draw arrivals, enforce the context limit); the readers,
conventions and arrival processes it calls live in their own modules.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from bulletsim.files import require_file
from bulletsim.workload.arrivals import gamma_arrivals, poisson_arrivals, trace_arrivals
from bulletsim.workload.catalog import TraceInfo, trace_info
from bulletsim.workload.config import WorkloadConfig
from bulletsim.workload.conventions import Convention, resolve_convention
from bulletsim.workload.embedded import load_embedded
from bulletsim.workload.length_rules import KeptLengths, apply_length_rules
from bulletsim.workload.readers import file_format, read_trace_file
from bulletsim.workload.resolve import find_trace_file, search_dirs
from bulletsim.workload.synthetic import length_bounds, random_lengths
from bulletsim.workload.workload import Workload, make_requests

# Give up on the embedded model when the length rules reject nearly every sample.
_MAX_SAMPLES_PER_REQUEST = 100


def load_workload(
    cfg: WorkloadConfig,
    rng: np.random.Generator,
    context_tokens: int | None = None,
    model: str = "llama-3.1-8b",
) -> Workload:
    """Build the workload `cfg` describes; all randomness comes from `rng`.

    The real file is found as `resolve.py` describes; without one, the embedded model of
    the trace generates statistically equivalent requests (and a note says so).
    Order of operations: load, drop empty rows, ShareGPT filter, max_total_tokens, then
    arrivals. Trace arrivals keep the file's order (first `num_requests`, repeated back to
    back if more are asked); synthetic arrivals take a shuffled subset of the rows, or sample
    with replacement when more requests are asked than the file holds. With neither
    `num_requests` nor `duration_s`, every kept row is used once.

    `context_tokens` is the model's context (`ModelSpec.max_context_tokens`): a request whose
    prompt + output exceeds it, or `max_total_tokens` if smaller, is handled as
    `cfg.over_length` says and counted in `Workload.num_over_length` / `num_clipped`; it is
    never served as if it fitted.

    The workload convention (`conventions.py`, resolved for `model` when `auto`) picks the
    count columns, pairing, BOS and chat-template tokens of text datasets, the ShareGPT
    filter, and arXiv's table.
    """
    cfg.validate()
    conv, why = resolve_convention(cfg.convention, model)
    info = trace_info(cfg.trace)
    if conv.long_arxiv and info.name == "arxiv":
        info = trace_info("arxiv-long")
    path = find_trace_file(info, cfg.trace_file, cfg.traces_dir)
    tokenizer_file = cfg.tokenizer.partition(":")[2]
    if tokenizer_file:
        # checked even when no text is counted (embedded model), so a typo never passes
        require_file(tokenizer_file, f"tokenizer file ({cfg.tokenizer})")
    limit = cfg.max_total_tokens
    label = f"max_total_tokens {limit}"
    if context_tokens is not None and (limit is None or context_tokens < limit):
        limit, label = context_tokens, f"the model's context of {context_tokens} tokens"
    stated = []
    if cfg.max_total_tokens is None and cfg.over_length != "drop":
        stated.append(f"over_length={cfg.over_length} applies to {label}: no max_total_tokens")
    cfg = dataclasses.replace(cfg, max_total_tokens=limit)
    if info.format == "synthetic":
        fmt = info.format
        wl = _from_synthetic(cfg, info, conv, rng, label)
    elif path is None:
        fmt = info.format
        wl = _from_embedded(cfg, info, conv, rng, label)
    else:
        fmt = file_format(info, path, cfg.trace_format)
        wl = _from_file(cfg, info, fmt, conv, path, rng, label)
    if cfg.max_concurrency is not None:
        stated.append(
            f"client: at most {cfg.max_concurrency} requests in flight (closed loop"
            + (f", think {cfg.think_s:g} s" if cfg.think_s else "")
            + "); a request is sent at max(its arrival, a slot freeing)"
        )
    note = f"convention {conv.summary()} [{why}]"
    if fmt not in TEXT_FORMATS:
        note += f"; {fmt} traces hold token counts: tokenizer, BOS and template not applied"
    return dataclasses.replace(
        wl, length_limit_tokens=limit, notes=(*stated, *wl.notes, note),
        convention=conv.summary(),
    )  # fmt: skip


# Datasets of texts whose counts this tool makes (or reads from real count tables); the
# other formats carry counts made elsewhere and are used as given.
TEXT_FORMATS = ("sharegpt", "alpaca")


def _convention_lengths(
    prompt: np.ndarray, output: np.ndarray, fmt: str, conv: Convention
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Content counts -> counts as the convention's benchmark sees them; and BOS counted?"""
    if fmt not in TEXT_FORMATS:
        return prompt, output, False
    bos = int(conv.bos)
    return prompt + conv.chat_template_tokens + bos, output + bos, conv.bos


def _filter_name(cfg: WorkloadConfig, fmt: str, conv: Convention) -> str | None:
    if fmt != "sharegpt":
        return None
    return cfg.sharegpt_filter or conv.sharegpt_filter


def _rules_notes(
    cfg: WorkloadConfig, fmt: str, conv: Convention, kept: KeptLengths, total: int, label: str
) -> list:
    notes = []
    if fmt == "sharegpt":
        notes.append(
            f"{_filter_name(cfg, fmt, conv)} ShareGPT filter dropped {kept.num_filtered} of {total}"
        )
    if kept.num_over_length:
        notes.append(
            f"dropped {kept.num_over_length} requests whose prompt + output exceed {label}"
        )
    if kept.num_clipped:
        notes.append(f"clipped {kept.num_clipped} prompts to fit {label}")
    return notes


def _synthetic_arrivals(
    cfg: WorkloadConfig, rate: float, default_num: int, rng: np.random.Generator
) -> np.ndarray:
    num, duration_s = cfg.num_requests, cfg.duration_s
    if num is None and duration_s is None:
        num = default_num
    cv = 1.0 if cfg.cv is None else cfg.cv
    if rate == math.inf or (cfg.resolved_arrival == "gamma" and cv == math.inf):
        assert num is not None  # WorkloadConfig.validate: duration alone is refused
        return np.zeros(num)  # the limit of both processes for a finite count
    if cfg.resolved_arrival == "poisson":
        return poisson_arrivals(rng, rate, num, duration_s)
    return gamma_arrivals(rng, rate, cv, num, duration_s)


def _from_synthetic(
    cfg: WorkloadConfig, info: TraceInfo, conv: Convention, rng: np.random.Generator, label: str
) -> Workload:
    """`random` / `fixed` lengths (synthetic.py) at the configured arrivals; a closed loop
    (max_concurrency) without a rate sends everything at once, as the clients do."""
    if cfg.rate is None:  # validate(): max_concurrency is set
        cfg = dataclasses.replace(cfg, rate=math.inf)
    rate, note = _rate(cfg, info, None)
    times = _synthetic_arrivals(cfg, rate, 0, rng)
    assert cfg.input_len is not None and cfg.output_len is not None
    if info.name == "fixed":
        prompt = np.full(len(times), cfg.input_len, np.int64)
        output = np.full(len(times), cfg.output_len, np.int64)
        what = f"fixed lengths: {cfg.input_len} prompt, {cfg.output_len} output tokens"
    else:
        prompt, output = random_lengths(
            rng, len(times), cfg.input_len, cfg.output_len, cfg.range_ratio, cfg.range_convention
        )
        lo, hi = length_bounds(cfg.input_len, cfg.range_ratio, cfg.range_convention)
        olo, ohi = length_bounds(cfg.output_len, cfg.range_ratio, cfg.range_convention)
        what = (
            f"random lengths ({cfg.range_convention} rule, range_ratio {cfg.range_ratio:g}): "
            f"prompt {lo}..{hi}, output {olo}..{ohi} tokens"
        )
    kept = apply_length_rules(prompt, output, None, cfg.max_total_tokens, cfg.over_length)
    if not len(kept.index):
        raise ValueError(f"trace {info.name}: every request is over {label} ({what})")
    notes = [what, note, *_rules_notes(cfg, info.format, conv, kept, len(prompt), label)]
    requests = make_requests(times[kept.index], kept.prompt_tokens, kept.output_tokens)
    return Workload(info.name, f"synthetic ({info.name})", False, requests,
                    kept.num_over_length, kept.num_clipped, tuple(notes),
                    num_over_length=kept.num_over_length)  # fmt: skip


def _rate(cfg: WorkloadConfig, info: TraceInfo, trace_rate: float | None) -> tuple[float, str]:
    process = f"{cfg.resolved_arrival} arrivals"
    if cfg.resolved_arrival == "gamma":
        process += f" (cv {1.0 if cfg.cv is None else cfg.cv})"
    if cfg.rate == math.inf or (cfg.resolved_arrival == "gamma" and cfg.cv == math.inf):
        return math.inf, f"{process}: every request arrives at t = 0 (infinite rate)"
    if cfg.rate is not None:
        return cfg.rate, f"{process} at {cfg.rate} req/s"
    if trace_rate is not None:
        return trace_rate, f"{process} at the trace's mean rate, {trace_rate:.3f} req/s"
    if info.default_rate is None:
        raise ValueError(
            f"rate: {info.name} has no timestamps and no default rate; give one (--rate R)"
        )
    return info.default_rate, f"{process} at {info.name}'s default {info.default_rate} req/s"


def _from_file(
    cfg: WorkloadConfig,
    info: TraceInfo,
    fmt: str,
    conv: Convention,
    path: Path,
    rng: np.random.Generator,
    label: str,
) -> Workload:
    table = read_trace_file(
        info, path, cfg.tokenizer, trace_format=cfg.trace_format,
        timestamp_unit=cfg.timestamp_unit, trace_model=cfg.trace_model, output_len=cfg.output_len,
        family=conv.tokenizer, pairing=conv.pairing,
    )  # fmt: skip
    if cfg.resolved_arrival == "trace" and table.arrival_s is None:
        raise ValueError(
            f"{path} has no timestamps; give arrival=poisson or gamma with a rate "
            "(--arrival poisson --rate R)"
        )
    prompt, output, bos = _convention_lengths(table.prompt_tokens, table.output_tokens, fmt, conv)
    kept = apply_length_rules(
        prompt, output, _filter_name(cfg, fmt, conv), cfg.max_total_tokens, cfg.over_length, bos
    )
    num_kept = len(kept.index)
    if num_kept == 0:
        raise ValueError(f"{path}: no request is left after the filter and {label}")
    notes = [*table.notes, *_rules_notes(cfg, fmt, conv, kept, len(table), label)]
    if cfg.resolved_arrival == "trace":
        assert table.arrival_s is not None
        times = trace_arrivals(
            table.arrival_s[kept.index], cfg.time_scale, cfg.num_requests, cfg.duration_s
        )
        rows = np.arange(len(times)) % num_kept
        if cfg.time_scale != 1.0:
            notes.append(f"trace inter-arrival gaps scaled by {cfg.time_scale}")
        if len(times) > num_kept:
            notes.append(f"the trace holds {num_kept} requests; repeated it back to back")
    else:
        trace_rate = None
        if table.arrival_s is not None and len(table) > 1:
            span_s = float(table.arrival_s[-1] - table.arrival_s[0])
            trace_rate = len(table) / span_s if span_s > 0 else None
        rate, note = _rate(cfg, info, trace_rate)
        notes.append(note)
        times = _synthetic_arrivals(cfg, rate, num_kept, rng)
        if len(times) <= num_kept:
            rows = rng.permutation(num_kept)[: len(times)]
        else:
            rows = rng.integers(0, num_kept, len(times))
            notes.append(
                f"{len(times)} requests asked, the file holds {num_kept}: "
                "sampled lengths with replacement"
            )
    requests = make_requests(times, kept.prompt_tokens[rows], kept.output_tokens[rows])
    num_dropped = table.num_empty + kept.num_filtered + kept.num_over_length
    return Workload(
        info.name, str(path), False, requests, num_dropped, kept.num_clipped, tuple(notes),
        num_over_length=kept.num_over_length,
    )  # fmt: skip


def _from_embedded(
    cfg: WorkloadConfig, info: TraceInfo, conv: Convention, rng: np.random.Generator, label: str
) -> Workload:
    assert info.embedded is not None  # only "csv" lacks a model, and it needs trace_file
    model = load_embedded(info.embedded)
    fmt = info.format
    lengths = model.lengths
    family_notes = []
    if fmt in TEXT_FORMATS:
        lengths = model.lengths_by_family.get(conv.tokenizer, model.lengths)
        if conv.tokenizer not in model.lengths_by_family:
            family_notes.append(f"the embedded model holds no {conv.tokenizer} counts; "
                                "its Llama-2 counts are used")  # fmt: skip
        if conv.pairing != "first-two":
            family_notes.append(f"{conv.pairing} pairing needs the real file; the embedded "
                                "model is first-two")  # fmt: skip
    where = ", ".join(str(d) for d in search_dirs(cfg.traces_dir))
    wanted = " or ".join(f.name for f in info.files)
    notes = [
        f"real file not found ({wanted} in {where}); using the {model.description}; "
        f"`bulletsim traces download {info.name}` fetches the real file"
    ]
    if cfg.tokenizer != "approx" and fmt in TEXT_FORMATS:
        notes.append(f"tokenizer {cfg.tokenizer} ignored: the embedded model holds real counts")
    notes += family_notes
    if cfg.resolved_arrival == "trace":
        assert model.arrivals is not None
        times = model.arrivals.sample(rng, cfg.num_requests, cfg.duration_s, cfg.time_scale)
        notes.append(
            f"arrivals replay the real trace's count in every {model.arrivals.bin_s:g} s "
            f"(gap CV {model.arrivals.gap_cv:.2f}), placed at random inside it"
        )
    else:
        trace_rate = None if model.arrivals is None else model.arrivals.mean_rate
        rate, note = _rate(cfg, info, trace_rate)
        notes.append(note)
        times = _synthetic_arrivals(cfg, rate, model.source_rows - model.num_dropped, rng)
    num = len(times)
    segment = np.zeros(num, np.int64)
    models = [lengths]
    if cfg.resolved_arrival == "trace" and model.lengths_by_segment and fmt not in TEXT_FORMATS:
        # lengths follow the trace's own stretch of time (its drift over the hour)
        segment = model.segment_of(times, cfg.time_scale)
        models = list(model.lengths_by_segment)
        notes.append(f"lengths follow the real trace's {model.segment_s / 60:g}-minute stretches")
    prompt_all = np.zeros(num, np.int64)
    output_all = np.zeros(num, np.int64)
    num_sampled = num_filtered = num_over = num_clipped = 0
    for k, lengths_k in enumerate(models):
        where_k = np.flatnonzero(segment == k)
        if not len(where_k):
            continue
        got = _sample_kept(cfg, info, fmt, conv, lengths_k, len(where_k), rng, label)
        prompt_all[where_k], output_all[where_k] = got[0], got[1]
        num_sampled += got[2]
        num_filtered += got[3]
        num_over += got[4]
        num_clipped += got[5]
    totals = KeptLengths(np.empty(0), np.empty(0), np.empty(0), num_filtered, num_over, num_clipped)
    notes += _rules_notes(cfg, fmt, conv, totals, num_sampled, label)
    requests = make_requests(times, prompt_all, output_all)
    return Workload(
        info.name,
        model.description,
        True,
        requests,
        num_filtered + num_over,
        num_clipped,
        tuple(notes),
        num_over_length=num_over,
    )


def _sample_kept(
    cfg: WorkloadConfig,
    info: TraceInfo,
    fmt: str,
    conv: Convention,
    lengths,
    num: int,
    rng: np.random.Generator,
    label: str,
) -> tuple[np.ndarray, np.ndarray, int, int, int, int]:
    """`num` (prompt, output) pairs that pass the length rules, and the counts of what was
    sampled, filtered, over length and clipped on the way."""
    prompts, outputs = [], []
    num_kept = num_sampled = num_filtered = num_over = num_clipped = 0
    while num_kept < num:
        if num_sampled > _MAX_SAMPLES_PER_REQUEST * num:
            raise ValueError(
                f"{label} and sharegpt_filter "
                f"{_filter_name(cfg, fmt, conv)} reject nearly every request of {info.name}"
            )
        # Sample exactly what is missing, so every sample counts as kept or dropped.
        prompt, output = lengths.sample(rng, num - num_kept)
        prompt, output, bos = _convention_lengths(prompt, output, fmt, conv)
        kept = apply_length_rules(
            prompt, output, _filter_name(cfg, fmt, conv), cfg.max_total_tokens,
            cfg.over_length, bos,
        )  # fmt: skip
        prompts.append(kept.prompt_tokens)
        outputs.append(kept.output_tokens)
        num_sampled += len(prompt)
        num_kept += len(kept.index)
        num_filtered += kept.num_filtered
        num_over += kept.num_over_length
        num_clipped += kept.num_clipped
    return (np.concatenate(prompts), np.concatenate(outputs), num_sampled, num_filtered,
            num_over, num_clipped)  # fmt: skip
