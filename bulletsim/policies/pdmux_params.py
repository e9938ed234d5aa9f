"""PD-Multiplexing's parameters (SGLang's `PDMuxConfig` and server args; `pdmux.py` runs them).

`PDMuxEngineParams` is what both variants share; `PDMuxParams` adds mainline's split table,
`PDMuxSLOParams` the paper/blog variant's SLO target. Each checks its own values when built and
the splits a GPU can make in `check_gpu` (`config.RunConfig.validate` calls it before a run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from bulletsim.float_params import FRACTION, check_float_fields
from bulletsim.policies.pdmux_table import (
    MANUAL_FORMAT,
    MIN_DECODE_SMS,
    check_divisions,
    parse_manual_divisions,
    slo_candidates,
    split_candidates,
    values_text,
)


@dataclass(frozen=True, slots=True)
class PDMuxEngineParams:
    """What both PDMux variants share: SGLang's engine (defaults SGLang's, source in brackets).

    split_forward_token_budget: a tick launches max(1, budget // batch tokens) prefill layers
      [PDMuxConfig, 65536].
    max_prefill_tokens: prefill batch cap, first request always admitted [server_args, 16384].
    max_running_requests: 0 = SGLang's rule clamp(KV tokens / context length * 512, 2048,
      4096) [model_runner max_num_reqs].
    min_sms, step_sms: green-context split granularity (smallest group, step between groups);
      0 = the GPU's (Hopper 8/8, Ampere 4/2, as SGLang's get_arch_constraints; Hopper's when
      the latency model has no GPU). Given, they must be groups the GPU can make: min_sms at
      least the GPU's minimum, both multiples of its step; both sides of a split get >= min_sms.
    handoff_ms: cost of merging a finished batch into decode; SGLang merges batch metadata on
      the CPU and shares the KV pool, so 0.
    """

    section: ClassVar[str] = "pdmux"
    split_forward_token_budget: int = 65536
    max_prefill_tokens: int = 16384
    max_running_requests: int = 0
    min_sms: int = 0
    step_sms: int = 0
    handoff_ms: float = 0.0

    def granularity(self, gpu: Any) -> tuple[int, int, str]:
        """(smallest group, step, GPU name) of the green-context splits on `gpu` (a GPUSpec,
        or None: Hopper's 8/8); ValueError when min_sms / step_sms are not groups it makes."""
        name = getattr(gpu, "name", "GPU (Hopper granularity assumed)")
        gpu_min, gpu_step = _gpu_groups(gpu)
        # min_sms is a group's size (>= the GPU's smallest); step_sms any multiple of its step
        for key, value, least in (
            ("min_sms", self.min_sms, gpu_min),
            ("step_sms", self.step_sms, gpu_step),
        ):
            if value and (value % gpu_step or value < least):
                raise ValueError(
                    f"{self.section}.{key} = {value}: green contexts on the {name} are groups of "
                    f"{gpu_min} + k * {gpu_step} SMs; give a multiple of {gpu_step} >= "
                    f"{least}, or 0 for the GPU's"
                )
        return self.min_sms or gpu_min, self.step_sms or gpu_step, name

    def resolved(self, gpu: Any) -> dict:
        """The parameters as they run on `gpu`: defaults (0) filled with the GPU's
        granularity, manual rows parsed (`;`, `/` and `,` spell one table), so two spellings of
        one policy compare equal (a sweep's duplicate check)."""
        from dataclasses import asdict

        out = asdict(self)
        out["min_sms"], out["step_sms"], _ = self.granularity(gpu)
        if out.get("manual_divisions"):
            out["manual_divisions"] = tuple(parse_manual_divisions(out["manual_divisions"]))
        return out

    def candidates(self, total_sms: int, min_sms: int, step_sms: int) -> list[int]:
        """The prefill sides this variant's splits may take (pdmux_table)."""
        return split_candidates(total_sms, min_sms, step_sms)

    def splits_rule(self) -> str:
        """What `candidates` asks of a split, for messages."""
        return f"prefill >= half and decode >= {MIN_DECODE_SMS}"

    def check_gpu(self, gpu: Any, total_sms: int, given: frozenset[str] = frozenset()) -> None:
        """Raise ValueError (one line, the valid values named) when these parameters ask for
        splits `gpu` (`total_sms` SMs) cannot make: min_sms / step_sms that are not its
        green-context groups or leave no split. `given`: the keys the user set (a config's
        section; `config.RunConfig.validate` passes them) for checks that spare a default."""
        min_sms, step, name = self.granularity(gpu)
        if self.candidates(total_sms, min_sms, step):
            return
        gpu_min, gpu_step = _gpu_groups(gpu)
        groups = list(range(gpu_min, total_sms + 1, gpu_step))
        if self.step_sms and not self.min_sms:
            key, value = "step_sms", step
            valid = [s for s in groups if self.candidates(total_sms, min_sms, s)]
        else:
            key, value = "min_sms", min_sms
            valid = [m for m in groups if self.candidates(total_sms, m, step)]
        raise ValueError(
            f"{self.section}.{key} = {value}: no split of the {name}'s {total_sms} SMs in groups "
            f"of {min_sms} + k * {step} SMs has {self.splits_rule()}; valid {key}: 0 (the "
            f"GPU's) or {values_text(valid)}"
        )

    def _check(self) -> None:
        section = self.section
        check_float_fields(self, section)
        for name in ("split_forward_token_budget", "max_prefill_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{section}.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_running_requests", "min_sms", "step_sms"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"{section}.{name} must be >= 0 (0 = the default), got {getattr(self, name)}"
                )


@dataclass(frozen=True, slots=True)
class PDMuxParams(PDMuxEngineParams):
    """Mainline SGLang PD-Multiplexing (`--enable-pdmux`); defaults are SGLang's, sources in
    brackets.

    Beside the engine's parameters (PDMuxEngineParams):

    sm_group_num: rows of the split table incl. the two whole-GPU rows, at most 2 + the GPU's
      prefill-majority splits (8 on 132 SMs at Hopper's 8/8; a larger value given is refused,
      where SGLang builds fewer rows without a word) [PDMuxConfig, 8].
    manual_divisions: rows replacing the computed middle rows, "P:D:THRESHOLD" separated by
      ',', ';' or '/' (in a sweep's --policy spec, where ',' separates parameters, use ';' or
      '/'); a row is chosen when the decode batch is >= its threshold (the last such row);
      each row must be a green-context split of the GPU [PDMuxConfig].
    decode_bs_divisor: row = clamp(bs * (G - 2) // divisor, 1, G - 2) [PDMuxConfig, 36].
    """

    sm_group_num: int = 8
    manual_divisions: str = field(default="", metadata={"format": MANUAL_FORMAT})
    decode_bs_divisor: int = 36

    def __post_init__(self) -> None:
        self._check()
        if self.sm_group_num < 3:
            raise ValueError(f"pdmux.sm_group_num must be >= 3, got {self.sm_group_num}")
        if self.decode_bs_divisor < 1:
            raise ValueError(f"pdmux.decode_bs_divisor must be >= 1, got {self.decode_bs_divisor}")
        if self.manual_divisions:
            n = len(parse_manual_divisions(self.manual_divisions))
            if n != self.sm_group_num - 2:
                raise ValueError(
                    f"pdmux.manual_divisions must have sm_group_num - 2 = "
                    f"{self.sm_group_num - 2} rows, got {n}"
                )

    def check_gpu(self, gpu: Any, total_sms: int, given: frozenset[str] = frozenset()) -> None:
        """As the engine's, plus manual rows the GPU cannot make, and a given sm_group_num
        above the GPU's splits + 2 (SGLang would silently build fewer rows; the default 8
        still takes every split on a GPU with fewer, e.g. the H20's 3, as SGLang does)."""
        min_sms, step, name = self.granularity(gpu)
        if self.manual_divisions:
            check_divisions(parse_manual_divisions(self.manual_divisions), total_sms, min_sms,
                            step, name)  # fmt: skip
            return
        PDMuxEngineParams.check_gpu(self, gpu, total_sms, given)
        most = 2 + len(split_candidates(total_sms, min_sms, step))
        if "sm_group_num" in given and self.sm_group_num > most:
            raise ValueError(
                f"pdmux.sm_group_num = {self.sm_group_num}: the {name}'s {total_sms} SMs make "
                f"{most - 2} prefill-majority splits with decode >= {MIN_DECODE_SMS} SMs in "
                f"groups of {min_sms} + k * {step}, so the table has at most {most} rows; "
                f"valid: 3..{most}"
            )


@dataclass(frozen=True, slots=True)
class PDMuxSLOParams(PDMuxEngineParams):
    """The paper/blog variant (not mainline): decode gets the fewest SMs of any split whose
    predicted decode step, beside the prefill, is within tpot_target_frac of the TPOT SLO.
    Its candidates are every green-context split with both sides >= min_sms and decode >= 16
    SMs, so mainline's table parameters (sm_group_num, manual_divisions, decode_bs_divisor)
    do not apply to it.

    tpot_target_frac: the decode step's target, as a share of the TPOT SLO (the paper's
      "just enough SMs for the SLO"; 0.9 as Bullet's, leaving room for the wait to join).
    """

    section: ClassVar[str] = "pdmux-slo"
    tpot_target_frac: float = field(default=0.9, metadata=FRACTION)

    def candidates(self, total_sms: int, min_sms: int, step_sms: int) -> list[int]:
        return slo_candidates(total_sms, min_sms, step_sms)

    def splits_rule(self) -> str:
        return f"both sides >= min_sms and decode >= {MIN_DECODE_SMS}"

    def __post_init__(self) -> None:
        self._check()
        if not 0.0 < self.tpot_target_frac <= 1.0:
            raise ValueError(
                f"pdmux-slo.tpot_target_frac must be in (0, 1], got {self.tpot_target_frac}"
            )


def _gpu_groups(gpu: Any) -> tuple[int, int]:
    """(smallest group, step) of green contexts on `gpu`; None: Hopper's (8, 8)."""
    return getattr(gpu, "green_ctx_min_sms", 8), getattr(gpu, "green_ctx_granularity", 8)
