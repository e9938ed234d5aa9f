"""Which kernel runs an op on a partition: candidates, default rules, measured choices.

CPU-only (no torch): the GPU modules (`gemm.py`, `attention.py`, `llama.py`) time candidates
and reference-check them, then ask `pick` which one to use; the answers go into a
`ChoiceTable`, which the calibrator stores in the profile's metadata and the live engine
loads so that it runs the kernels the profile measured.

Rules used when nothing was measured for a key:
- GEMMs: on a partition that is a whole number of the mechanism's units (a green-context
  *group*: 8k SMs on Hopper), cuBLASLt with its SM-count target set to the partition
  (`CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET` through torch's carveout); plain cuBLAS sizes its
  grid for the whole GPU and lost up to 41% per SM on a 120-SM group of an H200 (o, 2048
  tokens, calibrate/NOTES.md run 6). On the whole GPU and on split *remainders* (132 - 8k
  SMs), plain cuBLAS: with the SM target cuBLASLt ran 1.1-2.5x slower on remainders than
  interpolated from groups (run 6), most likely because its 2-CTA-cluster kernels cannot pair
  SMs across the remainder's fragmented GPCs.
- Decode attention: SGLang's rule (`sglang/srt/layers/attention/flashinfer_backend.py`,
  `should_use_tensor_core`): flashinfer's tensor-core decode when the KV dtype is fp8 or the
  GQA group (query heads per KV head) is at least 4, else its CUDA-core decode; the Triton
  split-K kernel without flashinfer.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from dataclasses import dataclass, field

GEMM_PATHS = ("cublas", "cublaslt-sm-target", "triton-persistent")
DECODE_BACKENDS = ("flashinfer-tc", "flashinfer-cc", "triton-splitk", "sdpa-gather")
PREFILL_BACKENDS = ("flashinfer-fa3", "flashinfer-fa2", "sdpa-cudnn", "sdpa-flash")
# Candidates within this fraction of the fastest count as ties; a tie goes to the rule's
# default, so a choice flips only on a difference larger than repeat-to-repeat noise
# (about 1-2% for kernels above 20 us in the H200 runs of calibrate/NOTES.md).
NOISE_FRACTION = 0.03
MAX_REL_ERR = 2e-2  # bf16 operands land at 1e-3..1e-2 against a float32 reference


def check_decode_backend(name: str) -> str:
    """`name` if it is "auto" or one of `DECODE_BACKENDS`; ValueError listing them otherwise."""
    if name != "auto" and name not in DECODE_BACKENDS:
        raise ValueError(
            f"unknown decode backend {name!r}; valid: auto, {', '.join(DECODE_BACKENDS)}"
        )
    return name


def default_gemm_path(num_sms: int, total_sms: int, rows: int, unit_sms: int = 1) -> str:
    """The GEMM path used when no measurement chose one (see the module docstring);
    `unit_sms` is the partition mechanism's step (a count not divisible by it is a
    remainder).

    cuBLASLt is reached through `addmm` with a bias, which torch routes to Lt only for more
    than one row; a single row stays on plain cuBLAS."""
    if num_sms < total_sms and num_sms % unit_sms == 0 and rows > 1:
        return "cublaslt-sm-target"
    return "cublas"


def sglang_decode_backend(
    num_qo_heads: int, num_kv_heads: int, kv_dtype: str, flashinfer: bool
) -> str:
    """SGLang's choice of decode attention kernel (module docstring)."""
    if not flashinfer:
        return "triton-splitk"
    group = num_qo_heads // num_kv_heads
    if kv_dtype.startswith("float8") or group >= 4:
        return "flashinfer-tc"
    return "flashinfer-cc"


def pick(
    times_ms: dict[str, float | None],
    rel_errs: dict[str, float | None],
    default: str,
    noise: float = NOISE_FRACTION,
    max_rel_err: float = MAX_REL_ERR,
) -> str:
    """The fastest correct candidate; the default when it is correct and within `noise`.

    A candidate is correct when its relative error against the float32 reference is finite
    and <= `max_rel_err`; a time of None means it failed to run. Raises ValueError when no
    candidate is correct (a runtime that cannot run an op must not be timed)."""
    ok = {
        name: t
        for name, t in times_ms.items()
        if t is not None
        and math.isfinite(t)
        and rel_errs.get(name) is not None
        and math.isfinite(rel_errs[name])
        and rel_errs[name] <= max_rel_err
    }
    if not ok:
        raise ValueError(f"no correct candidate among {sorted(times_ms)}: errors {rel_errs}")
    best = min(ok, key=lambda n: (ok[n], n))
    if default in ok and ok[default] <= ok[best] * (1 + noise):
        return default
    return best


def _sms_kind(num_sms: int, total_sms: int, unit_sms: int) -> str:
    if num_sms >= total_sms:
        return "full"
    return "group" if num_sms % unit_sms == 0 else "remainder"


def _key(op: str, size: tuple[int, ...], num_sms: int) -> str:
    return f"{op}|{'x'.join(str(s) for s in size)}|{num_sms}"


@dataclass(slots=True)
class Choice:
    """One measured decision: the kernel, every candidate's median ms and relative error."""

    kernel: str
    times_ms: dict[str, float | None]
    rel_errs: dict[str, float | None]
    default: str


@dataclass(slots=True)
class ChoiceTable:
    """Measured kernel choices keyed by (op, size, SMs); size is tokens for GEMMs and
    prefill attention, (batch, context) for decode attention.

    `lookup` answers for any size: the measured choice of the nearest size (log distance)
    at the same op and SM count, else None (the caller then uses the default rule)."""

    choices: dict[str, Choice] = field(default_factory=dict)
    _kind_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def record(self, op: str, size: tuple[int, ...], num_sms: int, choice: Choice) -> None:
        self.choices[_key(op, size, num_sms)] = choice
        self._kind_cache.clear()

    def get(self, op: str, size: tuple[int, ...], num_sms: int) -> Choice | None:
        return self.choices.get(_key(op, size, num_sms))

    def lookup(self, op: str, size: tuple[int, ...], num_sms: int) -> str | None:
        exact = self.get(op, size, num_sms)
        if exact is not None:
            return exact.kernel
        best = self._nearest(op, size, num_sms)
        return None if best is None else self.choices[best].kernel

    def _nearest(self, op: str, size: tuple[int, ...], num_sms: int) -> str | None:
        """The key of the measured size nearest to `size` (sum of |log| distances; ties to
        the smaller key) at `op` and `num_sms`. One-number sizes (GEMMs, prefill attention)
        search a sorted index (the nearest is a neighbour in log order): a scan of every key
        cost ~1.4 ms a call, paid by the live engine at each new batch size."""
        index = self._by_op_sms()
        entries = index.get((op, num_sms, len(size)))
        if not entries:
            return None
        logs = [math.log(max(b, 1)) for b in size]
        if len(size) == 1:
            keys, values = entries
            i = bisect.bisect_left(values, logs[0])
            near = [j for j in (i - 1, i) if 0 <= j < len(keys)]
            cands = [(abs(values[j] - logs[0]), keys[j]) for j in near]
        else:
            cands = [(sum(abs(a - b) for a, b in zip(v, logs, strict=True)), k)
                     for k, v in entries]  # fmt: skip
        return min(cands)[1]

    def _by_op_sms(self) -> dict:
        """{(op, SMs, size rank): index}, made once per table content: for one-number sizes
        (keys, log sizes) sorted by log size, else [(key, log sizes)]."""
        cache = self._cache()
        index = cache.get("by_op_sms")
        if index is None:
            groups: dict[tuple, list] = {}
            for key in self.choices:
                k_op, k_size, k_sms = key.split("|")
                logs = tuple(math.log(int(s)) for s in k_size.split("x"))
                groups.setdefault((k_op, int(k_sms), len(logs)), []).append((key, logs))
            index = {}
            for g, items in groups.items():
                if g[2] == 1:
                    items.sort(key=lambda kv: (kv[1][0], kv[0]))
                    index[g] = ([k for k, _ in items], [v[0] for _, v in items])
                else:
                    index[g] = items
            cache["by_op_sms"] = index
        return index

    def _cache(self) -> dict:
        """The indexes derived from `choices` (`_by_op_sms`, `_sms_by_kind`), emptied when
        `record` changed the table or keys were added to `choices` directly since they were
        made (a direct write that keeps the number of keys is not seen: use `record`)."""
        cache = self._kind_cache
        if cache.get("num_keys") != len(self.choices):
            cache.clear()
            cache["num_keys"] = len(self.choices)
        return cache

    def nearest_sms(self, op: str, num_sms: int, total_sms: int, unit_sms: int) -> int:
        """The SM count whose choices answer for a partition of `num_sms`: itself when `op`
        was measured there, else the nearest measured count of the same kind (the whole
        GPU; a group = a multiple of `unit_sms`; a split remainder = any other count), so a
        remainder never borrows a group's choice (their best kernels differ, module
        docstring); `num_sms` itself when nothing of its kind was measured."""
        kinds = self._sms_by_kind(op, total_sms, unit_sms)
        kind = _sms_kind(num_sms, total_sms, unit_sms)
        measured = kinds.get(kind, ())
        if not measured or num_sms in measured:
            return num_sms
        return min(measured, key=lambda n: (abs(n - num_sms), n))

    def _sms_by_kind(self, op: str, total_sms: int, unit_sms: int) -> dict[str, tuple[int, ...]]:
        cache = self._cache()
        key = (op, total_sms, unit_sms)
        if key not in cache:
            out: dict[str, set[int]] = {}
            for k in self.choices:
                k_op, _, k_sms = k.split("|")
                if k_op == op:
                    n = int(k_sms)
                    out.setdefault(_sms_kind(n, total_sms, unit_sms), set()).add(n)
            cache[key] = {kind: tuple(sorted(v)) for kind, v in out.items()}
        return cache[key]

    def summary(self) -> dict[str, dict[str, int]]:
        """{op: {kernel: how many (size, SMs) keys chose it}}, for metadata and reports."""
        out: dict[str, dict[str, int]] = {}
        for key, ch in sorted(self.choices.items()):
            per = out.setdefault(key.split("|")[0], {})
            per[ch.kernel] = per.get(ch.kernel, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {
            k: {
                "kernel": c.kernel,
                "default": c.default,
                "times_ms": c.times_ms,
                "rel_errs": c.rel_errs,
            }
            for k, c in sorted(self.choices.items())
        }

    @classmethod
    def from_dict(cls, d: dict) -> ChoiceTable:
        t = cls()
        for k, v in d.items():
            if len(k.split("|")) != 3:
                raise ValueError(f"bad kernel-choice key {k!r}; expected 'op|size|num_sms'")
            t.choices[k] = Choice(v["kernel"], v["times_ms"], v["rel_errs"], v["default"])
        return t

    @classmethod
    def from_kernel_names(cls, names: dict[str, str]) -> ChoiceTable:
        """The table of a profile's metadata (`meta.kernels.choices`: key -> kernel name;
        the candidates' times are in the calibration's kernel_choices.json, not here)."""
        t = cls()
        for k, kernel in names.items():
            if len(k.split("|")) != 3:
                raise ValueError(f"bad kernel-choice key {k!r}; expected 'op|size|num_sms'")
            t.choices[k] = Choice(kernel, {}, {}, "")
        return t

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def lt_failures(caught, shapes: dict[tuple[int, int], str]) -> set[str]:
    """Ops whose cuBLASLt GEMM failed, from warnings caught around launches. torch reports
    `gemm_and_bias error: CUBLAS_STATUS_... m M n N k K` (M = output features, K = input
    features of `x @ w^T`) and recovers with plain cuBLAS; `shapes` maps (M, K) to an op."""
    ops = set()
    for w in caught:
        text = str(w.message)
        if "gemm_and_bias error" not in text:
            continue
        mk = re.search(r"\bm (\d+) n \d+ k (\d+)", text)
        if mk:
            ops.add(shapes.get((int(mk.group(1)), int(mk.group(2))), "unknown"))
    return ops
