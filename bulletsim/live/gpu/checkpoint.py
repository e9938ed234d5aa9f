"""A Hugging Face Llama checkpoint (safetensors) for the live engine's `--weights DIR`.

`check_checkpoint(dir, spec)` reads only the files' headers (no tensor data, no torch) and
says in one line what is wrong: a missing folder, no `*.safetensors` file, a tensor the model
needs that no file holds (or two files hold), a tensor whose shape or dtype is not the
model's (bf16 only: the engine and its profile run bf16). `read_weights` then yields the
engine's fused tensors (q|k|v rows as one QKV matrix, gate|up as one, as `LlamaModel` lays
them out) one at a time, so at most one layer is on the host at once. Names are those of
`transformers`' LlamaForCausalLM (`model.layers.{i}.self_attn.q_proj.weight`, ...); a
checkpoint with tied embeddings has no `lm_head.weight` and uses the embedding instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bulletsim.models import ModelSpec

DTYPE = "BF16"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    folder: Path
    file_of: dict[str, Path]  # tensor name -> the file that holds it
    tied_lm_head: bool


def _safe_open():
    try:
        from safetensors import safe_open
    except ImportError:
        raise ValueError(
            "--weights needs the safetensors package: pip install safetensors"
        ) from None
    return safe_open


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} of a Llama checkpoint with `spec`'s shapes (lm_head included)."""
    h, d = spec.hidden_size, spec.head_dim
    q, kv, inter = spec.num_heads * d, spec.num_kv_heads * d, spec.intermediate_size
    out = {"model.embed_tokens.weight": (spec.vocab_size, h), "model.norm.weight": (h,)}
    for i in range(spec.num_layers):
        p = f"model.layers.{i}."
        out |= {
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (q, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, q),
            p + "mlp.gate_proj.weight": (inter, h),
            p + "mlp.up_proj.weight": (inter, h),
            p + "mlp.down_proj.weight": (h, inter),
        }
    out["lm_head.weight"] = (spec.vocab_size, h)
    return out


def check_checkpoint(folder: Path | str, spec: ModelSpec) -> Checkpoint:
    """Validate `folder` against `spec` from the safetensors headers; ValueError or
    FileNotFoundError naming the first problem (and the tensor) otherwise."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"--weights {folder}: no such folder")
    if not folder.is_dir():
        raise ValueError(f"--weights {folder}: is a file, not a folder of *.safetensors files")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ValueError(f"--weights {folder}: no *.safetensors file in the folder")
    safe_open = _safe_open()
    file_of: dict[str, Path] = {}
    meta: dict[str, tuple[str, tuple[int, ...]]] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="numpy") as st:
                for name in st.keys():  # noqa: SIM118 - safe_open is not a mapping
                    if name in file_of:
                        raise ValueError(
                            f"--weights {folder}: tensor {name} is in both "
                            f"{file_of[name].name} and {f.name}"
                        )
                    sl = st.get_slice(name)
                    file_of[name] = f
                    meta[name] = (sl.get_dtype(), tuple(sl.get_shape()))
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - safetensors' own error types vary by version
            raise ValueError(f"--weights {folder}: cannot read {f.name}: {e}") from None
    want = expected_shapes(spec)
    tied = "lm_head.weight" not in file_of and spec.tie_word_embeddings
    missing = [n for n in want if n not in file_of and not (n == "lm_head.weight" and tied)]
    if missing:
        raise ValueError(
            f"--weights {folder}: {len(missing)} tensor(s) of {spec.name} missing, first "
            f"{missing[0]}"
        )
    for name, shape in want.items():
        if name not in meta:
            continue
        dtype, got = meta[name]
        if got != shape:
            raise ValueError(
                f"--weights {folder}: tensor {name} has shape {list(got)}, {spec.name} "
                f"needs {list(shape)}"
            )
        if dtype != DTYPE:
            raise ValueError(
                f"--weights {folder}: tensor {name} is {dtype}; the live engine runs bf16 "
                f"(valid: {DTYPE})"
            )
    return Checkpoint(folder, file_of, tied)


def read_weights(ck: Checkpoint, spec: ModelSpec) -> Iterator[tuple[str, int, object]]:
    """(target, layer, CPU torch tensor) in the engine's layout: targets embed, final_norm,
    lm_head (layer -1) and wqkv, wo, wgu, wd, norm1, norm2 per layer."""
    import torch

    safe_open = _safe_open()
    handles: dict[Path, object] = {}

    def get(name: str):
        f = ck.file_of[name]
        if f not in handles:
            handles[f] = safe_open(str(f), framework="pt", device="cpu")
        return handles[f].get_tensor(name)

    embed = get("model.embed_tokens.weight")
    yield "embed", -1, embed
    yield "final_norm", -1, get("model.norm.weight")
    yield "lm_head", -1, embed if ck.tied_lm_head else get("lm_head.weight")
    for i in range(spec.num_layers):
        p = f"model.layers.{i}."
        a, m = p + "self_attn.", p + "mlp."
        yield (
            "wqkv",
            i,
            torch.cat(
                [get(a + "q_proj.weight"), get(a + "k_proj.weight"), get(a + "v_proj.weight")]
            ),
        )
        yield "wo", i, get(a + "o_proj.weight")
        yield "wgu", i, torch.cat([get(m + "gate_proj.weight"), get(m + "up_proj.weight")])
        yield "wd", i, get(m + "down_proj.weight")
        yield "norm1", i, get(p + "input_layernorm.weight")
        yield "norm2", i, get(p + "post_attention_layernorm.weight")


def load_into(model, folder: Path | str) -> None:
    """Copy a checked checkpoint into a `LiveModel`'s tensors (same shapes, bf16)."""
    ck = check_checkpoint(folder, model.spec)
    base = model.base
    for target, layer, t in read_weights(ck, model.spec):
        if target == "embed":
            dst = model.embed
        elif layer < 0:
            dst = getattr(base, target)
        else:
            dst = getattr(model.layers[layer], target)
        assert dst.shape == t.shape, (target, layer, dst.shape, t.shape)
        dst.copy_(t, non_blocking=False)
