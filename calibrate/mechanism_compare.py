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

import sys
from pathlib import Path

import pandas as pd

from bulletsim.files import require_file
from calibrate.own_files import (
    check_outputs,
    csv_with_header,
    is_own_text,
    marker_line,
    write_text_atomic,
)
from calibrate.samples import load_samples
from calibrate.tool_cli import ToolParser, require_out_folder, run_tool

GREEN_DEFAULT = (
    Path(__file__).resolve().parent.parent
    / "bulletsim/data/profiles/h200__llama-3.1-8b.samples.parquet"
)
OPS = ("qkv", "o", "gate_up", "down", "attn_prefill", "attn_decode", "layer")


COLUMNS = ("key", "kind", "phase", "op", "num_sms", "tokens", "time_s", "mechanism")
TOOL = "calibrate.mechanism_compare"
PER_POINT_HEADER = "key,kind,phase,op,num_sms,tokens,time_s_libsmctrl"


def read_samples(path: Path, what: str, mechanism: str) -> pd.DataFrame:
    """A calibration's completed samples of `mechanism` (the value of its `mechanism` column,
    as `bulletsim calibrate --mechanism` writes it). ValueError / FileNotFoundError naming
    `what` for a missing file, a folder, another kind of file, no samples, or samples of
    another mechanism (joining those would compare a mechanism with itself)."""
    p = require_file(path, what)
    if p.suffix not in (".jsonl", ".parquet"):
        raise ValueError(
            f"{what} {p} is not a samples file; valid: a calibration's samples.jsonl or "
            "samples.parquet"
        )
    try:
        df = load_samples(p)
    except (ValueError, KeyError, OSError) as e:  # ArrowInvalid is a ValueError
        if isinstance(e, KeyError) and str(e) == "'key'":
            df = pd.DataFrame()
        else:
            raise ValueError(f"{what} {p} is not a readable samples file ({e})") from None
    missing = [c for c in COLUMNS if c not in df]
    if missing:
        raise ValueError(
            f"{what} {p} holds no calibration samples (no {', '.join(missing)} column); give "
            "the samples.jsonl or samples.parquet that `bulletsim calibrate` wrote"
        )
    if df.empty:
        raise ValueError(f"{what} {p} holds no completed samples")
    found = sorted({str(m) for m in df["mechanism"].dropna()})
    if found != [mechanism]:
        raise ValueError(
            f"{what} {p} holds samples of mechanism {', '.join(found) or 'none'}, not "
            f"{mechanism}; give the samples of a `bulletsim calibrate --mechanism {mechanism}` run"
        )
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


def parse_args(argv: list[str] | None = None):
    ap = ToolParser(prog=TOOL, description=__doc__.split("\n")[0])
    ap.add_argument("libsmctrl", type=Path, help="samples.jsonl/.parquet of a libsmctrl run")
    ap.add_argument("--green", type=Path, default=GREEN_DEFAULT)
    ap.add_argument("--out", type=Path, required=True, help="folder for compare.md, per_point.csv")
    a = ap.parse_args(argv)
    a.out = require_out_folder(a.out, "--out")
    check_outputs(
        a.out,
        {
            "compare.md": lambda p: is_own_text(p, TOOL),
            "per_point.csv": csv_with_header(PER_POINT_HEADER),
        },
        TOOL,
    )
    return a


def main(argv: list[str] | None = None) -> int:
    """Write the comparison; bad input raises ValueError / FileNotFoundError (one line, exit 2
    through `run_tool`) before anything is written."""
    a = parse_args(argv)
    lib = read_samples(a.libsmctrl, "libsmctrl samples", "libsmctrl")
    green = read_samples(a.green, "--green samples", "green-ctx")
    j = join(lib, green)
    if j.empty:
        raise ValueError(
            f"{a.libsmctrl} and {a.green} share no measurement point (same op, shape and SMs)"
        )
    text = report(j)
    write_text_atomic(a.out / "per_point.csv", j.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(a.out / "compare.md", f"{marker_line(TOOL)}\n{text}")
    print(text)
    return 0


if __name__ == "__main__":
    run_tool(lambda: sys.exit(main()))
