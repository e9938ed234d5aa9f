"""`calibrate.collectives` output -> the measured all-reduce table and its report (CPU only).

    python -m calibrate.collectives_fit RUN/collectives.json \\
        --out bulletsim/data/collectives/h200__nccl-2gpu.json --report results/large-models/

The table (`format: bulletsim-collectives`) holds the 2-GPU all-reduce seconds on the bytes x
SMs grid (SMs: the green-context partition NCCL was launched on; 132 = whole GPU), the
alpha-beta ring fit of the whole-GPU column (`bulletsim.latency.collectives`), all-gather and
reduce-scatter on the whole GPU, the `max_ctas` sweep, the co-run rows and NCCL's own channel
count. `report_md` writes the measured tables and the *derived* 4- and 8-GPU transfer.
"""

from __future__ import annotations

import json
from pathlib import Path

from bulletsim.cli_errors import doc_summary
from bulletsim.files import require_writable_file
from bulletsim.hardware import get_gpu
from bulletsim.latency.collectives import AlphaBeta, busbw_gb_s, fit_alpha_beta, section_for
from calibrate.tool_cli import ToolParser, read_json, require_out_folder, run_tool

FORMAT = "bulletsim-collectives"


# What `calibrate.collectives` writes and this fit reads (a file without them is another file).
RUN_KEYS = ("rank0", "world", "date", "timing_method", "env", "hidden", "nccl_log")


def table_from_run(doc: dict, gpu: str = "h200") -> dict:
    """The measured table from a `collectives.json` (rank 0's rows: min over ranks per loop).

    Raises ValueError (one line) on a run that is not one: missing parts, a world below 2,
    rows without bytes / SMs / a positive time, an incomplete grid."""
    try:
        return _table_from_run(doc, gpu)
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(
            f"collectives run is malformed ({type(e).__name__}: {e}); expected the "
            "collectives.json that calibrate.collectives writes"
        ) from None


def _table_from_run(doc: dict, gpu: str) -> dict:
    missing = [k for k in RUN_KEYS if k not in doc]
    if missing:
        raise ValueError(
            f"collectives run lacks {', '.join(missing)}; expected the collectives.json that "
            "calibrate.collectives writes"
        )
    r0 = doc["rank0"]
    world = int(doc["world"])
    if world < 2:
        raise ValueError(f"collectives run has world={world}; an all-reduce needs >= 2 GPUs")
    if not r0.get("rows"):
        err = doc.get("error") or "no rows"
        raise ValueError(f"collectives run measured nothing on rank 0 ({err})")
    ar = [r for r in r0["rows"] if r["op"] == "all_reduce"]
    bad = [r for r in ar if not (r["ms"] > 0 and int(r["bytes"]) > 0 and int(r["sms"]) > 0)]
    if bad:
        raise ValueError(f"all-reduce row with a non-positive time, size or SM count: {bad[0]}")
    if not ar:
        raise ValueError("no all-reduce rows in this collectives run")
    sizes = sorted({int(r["bytes"]) for r in ar})
    sms = sorted({int(r["sms"]) for r in ar})
    eager = {(int(r["bytes"]), int(r["sms"])): r["ms"] / 1e3 for r in ar}
    missing = [(b, s) for b in sizes for s in sms if (b, s) not in eager]
    if missing:
        raise ValueError(f"all-reduce grid incomplete: {len(missing)} cells missing")
    # Device time where a CUDA-graph replay measured it (what an engine's graphs see, no
    # host launch cost), the eager loop elsewhere.
    graph = {
        (int(r["bytes"]), int(r["sms"])): r["ms"] / 1e3
        for r in r0.get("graph_rows", [])
        if "ms" in r
    }
    cell = {**eager, **{k: v for k, v in graph.items() if k in eager}}
    full = max(sms)
    model, err = fit_alpha_beta(sizes, [cell[(b, full)] for b in sizes], world)
    others = {}
    for op in ("all_gather", "reduce_scatter"):
        rows = sorted((r for r in r0["rows"] if r["op"] == op), key=lambda r: r["bytes"])
        others[op] = {
            "bytes": [int(r["bytes"]) for r in rows],
            "time_s": [r["ms"] / 1e3 for r in rows],
            "bytes_note": "all_gather: output bytes; reduce_scatter: input bytes",
        }
    return {
        "format": FORMAT,
        "version": 1,
        "gpu": gpu,
        "kind": "measured",
        "measured_gpus": world,
        "device": r0.get("device"),
        "nccl": r0.get("nccl_version"),
        "torch": r0.get("torch"),
        "date": doc["date"],
        "source": f"calibrate.collectives on {world} x {r0.get('device')} (NCCL "
        f"{r0.get('nccl_version')}, torch {r0.get('torch')}, {doc['date']})",
        "timing_method": " ".join(doc["timing_method"].split()),
        "env": doc["env"],
        "hidden": doc["hidden"],
        "bytes": sizes,
        "sms": sms,
        "time_s": [[cell[(b, s)] for s in sms] for b in sizes],
        "time_s_eager": [[eager[(b, s)] for s in sms] for b in sizes],
        "cells_from_graph": sorted([list(k) for k in graph if k in eager]),
        "alpha_beta": model.to_dict(),
        "alpha_beta_fit": {**err, "on": f"whole-GPU ({full} SMs) column, {len(sizes)} sizes"},
        **others,
        "max_ctas": r0.get("ctas", []),
        "corun": r0.get("corun", []),
        "nccl_channels": doc["nccl_log"].get("coll_channels", []),
        "nccl_log_lines": doc["nccl_log"].get("lines", [])[:20],
        "stream_check": doc["stream_check"],
        "self_check": doc["self_check"],
    }


def report_md(table: dict) -> str:
    """Markdown: measured all-reduce by size x partition, fit, derived 4/8-GPU transfer."""
    n0, sms, sizes = table["measured_gpus"], table["sms"], table["bytes"]
    hidden_bytes = table["hidden"] * 2
    out = [
        f"### All-reduce, measured on {n0} x {table['device']} ({table['source']})",
        "",
        "Per call, us (bus bandwidth GB/s); columns: SMs of the green-context partition each "
        f"rank's NCCL kernel was launched on ({max(sms)} = whole GPU). Up to "
        f"{_graph_max_tokens(table)} tokens: device time of 50 all-reduces captured in one CUDA "
        "graph on the partition's stream and replayed (median of 7 replays, min over ranks); "
        f"larger messages: eager loops. {table['timing_method']}",
        "",
        "| tokens | MiB | " + " | ".join(f"{s} SMs" for s in reversed(sms)) + " |",
        "|---:|---:|" + "---:|" * len(sms),
    ]
    for b, row in zip(sizes, table["time_s"], strict=True):
        cells = [f"{1e6 * t:.1f} ({busbw_gb_s(b, t, n0):.0f})" for t in reversed(row)]
        out.append(f"| {b // hidden_bytes} | {b / 2**20:.3g} | " + " | ".join(cells) + " |")
    ab = AlphaBeta(**table["alpha_beta"])
    fit = table["alpha_beta_fit"]
    out += [
        "",
        f"Alpha-beta fit ({fit['on']}): alpha_2 = {1e6 * ab.alpha2_s:.2f} us, "
        f"B = {ab.bus_bw_bytes_s / 1e9:.1f} GB/s; relative error median {fit['median_pct']}%, "
        f"max {fit['max_pct']}%. NCCL channels (CTAs) per communicator, from its INFO log: "
        f"{sorted(set(table['nccl_channels']))}.",
        "",
        "### Derived: ring transfer to 4 and 8 GPUs (whole GPU; not measured)",
        "",
        "t_n(S) = t_2,measured(S) x AB(n, S) / AB(2, S), AB(n, S) = (n-1) alpha_2 + "
        "2(n-1)/n S / B (`bulletsim/latency/collectives.py`). A100 / H100 columns also scale "
        "B by the datasheet NVLink ratio (derived twice).",
        "",
        "| tokens | H200 n=2 measured | H200 n=4 | H200 n=8 | H100 n=8 | A100 n=8 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    h200 = get_gpu("h200")
    secs = {
        ("h200", 4): section_for(table, 4),
        ("h200", 8): section_for(table, 8),
    }
    for g in ("h100", "a100"):
        ratio = get_gpu(g).interconnect_bytes_s / h200.interconnect_bytes_s
        secs[(g, 8)] = section_for(table, 8, ratio, f"{g} / h200 NVLink datasheet")
    full = len(sms) - 1
    for i, b in enumerate(sizes):
        cells = [f"{1e6 * table['time_s'][i][full]:.1f}"]
        cells += [f"{1e6 * secs[k]['time_s'][i][full]:.1f}" for k in secs]
        out.append(f"| {b // hidden_bytes} | " + " | ".join(cells) + " |")
    out += ["", *_corun_md(table), "", *_ctas_md(table)]
    return "\n".join(out) + "\n"


def _graph_max_tokens(table: dict) -> int:
    cells = table.get("cells_from_graph", [])
    return max((b for b, _ in cells), default=0) // (table["hidden"] * 2)


def _corun_md(table: dict) -> list[str]:
    rows = table.get("corun", [])
    if not rows:
        return []
    out = [
        "### Co-run: all-reduce on its partition beside a GEMM on the rest (measured)",
        "",
        "GEMM " + "x".join(map(str, rows[0]["gemm_mnk"])) + " (torch.mm); times inside the "
        "other's window against alone.",
        "",
        "| AR SMs | GEMM SMs | AR tokens | GEMM alone ms | with AR | slowdown | AR alone us "
        "| with GEMM | slowdown |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        g, a = r.get("gemm_corun_ms"), r.get("ar_corun_ms")
        gs = f"{g / r['gemm_alone_ms'] - 1:+.1%}" if g else "-"
        as_ = f"{a / r['ar_alone_ms'] - 1:+.1%}" if a else "-"
        out.append(
            f"| {r['ar_sms']} | {r['gemm_sms']} | {r['tokens']} | {r['gemm_alone_ms']:.3f} | "
            f"{g and f'{g:.3f}'} | {gs} | {1e3 * r['ar_alone_ms']:.1f} | "
            f"{a and f'{1e3 * a:.1f}'} | {as_} |"
        )
    return out


def _ctas_md(table: dict) -> list[str]:
    rows = table.get("max_ctas", [])
    if not rows:
        return []
    toks = sorted({r["tokens"] for r in rows})
    out = [
        "### All-reduce with NCCL's CTAs capped (`max_ctas`, whole GPU), us",
        "",
        "| max_ctas | " + " | ".join(f"{t} tokens" for t in toks) + " |",
        "|---:|" + "---:|" * len(toks),
    ]
    for c in sorted({r["max_ctas"] for r in rows}):
        cells = [
            f"{1e3 * next(r['ms'] for r in rows if r['max_ctas'] == c and r['tokens'] == t):.1f}"
            for t in toks
        ]
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    return out


def write_json(doc: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)


def _is_table(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _is_report(path: Path) -> bool:
    try:
        return path.read_text().startswith("### All-reduce, measured on ")
    except (OSError, ValueError):
        return False


def main() -> None:
    ap = ToolParser(prog="calibrate.collectives_fit", description=doc_summary(__doc__))
    ap.add_argument("run", type=Path, help="collectives.json of a device run")
    ap.add_argument("--out", type=Path, required=True, help="measured table to write")
    ap.add_argument("--report", type=Path, help="folder for collectives.md")
    args = ap.parse_args()
    out = require_writable_file(
        args.out, "--out", _is_table, "a bulletsim-collectives table", "h200__nccl-2gpu.json"
    )
    report = None
    if args.report:
        report = require_out_folder(args.report, "--report") / "collectives.md"
        if report.exists() and not _is_report(report):
            raise ValueError(f"--report: {report} exists and is not a collectives report")
    table = table_from_run(read_json(args.run, "collectives run", RUN_KEYS))
    text = report_md(table)
    write_json(table, out)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        tmp = report.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(report)
    print(text)


if __name__ == "__main__":
    run_tool(main)
