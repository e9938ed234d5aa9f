"""Calibration samples: one flat record per measurement, appended to a JSONL file as it is made.

Appending (and flushing) each sample is what makes a sweep resumable: an interrupted run keeps
every sample it finished, and `--resume` skips their keys. A `pending` record written before a
risky sample (libsmctrl masks can hang a GEMM) marks it failed if the run dies inside it.
`to_frame` turns the file into a DataFrame (and parquet) for the fit. CPU-only module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

# Columns every sample carries (others are optional and kind-specific).
REQUIRED = ("key", "kind", "phase", "op", "num_sms", "time_s", "split")
KINDS = ("op", "layer", "step", "corun")
SPLITS = ("train", "heldout")


def sample_key(kind: str, phase: str, op: str, num_sms: int, **shape) -> str:
    """Stable identity of a measurement point (used to resume)."""
    parts = [kind, phase, op, f"sms{num_sms}"] + [f"{k}{v}" for k, v in sorted(shape.items())]
    return "/".join(parts)


class SampleStore:
    """Append-only JSONL of samples; `done` holds the keys already measured (or failed)."""

    def __init__(self, path: str | os.PathLike, resume: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: set[str] = set()
        self.records: list[dict] = []
        if resume and self.path.exists():
            for line in self.path.read_text().splitlines():
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut off by the interruption
                self.done.add(rec["key"])
                if rec.get("status", "ok") == "ok":
                    self.records.append(rec)
        elif self.path.exists():
            self.path.unlink()
        self._fh = open(self.path, "a")  # noqa: SIM115 - kept open for the sweep's lifetime

    def _write(self, rec: dict) -> None:
        self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def mark_pending(self, key: str) -> None:
        self._write({"key": key, "status": "pending"})

    def add(self, rec: dict) -> None:
        missing = [c for c in REQUIRED if c not in rec]
        assert not missing, f"sample lacks {missing}"
        rec.setdefault("status", "ok")
        self._write(rec)
        self.done.add(rec["key"])
        self.records.append(rec)

    def close(self) -> None:
        self._fh.close()


def load_samples(path: str | os.PathLike) -> pd.DataFrame:
    """Samples from a .jsonl (sweep output) or .parquet file, failed/pending ones dropped."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"samples file not found: {p}")
    if p.suffix == ".parquet":
        df = pd.read_parquet(p)
    else:
        rows = []
        for line in p.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        df = pd.DataFrame(rows)
    if "status" in df:
        # A key marked pending and never completed is a failure (a hang under a watchdog).
        df = df[df["status"] == "ok"]
    if "key" not in df:  # not a samples file: `fit_inputs.read_samples` names what it lacks
        return df.reset_index(drop=True)
    return df.drop_duplicates("key", keep="last").reset_index(drop=True)


def to_parquet(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    p = Path(path)
    df.to_parquet(p, index=False, compression="zstd")
    return p
