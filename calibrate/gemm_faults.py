"""GEMM samples whose kernel choice was a measurement fault, recognised by a rule (CPU only).

The calibrator times each GEMM with the kernel its selection picked for (op, rows, SMs): the
fastest correct candidate in a quick 3-launch race (`bulletsim.gpu.gemm.PartitionGemm.select`).
At microsecond sizes that race is noisy and sometimes picks a kernel far slower than another
candidate, and the sample then prices the wrong kernel: the o GEMM at 128 rows on all 132
SMs of the H200 was timed on the persistent Triton matmul at 47 us while cuBLAS ran 192 and
256 rows of it on the same SMs in 20 us (both the green-context and the libsmctrl
calibrations; in the green run's race cuBLAS had measured 119 us there).

Rule: a per-kernel sample of a linear GEMM (qkv, o, gate_up, down) is a *kernel-choice fault*
when, for the same op, phase and SM count, a sample with more rows ran a different kernel that
was also a candidate at this sample's rows, in less than 1 / `SLOWER_FACTOR` of its time. A
GEMM with more rows does the same work plus more, so a faster larger one means this size's
choice missed the faster kernel. Not faults: one kernel that is slower at fewer rows
(persistent Triton at 8 rows vs 64: its own tiling, reproducible), or a kernel that was not a
candidate at this size (under libsmctrl masks plain cuBLAS needs >= 128 rows on a partition,
`MASK_MIN_ROWS`; cuBLASLt's SM target needs >= 2 rows). The fit drops such samples and
records them (`fit.kernel_choice_faults`), so the profile interpolates their neighbours.
"""

from __future__ import annotations

import pandas as pd

# path -> fewest rows it may run with on a libsmctrl partition (not the whole GPU): plain
# cuBLAS hung for 64 rows under <= 8 TPCs and for 1 row under 4 TPCs on the H200
# (calibrate/NOTES.md, issue 16, round R3), so the calibrator never offers it below 128.
MASK_MIN_ROWS = {"cublas": 128}
GEMM_OPS = ("qkv", "o", "gate_up", "down")
# A larger GEMM must be this much faster to condemn the smaller one's choice: well above the
# few-percent repeat noise of the timed samples, below the 2.3x of the o GEMM fault.
SLOWER_FACTOR = 1.5


def candidate(kernel: str, rows: int, num_sms: int, total_sms: int, mechanism: str) -> bool:
    """Whether the calibrator offered `kernel` for a GEMM of `rows` rows on `num_sms` SMs."""
    if kernel == "cublaslt-sm-target" and rows < 2:
        return False  # launched as plain cuBLAS below 2 rows (bulletsim.gpu.gemm.launch)
    partition = num_sms < total_sms
    return not (mechanism == "libsmctrl" and partition and rows < MASK_MIN_ROWS.get(kernel, 0))


def kernel_choice_faults(df: pd.DataFrame, mechanism: str, total_sms: int) -> pd.DataFrame:
    """The per-kernel GEMM samples of `df` that the rule above condemns, indexed as in `df`,
    with the evidence: `better_rows`, `better_time_s`, `better_kernel`."""
    cols = ("kind", "op", "phase", "num_sms", "tokens", "time_s", "kernel")
    if df.empty or any(c not in df for c in cols):
        return df.iloc[0:0].assign(better_rows=[], better_time_s=[], better_kernel=[])
    gemm = df[(df["kind"] == "op") & df["op"].isin(GEMM_OPS)]
    rows_col = gemm["tokens"]
    if "batch" in gemm:  # decode samples count rows as their batch
        rows_col = gemm["batch"].where(gemm["phase"] == "decode", gemm["tokens"])
    gemm = gemm.assign(_rows=rows_col.astype(int))
    found: dict[int, tuple[int, float, str]] = {}
    for (_, _, n), g in gemm.groupby(["phase", "op", "num_sms"]):
        for idx, a in g.iterrows():
            bigger = g[(g["_rows"] > a["_rows"]) & (g["kernel"] != a["kernel"])]
            ok = [candidate(k, a["_rows"], int(n), total_sms, mechanism) for k in bigger["kernel"]]
            bigger = bigger[ok]
            if bigger.empty:
                continue
            b = bigger.loc[bigger["time_s"].idxmin()]
            if a["time_s"] > SLOWER_FACTOR * b["time_s"]:
                found[idx] = (int(b["_rows"]), float(b["time_s"]), str(b["kernel"]))
    out = df.loc[sorted(found)]
    return out.assign(
        better_rows=[found[i][0] for i in out.index],
        better_time_s=[found[i][1] for i in out.index],
        better_kernel=[found[i][2] for i in out.index],
    )


def fault_records(faults: pd.DataFrame) -> list[dict]:
    """One plain dict per fault, for the profile's fit report (times in us)."""
    return [
        {
            "key": r["key"] if "key" in r else None,
            "op": r["op"],
            "phase": r["phase"],
            "num_sms": int(r["num_sms"]),
            "rows": int(r["batch"] if r["phase"] == "decode" and "batch" in r else r["tokens"]),
            "kernel": r["kernel"],
            "time_us": round(1e6 * float(r["time_s"]), 1),
            "faster_larger": {
                "rows": int(r["better_rows"]),
                "kernel": r["better_kernel"],
                "time_us": round(1e6 * float(r["better_time_s"]), 1),
            },
        }
        for _, r in faults.iterrows()
    ]
