"""`bulletsim live --weights DIR`: a tiny Llama checkpoint written here (safetensors format by
hand, bf16 as the top 16 bits of float32), checked from its headers without a GPU."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("safetensors")

from bulletsim.cli import app  # noqa: E402
from bulletsim.live.gpu.checkpoint import (  # noqa: E402
    check_checkpoint,
    expected_shapes,
    read_weights,
)
from bulletsim.models import ModelSpec  # noqa: E402

TINY = ModelSpec(
    name="tiny-llama",
    num_layers=2,
    hidden_size=8,
    num_heads=2,
    num_kv_heads=1,
    head_dim=4,
    intermediate_size=16,
    vocab_size=32,
    tp=1,
    max_context_tokens=128,
    source="test",
)


def write_safetensors(path, tensors: dict[str, np.ndarray], dtype: str = "BF16") -> None:
    """float32 arrays stored as `dtype` (BF16: truncated to the top 16 bits; F32 as is)."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, np.float32)
        raw = (a.view(np.uint32) >> 16).astype("<u2").tobytes() if dtype == "BF16" else a.tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": list(a.shape),
            "data_offsets": [off, off + len(raw)],
        }
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def tiny_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # values exact in bf16 (small integers / 8), so reading back is exact
    return {
        n: (rng.integers(-8, 8, size=s) / 8).astype(np.float32)
        for n, s in expected_shapes(TINY).items()
    }


def make_checkpoint(folder, tensors=None, dtype="BF16"):
    folder.mkdir(exist_ok=True)
    tensors = tiny_tensors() if tensors is None else tensors
    names = sorted(tensors)
    half = len(names) // 2  # two shards, as HF writes large models
    write_safetensors(folder / "model-1.safetensors", {n: tensors[n] for n in names[:half]}, dtype)
    write_safetensors(folder / "model-2.safetensors", {n: tensors[n] for n in names[half:]}, dtype)
    return tensors


def test_a_complete_checkpoint_passes_and_knows_which_file_holds_each_tensor(tmp_path):
    make_checkpoint(tmp_path / "ck")
    ck = check_checkpoint(tmp_path / "ck", TINY)
    assert len(ck.file_of) == 2 + 9 * 2 + 1
    assert not ck.tied_lm_head
    assert {p.name for p in ck.file_of.values()} == {"model-1.safetensors", "model-2.safetensors"}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.pop("model.layers.1.mlp.up_proj.weight"), "model.layers.1.mlp.up_proj"),
        (lambda t: t.pop("lm_head.weight"), "missing, first lm_head.weight"),
        (
            lambda t: t.__setitem__("model.layers.0.self_attn.k_proj.weight", np.zeros((8, 8))),
            "model.layers.0.self_attn.k_proj.weight has shape [8, 8], tiny-llama needs [4, 8]",
        ),
    ],
)
def test_missing_or_misshapen_tensors_are_named(tmp_path, edit, message):
    t = tiny_tensors()
    edit(t)
    make_checkpoint(tmp_path / "ck", t)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_checkpoint(tmp_path / "ck", TINY)


def test_a_float32_checkpoint_is_refused_naming_a_tensor(tmp_path):
    make_checkpoint(tmp_path / "ck", dtype="F32")
    with pytest.raises(ValueError, match=r"tensor \S+ is F32; the live engine runs bf16"):
        check_checkpoint(tmp_path / "ck", TINY)


def test_folders_that_are_not_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        check_checkpoint(tmp_path / "nope", TINY)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_checkpoint(tmp_path / "f.txt", TINY)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \*\.safetensors file"):
        check_checkpoint(tmp_path / "empty", TINY)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ValueError, match="cannot read model.safetensors"):
        check_checkpoint(tmp_path / "bad", TINY)


def test_engine_layout_concatenates_qkv_and_gate_up_in_order(tmp_path):
    torch = pytest.importorskip("torch")
    t = make_checkpoint(tmp_path / "ck")
    got = {
        (name, layer): w
        for name, layer, w in read_weights(check_checkpoint(tmp_path / "ck", TINY), TINY)
    }
    p = "model.layers.1."
    want_qkv = np.concatenate([t[p + f"self_attn.{x}_proj.weight"] for x in "qkv"])
    assert torch.equal(got[("wqkv", 1)].float(), torch.from_numpy(want_qkv))
    want_gu = np.concatenate([t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"]])
    assert torch.equal(got[("wgu", 1)].float(), torch.from_numpy(want_gu))
    assert got[("wqkv", 1)].dtype == torch.bfloat16
    assert torch.equal(got[("lm_head", -1)].float(), torch.from_numpy(t["lm_head.weight"]))


def test_cli_weights_errors_are_one_line_exit_2(tmp_path):
    r = CliRunner().invoke(
        app, ["live", "--executor", "fake", "--weights", str(tmp_path), "-n", "5"]
    )
    assert r.exit_code == 2 and "--weights needs --executor gpu" in r.output
    r = CliRunner().invoke(
        app, ["live", "--weights", str(tmp_path / "missing"), "-n", "5", "--no-write"]
    )
    assert r.exit_code == 2, r.output
    assert "no such folder" in r.output and "Traceback" not in r.output
