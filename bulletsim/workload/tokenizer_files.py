"""Tokenizer files, identified by their content (sha256), never by their path.

Three kinds: a SentencePiece model (`tokenizer.model` of Llama-2, Mistral), a tiktoken BPE
rank file (Llama-3's `tokenizer.model`, `cl100k_base.tiktoken`: lines `<base64 token>
<rank>`) and a Hugging Face `tokenizer.json` (the `tokenizers` library, optional extra
`pip install bulletsim[tokenizers]`). The file is read once into memory and the tokenizer
built from those bytes, so nothing is looked up in a cache keyed by path (tiktoken's own
loader caches by the path string: a relative `tokenizer.model` in one project would be served
from another's cache). A file of another kind is a one-line error naming the kind it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bulletsim.files import require_file

Counter = Callable[[Sequence[str]], np.ndarray]
KINDS = ("sentencepiece", "tiktoken", "hf")
_DESCRIBE = {
    "sentencepiece": "SentencePiece model",
    "tiktoken": "tiktoken BPE rank file",
    "hf": "Hugging Face tokenizer.json",
}
# Llama-3's pre-tokenizer pattern (identical to cl100k_base's): a bare rank file has none.
TIKTOKEN_PAT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_CACHE: dict[tuple[str, str], Counter] = {}


def _tiktoken_ranks(data: bytes) -> dict[bytes, int] | None:
    """The ranks of a tiktoken file, or None if `data` is not one."""
    ranks = {}
    try:
        for line in data.splitlines():
            if not line.strip():
                continue
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
    except (ValueError, binascii.Error):
        return None
    return ranks or None


def sniff(data: bytes) -> str | None:
    """Which kind of tokenizer file `data` is (see KINDS), or None."""
    head = data.lstrip()[:1]
    if head == b"{":
        try:
            obj = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return "hf" if isinstance(obj, dict) and "model" in obj else None
    if _tiktoken_ranks(data[:4096].rsplit(b"\n", 1)[0] if len(data) > 4096 else data):
        return "tiktoken"
    # A SentencePiece ModelProto starts with field 1 (`pieces`), length-delimited: 0x0a.
    if data[:1] == b"\x0a":
        return "sentencepiece"
    return None


def _import(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ValueError(
            f"tokenizer: {module} is not installed (pip install {module}, or the "
            "bulletsim[tokenizers] extra)"
        ) from None


def _build(kind: str, data: bytes, path: Path) -> Counter:
    if kind == "tiktoken":
        tiktoken = _import("tiktoken")
        ranks = _tiktoken_ranks(data)
        assert ranks is not None
        enc = tiktoken.Encoding(
            name=path.stem, pat_str=TIKTOKEN_PAT, mergeable_ranks=ranks, special_tokens={}
        )
        return lambda texts: np.array(
            [len(x) for x in enc.encode_ordinary_batch(list(texts))], dtype=np.int64
        )
    if kind == "hf":
        tokenizers = _import("tokenizers")
        try:
            tok = tokenizers.Tokenizer.from_str(data.decode("utf-8"))
        except Exception as e:  # the Rust side raises its own exception type
            raise ValueError(f"tokenizer: {path} is not a usable tokenizer.json ({e})") from None
        return lambda texts: np.array(
            [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)],
            dtype=np.int64,
        )
    spm = _import("sentencepiece")
    try:
        proc = spm.SentencePieceProcessor(model_proto=data)
    except (RuntimeError, OSError, ValueError) as e:
        raise ValueError(f"tokenizer: {path} is not a SentencePiece model ({e})") from None
    return lambda texts: np.array([len(i) for i in proc.encode(list(texts))], dtype=np.int64)


def load_counter(kind: str, path: Path) -> tuple[Counter, str]:
    """(counter, sha256 of the file) for a tokenizer file of `kind`; one-line errors for a
    missing file, a file of another kind, or a missing library."""
    if kind not in KINDS:
        raise ValueError(f"tokenizer: unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    path = require_file(path, "tokenizer file")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    cached = _CACHE.get((kind, digest))
    if cached is not None:
        return cached, digest
    found = sniff(data)
    if found != kind:
        what = f"a {_DESCRIBE[found]}" if found else "not a tokenizer file of a known kind"
        hint = f"; use tokenizer={found}:{path}" if found else ""
        raise ValueError(f"tokenizer: {path} is {what}, not a {_DESCRIBE[kind]}{hint}")
    counter = _CACHE[(kind, digest)] = _build(kind, data, path)
    return counter, digest
