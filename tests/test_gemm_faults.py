"""The fit's kernel-choice fault rule (calibrate/gemm_faults.py) on hand-made GEMM samples and
on the committed libsmctrl profile, whose o GEMM at 128 rows on 132 SMs was such a fault."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from calibrate.gemm_faults import fault_records, kernel_choice_faults

ROOT = Path(__file__).resolve().parents[1]
LIB_PROFILE = ROOT / "results/mechanisms-h200/profile-libsmctrl/h200__llama-3.1-8b.libsmctrl.json"


def frame(rows: list[tuple]) -> pd.DataFrame:
    """(phase, op, num_sms, rows, time_us, kernel) -> sample rows as the calibrator writes them."""
    return pd.DataFrame(
        [
            {
                "kind": "op",
                "phase": ph,
                "op": op,
                "num_sms": n,
                "tokens": r,
                "batch": r if ph == "decode" else float("nan"),
                "time_s": t * 1e-6,
                "kernel": k,
                "key": f"{ph}/{op}/{n}/{r}",
            }
            for ph, op, n, r, t, k in rows
        ]
    )


def test_a_slow_choice_beaten_by_a_larger_gemm_on_another_kernel_is_a_fault():
    df = frame(
        [
            ("prefill", "o", 132, 64, 16.0, "cublas"),
            ("prefill", "o", 132, 128, 47.5, "triton-persistent"),  # the fault
            ("prefill", "o", 132, 256, 20.1, "cublas"),
            ("prefill", "o", 128, 128, 47.5, "triton-persistent"),  # other SMs: no evidence
            ("prefill", "qkv", 132, 128, 47.5, "triton-persistent"),  # other op: none either
        ]
    )
    f = kernel_choice_faults(df, "green-ctx", 132)
    assert list(f["key"]) == ["prefill/o/132/128"]
    rec = fault_records(f)[0]
    assert rec["faster_larger"] == {"rows": 256, "kernel": "cublas", "time_us": 20.1}
    assert rec["rows"] == 128 and rec["time_us"] == 47.5


def test_what_is_not_a_fault():
    df = frame(
        [
            # the same kernel slower at fewer rows: its own behaviour, reproducible
            ("decode", "qkv", 64, 8, 45.0, "triton-persistent"),
            ("decode", "qkv", 64, 64, 28.0, "triton-persistent"),
            # under masks cuBLAS is no candidate below 128 rows on a partition
            ("decode", "o", 32, 64, 60.0, "triton-persistent"),
            ("decode", "o", 32, 256, 30.0, "cublas"),
            # cuBLASLt's SM target is plain cuBLAS below 2 rows
            ("decode", "o", 16, 1, 43.0, "cublas"),
            ("decode", "o", 16, 8, 22.0, "cublaslt-sm-target"),
            # slower, but by less than the factor
            ("prefill", "down", 64, 128, 40.0, "cublas"),
            ("prefill", "down", 64, 256, 30.0, "cublaslt-sm-target"),
        ]
    )
    assert kernel_choice_faults(df, "libsmctrl", 132).empty
    # the mask rule is libsmctrl's, and only on a partition: the same numbers elsewhere are faults
    assert list(kernel_choice_faults(df, "green-ctx", 132)["key"]) == ["decode/o/32/64"]
    whole = df.assign(num_sms=df["num_sms"].where(df["op"] != "o", 132))
    whole = whole[whole["key"] != "decode/o/16/1"]
    assert list(kernel_choice_faults(whole, "libsmctrl", 132)["key"]) == ["decode/o/32/64"]


def test_the_committed_libsmctrl_profile_drops_the_o_gemm_fault_and_says_so():
    from bulletsim.core import WorkShape
    from bulletsim.hardware import get_gpu
    from bulletsim.latency.profile import ProfileLatency
    from bulletsim.models import get_model

    doc = json.loads(LIB_PROFILE.read_text())
    dropped = doc["fit"]["kernel_choice_faults"]["dropped"]
    assert [(d["op"], d["rows"], d["num_sms"], d["kernel"]) for d in dropped] == [
        ("o", 128, 132, "triton-persistent")
    ]
    pl = ProfileLatency(doc, get_gpu("h200"), get_model("llama-3.1-8b"))
    shape = WorkShape(prefill_tokens=128, prefill_attn_pairs=128 * 129 / 2, prefill_kv_tokens=128)
    # priced from its neighbours now (the fault's 48.4 us was the Triton kernel's time)
    assert pl.op_time("o", shape, 132) < 0.8 * 48.4e-6
    report = (LIB_PROFILE.parent / "report.md").read_text()
    assert "- prefill o 128 rows on 132 SMs: triton-persistent 48.4 us" in report
    assert "128 -> 132 SMs, +160.6%" not in report
