"""Tokenizer files by content (tests/fixtures/tokenizers, made for these tests)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bulletsim.workload.tokenizer_files import load_counter, sniff

FIX = Path(__file__).parent / "fixtures" / "tokenizers"
TIKTOKEN, HF = FIX / "tiny.tiktoken", FIX / "tiny_tokenizer.json"
SPM = FIX / "looks_like_sentencepiece.model"  # only the first bytes of a ModelProto


def test_counts_of_the_tiny_tokenizers():
    count, _ = load_counter("tiktoken", TIKTOKEN)
    # "hello" merges h+e, l+l, he+ll, hell+o into one token; " world" has no merges: 6 bytes
    assert count(["hello", "hello world"]).tolist() == [1, 7]
    pytest.importorskip("tokenizers")
    count, _ = load_counter("hf", HF)
    assert count(["hello world fixture", "x y"]).tolist() == [3, 2]  # word level, [UNK] too


def test_sniffing():
    assert sniff(TIKTOKEN.read_bytes()) == "tiktoken"
    assert sniff(HF.read_bytes()) == "hf"
    assert sniff(SPM.read_bytes()) == "sentencepiece"
    assert sniff(b'{"architectures": ["LlamaForCausalLM"]}') is None  # a config.json


@pytest.mark.parametrize(
    ("kind", "path", "found"),
    [
        ("hf", TIKTOKEN, "a tiktoken BPE rank file, not a Hugging Face tokenizer.json; use "
         "tokenizer=tiktoken:"),
        ("tiktoken", HF, "a Hugging Face tokenizer.json, not a tiktoken BPE rank file; use "
         "tokenizer=hf:"),
        ("sentencepiece", TIKTOKEN, "a tiktoken BPE rank file, not a SentencePiece model"),
        ("tiktoken", SPM, "a SentencePiece model, not a tiktoken BPE rank file"),
    ],
)  # fmt: skip
def test_a_file_of_another_kind_is_named(kind, path, found):
    with pytest.raises(ValueError, match=found):
        load_counter(kind, path)


def test_unknown_file(tmp_path):
    p = tmp_path / "vocab.txt"
    p.write_text("just some words\n")
    with pytest.raises(ValueError, match="is not a tokenizer file of a known kind"):
        load_counter("tiktoken", p)


def test_identified_by_content_not_path(tmp_path):
    """The same relative path in two projects holds two tokenizers: each gets its own."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(TIKTOKEN, a / "tokenizer.model")
    lines = TIKTOKEN.read_text().splitlines()[:256]  # b: bytes only, no merges
    (b / "tokenizer.model").write_text("\n".join(lines) + "\n")
    cwd = os.getcwd()
    try:
        os.chdir(a)
        count_a, digest_a = load_counter("tiktoken", Path("tokenizer.model"))
        os.chdir(b)
        count_b, digest_b = load_counter("tiktoken", Path("tokenizer.model"))
    finally:
        os.chdir(cwd)
    assert digest_a != digest_b
    assert count_a(["hello"]).tolist() == [1] and count_b(["hello"]).tolist() == [5]
    # the same content at another path is the same tokenizer (one build, shared)
    shutil.copy(TIKTOKEN, tmp_path / "copy.tiktoken")
    assert load_counter("tiktoken", tmp_path / "copy.tiktoken") == (count_a, digest_a)
