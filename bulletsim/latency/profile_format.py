"""The latency-profile file: format constants, validation, reading and writing.

A profile (`bulletsim/data/profiles/<gpu>__<model>.json`, written by `bulletsim calibrate`)
holds, for one GPU and one model:
- `meta`: provenance — measured (GPU, driver, CUDA, torch, mechanism, granularity, timing
  method, the kernel behind every op, date, git sha) or derived (from which measured profile,
  by which transfer, with which error estimate);
- `gpu_spec` and `srm`: the datasheet numbers and the fitted SRM parameters
  (`bulletsim.latency.roofline.SRMParams`), so the profile predicts anywhere;
- `grid`: measured seconds per kernel on a grid (tokens x SMs for the linear kernels, pairs x
  SMs for prefill attention, batch x context x SMs for decode attention, rows x SMs for the
  lm_head), read by `log_grid.LogGrid` and written by `log_grid.build_grid`;
- `exec`: execution effects (CUDA-graph saving of decode steps; optional `kernel_scale`
  fitted on live runs; optional `decode_graph_buckets`, the batch sizes the engine's decode
  graphs were captured at, `graph_buckets`, and `eager_prefill_attention`, the measured
  factor of the engine's eager prefill kernel over the profile's, `eager_attention`; optional
  `decode_graph_bucket_scale`, live-fitted factors of graph decode steps per (SMs, bucket),
  `graph_scale`);
- `host` (optional): host launch and gap costs fitted on live runs (`host.HostParams`);
- `fit`: held-out errors and the co-run table behind the contention parameters.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

from bulletsim.files import require_file
from bulletsim.hardware import GPUSpec, get_gpu, resolve_mechanism
from bulletsim.latency.contention import ContentionParams
from bulletsim.latency.eager_attention import EagerPrefillAttention
from bulletsim.latency.graph_buckets import check_buckets
from bulletsim.latency.graph_scale import check_scale_keys, check_scale_table
from bulletsim.latency.host import host_from_dict
from bulletsim.latency.roofline import SRMParams

FORMAT = "bulletsim-latency-profile"
VERSION = 1
PROFILE_DIR = Path(__file__).resolve().parent.parent / "data" / "profiles"
LINEAR_OPS = ("qkv", "o", "gate_up", "down", "norm_rope_act")
KINDS = ("measured", "derived")
REQUIRED_META = (
    "gpu",
    "model",
    "kind",
    "num_sms",
    "mechanism",
    "granularity_sms",
    "timing_method",
    "date",
)


# A profile's identity is (GPU, model, tp, SM partition mechanism): green contexts (what the
# calibrator and the live engine use by default) keep the plain name, any other mechanism's
# profile is installed beside it, never over it.
DEFAULT_MECHANISM = "green-ctx"


def profile_filename(gpu: str, model: str, tp: int = 1, mechanism: str = DEFAULT_MECHANISM) -> str:
    """`<gpu>__<model>.json`; a tensor-parallel shard profile (one GPU of a TP group, with
    the group's all-reduces) is `<gpu>__<model>__tp<tp>.json`; a profile measured under a
    mechanism other than green contexts adds it: `<gpu>__<model>[__tp<tp>].<mechanism>.json`
    (`mechanism` any alias, `hardware.resolve_mechanism`)."""
    base = f"{gpu}__{model}" if tp == 1 else f"{gpu}__{model}__tp{tp}"
    m = resolve_mechanism(mechanism)
    return f"{base}.json" if m == DEFAULT_MECHANISM else f"{base}.{m}.json"


def find_profile(
    gpu: str,
    model: str,
    directory: Path | None = None,
    tp: int = 1,
    mechanism: str = DEFAULT_MECHANISM,
) -> Path | None:
    """Path of the installed profile for (gpu, model, tp, mechanism), or None. Names are
    case-insensitive and GPU aliases resolve ("H200-SXM" -> h200)."""
    try:
        gpu_name = get_gpu(gpu).name
    except ValueError:
        gpu_name = gpu.strip().lower()
    name = profile_filename(gpu_name, model.strip().lower(), tp, mechanism)
    path = (directory or PROFILE_DIR) / name
    return path if path.is_file() else None


def profile_mechanism(doc: dict) -> str:
    """The SM partition mechanism a profile was measured under (canonical name)."""
    return resolve_mechanism(doc["meta"]["mechanism"])


def installed_tps(gpu: str, model: str, directory: Path | None = None) -> list[int]:
    """Tensor-parallel degrees with an installed profile for (gpu, model), ascending."""
    return [tp for tp in range(1, 65) if find_profile(gpu, model, directory, tp) is not None]


def installed_for_model(model: str, directory: Path | None = None) -> list[tuple[str, int]]:
    """(GPU, tp) of every installed profile of `model`, sorted (`<gpu>__<model>[__tpN].json`)."""
    model = model.strip().lower()
    out = []
    for p in (directory or PROFILE_DIR).glob("*.json"):
        parts = p.stem.split("__")
        if len(parts) >= 2 and parts[1] == model:
            tp = parts[2][2:] if len(parts) == 3 and parts[2].startswith("tp") else "1"
            if tp.isdigit():
                out.append((parts[0], int(tp)))
    return sorted(out)


def srm_to_dict(p: SRMParams) -> dict:
    d = asdict(p)
    d["gemm_tile_mn"] = list(p.gemm_tile_mn)
    return d


def srm_from_dict(d: dict) -> SRMParams:
    d = dict(d)
    valid = {f.name for f in fields(SRMParams)}
    unknown = set(d) - valid
    if unknown:
        raise ValueError(f"unknown SRM parameters {sorted(unknown)}; valid: {sorted(valid)}")
    if "contention" in d:
        d["contention"] = ContentionParams(**d["contention"])
    if "gemm_tile_mn" in d:
        d["gemm_tile_mn"] = tuple(d["gemm_tile_mn"])
    return SRMParams(**d)


def gpu_from_dict(d: dict) -> GPUSpec:
    return GPUSpec(**d)


def validate(doc: dict, source: str = "profile") -> None:
    """Raise ValueError (one line, says what is wrong) unless `doc` is a valid profile."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{source}: not a bulletsim latency profile (format != {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ValueError(
            f"{source}: profile version {doc.get('version')!r} unsupported; this bulletsim "
            f"reads version {VERSION}"
        )
    missing = [k for k in ("meta", "gpu_spec", "srm", "grid", "exec") if k not in doc]
    if missing:
        raise ValueError(f"{source}: missing sections {missing}")
    meta = doc["meta"]
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"{source}: meta lacks {missing}")
    if meta["kind"] not in KINDS:
        raise ValueError(f"{source}: meta.kind must be one of {KINDS}, got {meta['kind']!r}")
    if meta["kind"] == "derived" and not meta.get("derived_from"):
        raise ValueError(f"{source}: a derived profile must name `derived_from`")
    if meta["num_sms"] != doc["gpu_spec"].get("num_sms"):
        raise ValueError(f"{source}: meta.num_sms != gpu_spec.num_sms")
    grid = doc["grid"]
    sms = grid.get("sms")
    if not sms or sorted(sms) != sms or sms[-1] > meta["num_sms"] or sms[0] < 1:
        raise ValueError(f"{source}: grid.sms must be increasing SM counts within 1..num_sms")
    n = len(sms)

    def check_2d(name: str, axis: list, values: list) -> None:
        if sorted(axis) != axis or len(set(axis)) != len(axis):
            raise ValueError(f"{source}: grid {name} axis must be strictly increasing")
        if len(values) != len(axis) or any(len(row) != n for row in values):
            raise ValueError(f"{source}: grid {name} must be {len(axis)} x {n} (axis x sms)")
        for row in values:
            for v in row:
                if v is not None and not (isinstance(v, (int, float)) and v > 0):
                    raise ValueError(f"{source}: grid {name} holds a non-positive time {v!r}")

    lin = grid["linear"]
    for op in LINEAR_OPS:
        if op not in lin["ops"]:
            raise ValueError(f"{source}: grid.linear lacks op {op!r}")
        check_2d(f"linear.{op}", lin["tokens"], lin["ops"][op])
    check_2d("final_norm", grid["final_norm"]["tokens"], grid["final_norm"]["time_s"])
    check_2d("lm_head", grid["lm_head"]["rows"], grid["lm_head"]["time_s"])
    check_2d("attn_prefill", grid["attn_prefill"]["pairs"], grid["attn_prefill"]["time_s"])
    dec = grid["attn_decode"]
    if len(dec["time_s"]) != len(dec["batch"]):
        raise ValueError(f"{source}: grid attn_decode must be batch x ctx x sms")
    for b_i, plane in enumerate(dec["time_s"]):
        check_2d(f"attn_decode[batch={dec['batch'][b_i]}]", dec["ctx"], plane)
    exec_ = doc["exec"]
    if not isinstance(exec_, dict) or "decode_graph_saving_per_layer_s" not in exec_:
        # every calibrated or derived profile has it (calibrate/fit.py fit_graph_saving); a
        # profile without it would price decode steps with no graph saving, silently
        raise ValueError(f"{source}: exec must be an object with decode_graph_saving_per_layer_s "
                         "(the calibration writes it)")  # fmt: skip
    saving = exec_["decode_graph_saving_per_layer_s"]  # present: checked above
    if not isinstance(saving, (int, float)) or not 0.0 <= saving < 1e-2:
        raise ValueError(f"{source}: exec.decode_graph_saving_per_layer_s must be in [0, 0.01) s, "
                         f"got {saving!r}")  # fmt: skip
    scale = exec_.get("kernel_scale", {})
    if not isinstance(scale, dict) or set(scale) - {"memory", "compute"}:
        raise ValueError(f"{source}: exec.kernel_scale must map memory/compute to factors")
    if any(not isinstance(v, (int, float)) or not 0 < v < 100 for v in scale.values()):
        raise ValueError(f"{source}: exec.kernel_scale factors must be in (0, 100)")
    if "decode_graph_buckets" in exec_:
        check_buckets(exec_["decode_graph_buckets"], f"{source}: exec.decode_graph_buckets")
    if "decode_graph_bucket_scale" in exec_:
        where = f"{source}: exec.decode_graph_bucket_scale"
        table = check_scale_table(exec_["decode_graph_bucket_scale"], where)
        check_scale_keys(table, meta["num_sms"], exec_.get("decode_graph_buckets"), where)
    if "eager_prefill_attention" in exec_:
        EagerPrefillAttention(exec_["eager_prefill_attention"],
                              f"{source}: exec.eager_prefill_attention")  # fmt: skip
    try:
        host_from_dict(doc.get("host"))
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    coll = doc.get("collectives", {}).get("allreduce")
    if coll is not None:
        validate_collectives(coll, source)
        if int(coll["tp"]) != int(meta.get("tp", 1)):
            raise ValueError(f"{source}: collectives.allreduce.tp != meta.tp")
    # Only the SRM section's own constructor knows its rules; surface them as ValueError.
    try:
        srm_from_dict(doc["srm"])
        gpu_from_dict(doc["gpu_spec"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: bad srm/gpu_spec section: {e}") from None


def validate_collectives(sec: dict, source: str = "profile") -> None:
    """ValueError (one line) unless `sec` is a usable `collectives.allreduce` section."""
    missing = [k for k in ("kind", "tp", "bytes", "sms", "time_s", "alpha_beta") if k not in sec]
    if missing:
        raise ValueError(f"{source}: collectives.allreduce lacks {missing}")
    if sec["kind"] not in KINDS:
        raise ValueError(f"{source}: collectives.allreduce.kind must be one of {KINDS}")
    b, s, t = sec["bytes"], sec["sms"], sec["time_s"]
    if sorted(b) != b or sorted(s) != s or len(t) != len(b) or any(len(r) != len(s) for r in t):
        raise ValueError(f"{source}: collectives.allreduce needs increasing axes, bytes x sms")
    if any(not (isinstance(v, int | float) and v > 0) for r in t for v in r):
        raise ValueError(f"{source}: collectives.allreduce holds a non-positive time")


def read_profile(path: str | Path) -> dict:
    """Load and validate a profile file; errors are one-line ValueError/FileNotFoundError."""
    p = Path(path)
    p = require_file(p, "profile")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(
            f"profile {p} is not valid JSON ({e}); re-run bulletsim calibrate"
        ) from None
    validate(doc, str(p))
    return doc


def write_profile(doc: dict, path: str | Path) -> Path:
    validate(doc, str(path))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    tmp.replace(p)
    return p
