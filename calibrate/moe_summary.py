"""Print the short table that ends a MoE device round (`devrun.sh`): reads what the parts
wrote under OUTDIR (moe_check.json, moe_time.json, moe_model.json, <job>/*/samples.jsonl).

    python3 -m calibrate.moe_summary OUTDIR
"""

from __future__ import annotations

import json
from pathlib import Path


def main(out: Path) -> None:
    chk = out / "moe_check.json"
    if chk.exists():
        rows = json.loads(chk.read_text())["result"]
        bad = [r for r in rows if not r.get("ok")]
        worst = max((r.get("block_rel_err", r.get("rel_err", 0)) for r in rows), default=0)
        print(f"checks: {len(rows) - len(bad)}/{len(rows)} ok, worst rel err {worst:.2e}")
        for r in bad[:6]:
            print("  FAILED", r)
    tim = out / "moe_time.json"
    if tim.exists():
        rows = json.loads(tim.read_text())["result"]
        print("gate_up grouped GEMM ms (TFLOP/s) by path; layout routing tokens SMs")
        key: dict = {}
        for r in rows:
            k = (r["layout"], r["routing"], r["tokens"], r["num_sms"])
            key.setdefault(k, {})[r["path"]] = r
        for k, paths in sorted(key.items()):
            cells = [f"{p} {r['gate_up_ms']:.3f} ({r['tflops']:.0f})" for p, r in paths.items()]
            print(f"  {k[0]} {k[1]:8} T={k[2]:5} {k[3]:3} SMs: " + "; ".join(cells))
    mod = out / "moe_model.json"
    if mod.exists():
        for k, v in json.loads(mod.read_text())["result"].items():
            print(f"model {k}: check {v['check']} graph {v.get('graph_ms_64sms')}")
    probe = out / "probe" / "probe.json"
    if probe.exists():
        print(f"probe: {probe.read_text().strip()}")
    for s in sorted(out.glob("*/*/samples.jsonl")):
        n = sum(1 for line in s.read_text().splitlines() if line.strip())
        meta = s.parent / "meta.json"
        wall = json.loads(meta.read_text())["sweep_wall_s"] if meta.exists() else "no meta"
        print(f"samples {s.parent.relative_to(out)}: {n} (sweep {wall} s)")


def cli() -> None:
    from calibrate.tool_cli import ToolParser, doc_summary, require_folder

    ap = ToolParser(prog="calibrate.moe_summary", description=doc_summary(__doc__))
    ap.add_argument("outdir", type=Path, help="the round's OUTDIR")
    main(require_folder(ap.parse_args().outdir, "OUTDIR"))


if __name__ == "__main__":
    from calibrate.tool_cli import run_tool

    run_tool(cli)
