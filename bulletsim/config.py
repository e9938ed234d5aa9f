"""Run configuration: one frozen dataclass tree, loadable from TOML, overridable from the CLI.

Unknown keys and wrong types raise a one-line ValueError that lists what is valid. Building
a config touches no disk (loading a TOML file is the caller's explicit step).
File length: ~340 lines, the one dataclass tree with its validation and override parsing
(STYLE.md asks for one tree); each section is a few lines.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulletsim.core import SLO
from bulletsim.files import require_file
from bulletsim.float_params import ALLOWS_INF, FRACTION, RANGE, check_float
from bulletsim.policies.registry import POLICY_PARAMS, policy_names
from bulletsim.workload.config import WorkloadConfig

if TYPE_CHECKING:
    from bulletsim.models import ModelSpec

LATENCY_KINDS = ("auto", "roofline", "profile")

# Table-4 SLOs of the Bullet paper (Llama-3.1-8B): normalized TTFT (ms per prompt token) and
# TPOT (ms). Traces the paper does not use borrow the closest one, and say so.
TRACE_SLOS: dict[str, tuple[float, float, str]] = {
    "sharegpt": (3.0, 150.0, "Bullet paper Table 4 (ShareGPT)"),
    "sharegpt-sarathi": (3.0, 150.0, "Bullet paper Table 4 (ShareGPT)"),
    "splitwise-code": (1.5, 200.0, "Bullet paper Table 4 (Azure-Code)"),
    "arxiv": (1.5, 175.0, "Bullet paper Table 4 (arXiv-Sum)"),
    "arxiv-long": (1.5, 175.0, "Bullet paper Table 4 (arXiv-Sum)"),
}
DEFAULT_SLO = (3.0, 150.0, "not in the Bullet paper; ShareGPT's Table-4 SLO used")


@dataclass(frozen=True, slots=True)
class SLOConfig:
    """Limits in milliseconds; None = the trace's default (see TRACE_SLOS)."""

    tpot_ms: float | None = None
    ttft_ms: float | None = None
    norm_ttft_ms_per_token: float | None = None

    def validate(self) -> None:
        for name in ("tpot_ms", "ttft_ms", "norm_ttft_ms_per_token"):
            v = getattr(self, name)
            if v is not None and not 0 < v < math.inf:
                raise ValueError(f"slo.{name} must be > 0 and finite, got {v}")
        if self.ttft_ms is not None and self.norm_ttft_ms_per_token is not None:
            raise ValueError(
                "slo: ttft_ms (--ttft-ms, absolute) and norm_ttft_ms_per_token (--norm-ttft-ms, "
                "per prompt token) are two TTFT SLOs; give one"
            )

    def resolve(self, trace: str) -> tuple[SLO, str]:
        norm_d, tpot_d, source = TRACE_SLOS.get(trace, DEFAULT_SLO)
        self.validate()
        tpot = self.tpot_ms if self.tpot_ms is not None else tpot_d
        if self.ttft_ms is not None:
            slo = SLO(tpot_s=tpot / 1e3, ttft_s=self.ttft_ms / 1e3)
        else:
            norm = self.norm_ttft_ms_per_token or norm_d
            slo = SLO(tpot_s=tpot / 1e3, norm_ttft_s_per_token=norm / 1e3)
        names = ("tpot_ms", "ttft_ms", "norm_ttft_ms_per_token")
        if any(getattr(self, n) is not None for n in names):
            source = f"given ({source} for the rest)"
        return slo, source


@dataclass(frozen=True, slots=True)
class KVConfig:
    """Paged KV cache sizing and admission (see kvcache.kv_capacity for the defaults)."""

    block_size: int = 16
    memory_fraction: float = field(default=0.9, metadata=FRACTION)
    reserve_gib: float = 2.0
    # share of future output blocks held back (SGLang's 0.7)
    reserve_fraction: float = field(default=0.7, metadata={RANGE: (0.0, 1.0, True, True)})
    capacity_blocks: int | None = None  # override the computed capacity (tests, what-ifs)

    def validate(self) -> None:
        """One-line ValueError for values no real engine accepts."""
        if self.block_size < 1:
            raise ValueError(f"kv.block_size must be >= 1 token, got {self.block_size}")
        if not 0.0 < self.memory_fraction <= 1.0:
            raise ValueError(f"kv.memory_fraction must be in (0, 1], got {self.memory_fraction}")
        if not 0.0 <= self.reserve_gib < 1e6:
            raise ValueError(f"kv.reserve_gib must be >= 0 GiB, got {self.reserve_gib}")
        if not 0.0 <= self.reserve_fraction <= 1.0:
            raise ValueError(f"kv.reserve_fraction must be in [0, 1], got {self.reserve_fraction}")
        if self.capacity_blocks is not None and self.capacity_blocks < 1:
            raise ValueError(f"kv.capacity_blocks must be >= 1, got {self.capacity_blocks}")

    def blocks_for(self, gpu: Any, model: ModelSpec) -> int:
        """KV blocks one GPU of `model` (at its tp) holds on `gpu` (`kvcache.kv_capacity`), or
        `capacity_blocks` when set; a one-line ValueError when the weights leave no room,
        naming the tp degrees that fit (`models.valid_tps`), else "no tp fits"."""
        from bulletsim.kvcache import kv_capacity
        from bulletsim.models import valid_tps

        if self.capacity_blocks is not None:
            return self.capacity_blocks

        def blocks(m: ModelSpec) -> int:
            return kv_capacity(
                gpu.memory_bytes,
                m.weight_bytes_per_gpu,
                m.kv_bytes_per_token_per_gpu,
                block_size=self.block_size,
                memory_fraction=self.memory_fraction,
                reserve_bytes=int(self.reserve_gib * 1024**3),
            ).num_blocks

        try:
            return blocks(model)
        except ValueError as e:  # name the degrees that do fit, if any
            fit = []
            for tp in valid_tps(model, gpu.gpus_per_node):
                try:
                    blocks(dataclasses.replace(model, tp=tp))
                    fit.append(tp)
                except ValueError:
                    pass
            hint = f"tp that fit on {gpu.name}: {', '.join(map(str, fit))}" if fit else "no tp fits"
            raise ValueError(f"{e} (tp={model.tp}; {hint})") from None


@dataclass(frozen=True, slots=True)
class MoEConfig:
    """Mixture-of-experts settings (`--set moe.routing=zipf:0.6`; MoE models only).

    `routing`: how tokens pick experts, `uniform` (every expert equally likely; the profiles
    were measured under it) or `zipf:S[:SEED]` (expert popularity ~ 1 / rank^S, S in (0, 4];
    `zipf:0.6` is the project's skewed reference, its busiest expert ~4x the mean load). The
    latency model prices the busiest GPU's load under it (`bulletsim/latency/moe.py`); a
    profile measured under uniform routing is rescaled to it (`latency/moe_profile.py`)."""

    routing: str = "uniform"

    def validate(self) -> str:
        """The routing spec, normalized; ValueError naming the valid forms otherwise."""
        from bulletsim.latency.moe import ROUTING_FORMS, parse_routing

        try:
            parse_routing(self.routing)
        except ValueError as e:
            valid = "" if "valid:" in str(e) else f"; valid: {ROUTING_FORMS}"
            raise ValueError(f"moe.routing={self.routing!r}: {e}{valid}") from None
        return self.routing.strip().lower()


@dataclass(frozen=True, slots=True)
class RunConfig:
    policy: str = "chunked"
    gpu: str = "a100"
    model: str = "llama-3.1-8b"
    tp: int | None = None
    latency: str = "auto"
    seed: int = 0
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    slo: SLOConfig = field(default_factory=SLOConfig)
    kv: KVConfig = field(default_factory=KVConfig)
    policy_params: dict[str, Any] = field(default_factory=dict)  # [chunked], [bullet], ...
    model_config: str | None = None  # a Hugging Face config.json; replaces `model`'s shape
    profile: str | None = None  # a latency-profile file; replaces the installed one (--profile)
    moe: MoEConfig = field(default_factory=MoEConfig)

    def model_spec(self) -> ModelSpec:
        """The model's shape: from `model_config` when given, else the built-in `model`."""
        from bulletsim.hardware import get_gpu
        from bulletsim.hf_config import model_from_hf_config
        from bulletsim.models import MODELS, check_tp, default_tp, get_model, model_key

        gpu = get_gpu(self.gpu)
        max_gpus = gpu.gpus_per_node
        if self.model_config is not None:
            base = model_from_hf_config(self.model_config, tp=1)
        else:
            get_model(self.model)  # an unknown name: the one-line error naming the valid ones
            base = MODELS[model_key(self.model) or self.model]
        tp = self.tp if self.tp is not None else default_tp(base, gpu.memory_bytes, max_gpus)
        spec = dataclasses.replace(check_tp(base, max_gpus, tp), tp=tp)
        routing = self.moe.validate()
        if routing == spec.moe_routing:
            return spec
        if not spec.is_moe:
            raise ValueError(
                f"moe.routing={self.moe.routing!r}: {spec.name} is a dense model (no experts); "
                "MoE models: qwen3-235b-a22b, qwen3-235b-a22b-ep8, or a Qwen3-MoE/Mixtral "
                "--model-config"
            )
        return dataclasses.replace(spec, moe_routing=routing)

    def validate(self) -> RunConfig:
        """Check every field, every policy section given (not only the chosen policy's),
        the GPU and model names; raise a one-line ValueError naming the valid choices."""
        from bulletsim.hardware import get_gpu

        if self.policy not in policy_names():
            raise ValueError(f"unknown policy {self.policy!r}; valid: {', '.join(policy_names())}")
        self.model_spec()
        if self.latency not in LATENCY_KINDS:
            raise ValueError(
                f"unknown latency model {self.latency!r}; valid: {', '.join(LATENCY_KINDS)}"
            )
        if self.profile is not None and self.latency == "roofline":
            raise ValueError(
                "profile (--profile FILE) prices the run by that profile; it does not go with "
                "latency roofline (use auto or profile)"
            )
        if self.tp is not None and self.tp < 1:
            raise ValueError(f"tp must be >= 1, got {self.tp}")
        if self.seed < 0:  # numpy's generators take non-negative seeds only
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        self.workload.validate()
        self.slo.validate()
        self.kv.validate()
        gpu = get_gpu(self.gpu)
        # before any profile is looked up: a model that does not fit names the tp that fit
        self.kv.blocks_for(gpu, self.model_spec())
        for name in (*self.policy_params, self.policy):
            params = self.params(name)
            given = frozenset(self.policy_params.get(name, {}))  # the keys the user set
            if hasattr(params, "check_gpu"):  # splits the GPU cannot make (pdmux)
                params.check_gpu(gpu, gpu.num_sms, given)
            if hasattr(params, "check_model"):  # layers the model does not have (bullet)
                params.check_model(self.model_spec())
        return self

    def partition_mechanism(self) -> str | None:
        """The chosen policy's SM partition mechanism (its parameter, or the one its design
        fixes); None for a policy without SM partitions."""
        from bulletsim.policies.registry import mechanism_of

        return mechanism_of(self.policy, self.params())

    def params(self, policy: str | None = None) -> Any:
        """A policy's parameter dataclass (default: the chosen one), built from its section."""
        name = policy or self.policy
        if name not in POLICY_PARAMS:
            raise ValueError(f"unknown policy section [{name}]; valid: {', '.join(policy_names())}")
        section = self.policy_params.get(name, {})
        if not isinstance(section, dict):
            fields = ", ".join(f"{name}.{f.name}" for f in dataclasses.fields(POLICY_PARAMS[name]))
            raise ValueError(f"{name} must be a table of parameters ({fields}), got {section!r}")
        return from_dict(POLICY_PARAMS[name], dict(section), name)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["policy_params"] = {self.policy: dataclasses.asdict(self.params())}
        if self.moe == MoEConfig():  # absent when default: earlier runs keep their hash
            del d["moe"]
        return d


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0])
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    if origin is dict or tp is dict:
        if isinstance(value, dict):
            return value
    name = getattr(tp, "__name__", str(tp))
    if tp is bool:  # TOML's booleans are lower case: 'True' reads as a word
        name = "bool (true or false, lower case)"
    raise ValueError(f"{where} must be {name}, got {type(value).__name__} {value!r}")


def from_dict(cls: type, data: dict, where: str = "") -> Any:
    """Build dataclass `cls` from a dict; unknown keys, wrong types and floats out of range
    (`float_params.check_float`: NaN, inf, 1e308) are ValueErrors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(fields)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ValueError(f"unknown config key {path!r}; valid: {', '.join(names)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ValueError(f"{path} must be a table, got {value!r}")
            kwargs[key] = from_dict(tp, value, path)
        else:
            try:
                kwargs[key] = _check_type(value, tp, path)
            except ValueError as e:
                fmt = fields[key].metadata.get("format")  # how the value is written
                raise ValueError(f"{e}; {fmt}" if fmt else str(e)) from None
            if isinstance(kwargs[key], float):
                meta = fields[key].metadata
                check_float(path, kwargs[key], bool(meta.get(ALLOWS_INF)), meta.get(RANGE))
    return cls(**kwargs)


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Read a TOML file (optional) and apply overrides (nested dicts; None values skipped).

    Names are canonicalised here, so the rest of the code sees one vocabulary: policy
    (case-insensitive; "chunked-1024" = policy chunked with chunk_size 1024), GPU and model
    aliases (`hardware.get_gpu`, `models.get_model`).
    """
    data: dict = {}
    if path is not None:
        p = Path(path)
        p = require_file(p, "config file")
        try:
            data = tomllib.loads(p.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(
                f"config file {p} is not a TOML config file ({e}){_json_hint(p)}; --config takes "
                "TOML: `key = value` lines and `[section]` tables (see README, Configs)"
            ) from None
    data = merge_overrides(data, _alias_as_override(overrides or {}))
    names = policy_names()
    params: dict[str, Any] = {}
    for key in list(data):
        if isinstance(key, str) and key.lower() in names:
            params[key.lower()] = data.pop(key)
    if "policy" in data:
        if not isinstance(data["policy"], str):
            raise ValueError(f"policy must be a name, got {data['policy']!r}")
        policy, alias_params = resolve_policy(data["policy"])
        data["policy"] = policy
        if alias_params:
            given = params.get(policy, {})
            if isinstance(given, dict):
                for k, v in alias_params.items():
                    if k in given and given[k] != v:
                        raise ValueError(
                            f"policy {policy}-{v} conflicts with {policy}.{k}={given[k]}; "
                            "give one of them"
                        )
                params[policy] = {**given, **alias_params}
    _lower_names(data, params)
    unknown = [k for k in data if k not in _RUN_KEYS]
    if unknown:
        raise ValueError(
            f"unknown config key {unknown[0]!r}; valid: {', '.join(_RUN_KEYS)}, "
            f"and policy sections {', '.join(names)}"
        )
    cfg = from_dict(RunConfig, data)
    cfg = dataclasses.replace(cfg, policy_params=params).validate()
    from bulletsim.hardware import get_gpu

    return dataclasses.replace(cfg, gpu=get_gpu(cfg.gpu).name, model=cfg.model_spec().name)


def _json_hint(p: Path) -> str:
    """', it is JSON (a run's config.json records a run, it is not read back)' when so."""
    try:
        json.loads(p.read_text())
    except (ValueError, OSError):
        return ""
    return " but JSON (a run folder's config.json records that run; it is not an input)"


def _alias_as_override(overrides: dict) -> dict:
    """`overrides` with what its policy name implies (`chunked-512` -> chunked.chunk_size 512)
    in the policy's section, so a name given on the command line overrides a config file's
    value as every flag does (README); a `--set` or option of the same key that disagrees is
    refused (one line), as is a file whose own policy name and section disagree."""
    name = overrides.get("policy")
    if not isinstance(name, str):
        return overrides
    policy, implied = resolve_policy(name)
    section = overrides.get(policy)
    given = section if isinstance(section, dict) else {}
    for k, v in implied.items():
        if given.get(k) is not None and given[k] != v:
            raise ValueError(
                f"policy {name} conflicts with {policy}.{k}={given[k]}; give one of them"
            )
    return {**overrides, policy: {**given, **implied}} if implied else overrides


# Name-valued fields, matched case-insensitively like policy, GPU and model names.
_NAME_FIELDS = {
    "": ("latency",),
    "workload": ("trace", "arrival", "over_length", "sharegpt_filter", "trace_format"),
}
_POLICY_NAME_FIELDS = ("variant", "mechanism")


def _lower_names(data: dict, params: dict) -> None:
    for section, keys in _NAME_FIELDS.items():
        node = data.get(section, {}) if section else data
        for key in keys if isinstance(node, dict) else ():
            if isinstance(node.get(key), str):
                node[key] = node[key].strip().lower()
    for section in params.values():
        for key in _POLICY_NAME_FIELDS if isinstance(section, dict) else ():
            if isinstance(section.get(key), str):
                section[key] = section[key].strip().lower()
        if isinstance(section, dict) and "mechanism" in section:
            # the one alias table (`--mechanism`, `--set`, config files, live, calibrate)
            from bulletsim.hardware import resolve_mechanism

            section["mechanism"] = resolve_mechanism(section["mechanism"])


_RUN_KEYS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name != "policy_params")
_SIZED = re.compile(r"^(chunked)-(\d+)$")


def resolve_policy(name: str) -> tuple[str, dict[str, Any]]:
    """A policy name as users type it -> (registered name, parameters it implies).

    Case-insensitive; "chunked-N" (the Bullet paper's chunked-1024, chunked-2048) is chunked
    prefill with chunk_size N. Unknown names raise ValueError listing the valid ones.
    """
    key = name.strip().lower()
    names = policy_names()
    if key in names:
        return key, {}
    m = _SIZED.match(key)
    if m:
        return m.group(1), {"chunk_size": int(m.group(2))}
    raise ValueError(
        f"unknown policy {name!r}; valid: {', '.join(names)}, or chunked-N (chunk size N tokens)"
    )


def parse_sets(sets: list[str] | None, option: str = "--set") -> dict:
    """`--set bullet.window_layers=4` -> {"bullet": {"window_layers": 4}} (TOML values).

    A bare word is a string. Raises ValueError for a missing `=`, an empty key or key part, no
    value, and a key set both as a table and as a value; messages name `option`, the flag used.
    """
    out: dict = {}
    seen: dict[str, str] = {}  # key -> the item that set it (a repeat must agree)
    for item in sets or []:
        if "=" not in item:
            raise ValueError(
                f"{option} expects KEY=VALUE (e.g. bullet.window_layers=4), got {item!r}"
            )
        key, raw = item.split("=", 1)
        parts = [p.strip() for p in key.strip().split(".")]
        if not all(parts):
            raise ValueError(f"{option} {item!r}: empty key; e.g. bullet.window_layers=4")
        if not raw.strip():
            raise ValueError(
                f"{option} {item!r}: no value after '='; e.g. bullet.window_layers=4 (an empty "
                "string is '\"\"')"
            )
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # a bare word is a string
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"{option} {item!r}: {p} was already set to a value, not a table")
        if isinstance(node.get(parts[-1]), dict):
            raise ValueError(f"{option} {item!r}: {key} is a table; set one of its keys")
        name = ".".join(parts)
        if parts[-1] in node and node[parts[-1]] != value:
            raise ValueError(
                f"{name} is given differently: {option} {seen[name]}; {option} "
                f"{item.strip()}; give it once"
            )
        seen[name] = item.strip()
        node[parts[-1]] = value
    return out


def check_flags_agree_with_sets(flags: dict, sets: dict, path: str = "") -> None:
    """ValueError (one line) when a dedicated option (`flags`: the overrides a command's
    options make, None where not given) and `--set` (`sets`, from `parse_sets`) give one key
    different values, e.g. `--tp 4 --set tp=2`: neither silently wins."""
    for key, value in sets.items():
        given = flags.get(key) if isinstance(flags, dict) else None
        where = f"{path}{key}"
        if isinstance(value, dict):
            if isinstance(given, dict):
                check_flags_agree_with_sets(given, value, f"{where}.")
            continue
        if given is not None and not isinstance(given, dict) and given != value:
            raise ValueError(
                f"{where} is given twice: by its option ({given!r}) and by --set {where}="
                f"{value!r}; give one"
            )


def check_set_sections(sets: dict, policies: set[str] | tuple[str, ...]) -> None:
    """A `--set SECTION.key=value` for a policy that is not run would do nothing: ValueError
    naming the policies that are. `sets` is `parse_sets`'s output; names as in the registry."""
    from bulletsim.policies.registry import unused_policy_sections

    unused = unused_policy_sections(sets, tuple(policies))
    if unused:
        u = unused[0]
        raise ValueError(
            f"--set {u}.*: {u} is not a policy of this run ({', '.join(policies)}), so its "
            f"parameters would do nothing; run it with --policy {u}, or drop the --set"
        )


def merge_overrides(base: dict, over: dict) -> dict:
    """`over` on top of `base`, nested tables merged, None values skipped."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            continue
        if isinstance(v, dict):
            out[k] = merge_overrides(out.get(k, {}) if isinstance(out.get(k), dict) else {}, v)
        else:
            out[k] = v
    return out
