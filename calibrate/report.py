"""Calibration report: a markdown summary and one figure (latency vs SMs, measured vs
predicted, residuals, co-run slowdowns). CPU only (matplotlib, Agg backend)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bulletsim.latency.profile import ProfileLatency  # noqa: E402
from bulletsim.latency.roofline import op_time_s  # noqa: E402
from calibrate.fit import row_op, row_shape  # noqa: E402


def predictions(doc: dict, df: pd.DataFrame) -> pd.DataFrame:
    """Per-kernel samples with the profile's and the bare SRM's predictions beside them."""
    pl = ProfileLatency(doc)
    ops = df[df["kind"] == "op"].copy()
    ops["pred_s"] = [
        pl.op_time(r["op"], row_shape(r), int(r["num_sms"])) for _, r in ops.iterrows()
    ]
    ops["srm_s"] = [
        op_time_s(row_op(r, pl.model), int(r["num_sms"]), pl.gpu, pl.params)
        for _, r in ops.iterrows()
    ]
    return ops


def figure(doc: dict, df: pd.DataFrame, ops: pd.DataFrame | None = None):
    ops = predictions(doc, df) if ops is None else ops
    pl = ProfileLatency(doc)
    fig, ax = plt.subplots(2, 3, figsize=(16, 9))
    sms_fine = np.arange(4, pl.total_sms + 1, 2)

    def curve(a, op, pick, label_fmt):
        sub = ops[(ops["op"] == op) & pick(ops)]
        for key, g in sub.groupby(label_fmt[1]):
            g = g.sort_values("num_sms")
            r = g.iloc[0]
            line = a.plot(
                g["num_sms"], 1e3 * g["time_s"], "o", ms=4, label=label_fmt[0].format(key)
            )[0]
            shape = row_shape(r)
            a.plot(
                sms_fine,
                [1e3 * pl.op_time(op, shape, int(n)) for n in sms_fine],
                "-",
                color=line.get_color(),
                lw=1,
            )
            a.plot(
                sms_fine,
                [1e3 * op_time_s(row_op(r, pl.model), int(n), pl.gpu, pl.params) for n in sms_fine],
                ":",
                color=line.get_color(),
                lw=1,
            )
        a.set_xlabel("SMs")
        a.set_ylabel("ms")
        a.set_yscale("log")
        a.legend(fontsize=7)

    prefill = ops["phase"] == "prefill"
    tok = ops["tokens"].isin([128, 512, 2048, 8192])
    curve(
        ax[0, 0], "gate_up", lambda d: prefill & tok & (d["split"] == "train"), ("T={}", "tokens")
    )
    ax[0, 0].set_title("gate_up GEMM (dots measured, line profile, dotted SRM)")
    curve(
        ax[0, 1],
        "attn_prefill",
        lambda d: prefill & tok & (d["split"] == "train"),
        ("T={}", "tokens"),
    )
    ax[0, 1].set_title("prefill attention")
    dec = (ops["phase"] == "decode") & (ops["split"] == "train")
    curve(
        ax[0, 2], "attn_decode", lambda d: dec & d["ctx"].isin([2048]), ("B={} ctx 2048", "batch")
    )
    ax[0, 2].set_title("decode attention")
    held = ops[ops["split"] == "heldout"]
    a = ax[1, 0]
    for op, g in held.groupby("op"):
        a.loglog(1e3 * g["time_s"], 1e3 * g["pred_s"], ".", ms=3, label=op)
    lim = (
        [1e3 * held["time_s"].min() / 1.5, 1e3 * held["time_s"].max() * 1.5]
        if len(held)
        else [1e-3, 1e2]
    )
    a.plot(lim, lim, "k-", lw=0.5)
    a.set_xlabel("measured ms (held out)")
    a.set_ylabel("predicted ms")
    a.legend(fontsize=6, ncol=2)
    a.set_title("held-out kernels: profile vs measured")
    a = ax[1, 1]
    if len(held):
        a.hist(100 * (held["pred_s"] / held["time_s"] - 1), bins=60, alpha=0.7, label="profile")
        a.hist(100 * (held["srm_s"] / held["time_s"] - 1), bins=60, alpha=0.5, label="SRM only")
    a.set_xlabel("error %")
    a.set_title("held-out residuals")
    a.legend()
    a = ax[1, 2]
    cor = df[df["kind"] == "corun"]
    c = doc["srm"]["contention"]
    share = np.linspace(0, 1, 50)
    for phase, slope, mk in (
        ("decode", c["mem_per_share"], "o"),
        ("prefill", c["compute_per_share"], "s"),
    ):
        g = cor[cor["phase"] == phase]
        if len(g):
            a.plot(
                g["co_sms"] / pl.total_sms, g["time_s"] / g["alone_s"], mk, label=f"{phase} victim"
            )
        a.plot(share, 1 + c["floor"] + slope * share, "-", lw=1)
    a.set_xlabel("co-runner share of SMs")
    a.set_ylabel("slowdown")
    a.set_title("co-run contention (lines: fit)")
    a.legend()
    fig.suptitle(
        f"{doc['meta']['gpu']} / {doc['meta']['model']} ({doc['meta']['kind']}, "
        f"{doc['meta']['mechanism']})"
    )
    fig.tight_layout()
    return fig


def write_report(doc: dict, df: pd.DataFrame, out: Path, marker: str | None = None) -> Path:
    """report.png and report.md in `out`, written atomically; `marker` (a provenance line,
    `calibrate.own_files.marker_line`) opens report.md and is stored in the PNG's metadata."""
    ops = predictions(doc, df)
    fig = figure(doc, df, ops)
    png = out / ".report.png.tmp"
    fig.savefig(png, dpi=90, format="png", metadata={"Description": marker} if marker else None)
    os.replace(png, out / "report.png")
    plt.close(fig)
    fit = doc["fit"]
    lines = [
        *([marker] if marker else []),
        f"# Calibration report: {doc['meta']['gpu']} / {doc['meta']['model']}",
        "",
        "```",
        json.dumps(
            {
                k: doc["meta"].get(k)
                for k in (
                    "kind",
                    "mechanism",
                    "granularity_sms",
                    "date",
                    "torch",
                    "cuda",
                    "driver",
                    "prefill_attention",
                    "decode_attention",
                    "sm_probe",
                    "grid",
                    "sweep_wall_s",
                )
            },
            indent=1,
        ),
        "```",
        "",
        "## Held-out errors (profile / bare SRM)",
        "",
        "| op | n | median % | MAPE % | max % | SRM median % | SRM max % |",
        "|---|---|---|---|---|---|---|",
    ]
    for op, e in fit["heldout_per_op"].items():
        s = fit["heldout_per_op_srm_only"][op]
        lines.append(
            f"| {op} | {e['n']} | {e['median_pct']} | {e['mape_pct']} | {e['max_pct']} "
            f"| {s['median_pct']} | {s['max_pct']} |"
        )
    summ = fit["summary"]
    lines += [
        "",
        "## Whole layers, steps, co-runs",
        "",
        "```",
        json.dumps(summ, indent=1),
        "```",
        "",
        "## Fitted SRM",
        "",
        "```",
        json.dumps(doc["srm"], indent=1),
        "```",
        "",
        f"Non-monotonic points kept as measured (time rose with more SMs, > 2%): "
        f"{len(fit['nonmonotonic'])}",
        "",
    ]
    for p in fit["nonmonotonic"][:30]:
        lines.append(
            f"- {p['op']} T={p['tokens']}: {p['sms_from']} -> {p['sms_to']} SMs, "
            f"+{p['slower_pct']}%"
        )
    faults = fit.get("kernel_choice_faults", {}).get("dropped", [])
    lines += [
        "",
        f"Kernel-choice faults dropped before the fit ({len(faults)}; rule: "
        f"{fit.get('kernel_choice_faults', {}).get('rule', '-')}):",
        "",
    ]
    for f in faults:
        b = f["faster_larger"]
        lines.append(
            f"- {f['phase']} {f['op']} {f['rows']} rows on {f['num_sms']} SMs: {f['kernel']} "
            f"{f['time_us']} us, while {b['rows']} rows ran on {b['kernel']} in {b['time_us']} us"
        )
    lines += ["", "![report](report.png)", ""]
    path = out / "report.md"
    tmp = out / ".report.md.tmp"
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path
