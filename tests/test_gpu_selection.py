"""Kernel selection logic of the GPU runtime (CPU-only: no torch)."""

from __future__ import annotations

import math

import pytest

from bulletsim.gpu.selection import (
    Choice,
    ChoiceTable,
    check_decode_backend,
    default_gemm_path,
    lt_failures,
    pick,
    sglang_decode_backend,
)


def test_pick_takes_the_fastest_correct_candidate():
    times = {"cublas": 2.0, "cublaslt-sm-target": 1.0, "triton-persistent": 0.5}
    errs = {"cublas": 1e-3, "cublaslt-sm-target": 2e-3, "triton-persistent": 0.3}  # wrong
    assert pick(times, errs, "cublas") == "cublaslt-sm-target"


def test_pick_skips_failed_and_nan_candidates():
    times = {"a": None, "b": 3.0, "c": 1.0}
    errs = {"a": None, "b": 1e-3, "c": math.nan}
    assert pick(times, errs, "a") == "b"


def test_a_tie_within_noise_goes_to_the_default_rule():
    times = {"flashinfer-tc": 1.02, "triton-splitk": 1.0}
    errs = {"flashinfer-tc": 1e-3, "triton-splitk": 1e-3}
    assert pick(times, errs, "flashinfer-tc") == "flashinfer-tc"
    times["flashinfer-tc"] = 1.05  # beyond 3% noise: the measurement wins
    assert pick(times, errs, "flashinfer-tc") == "triton-splitk"


def test_no_correct_candidate_is_an_error():
    with pytest.raises(ValueError, match="no correct candidate"):
        pick({"a": 1.0}, {"a": 0.5}, "a")


@pytest.mark.parametrize(
    ("num_sms", "rows", "path"),
    [
        (120, 2048, "cublaslt-sm-target"),
        (132, 2048, "cublas"),
        (64, 1, "cublas"),
        (116, 2048, "cublas"),
    ],
)
def test_default_gemm_path(num_sms, rows, path):
    assert default_gemm_path(num_sms, 132, rows, unit_sms=8) == path


def test_sglang_rule_for_llama_8b_is_tensor_cores():
    assert sglang_decode_backend(32, 8, "bfloat16", True) == "flashinfer-tc"  # group 4
    assert sglang_decode_backend(32, 16, "bfloat16", True) == "flashinfer-cc"  # group 2
    assert sglang_decode_backend(32, 16, "float8_e4m3fn", True) == "flashinfer-tc"
    assert sglang_decode_backend(32, 8, "bfloat16", False) == "triton-splitk"


def test_unknown_decode_backend_names_the_valid_ones():
    assert check_decode_backend("auto") == "auto"
    with pytest.raises(ValueError, match="valid: auto, flashinfer-tc"):
        check_decode_backend("flashinfer")


def _choice(kernel: str) -> Choice:
    return Choice(kernel, {kernel: 1.0}, {kernel: 1e-3}, "cublas")


def test_lookup_uses_the_nearest_measured_size_at_the_same_sm_count():
    t = ChoiceTable()
    t.record("gate_up", (1024,), 64, _choice("cublas"))
    t.record("gate_up", (8192,), 64, _choice("triton-persistent"))
    t.record("gate_up", (8192,), 128, _choice("cublaslt-sm-target"))
    assert t.lookup("gate_up", (1024,), 64) == "cublas"
    assert t.lookup("gate_up", (1500,), 64) == "cublas"  # log-nearer to 1024
    assert t.lookup("gate_up", (6000,), 64) == "triton-persistent"
    assert t.lookup("gate_up", (6000,), 72) is None  # no measurement at 72 SMs
    assert t.lookup("qkv", (1024,), 64) is None


def test_table_round_trips_and_summarises():
    t = ChoiceTable()
    t.record("attn_decode", (64, 2048), 16, _choice("flashinfer-tc"))
    t.record("attn_decode", (64, 2048), 32, _choice("flashinfer-tc"))
    t.record("attn_decode", (8, 512), 32, _choice("triton-splitk"))
    back = ChoiceTable.from_dict(t.to_dict())
    assert back.to_dict() == t.to_dict()
    assert back.summary() == {"attn_decode": {"flashinfer-tc": 2, "triton-splitk": 1}}
    assert back.lookup("attn_decode", (60, 2000), 16) == "flashinfer-tc"
    with pytest.raises(ValueError, match="op|size|num_sms"):
        ChoiceTable.from_dict({"bad": {}})


def test_unmeasured_sm_counts_borrow_the_nearest_of_their_own_kind():
    # a profile measured groups 16, 32, remainders 20, 100 and the whole GPU (132 SMs, unit 8)
    names = {f"qkv|64|{n}": f"k{n}" for n in (16, 32, 20, 100, 132)}
    t = ChoiceTable.from_kernel_names(names)
    assert t.nearest_sms("qkv", 32, 132, 8) == 32  # measured
    assert t.nearest_sms("qkv", 24, 132, 8) == 16  # group: 16 and 32 tie at 8 -> smaller
    assert t.nearest_sms("qkv", 40, 132, 8) == 32  # group: the nearest group, not remainder 20
    assert t.nearest_sms("qkv", 28, 132, 8) == 20  # remainder: nearest remainder, not group 32
    assert t.nearest_sms("qkv", 124, 132, 8) == 100
    assert t.nearest_sms("qkv", 132, 132, 8) == 132
    assert t.nearest_sms("o", 24, 132, 8) == 24  # op never measured: itself
    assert t.lookup("qkv", (64,), t.nearest_sms("qkv", 28, 132, 8)) == "k20"
    with pytest.raises(ValueError, match="op\\|size\\|num_sms"):
        ChoiceTable.from_kernel_names({"qkv|64": "cublas"})


def test_cublaslt_failures_are_read_from_torchs_warnings():
    import warnings

    # the message torch 2.11 printed on the H200 (R1, 2026-11-30), o and down at 256 rows
    text = (
        "gemm_and_bias error: CUBLAS_STATUS_EXECUTION_FAILED when calling cublasLtMatmul with "
        "transpose_mat1 1 transpose_mat2 0 m 4096 n 256 k {k} mat1_ld {k} mat2_ld {k} "
        "result_ld 4096 abType 14 cType 14 computeType 68 scaleType 0. Will attempt to "
        "recover by calling unfused cublas path."
    )
    shapes = {(4096, 4096): "o", (4096, 14336): "down", (6144, 4096): "qkv"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn(text.format(k=4096), UserWarning, stacklevel=1)
        warnings.warn(text.format(k=14336), UserWarning, stacklevel=1)
        warnings.warn(text.format(k=999), UserWarning, stacklevel=1)
        warnings.warn("an unrelated warning m 6144 n 8 k 4096", UserWarning, stacklevel=1)
    assert lt_failures(caught, shapes) == {"o", "down", "unknown"}
    assert lt_failures([], shapes) == set()


def _scan_lookup(table: ChoiceTable, op: str, size: tuple, num_sms: int):
    """The nearest measured size by a scan of every key (the lookup's definition)."""
    exact = table.get(op, size, num_sms)
    if exact is not None:
        return exact.kernel
    best, best_d = None, math.inf
    for key in table.choices:
        k_op, k_size, k_sms = key.split("|")
        sizes = [int(s) for s in k_size.split("x")]
        if k_op != op or int(k_sms) != num_sms or len(sizes) != len(size):
            continue
        d = sum(abs(math.log(a) - math.log(max(b, 1))) for a, b in zip(sizes, size, strict=True))
        if d < best_d or (d == best_d and key < best):
            best, best_d = key, d
    return None if best is None else table.choices[best].kernel


def test_the_indexed_lookup_answers_as_a_scan_of_every_key():
    """On the installed H200 profile's 3,000+ choices: random sizes of every op (one-number
    GEMM/prefill sizes, decode attention's (batch, context)), measured and unmeasured SM
    counts, ties between two measured sizes included."""
    import json
    import random

    from bulletsim.latency.profile import PROFILE_DIR

    doc = json.loads((PROFILE_DIR / "h200__llama-3.1-8b.json").read_text())
    table = ChoiceTable.from_kernel_names(doc["meta"]["kernels"]["choices"])
    keys = [k.split("|") for k in table.choices]
    ops = sorted({k[0] for k in keys})
    sms = sorted({int(k[2]) for k in keys}) + [7, 131]
    rng = random.Random(0)
    for _ in range(3000):
        op, n = rng.choice(ops), rng.choice(sms)
        rank = len(next(k for k in keys if k[0] == op)[1].split("x"))
        size = tuple(rng.choice([rng.randint(0, 40000), 2 ** rng.randint(0, 14)])
                     for _ in range(rank))  # fmt: skip
        assert table.lookup(op, size, n) == _scan_lookup(table, op, size, n), (op, size, n)
    # sizes halfway between two measured ones in log space (ties up to rounding)
    t = ChoiceTable.from_kernel_names({"qkv|32|132": "a", "qkv|128|132": "b", "o|3|8": "c",
                                       "o|12|8": "d"})  # fmt: skip
    for op, q, n in (("qkv", 64, 132), ("o", 6, 8)):
        assert t.lookup(op, (q,), n) == _scan_lookup(t, op, (q,), n)
    # keys added to `choices` after a lookup are seen (by the size index and the SM-count
    # index alike)
    assert t.lookup("qkv", (64,), 132) == "a"  # 32 is nearer than 128 by rounding
    t.choices["qkv|100|132"] = Choice("e", {}, {}, "")
    assert t.lookup("qkv", (64,), 132) == "e"  # 100 is nearer than 32
    assert t.nearest_sms("qkv", 56, 132, 8) == 56  # no group count measured for qkv
    t.choices["qkv|100|64"] = Choice("e", {}, {}, "")
    assert t.nearest_sms("qkv", 56, 132, 8) == 64
