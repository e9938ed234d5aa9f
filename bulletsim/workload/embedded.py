"""The embedded default models: small JSON files computed from the real traces.

They let `bulletsim run --trace splitwise` work offline on a fresh machine. Each JSON records
the real file it came from (name, sha256, rows) and the command that recomputes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bulletsim.workload.arrival_profile import ArrivalProfile
from bulletsim.workload.length_model import LengthModel

DATA_DIR = Path(__file__).resolve().parent / "data"
SCHEMA = "bulletsim-embedded-trace/1"


@dataclass(frozen=True, slots=True)
class EmbeddedTrace:
    """One embedded model: lengths always, arrivals only for timestamped traces."""

    json_name: str
    source_file: str
    source_rows: int
    num_dropped: int  # real rows left out of the model (empty prompt or output)
    lengths: LengthModel
    arrivals: ArrivalProfile | None
    # `lengths` as "llama2", plus the same requests counted by other tokenizers where the
    # real count table has them (text datasets: "llama3")
    lengths_by_family: dict[str, LengthModel] = field(default_factory=dict)
    # Timestamped traces: the lengths of each `segment_s` stretch of the trace, in order, so
    # that requests sampled at time t take the lengths of t's stretch (the Azure
    # conversation trace's output lengths fall by a third mid-hour; see build_defaults).
    segment_s: float | None = None
    lengths_by_segment: tuple[LengthModel, ...] = ()
    # the model of every stretch of the trace, in order (quiet stretches share a model)
    segment_index: tuple[int, ...] = ()

    def segment_of(self, times_s, time_scale: float = 1.0):
        """Index into `lengths_by_segment` of each arrival time (cycling past the end)."""
        import numpy as np

        assert self.segment_s is not None and self.lengths_by_segment
        index = np.asarray(self.segment_index or range(len(self.lengths_by_segment)))
        k = np.floor(np.asarray(times_s) / time_scale / self.segment_s).astype(np.int64)
        return index[k % len(index)]

    @property
    def description(self) -> str:
        return f"embedded model {self.json_name} (computed from {self.source_file})"


def load_embedded(json_name: str, data_dir: Path = DATA_DIR) -> EmbeddedTrace:
    """Read `data_dir/json_name`; FileNotFoundError says how to rebuild it."""
    path = data_dir / json_name
    if not path.is_file():
        raise FileNotFoundError(
            f"embedded model {path} is missing; rebuild with "
            "`bulletsim traces build-defaults --from DIR`"
        )
    doc = json.loads(path.read_text())
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {doc.get('schema')!r}; expected {SCHEMA}")
    arrivals = doc.get("arrivals")
    segments = doc.get("lengths_by_segment")
    return EmbeddedTrace(
        json_name,
        doc["source"]["file"],
        int(doc["source"]["rows"]),
        int(doc["source"]["rows_dropped"]),
        LengthModel.from_json(doc["lengths"]),
        None if arrivals is None else ArrivalProfile.from_json(arrivals),
        {
            "llama2": LengthModel.from_json(doc["lengths"]),
            **{k: LengthModel.from_json(v) for k, v in doc.get("lengths_by_family", {}).items()},
        },
        segments["segment_s"] if segments else None,
        tuple(LengthModel.from_json(m) for m in segments["models"]) if segments else (),
        tuple(int(i) for i in segments.get("index", ())) if segments else (),
    )
