"""A TP shard profile for another tensor-parallel degree of the same model, GPU and kernels,
derived from an installed measured one by the fitted SRM's shape ratio, with the group's
all-reduce attached; written to bulletsim/data/profiles/<gpu>__<model>__tp<tp>.json (CPU only).

    python -m calibrate.derive_shard --from-tp 4 --tp 8 [--gpu h200 --model llama-3.1-70b]
        [--collectives bulletsim/data/collectives/h200__nccl-2gpu.json]

Per grid cell (kernel k, axis value x, n SMs), with M_s / M_t the two shard shapes:

    t_t(k, x, n) = t_s(k, x, n) * SRM(k on M_t, x, n) / SRM(k on M_s, x, n)

the GEMMs' N or K, the heads of attention and the vocabulary slice shrink by the tp ratio;
the fitted SRM (alpha, knee, tile) prices that change, the measured deviation from the SRM
at the same (x, n) carries over. Used when the target shard itself was not measured (issue
13: the TP-8 sweep of round R3 stopped after 81 samples); the profile says so
(`kind: derived`, `derived_from.tp`). The all-reduce is not scaled from the source's: the
measured NCCL table (--collectives) is attached for the target tp by
`calibrate.shard_profile.attach` (ring transfer, labelled derived), so a run prices it. A
measured profile at the target is never replaced.
"""

from __future__ import annotations

import copy
from pathlib import Path

from bulletsim.cli_errors import doc_summary
from bulletsim.latency.ops import linear_ops
from bulletsim.latency.profile import (
    LINEAR_OPS,
    PROFILE_DIR,
    ProfileLatency,
    find_profile,
    profile_filename,
    read_profile,
    srm_from_dict,
    write_profile,
)
from bulletsim.latency.roofline import op_time_s
from bulletsim.models import get_model
from calibrate.tool_cli import ToolParser, run_tool


def derive_tp(doc: dict, tp: int) -> dict:
    """A derived profile document for `tp` from the measured shard profile `doc`."""
    if doc["meta"]["kind"] != "measured":
        raise ValueError("derive from a measured shard profile, not from a derived one")
    src = ProfileLatency(doc)
    gpu, m_s = src.gpu, src.model
    m_t = get_model(m_s.name, tp)
    dst = ProfileLatency({**doc, "meta": {**doc["meta"], "tp": tp}, "collectives": {}}, gpu, m_t)
    params = srm_from_dict(doc["srm"])
    sms = doc["grid"]["sms"]

    def scale(op_s, op_t, row):
        out = []
        for t, n in zip(row, sms, strict=True):
            if t is not None:
                t *= op_time_s(op_t(), n, gpu, params) / op_time_s(op_s(), n, gpu, params)
            out.append(t)
        return out

    grid = copy.deepcopy(doc["grid"])
    lin = grid["linear"]
    for k, name in enumerate(LINEAR_OPS):
        lin["ops"][name] = [
            scale(lambda x=x, k=k: linear_ops(m_s, int(x))[k],
                  lambda x=x, k=k: linear_ops(m_t, int(x))[k], row)
            for x, row in zip(lin["tokens"], doc["grid"]["linear"]["ops"][name], strict=True)
        ]  # fmt: skip
    for key, axis, a, b in (
        ("final_norm", "tokens", src.final_norm_op, dst.final_norm_op),
        ("lm_head", "rows", src.lm_head_op, dst.lm_head_op),
        ("attn_prefill", "pairs", src.attn_prefill_op, dst.attn_prefill_op),
    ):
        g = grid[key]
        g["time_s"] = [
            scale(lambda x=x, a=a: a(x), lambda x=x, b=b: b(x), row)
            for x, row in zip(g[axis], doc["grid"][key]["time_s"], strict=True)
        ]
    ad = grid["attn_decode"]
    ad["time_s"] = [
        [
            scale(lambda c=c, bb=bb: src.attn_decode_op(bb, bb * (c + 1)),
                  lambda c=c, bb=bb: dst.attn_decode_op(bb, bb * (c + 1)), row)
            for c, row in zip(ad["ctx"], plane, strict=True)
        ]
        for bb, plane in zip(ad["batch"], doc["grid"]["attn_decode"]["time_s"], strict=True)
    ]  # fmt: skip
    meta_s = doc["meta"]
    meta = {
        **{k: v for k, v in meta_s.items() if k not in ("parts", "kernels")},
        "tp": tp,
        "kind": "derived",
        "derived_from": {
            "gpu": gpu.name,
            "tp": m_s.tp,
            "kind": "measured",
            "date": meta_s["date"],
            "calibrate_source_sha256": meta_s.get("calibrate_source_sha256"),
        },
        "transfer": (
            f"TP-{m_s.tp} -> TP-{tp} shard shapes: t_t(k,x,n) = t_s(k,x,n) * SRM(k on the "
            f"TP-{tp} shard) / SRM(k on the TP-{m_s.tp} shard) at the same x and n, the measured "
            "fit's alpha, knee and tile (calibrate/derive_shard.py)"
        ),
        "measured_vs_derived": "derived",
        "kernels_of_source": meta_s.get("kernels", {}).get("chosen_per_op"),
        "shard_shapes": {
            "q_heads": m_t.q_heads_per_gpu,
            "kv_heads": m_t.kv_heads_per_gpu,
            "intermediate": m_t.intermediate_size // tp,
            "vocab": m_t.vocab_size // tp,
        },
    }
    return {
        "format": doc["format"],
        "version": doc["version"],
        "meta": meta,
        "gpu_spec": doc["gpu_spec"],
        "srm": doc["srm"],
        "exec": doc.get("exec", {}),
        "grid": grid,
        "fit": {
            "summary": {"note": f"derived from the measured TP-{m_s.tp} shard: no TP-{tp} "
                        "samples; the source's held-out errors are in source_summary"},
            "source_summary": doc.get("fit", {}).get("summary", {}),
        },
    }  # fmt: skip


def main() -> None:
    from calibrate.shard_profile import COLLECTIVES_DIR, attach, read_table

    ap = ToolParser(
        prog="calibrate.derive_shard",
        description=doc_summary(__doc__),
        epilog="Writes bulletsim/data/profiles/<gpu>__<model>__tp<tp>.json (the profile a "
        "run with --tp <tp> reads); never replaces a measured profile there.",
    )
    ap.add_argument("--gpu", default="h200", help="GPU of the installed source (default h200)")
    ap.add_argument("--model", default="llama-3.1-70b", help="model (default llama-3.1-70b)")
    ap.add_argument("--from-tp", type=int, required=True, help="tp of the measured source")
    ap.add_argument("--tp", type=int, required=True, help="tp to derive")
    ap.add_argument(
        "--collectives",
        type=Path,
        default=COLLECTIVES_DIR / "h200__nccl-2gpu.json",
        help="measured NCCL table whose all-reduce is attached for --tp "
        "(default: the installed 2-H200 table)",
    )
    a = ap.parse_args()
    from bulletsim.hardware import get_gpu
    from bulletsim.latency.profile_format import installed_tps

    gpu, model = get_gpu(a.gpu).name, get_model(a.model).name
    get_model(model, a.from_tp), get_model(model, a.tp)  # valid degrees, or the valid choices
    if a.tp == a.from_tp:
        raise ValueError(f"--tp {a.tp} equals --from-tp; give another degree to derive")
    if a.tp < 2:
        raise ValueError("--tp 1 is a single-GPU profile (calibrate it); derive tp >= 2")
    path = find_profile(gpu, model, tp=a.from_tp)
    if path is None:
        have = ", ".join(map(str, installed_tps(gpu, model))) or "none"
        raise ValueError(
            f"no profile for {gpu} / {model} at tp={a.from_tp} in {PROFILE_DIR}; "
            f"installed tp: {have}"
        )
    target = PROFILE_DIR / profile_filename(gpu, model, a.tp)
    if target.exists() and read_profile(target)["meta"]["kind"] == "measured":
        raise ValueError(
            f"{target} is a measured profile; a derived one does not replace it (remove it "
            "yourself if that is what you want)"
        )
    table = read_table(a.collectives)
    doc = read_profile(path)
    doc.pop("collectives", None)
    try:
        out = attach(derive_tp(doc, a.tp), table)
    except (KeyError, TypeError) as e:
        raise ValueError(f"collectives table {a.collectives} is malformed ({e!r})") from None
    print(write_profile(out, target))
    print(f"all-reduce: {out['meta']['parts']['allreduce']}")


if __name__ == "__main__":
    run_tool(main)
