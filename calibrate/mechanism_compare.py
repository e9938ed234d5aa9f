"""libsmctrl TPC masks against green contexts at equal SM counts, from two calibrations (CPU).

    python -m calibrate.mechanism_compare LIBSMCTRL_SAMPLES [--green SAMPLES] --out DIR

Samples of the two mechanisms are joined on their key (kind/phase/op/SMs/shape: the same
measurement point), so every row compares the same work on the same number of SMs. Writes
`DIR/per_point.csv` (every joined point) and `DIR/compare.md`: per op and SM count the median
of time(libsmctrl) / time(green) over the shared shapes; co-run slowdowns (time beside the
other lane / time alone) of each mechanism at the same split; whole steps. Green samples
default to the installed H200 profile's (`bulletsim/data/profiles/*.samples.parquet`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from calibrate.samples import load_samples

GREEN_DEFAULT = (
    Path(__file__).resolve().parent.parent
    / "bulletsim/data/profiles/h200__llama-3.1-8b.samples.parquet"
)
OPS = ("qkv", "o", "gate_up", "down", "attn_prefill", "attn_decode", "layer")


def _load(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path) if path.suffix == ".parquet" else load_samples(path)
    if "status" in df:
        df = df[df["status"].fillna("ok") == "ok"]
    return df


def join(lib: pd.DataFrame, green: pd.DataFrame) -> pd.DataFrame:
    """One row per measurement point present in both: times, ratio, co-run slowdowns."""
    cols = ["key", "kind", "phase", "op", "num_sms", "tokens", "time_s"]
    extra = [c for c in ("alone_s", "kernel", "sm_count_probed") if c in lib and c in green]
    a = lib[cols + extra].rename(columns={c: f"{c}_libsmctrl" for c in ["time_s", *extra]})
    b = green[["key", "time_s", *extra]].rename(
        columns={c: f"{c}_green" for c in ["time_s", *extra]}
    )
    j = a.merge(b, on="key", how="inner")
    j["ratio"] = j["time_s_libsmctrl"] / j["time_s_green"]
    if "alone_s_libsmctrl" in j:
        j["slowdown_libsmctrl"] = j["time_s_libsmctrl"] / j["alone_s_libsmctrl"]
        j["slowdown_green"] = j["time_s_green"] / j["alone_s_green"]
    return j.sort_values(["kind", "phase", "op", "num_sms", "key"]).reset_index(drop=True)


def op_table(j: pd.DataFrame, same_kernel: bool = False) -> pd.DataFrame:
    """Median ratio (and count) per (phase, op) x SM count, per-op and whole-layer samples;
    with `same_kernel`, only points where both mechanisms ran the same kernel (the
    mechanism's own cost, without the kernel choice it allows)."""
    sel = j[j["kind"].isin(["op", "layer"]) & j["op"].isin(OPS)]
    if same_kernel:
        if "kernel_libsmctrl" not in sel:
            return pd.DataFrame()
        sel = sel[(sel["kernel_libsmctrl"] == sel["kernel_green"]) & sel["op"].ne("layer")]
    if sel.empty:
        return pd.DataFrame()
    g = sel.groupby(["phase", "op", "num_sms"])["ratio"].agg(["median", "count"]).reset_index()
    g["num_sms"] = g["num_sms"].astype(int)
    g["cell"] = g.apply(lambda r: f"{r['median']:.3f} ({int(r['count'])})", axis=1)
    return g.pivot(index=["phase", "op"], columns="num_sms", values="cell").fillna("")


def _md(df: pd.DataFrame) -> str:
    df = df.reset_index()
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


def report(j: pd.DataFrame) -> str:
    parts = [
        "## Per op: median time(libsmctrl) / time(green) over shared shapes (count)\n",
        "Each mechanism runs the fastest correct kernel measured on its partition (under",
        "libsmctrl without cuBLASLt's SM-count target, which hangs under masks).\n",
        _md(op_table(j)),
    ]
    same = op_table(j, same_kernel=True)
    if not same.empty:
        parts += ["\n## The same, where both ran the same kernel\n", _md(same)]
    steps = j[j["kind"] == "step"][["key", "num_sms", "time_s_green", "time_s_libsmctrl", "ratio"]]
    if len(steps):
        steps = steps.astype({"num_sms": int})
        parts += ["\n## Whole steps (ms)\n", _md(_ms(steps).set_index("key"))]
    co = j[j["kind"] == "corun"]
    if len(co) and "slowdown_green" in co:
        c = co[["key", "num_sms", "slowdown_green", "slowdown_libsmctrl", "ratio"]].round(3)
        c = c.astype({"num_sms": int}).set_index("key")
        parts += ["\n## Co-runs: slowdown beside the other lane (time / alone)\n", _md(c)]
    return "\n".join(parts) + "\n"


def _ms(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in ("time_s_green", "time_s_libsmctrl"):
        out[c.replace("time_s", "ms")] = (out.pop(c) * 1e3).round(3)
    out["ratio"] = out["ratio"].round(3)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("libsmctrl", type=Path, help="samples.jsonl/.parquet of a libsmctrl run")
    ap.add_argument("--green", type=Path, default=GREEN_DEFAULT)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    for p in (a.libsmctrl, a.green):
        if not p.is_file():
            print(f"error: samples file not found: {p}", file=sys.stderr)
            return 2
    j = join(_load(a.libsmctrl), _load(a.green))
    if j.empty:
        print("error: the two sample sets share no measurement point", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    j.to_csv(a.out / "per_point.csv", index=False, float_format="%.6g")
    text = report(j)
    (a.out / "compare.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
