"""A model shape from a Hugging Face `config.json` (`--model-config`), for the roofline.

Families read (by `model_type`): llama, mistral, qwen2, qwen3 (dense, SwiGLU MLP, GQA) and
mixtral, qwen3_moe, qwen2_moe (every layer MoE with SwiGLU experts). Keys used, as the
transformers configuration classes name them: `num_hidden_layers`, `hidden_size`,
`num_attention_heads`, `num_key_value_heads` (default: the attention heads), `head_dim`
(default hidden_size / heads), `intermediate_size`, `vocab_size`, `max_position_embeddings`
(the context limit), `tie_word_embeddings`, `torch_dtype`; MoE: `num_local_experts`
(Mixtral) or `num_experts` (Qwen), `num_experts_per_tok`, `moe_intermediate_size` (Qwen;
Mixtral's experts are `intermediate_size` wide). What the shape cannot express is refused in
one line rather than approximated silently: Qwen2-MoE's shared expert, dense layers mixed
into a MoE model (`decoder_sparse_step` != 1, `mlp_only_layers`).
"""

from __future__ import annotations

import json
from pathlib import Path

from bulletsim.files import require_file
from bulletsim.models import ModelSpec

DENSE_TYPES = ("llama", "mistral", "qwen2", "qwen3")
MOE_TYPES = ("mixtral", "qwen2_moe", "qwen3_moe")
_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def _int(cfg: dict, key: str, path: Path, default: int | None = None) -> int:
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        got = "missing" if key not in cfg else repr(v)
        raise ValueError(f"{path}: {key} must be a positive integer, got {got}")
    return v


def model_from_hf_config(path: str | Path, tp: int = 1, name: str | None = None) -> ModelSpec:
    """The ModelSpec `path` describes, sharded over `tp` GPUs; one-line ValueErrors.

    `name` defaults to the config's `_name_or_path` (last part), else the folder name of a
    `config.json`, else the file's stem.
    """
    p = Path(path).expanduser()
    p = require_file(p, "--model-config file")
    try:
        cfg = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{p}: not a JSON config.json ({e})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{p}: expected a JSON object (a Hugging Face config.json)")
    kind = cfg.get("model_type")
    if kind not in DENSE_TYPES + MOE_TYPES:
        raise ValueError(
            f"{p}: model_type {kind!r} is not supported; valid: "
            f"{', '.join(DENSE_TYPES + MOE_TYPES)}"
        )
    heads = _int(cfg, "num_attention_heads", p)
    hidden = _int(cfg, "hidden_size", p)
    head_dim = cfg.get("head_dim") or hidden // heads
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    if dtype not in _DTYPE_BYTES:
        raise ValueError(f"{p}: torch_dtype {dtype!r}; valid: {', '.join(_DTYPE_BYTES)}")
    moe: dict[str, int] = {}
    if kind in MOE_TYPES:
        if cfg.get("shared_expert_intermediate_size"):
            raise ValueError(
                f"{p}: a shared expert (shared_expert_intermediate_size) is not modelled; "
                "supported MoE: every layer routed experts only (Mixtral, Qwen3-MoE)"
            )
        if cfg.get("decoder_sparse_step", 1) != 1 or cfg.get("mlp_only_layers"):
            raise ValueError(f"{p}: dense layers inside a MoE model are not modelled")
        experts_key = "num_local_experts" if kind == "mixtral" else "num_experts"
        width_key = "intermediate_size" if kind == "mixtral" else "moe_intermediate_size"
        moe = {
            "num_experts": _int(cfg, experts_key, p),
            "experts_per_token": _int(cfg, "num_experts_per_tok", p),
            "moe_intermediate_size": _int(cfg, width_key, p),
        }
    fallback = p.resolve().parent.name if p.name == "config.json" else p.stem
    label = name or str(cfg.get("_name_or_path") or fallback).rstrip("/")
    label = label.rsplit("/", 1)[-1].lower()
    notes = []
    if cfg.get("sliding_window") and cfg.get("use_sliding_window", True):
        notes.append(f"sliding_window {cfg['sliding_window']} ignored (full attention assumed)")
    tied = bool(cfg.get("tie_word_embeddings", False))
    return ModelSpec(
        name=label,
        num_layers=_int(cfg, "num_hidden_layers", p),
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=_int(cfg, "num_key_value_heads", p, heads),
        head_dim=int(head_dim),
        intermediate_size=_int(cfg, "intermediate_size", p),
        vocab_size=_int(cfg, "vocab_size", p),
        tp=tp,
        max_context_tokens=_int(cfg, "max_position_embeddings", p),
        source=f"{p} ({kind}{', tied embeddings' if tied else ''}"
        + (f"; {'; '.join(notes)}" if notes else "")
        + ")",
        dtype_bytes=_DTYPE_BYTES[dtype],
        tie_word_embeddings=tied,
        **moe,
    )
