"""Bullet's simulated capacity per SM partition mechanism, paired by seed with chunked-2048.

    python results/mechanisms-h200/capacity_table.py results/mechanisms-h200

Reads `sweep-<mechanism>/capacity.csv` (bullet rows; chunked-2048 from the sweep that ran it)
and prints one markdown table: capacity mean [95% t-interval over seeds, widened by the
search resolution], and the paired ratio to chunked-2048 (geometric mean over seeds, as
`bulletsim sweep` computes its gain). The same seeds give the same requests in every sweep,
so the pairing across sweeps is exact.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bulletsim.intervals import mean_interval, ratio_interval

MECHANISMS = ("libsmctrl", "green", "mps", "none")
REL_TOL = 0.01  # the sweeps' --rel-tol


def seeds(row) -> list[float]:
    return [float(v) for v in str(row["capacity_per_seed"]).split(";")]


def table(root: Path) -> str:
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; give the folder holding the sweep-* folders")
    sweeps = {m: root / f"sweep-{m}" / "capacity.csv" for m in MECHANISMS}
    caps = {m: pd.read_csv(p) for m, p in sweeps.items() if p.is_file()}
    if not caps:
        raise ValueError(
            f"{root} holds no sweep-<mechanism>/capacity.csv (mechanisms: "
            f"{', '.join(MECHANISMS)}); run results/mechanisms-h200/regenerate.sh first"
        )
    base = pd.concat(caps.values())
    missing = [c for c in ("trace", "label", "capacity_per_seed") if c not in base]
    if missing:
        raise ValueError(f"the capacity.csv files under {root} lack {', '.join(missing)}")
    base = base[base["label"] == "chunked-2048"].drop_duplicates("trace").set_index("trace")
    if base.empty:
        raise ValueError(f"no chunked-2048 row in the capacity.csv files under {root} (the ref)")
    lines = [
        "| workload | mechanism | Bullet capacity (req/s) | vs chunked-2048 (paired) |",
        "|---|---|---:|---:|",
    ]
    for trace in base.index:
        ref = seeds(base.loc[trace])
        c = mean_interval(ref, REL_TOL)
        lines.append(f"| {trace} | (chunked-2048) | {c.point:.2f} [{c.lo:.2f}, {c.hi:.2f}] | 1 |")
        for m, df in caps.items():
            rows = df[(df["trace"] == trace) & df["label"].str.startswith("bullet")]
            if rows.empty:
                continue
            s = seeds(rows.iloc[0])
            c, r = mean_interval(s, REL_TOL), ratio_interval(s, ref, REL_TOL)
            lines.append(
                f"| {trace} | {m} | {c.point:.2f} [{c.lo:.2f}, {c.hi:.2f}] | "
                f"{r.point:.2f}x [{r.lo:.2f}, {r.hi:.2f}] |"
            )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2:
        raise ValueError("usage: capacity_table.py [RESULTS_FOLDER] (one folder at most)")
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)))


if __name__ == "__main__":
    from bulletsim.cli_errors import run_script

    run_script(main)
