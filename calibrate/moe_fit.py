"""Fit the Qwen3-235B-A22B per-GPU profiles from a MoE device round (CPU only).

    python -m calibrate.moe_fit ROUND_DIR --out results/large-models/qwen3-235b-a22b [--install]

ROUND_DIR holds `calibrate.moe_calibrate`'s jobs (`tp8/`, `ep8/`, each with `uniform/` and
`zipf/` samples + meta.json). Per layout: the measured H200 profile is fitted by
`calibrate.fit.fit_profile` on the uniform samples (held-out SM counts, token counts and
whole steps as for the 8B profile); then the skewed (`zipf:0.6`) samples, which the fit never
saw, are predicted twice — by the profile as measured (uniform loads) and rerouted to zipf
(`bulletsim.latency.moe_profile.reroute`) — so the file says how much the imbalance pricing
recovers. The H20 profile is derived from it (`calibrate.derive.derive`, datasheet ratios,
labelled derived). With --collectives (helper "large"'s measured 2-GPU NCCL table) the
group's all-reduce is attached (`calibrate.shard_profile.attach`: ring transfer to 8 GPUs,
labelled derived). Writes `<out>/<layout>/` (profile JSONs, samples parquet, fit summary)
and, with --install, copies the profiles into `bulletsim/data/profiles/`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from bulletsim.hardware import get_gpu
from bulletsim.latency.profile import PROFILE_DIR, ProfileLatency, write_profile
from bulletsim.latency.profile_format import profile_filename
from bulletsim.models import ModelSpec, get_model
from calibrate.fit import _err_stats, fit_profile, row_shape
from calibrate.samples import load_samples, to_parquet

LAYOUTS = {"tp8": "qwen3-235b-a22b", "ep8": "qwen3-235b-a22b-ep8"}
SKEW = "zipf:0.6"


def profile_name(gpu: str, model: ModelSpec) -> str:
    """`<gpu>__<model>__tp<tp>.json`: the name the tp > 1 profile lookup reads."""
    return profile_filename(gpu, model.name, model.tp)


KEY_COLS = ("op", "phase", "tokens", "num_sms", "batch", "ctx", "num_seqs")


def skew_ratios(uniform, skewed, as_measured, rerouted) -> dict:
    """Measured zipf / uniform time of each MoE op point measured both ways, against the
    ratio the rerouted profile predicts: the imbalance pricing tested on its own."""
    cols = [c for c in KEY_COLS if c in uniform.columns and c in skewed.columns]
    ops = ("gate_up", "down")
    u = uniform[(uniform["kind"] == "op") & uniform["op"].isin(ops)]
    z = skewed[(skewed["kind"] == "op") & skewed["op"].isin(ops)]
    both = z.merge(u[[*cols, "time_s"]], on=cols, suffixes=("_z", "_u"))
    rows = []
    for _, r in both.iterrows():
        shape, n = row_shape(r), int(r["num_sms"])
        pred = rerouted.op_time(r["op"], shape, n) / as_measured.op_time(r["op"], shape, n)
        meas = r["time_s_z"] / r["time_s_u"]
        rows.append(
            {
                "op": r["op"],
                "phase": r["phase"],
                "tokens": int(r["tokens"]),
                "num_sms": n,
                "measured": round(meas, 4),
                "predicted": round(pred, 4),
            }
        )
    ape = np.array([abs(x["predicted"] / x["measured"] - 1) for x in rows])
    return {"n": len(rows), "ratio_error": _err_stats(ape), "points": rows}


def routing_check(doc: dict, samples, model: ModelSpec, uniform=None) -> dict:
    """Errors of the profile on skewed-routing samples: as measured (uniform loads) vs
    rerouted to the samples' routing; per MoE op and per whole layer (and, given the
    uniform samples, the zipf / uniform ratios point by point)."""
    gpu = get_gpu(doc["meta"]["gpu"])
    as_measured = ProfileLatency(doc, gpu, model)
    rerouted = ProfileLatency(doc, gpu, replace(model, moe_routing=SKEW))
    out: dict = {"routing": SKEW}
    for name, pl in (("as_measured", as_measured), ("rerouted", rerouted)):
        res: dict = {}
        for op in ("gate_up", "down"):
            rows = samples[(samples["kind"] == "op") & (samples["op"] == op)]
            ape = [
                abs(pl.op_time(op, row_shape(r), int(r["num_sms"])) / r["time_s"] - 1)
                for _, r in rows.iterrows()
            ]
            res[op] = _err_stats(np.array(ape))
        lay = samples[samples["kind"] == "layer"]
        ape = []
        for _, r in lay.iterrows():
            shape = replace(row_shape(r), num_layers=1, logits_tokens=0)
            pred = pl.predict(shape, int(r["num_sms"]))
            if r["phase"] == "decode":
                pred += pl.graph_saving_s  # layer samples are eager; predict assumes a graph
            ape.append(abs(pred / r["time_s"] - 1))
        res["layers"] = _err_stats(np.array(ape))
        out[name] = res
    if uniform is not None:
        out["skew_ratio"] = skew_ratios(uniform, samples, as_measured, rerouted)
    return out


def fit_layout(src: Path, out: Path, install: bool, collectives: dict | None = None) -> dict:
    """Fit one layout's profile, check it on the skewed samples, derive H20; returns the
    summary written to `<out>/fit_summary.json`."""
    meta = json.loads((src / "uniform" / "meta.json").read_text())
    model = get_model(meta["model"])
    meta = {**meta, "tp": model.tp}
    gpu = get_gpu(meta["gpu"])
    df = load_samples(src / "uniform" / "samples.jsonl")
    doc = fit_profile(df, model, gpu, meta)
    summary: dict = {"layout": src.name, "model": model.name, "fit": doc["fit"]["summary"]}
    out.mkdir(parents=True, exist_ok=True)
    skew_file = src / "zipf" / "samples.jsonl"
    if skew_file.exists():
        skew = load_samples(skew_file)
        check = routing_check(doc, skew, model, df)
        doc["fit"]["routing_check"] = check
        summary["routing_check"] = {k: v for k, v in check.items() if k != "skew_ratio"}
        if "skew_ratio" in check:
            summary["routing_check"]["skew_ratio_error"] = check["skew_ratio"]["ratio_error"]
        to_parquet(skew, out / "samples_zipf.parquet")
    to_parquet(df, out / "samples_uniform.parquet")
    if collectives is not None:  # the group's all-reduce (measured 2-GPU table, ring transfer)
        from calibrate.shard_profile import attach

        doc = attach(doc, collectives)
    path = write_profile(doc, out / profile_name(gpu.name, model))
    from calibrate.derive import derive

    h20 = derive(doc, get_gpu("h20"))
    h20_path = write_profile(h20, out / profile_name("h20", model))
    summary["h20_error_estimate"] = h20["meta"].get("error_estimate", {}).get("summary_line")
    if install:
        for p in (path, h20_path):
            shutil.copyfile(p, PROFILE_DIR / p.name)
    (out / "fit_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("round_dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--install", action="store_true")
    ap.add_argument("--collectives", type=Path, help="measured NCCL table to attach")
    args = ap.parse_args()
    table = json.loads(args.collectives.read_text()) if args.collectives else None
    for layout in LAYOUTS:
        src = args.round_dir / layout
        if not (src / "uniform" / "meta.json").exists():
            print(f"{layout}: no samples under {src}")
            continue
        s = fit_layout(src, args.out / layout, args.install, table)
        print(json.dumps(s, indent=1))


if __name__ == "__main__":
    main()
