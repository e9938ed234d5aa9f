"""What workload to build: which trace, how requests arrive, how many, which length rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from bulletsim.float_params import ALLOWS_INF
from bulletsim.workload.catalog import TRACE_NAMES, trace_info
from bulletsim.workload.conventions import CONVENTION_NAMES
from bulletsim.workload.formats import FORMAT_NAMES, TRACE_FORMATS
from bulletsim.workload.synthetic import length_bounds
from bulletsim.workload.timestamps import TIME_UNITS

ARRIVALS = ("trace", "poisson", "gamma")
OVER_LENGTH = ("drop", "clip", "error")
SHAREGPT_FILTERS = ("vllm", "sglang", "none")
TOKENIZER_KINDS = ("approx", "sentencepiece:<path>", "tiktoken:<path>", "hf:<tokenizer.json>")


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """A workload recipe. Building one touches no disk; `validate()` checks it.

    `arrival=None` means the trace's own timestamps where it has them (and no `rate` was
    given), else Poisson. `rate` (req/s) defaults to the trace's mean rate for timestamped
    traces and to the catalog's documented default rate for length-only traces.
    `time_scale` multiplies the gaps of trace timestamps (2.0 = half the load).
    `convention` names how prompts and outputs are counted and filtered (`conventions.py`);
    an explicit `sharegpt_filter` overrides the convention's filter.
    `trace_format` reads `trace_file` as that format (`auto` detects it; the `csv` trace
    detects by default); `timestamp_unit` (s, ms, us, ns) overrides the unit a format declares;
    `trace_model` keeps one model's rows of a BurstGPT trace; `output_len` is the output length
    of custom-JSONL lines that have none.
    `input_len`, `output_len`, `range_ratio`, `range_convention` (vllm, sglang) shape the
    `random` trace's lengths (`fixed`: exactly input_len / output_len; see synthetic.py).
    `max_concurrency` N: a benchmark client that keeps at most N requests in flight (vLLM's
    and SGLang's `--max-concurrency`); a request is sent at max(its arrival, a slot freeing
    `think_s` after a finish), so with `rate=inf` it is the closed loop of N users.
    `rate=inf` puts every arrival at t = 0 (what vLLM's and SGLang's benchmark clients send
    with `--request-rate inf`); so does gamma with `cv=inf` (its limit for a finite count).
    `cv` (default 1.0) applies only to gamma arrivals; giving it with another process is an
    error. Requests whose prompt + output exceed `max_total_tokens` or the model's context
    (`ModelSpec.max_context_tokens`, whichever is smaller) are handled as `over_length` says:
    drop (what a server does: reject the request; counted), clip (shorten the prompt;
    counted) or error.
    """

    trace: str = "splitwise"
    trace_file: str | None = None
    traces_dir: str | None = None
    arrival: str | None = None
    rate: float | None = field(default=None, metadata={ALLOWS_INF: True})
    cv: float | None = field(default=None, metadata={ALLOWS_INF: True})
    time_scale: float = 1.0
    num_requests: int | None = None
    duration_s: float | None = None
    max_total_tokens: int | None = None
    over_length: str = "drop"
    tokenizer: str = "approx"
    sharegpt_filter: str | None = None  # None: the convention's
    convention: str = "auto"  # see conventions.py; auto follows the simulated model
    max_concurrency: int | None = None
    think_s: float = 0.0
    trace_format: str | None = None
    timestamp_unit: str | None = None
    trace_model: str | None = None
    output_len: int | None = None
    input_len: int | None = None
    range_ratio: float = 0.0
    range_convention: str = "vllm"

    @property
    def has_timestamps(self) -> bool:
        """Whether the trace's file has timestamps (a detected format is assumed to)."""
        fmt = TRACE_FORMATS.get(self.trace_format or "")
        return fmt.has_timestamps if fmt is not None else trace_info(self.trace).has_timestamps

    @property
    def resolved_arrival(self) -> str:
        """The arrival process after applying the `arrival=None` default."""
        if self.arrival is not None:
            return self.arrival
        has_timestamps = self.has_timestamps
        return "trace" if has_timestamps and self.rate is None else "poisson"

    def validate(self) -> None:
        """Raise a one-line ValueError naming the first bad field and its valid values."""
        if self.trace not in TRACE_NAMES:
            raise ValueError(f"trace: unknown {self.trace!r}; valid: {', '.join(TRACE_NAMES)}")
        if self.trace == "csv" and self.trace_file is None:
            raise ValueError("trace_file: trace 'csv' needs trace_file=<path to a CSV>")
        if self.arrival is not None and self.arrival not in ARRIVALS:
            raise ValueError(f"arrival: unknown {self.arrival!r}; valid: {', '.join(ARRIVALS)}")
        if self.trace_format is not None and self.trace_format not in FORMAT_NAMES:
            raise ValueError(
                f"trace_format: unknown {self.trace_format!r}; valid: {', '.join(FORMAT_NAMES)}"
            )
        if self.trace_format is not None and self.trace_file is None:
            raise ValueError("trace_format: applies to a file given with trace_file")
        if self.timestamp_unit is not None and self.timestamp_unit not in TIME_UNITS:
            raise ValueError(
                f"timestamp_unit: unknown {self.timestamp_unit!r}; valid: {', '.join(TIME_UNITS)}"
            )
        if self.output_len is not None and self.output_len < 1:
            raise ValueError(f"output_len: must be >= 1, got {self.output_len}")
        if self.input_len is not None and self.input_len < 1:
            raise ValueError(f"input_len: must be >= 1, got {self.input_len}")
        if trace_info(self.trace).format == "synthetic":
            if self.input_len is None or self.output_len is None:
                raise ValueError(
                    f"trace {self.trace!r} needs input_len and output_len "
                    "(--input-len N --output-len M)"
                )
            if self.num_requests is None and self.duration_s is None:
                raise ValueError(f"trace {self.trace!r} needs num_requests (-n) or duration_s")
            if self.rate is None and self.max_concurrency is None:
                raise ValueError(
                    f"trace {self.trace!r} has no arrival times: give rate (--rate R, inf for "
                    "all at once) or max_concurrency (a closed loop)"
                )
            length_bounds(self.input_len, self.range_ratio, self.range_convention)
        elif self.range_ratio != 0.0 or self.input_len is not None:
            raise ValueError("input_len and range_ratio: apply to the random and fixed traces")
        if self.arrival == "trace" and not self.has_timestamps:
            timed = ", ".join(n for n in TRACE_NAMES if trace_info(n).has_timestamps)
            raise ValueError(
                f"arrival: trace {self.trace!r} has no timestamps; use poisson or gamma "
                f"(traces with timestamps: {timed})"
            )
        if self.rate is not None and not self.rate > 0:
            raise ValueError(f"rate: must be > 0 req/s, got {self.rate}")
        if self.rate is not None and self.resolved_arrival == "trace":
            raise ValueError("rate: applies to poisson/gamma; use time_scale to rescale a trace")
        if self.cv is not None and not self.cv > 0:
            raise ValueError(f"cv: must be > 0, got {self.cv}")
        if self.cv is not None and self.resolved_arrival != "gamma":
            raise ValueError(
                f"cv: applies only to gamma arrivals, not {self.resolved_arrival}; "
                "add arrival=gamma (--arrival gamma) or drop cv"
            )
        if self.rate == float("inf") or self.cv == float("inf"):
            if self.num_requests is None and self.duration_s is not None:
                raise ValueError(
                    "duration_s: every arrival is at t = 0 with an infinite rate or cv, so a "
                    "duration cannot bound the count; give num_requests (-n)"
                )
        if not self.time_scale > 0:
            raise ValueError(f"time_scale: must be > 0, got {self.time_scale}")
        if self.time_scale != 1.0 and self.resolved_arrival != "trace":
            raise ValueError("time_scale: applies only to arrival='trace'; use rate instead")
        if self.num_requests is not None and self.num_requests < 1:
            raise ValueError(f"num_requests: must be >= 1, got {self.num_requests}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"duration_s: must be > 0, got {self.duration_s}")
        if self.max_total_tokens is not None and self.max_total_tokens < 2:
            raise ValueError(f"max_total_tokens: must be >= 2, got {self.max_total_tokens}")
        if self.over_length not in OVER_LENGTH:
            raise ValueError(
                f"over_length: unknown {self.over_length!r}; valid: {', '.join(OVER_LENGTH)}"
            )
        if self.convention not in CONVENTION_NAMES:
            raise ValueError(
                f"convention: unknown {self.convention!r}; valid: {', '.join(CONVENTION_NAMES)}"
            )
        if self.sharegpt_filter is not None and self.sharegpt_filter not in SHAREGPT_FILTERS:
            raise ValueError(
                f"sharegpt_filter: unknown {self.sharegpt_filter!r}; "
                f"valid: {', '.join(SHAREGPT_FILTERS)}"
            )
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"max_concurrency: must be >= 1, got {self.max_concurrency}")
        if not self.think_s >= 0:
            raise ValueError(f"think_s: must be >= 0 s, got {self.think_s}")
        if self.think_s and self.max_concurrency is None:
            raise ValueError("think_s: applies only with max_concurrency (a closed-loop client)")
        kind, _, path = self.tokenizer.partition(":")
        if not (
            self.tokenizer == "approx" or (kind in ("sentencepiece", "tiktoken", "hf") and path)
        ):
            raise ValueError(
                f"tokenizer: unknown {self.tokenizer!r}; valid: {', '.join(TOKENIZER_KINDS)}"
            )
