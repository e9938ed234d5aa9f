"""Model shapes, read from the published Hugging Face config.json of each model.

Only what the latency model and the KV cache need: layer count, projection widths, heads,
vocabulary, MoE routing and the tensor-parallel degree. Every model is a pre-norm decoder with
GQA attention, a SwiGLU MLP (or SwiGLU experts) and untied embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One decoder-only transformer, sharded over `tp` GPUs with tensor parallelism."""

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int  # dense MLP width (unused when every layer is MoE)
    vocab_size: int
    tp: int
    max_context_tokens: int
    source: str
    num_experts: int = 0  # 0 = dense MLP
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    dtype_bytes: int = 2  # bf16 weights and KV cache
    tie_word_embeddings: bool = False  # lm_head shares the input embedding's weights
    # MoE layout: ep == 1 shards every expert over the tp GPUs (SGLang's default); ep == tp
    # puts num_experts / ep whole experts on each GPU (SGLang --ep-size, attention stays TP).
    ep: int = 1
    moe_routing: str = "uniform"  # routing distribution, `bulletsim.latency.moe.parse_routing`

    def __post_init__(self) -> None:
        if self.tp < 1 or self.num_heads % self.tp:
            raise ValueError(
                f"model {self.name!r}: tp={self.tp} must divide num_heads={self.num_heads}"
            )
        if self.num_kv_heads % self.tp and self.tp % self.num_kv_heads:
            raise ValueError(
                f"model {self.name!r}: tp={self.tp} and num_kv_heads={self.num_kv_heads} "
                "must divide one another"
            )
        if self.num_experts and not 0 < self.experts_per_token <= self.num_experts:
            raise ValueError(f"model {self.name!r}: experts_per_token must be in 1..num_experts")
        if self.ep != 1 and (
            self.ep != self.tp or not self.num_experts or self.num_experts % self.ep
        ):
            raise ValueError(
                f"model {self.name!r}: ep={self.ep} must be 1 or tp={self.tp} (and divide "
                f"num_experts={self.num_experts})"
            )

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def moe_shards(self) -> int:
        """How many slices each expert's width is cut into (tp under TP experts, 1 under EP)."""
        return self.tp if self.ep == 1 else 1

    @property
    def q_heads_per_gpu(self) -> int:
        return self.num_heads // self.tp

    @property
    def kv_heads_per_gpu(self) -> int:
        # With tp > num_kv_heads each GPU keeps a replica of one KV head (vLLM/SGLang).
        return max(1, self.num_kv_heads // self.tp)

    @property
    def attn_params_per_layer(self) -> int:
        q_out = self.num_heads * self.head_dim
        kv_out = 2 * self.num_kv_heads * self.head_dim
        return self.hidden_size * (q_out + kv_out) + q_out * self.hidden_size

    @property
    def mlp_params_per_layer(self) -> int:
        """All MLP weights of one layer (every expert, plus the router)."""
        if self.is_moe:
            expert = 3 * self.hidden_size * self.moe_intermediate_size
            return self.num_experts * expert + self.hidden_size * self.num_experts
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def params(self) -> int:
        """Total parameters: layers, input embedding and lm_head (one matrix when tied);
        norms ignored."""
        per_layer = self.attn_params_per_layer + self.mlp_params_per_layer
        embeddings = (1 if self.tie_word_embeddings else 2) * self.vocab_size * self.hidden_size
        return self.num_layers * per_layer + embeddings

    @property
    def active_params(self) -> int:
        """Parameters one token multiplies through (top-k experts only for MoE)."""
        if not self.is_moe:
            return self.params
        inactive = (self.num_experts - self.experts_per_token) * 3 * self.hidden_size
        return self.params - self.num_layers * inactive * self.moe_intermediate_size

    @property
    def weight_bytes(self) -> int:
        return self.params * self.dtype_bytes

    @property
    def weight_bytes_per_gpu(self) -> int:
        return self.weight_bytes // self.tp

    @property
    def kv_bytes_per_token_per_gpu(self) -> int:
        """K and V of every layer for one token, on one GPU."""
        return 2 * self.num_layers * self.kv_heads_per_gpu * self.head_dim * self.dtype_bytes


_LLAMA_31 = "meta-llama/Llama-3.1-{}/config.json (Hugging Face), untied embeddings"

MODELS: dict[str, ModelSpec] = {
    "llama-3.1-8b": ModelSpec(
        name="llama-3.1-8b",
        num_layers=32,
        hidden_size=4096,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=14336,
        vocab_size=128256,
        tp=1,
        max_context_tokens=131072,
        source=_LLAMA_31.format("8B"),
    ),
    "llama-3.1-70b": ModelSpec(
        name="llama-3.1-70b",
        num_layers=80,
        hidden_size=8192,
        num_heads=64,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=28672,
        vocab_size=128256,
        tp=8,
        max_context_tokens=131072,
        source=_LLAMA_31.format("70B"),
    ),
    # Every one of the 94 layers is MoE (decoder_sparse_step 1, no shared expert); heads
    # carry q/k RMSNorm, which costs nothing measurable. Native context is 40960 tokens
    # (max_position_embeddings); 131072 needs YaRN scaling.
    "qwen3-235b-a22b": ModelSpec(
        name="qwen3-235b-a22b",
        num_layers=94,
        hidden_size=4096,
        num_heads=64,
        num_kv_heads=4,
        head_dim=128,
        intermediate_size=12288,
        vocab_size=151936,
        tp=8,
        max_context_tokens=40960,
        num_experts=128,
        experts_per_token=8,
        moe_intermediate_size=1536,
        source="Qwen/Qwen3-235B-A22B/config.json (Hugging Face); cross-checked with "
        "THUDM/slime scripts/models/qwen3-235B-A22B.sh",
    ),
}
# The same model with expert parallelism over its 8 GPUs (SGLang `--tp 8 --ep-size 8`):
# attention TP-sharded, 16 whole experts per GPU.
MODELS["qwen3-235b-a22b-ep8"] = replace(MODELS["qwen3-235b-a22b"], name="qwen3-235b-a22b-ep8", ep=8)


# The one model-name table (run, sweep, calibrate and live use it): Hugging Face repo ids,
# their -Instruct variants (same shapes) and the spellings users type.
MODEL_ALIASES: dict[str, str] = {
    "llama3.1-8b": "llama-3.1-8b",
    "llama-3.1-8b-instruct": "llama-3.1-8b",
    "llama3.1-8b-instruct": "llama-3.1-8b",
    "meta-llama-3.1-8b": "llama-3.1-8b",
    "meta-llama-3.1-8b-instruct": "llama-3.1-8b",
    "llama3.1-70b": "llama-3.1-70b",
    "llama-3.1-70b-instruct": "llama-3.1-70b",
    "llama3.1-70b-instruct": "llama-3.1-70b",
    "meta-llama-3.1-70b": "llama-3.1-70b",
    "meta-llama-3.1-70b-instruct": "llama-3.1-70b",
    "qwen3-235b": "qwen3-235b-a22b",
    "qwen3-235b-a22b-instruct-2507": "qwen3-235b-a22b",
}


def model_key(name: str) -> str | None:
    """The MODELS key a model name denotes, or None. Case-insensitive; an organisation prefix
    ("meta-llama/", "Qwen/") is dropped; "_" and " " count as "-"."""
    key = "-".join(name.strip().lower().replace("_", " ").split())
    key = key.rsplit("/", 1)[-1]
    key = MODEL_ALIASES.get(key, key)
    return key if key in MODELS else None


def get_model(name: str, tp: int | None = None, max_gpus: int = 8) -> ModelSpec:
    """Look up a model by name (see `model_key`); `tp` overrides its tensor-parallel degree
    (one of `valid_tps(model, max_gpus)`, else a ValueError listing them)."""
    key = model_key(name)
    if key is None:
        raise ValueError(
            f"unknown model {name!r}; valid: {', '.join(MODELS)} (also Hugging Face ids such as "
            "meta-llama/Llama-3.1-8B-Instruct, and llama3.1-8b)"
        )
    model = MODELS[key]
    if (tp is None or tp == model.tp) and model.tp <= max_gpus:
        return model
    check_tp(model, max_gpus, model.tp if tp is None else tp)
    return model if tp is None else replace(model, tp=tp)


DEFAULT_TP_RULE = (
    "1 when the weights take at most half of one GPU's memory, else the largest valid degree "
    "(1 for Llama-3.1-8B, 8 for Llama-3.1-70B and Qwen3-235B-A22B)"
)


def default_tp(model: ModelSpec, memory_bytes: int, max_gpus: int = 8) -> int:
    """The tensor-parallel degree a run uses when none is given (`DEFAULT_TP_RULE`): 1 when
    `model`'s weights (`weight_bytes`) take at most half of `memory_bytes` (one GPU's memory;
    the other half holds the KV cache) and tp 1 is valid, else the largest of `valid_tps`.
    The built-in models' `tp` fields follow it on every GPU in `hardware` (a test checks)."""
    valid = valid_tps(model, max_gpus) or [model.tp]
    if 1 in valid and model.weight_bytes <= memory_bytes / 2:
        return 1
    return max(valid)


def valid_tps(model: ModelSpec, max_gpus: int = 8) -> list[int]:
    """Tensor-parallel degrees `model` runs with inside one node of `max_gpus` GPUs: tp
    divides the query heads and the MLP width (each expert's under TP experts), tp and the
    KV heads divide one another (vLLM / SGLang replicate a KV head when tp > KV heads), and
    an expert-parallel layout (ep > 1) needs tp == ep."""
    out = []
    for tp in range(1, max_gpus + 1):
        width = model.moe_intermediate_size if model.is_moe else model.intermediate_size
        if model.num_heads % tp or (model.num_kv_heads % tp and tp % model.num_kv_heads):
            continue
        if (model.ep == 1 and width % tp) or (model.ep != 1 and tp != model.ep):
            continue
        out.append(tp)
    return out


def check_tp(model: ModelSpec, max_gpus: int = 8, tp: int | None = None) -> ModelSpec:
    """`model` if its tp (or the `tp` asked for) is in `valid_tps`; else a one-line
    ValueError naming the rule and the valid degrees."""
    tp = model.tp if tp is None else tp
    valid = valid_tps(model, max_gpus)
    if tp not in valid:
        ep = f", be its ep={model.ep}" if model.ep != 1 else ""
        raise ValueError(
            f"tp={tp} is not a tensor-parallel degree of {model.name} on one node of "
            f"{max_gpus} GPUs (it must be 1..{max_gpus}, divide {model.num_heads} query heads, "
            f"divide or be a multiple of {model.num_kv_heads} KV heads{ep}); valid: "
            f"{', '.join(map(str, valid))}"
        )
    return model
