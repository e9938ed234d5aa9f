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
and, with --install, copies the profiles into `bulletsim/data/profiles/`. Each file carries
the tool's provenance marker (`written_by: calibrate.moe_fit`: the JSON's / profile meta's key,
the parquet schema's metadata); a file of those names without it, in any layout's folder or
among the installed profiles, stops the tool before it writes anything
(`calibrate.own_files`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from bulletsim.files import require_file
from bulletsim.hardware import get_gpu
from bulletsim.latency.profile import PROFILE_DIR, ProfileLatency, write_profile
from bulletsim.latency.profile_format import profile_filename
from bulletsim.models import ModelSpec, get_model
from calibrate.fit import _err_stats, fit_profile, row_shape
from calibrate.own_files import (
    check_outputs,
    is_own_json,
    is_own_parquet,
    is_own_profile,
    write_json_atomic,
    write_parquet_atomic,
)
from calibrate.samples import load_samples
from calibrate.tool_cli import (
    ToolParser,
    doc_summary,
    read_json,
    require_folder,
    require_out_folder,
    run_tool,
)

LAYOUTS = {"tp8": "qwen3-235b-a22b", "ep8": "qwen3-235b-a22b-ep8"}
SKEW = "zipf:0.6"
TOOL = "calibrate.moe_fit"
FIT_GPUS = ("h200", "h20")  # the measured profile's GPU and the derived one's


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


def fit_layout(
    src: Path, out: Path, install: bool, collectives: dict | None = None, folder: Path | None = None
) -> dict:
    """Fit one layout's profile, check it on the skewed samples, derive H20; returns the
    summary written to `<out>/fit_summary.json`."""
    meta = read_json(src / "uniform" / "meta.json", "samples meta", ("model", "gpu"))
    model = get_model(meta["model"])
    meta = {**meta, "tp": model.tp}
    gpu = get_gpu(meta["gpu"])
    df = _samples(src / "uniform" / "samples.jsonl")
    try:
        doc = fit_profile(df, model, gpu, meta)
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"samples in {src / 'uniform'} cannot be fitted ({e!r})") from None
    summary: dict = {"layout": src.name, "model": model.name, "fit": doc["fit"]["summary"]}
    out.mkdir(parents=True, exist_ok=True)
    skew_file = src / "zipf" / "samples.jsonl"
    if skew_file.exists():
        skew = _samples(skew_file)
        check = routing_check(doc, skew, model, df)
        doc["fit"]["routing_check"] = check
        summary["routing_check"] = {k: v for k, v in check.items() if k != "skew_ratio"}
        if "skew_ratio" in check:
            summary["routing_check"]["skew_ratio_error"] = check["skew_ratio"]["ratio_error"]
        write_parquet_atomic(out / "samples_zipf.parquet", TOOL, skew)
    write_parquet_atomic(out / "samples_uniform.parquet", TOOL, df)
    if collectives is not None:  # the group's all-reduce (measured 2-GPU table, ring transfer)
        from calibrate.shard_profile import attach

        doc = attach(doc, collectives)
    doc["meta"]["written_by"] = TOOL
    path = write_profile(doc, out / profile_name(gpu.name, model))
    from calibrate.derive import derive

    h20 = derive(doc, get_gpu("h20"))
    h20["meta"]["written_by"] = TOOL
    h20_path = write_profile(h20, out / profile_name("h20", model))
    summary["h20_error_estimate"] = h20["meta"].get("error_estimate", {}).get("summary_line")
    if install:
        from calibrate.install import install as install_profile

        for p, d in ((path, doc), (h20_path, h20)):
            # an installed profile there got through check_targets: --replace, and the tool's own
            for line in install_profile(d, p, None, True, folder or PROFILE_DIR):
                print(line)
    write_json_atomic(out / "fit_summary.json", TOOL, summary)
    return summary


def owned_files(model: ModelSpec) -> dict:
    """Name -> recogniser of every file `fit_layout` writes in a layout's folder."""
    prof = {profile_name(g, model): (lambda p: is_own_profile(p, TOOL)) for g in FIT_GPUS}
    return {
        "fit_summary.json": lambda p: is_own_json(p, TOOL),
        "samples_uniform.parquet": lambda p: is_own_parquet(p, TOOL),
        "samples_zipf.parquet": lambda p: is_own_parquet(p, TOOL),
        **prof,
    }


def check_targets(
    root: Path,
    out: Path,
    layouts: list[str],
    install: bool,
    replace: bool = False,
    folder: Path | None = None,
) -> None:
    """ValueError naming the first file of a layout's folder (or, with `install`, of the
    installed profiles) that the tool would replace but did not write; with `install`, an
    installed profile is replaced only with `replace` (its sections the fit does not produce,
    e.g. `collectives`, are then kept)."""
    folder = folder or PROFILE_DIR
    for layout in layouts:
        model = get_model(LAYOUTS[layout])
        check_outputs(out / layout, owned_files(model), TOOL)
        if install:
            profiles = {k: v for k, v in owned_files(model).items() if k.endswith("json")}
            profiles.pop("fit_summary.json")
            check_outputs(folder, profiles, TOOL)
            there = [n for n in profiles if (folder / n).is_file()]
            if there and not replace:
                raise ValueError(
                    f"{folder / there[0]} is already installed; --install does not replace it: "
                    "add --replace (its sections the fit does not produce, e.g. collectives, "
                    "are kept), or leave --install out"
                )


# Columns the fit reads of every sample (calibrate.samples writes them).
SAMPLE_COLS = ("key", "kind", "op", "phase", "tokens", "num_sms", "time_s")


def _samples(path: Path):
    """A layout's samples, or a one-line error: missing, a folder, empty, wrong columns."""
    df = load_samples(require_file(path, "samples file"))
    if df.empty:
        raise ValueError(f"samples file {path} holds no completed samples")
    missing = [c for c in SAMPLE_COLS if c not in df.columns]
    if missing:
        raise ValueError(f"samples file {path} lacks columns {', '.join(missing)}")
    return df


def main() -> None:
    ap = ToolParser(prog="calibrate.moe_fit", description=doc_summary(__doc__))
    ap.add_argument("round_dir", type=Path, help="a MoE device round's folder (tp8/, ep8/)")
    ap.add_argument("--out", type=Path, required=True, help="folder for <layout>/ outputs")
    ap.add_argument("--install", action="store_true", help="copy the profiles into the package")
    ap.add_argument(
        "--replace",
        action="store_true",
        help="with --install: replace installed profiles (keeping what the fit does not make)",
    )
    ap.add_argument("--collectives", type=Path, help="measured NCCL table to attach")
    args = ap.parse_args()
    root = require_folder(args.round_dir, "round folder")
    out = require_out_folder(args.out, "--out")
    table = None
    if args.collectives:
        from calibrate.shard_profile import read_table

        table = read_table(args.collectives)
    found = [layout for layout in LAYOUTS if (root / layout / "uniform").is_dir()]
    if not found:
        raise ValueError(
            f"no MoE samples in {root}: expected {' or '.join(f'{x}/uniform/' for x in LAYOUTS)}"
            " with meta.json and samples.jsonl (calibrate.moe_calibrate --job tp8|ep8)"
        )
    if args.replace and not args.install:
        raise ValueError("--replace applies only with --install")
    check_targets(root, out, found, args.install, args.replace)
    for layout in LAYOUTS:
        if layout not in found:
            print(f"note: {layout}: no samples under {root / layout}; skipped", file=sys.stderr)
            continue
        s = fit_layout(root / layout, out / layout, args.install, table)
        print(json.dumps(s, indent=1))


if __name__ == "__main__":
    run_tool(main)
