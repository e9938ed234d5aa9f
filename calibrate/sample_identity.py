"""Whose samples these are: a fit refuses samples recorded under another identity than the
meta.json it is given (CPU only).

`calibrate-fit SAMPLES --meta OTHER/meta.json` would otherwise fit one run's kernel times
under another run's name (Llama-8B samples installed as a 70B TP-2 profile). A run's identity
is what names and shapes its profile: GPU, model, tp, the per-GPU shard shapes, SM partition
mechanism and the GPU's SM count. The samples record it in up to four places, each compared
with the meta file where both carry a key:

- the samples' own `gpu` / `model` / `tp` columns (sweeps write them since this check);
- the identity a parquet written by `calibrate.pipeline` carries in its metadata;
- the run's own meta.json beside the samples file (when `--meta` names another file), or
  for an installed `<profile>.samples.parquet` the profile beside it;
- the SM counts measured: no partition larger than the meta's GPU, co-run pairs (the sweep
  splits the whole GPU between them) that fill exactly its SMs, and every partition one of the
  sizes of the meta's `partition_pool`;
- the grid: every prefill length (`seq_len`), decode batch (`batch`) and partition (`num_sms`)
  measured is a point of the meta's `grid` (`calibrate.grids`; true of every committed run);
- when: `calibrate.run` stamps meta.date at the end of the sweep, so it is the last sample's
  `t_unix` (equal to the second on every committed run: large-models tp2/tp4/tp8, the
  libsmctrl profile's run and the shipped 8B samples); more than `DATE_TOLERANCE_S` apart
  means another run's meta or a part of the run (tp2 and tp4 of the large-models runs ended
  35 s apart).

(The `mechanism` column is `calibrate.fit_inputs.check_mechanism`'s.) Legacy samples that carry
none of these are fitted as before: nothing in them tells one model from another.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bulletsim.hardware import get_gpu, resolve_mechanism

KEYS = ("gpu", "model", "tp", "mechanism", "num_sms", "shard_shapes")
COLUMNS = ("gpu", "model", "tp")  # what every sample of a sweep carries (calibrate.measure)
SHAPE_KEYS = ("hidden", "q_heads", "kv_heads", "intermediate", "vocab")
PARQUET_KEY = b"bulletsim.identity"
# meta.date is taken after the sweep closes its store and writes kernel_choices.json (calibrate
# .run): allow that much after the last sample; runs of one session ended >= 35 s apart.
DATE_TOLERANCE_S = 10.0


def identity(meta: dict) -> dict:
    """The identity keys `meta` holds, in comparable form (GPU aliases and mechanism aliases
    resolved, tp an int, the shard shapes without their note)."""
    out: dict = {}
    if "gpu" in meta:
        try:
            out["gpu"] = get_gpu(str(meta["gpu"])).name
        except ValueError:
            out["gpu"] = str(meta["gpu"]).strip().lower()
    if "model" in meta:
        out["model"] = str(meta["model"]).strip().lower()
    if "tp" in meta or "model" in meta:
        out["tp"] = int(meta.get("tp") or 1)
    if "mechanism" in meta:
        try:
            out["mechanism"] = resolve_mechanism(str(meta["mechanism"]))
        except ValueError:
            out["mechanism"] = str(meta["mechanism"])
    if "num_sms" in meta:
        out["num_sms"] = int(meta["num_sms"])
    shapes = meta.get("shard_shapes")
    if isinstance(shapes, dict):
        out["shard_shapes"] = {k: shapes[k] for k in SHAPE_KEYS if k in shapes}
    return out


def describe(ident: dict) -> str:
    """`gpu / model tp=N (mechanism, N SMs)` from what `ident` holds."""
    text = f"{ident.get('gpu', '?')} / {ident.get('model', '?')} tp={ident.get('tp', '?')}"
    extra = [ident["mechanism"]] if "mechanism" in ident else []
    extra += [f"{ident['num_sms']} SMs"] if "num_sms" in ident else []
    return text + (f" ({', '.join(extra)})" if extra else "")


def parquet_identity(path: Path) -> dict | None:
    """The identity stamped in a parquet's metadata (`calibrate.pipeline.write_parquet`)."""
    if path.suffix != ".parquet":
        return None
    try:
        import pyarrow.parquet as pq

        raw = (pq.read_schema(path).metadata or {}).get(PARQUET_KEY)
        return json.loads(raw) if raw else None
    except Exception:  # noqa: BLE001 - unreadable metadata stamps nothing
        return None


def column_identity(df: pd.DataFrame, samples: Path) -> dict | None:
    """The identity the samples' own columns record; ValueError when they mix runs."""
    found = {}
    for col in COLUMNS:
        if col not in df.columns:
            continue
        vals = sorted({str(v) for v in df[col].dropna().unique()})
        if len(vals) > 1:
            raise ValueError(
                f"samples file {samples} mixes runs: its {col} column holds "
                f"{', '.join(vals)}; fit one run's samples at a time"
            )
        if vals:
            found[col] = vals[0]
    return identity(found) if found else None


def sibling_identities(samples: Path, meta_path: Path) -> list[tuple[Path, dict]]:
    """(path, identity) of the files beside `samples` that describe its run, other than
    `meta_path`: the run's meta.json, and for an installed `<profile>.samples.parquet`
    (`calibrate.install.samples_name`) the profile `<profile>.json` whose fit it is."""
    found = []
    for path, section in (
        (samples.parent / "meta.json", None),
        (samples.with_name(samples.name.replace(".samples.parquet", ".json")), "meta"),
    ):
        if path == samples or not path.is_file() or path.resolve() == meta_path.resolve():
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        doc = doc.get(section) if section and isinstance(doc, dict) else doc
        if isinstance(doc, dict):
            found.append((path, identity(doc)))
    return found


def differences(a: dict, b: dict) -> list[str]:
    """`key a vs b` for each identity key both hold and that differs."""
    return [f"{k} {a[k]} vs {b[k]}" for k in KEYS if k in a and k in b and a[k] != b[k]]


def check_identity(df: pd.DataFrame, meta: dict, samples: Path, meta_path: Path) -> None:
    """ValueError (one line, naming both identities and what differs) when anything the
    samples record of their run disagrees with `meta` (see the module docstring)."""
    want = identity(meta)
    sources = []
    cols = column_identity(df, samples)
    if cols:
        sources.append(("its gpu/model/tp columns", cols))
    stamped = parquet_identity(samples)
    if stamped:
        sources.append(("the identity its parquet metadata records", identity(stamped)))
    for path, ident in sibling_identities(samples, meta_path):
        sources.append((f"its run's {path}", ident))
    for where, got in sources:
        diff = differences(got, want)
        if diff:
            raise ValueError(
                f"samples file {samples} is {describe(got)} ({where}) but meta file {meta_path} "
                f"is {describe(want)}: {'; '.join(diff)}; give the meta.json of the same run"
            )
    check_sm_counts(df, want, samples, meta_path)
    check_pool_sizes(df, meta, samples, meta_path)
    check_grid(df, meta, samples, meta_path)
    check_date(df, meta, samples, meta_path)


def grid_points(name: str, total_sms: int) -> dict[str, set[int]] | None:
    """column -> the values grid `name` (`calibrate.grids.GRIDS`) measures: prefill tokens per
    sequence (`seq_len`), decode batches (`batch`), partitions (`num_sms`, co-runs' rests
    included); None for a grid this version does not know."""
    from calibrate.grids import GRIDS

    g = GRIDS.get(name)
    if g is None:
        return None
    seq = {*g.prefill_tokens, *g.prefill_tokens_heldout, *g.corun_prefill_tokens}
    seq |= {t for _, t in (*g.prefill_multi_heldout, *g.step_prefill)}
    batch = {*g.decode_batch} | {b for b, _ in (*g.decode_heldout, *g.step_decode, *g.corun_decode)}
    sms = {*g.sms, *g.sms_heldout, *g.step_sms, *g.corun_decode_sms}
    sms |= {total_sms - d for d in g.corun_decode_sms}
    return {"seq_len": seq, "batch": batch, "num_sms": sms}


def check_grid(df: pd.DataFrame, meta: dict, samples: Path, meta_path: Path) -> None:
    """ValueError (one line, naming the column and the values) when the samples measured a
    point that the meta's grid does not hold: they are another grid's run."""
    total = meta.get("num_sms")
    points = grid_points(str(meta.get("grid")), int(total)) if total else None
    if points is None or "phase" not in df.columns:
        return
    rows = {"seq_len": df[df["phase"] == "prefill"], "batch": df[df["phase"] == "decode"],
            "num_sms": df}  # fmt: skip
    for col, valid in points.items():
        if col not in df.columns:
            continue
        got = {int(x) for x in pd.to_numeric(rows[col][col], errors="coerce").dropna().unique()}
        odd = sorted(got - valid)
        if odd:
            raise ValueError(
                f"samples file {samples} measured {col} {', '.join(map(str, odd[:5]))}, not "
                f"points of meta file {meta_path}'s grid {meta['grid']!r}: column {col}; give "
                "the meta.json of the same run"
            )


def check_date(df: pd.DataFrame, meta: dict, samples: Path, meta_path: Path) -> None:
    """ValueError when meta.date is not the last sample's `t_unix` (within
    `DATE_TOLERANCE_S`): the meta is another run's, or the samples are part of its run. Samples
    or a meta without times (legacy, derived) are not checked."""
    from datetime import UTC, datetime

    date = meta.get("date")
    if not isinstance(date, str) or "t_unix" not in df.columns:
        return
    times = pd.to_numeric(df["t_unix"], errors="coerce").dropna()
    try:
        when = datetime.fromisoformat(date.replace("Z", "+00:00"))
    except ValueError:
        return
    if times.empty or when.tzinfo is None:
        return
    last = float(times.max())
    if 0 <= when.timestamp() - int(last) <= DATE_TOLERANCE_S:  # date is to the second
        return
    last_text = datetime.fromtimestamp(int(last), UTC).isoformat()
    raise ValueError(
        f"samples file {samples} ends at t_unix {last:.0f} ({last_text}) but meta file "
        f"{meta_path} is dated {date}: not the same run (another run's meta, or only part of "
        "its samples); give the meta.json the run wrote beside its samples"
    )


def check_pool_sizes(df: pd.DataFrame, meta: dict, samples: Path, meta_path: Path) -> None:
    """ValueError when the samples measured a partition size that is not one of the meta's
    `partition_pool` sizes (nor its whole GPU): they were measured under another grid."""
    pool = meta.get("partition_pool")
    sizes = pool.get("sizes") if isinstance(pool, dict) else None
    if not isinstance(sizes, list) or "num_sms" not in df.columns:
        return
    valid = {int(x) for x in sizes} | {int(pool.get("total_sms") or 0)}
    got = {int(x) for x in pd.to_numeric(df["num_sms"], errors="coerce").dropna().unique()}
    odd = sorted(got - valid)
    if odd:
        raise ValueError(
            f"samples file {samples} measured partitions of {', '.join(map(str, odd))} SMs, "
            f"not sizes of meta file {meta_path}'s partition_pool ({sizes[0]}..{sizes[-1]}, "
            f"{len(sizes)} sizes): num_sms; give the meta.json of the same run"
        )


def check_sm_counts(df: pd.DataFrame, want: dict, samples: Path, meta_path: Path) -> None:
    """ValueError when the samples measured a partition larger than the meta's GPU, or
    co-run pairs that fill another GPU's SMs (measured on a GPU of another size)."""
    total = want.get("num_sms")
    if total is None and "gpu" in want:
        total = get_gpu(want["gpu"]).num_sms
    if total is None or "num_sms" not in df.columns or df["num_sms"].dropna().empty:
        return
    most = int(df["num_sms"].max())
    if most > total:
        raise ValueError(
            f"samples file {samples} measured partitions of up to {most} SMs but meta file "
            f"{meta_path} is {describe(want)} with {total} SMs: num_sms {most} vs {total}; "
            "give the meta.json of the same run"
        )
    if "co_sms" not in df.columns:
        return
    pairs = df.dropna(subset=["co_sms"])
    pairs = pairs[pairs["kind"] == "corun"] if "kind" in pairs.columns else pairs
    if pairs.empty:
        return
    filled = int((pairs["num_sms"] + pairs["co_sms"]).max())  # the sweep splits the whole GPU
    if filled != total:
        raise ValueError(
            f"samples file {samples} co-ran partitions filling {filled} SMs but meta file "
            f"{meta_path} is {describe(want)} with {total} SMs: num_sms {filled} vs {total}; "
            "give the meta.json of the same run"
        )
