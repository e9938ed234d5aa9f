"""A profile whose fitted terms price some work at a negative (or non-finite) time: every path
that loads or uses it stops with one line naming the profile file and the work (exit 2 at the
CLI), never SimPy's bare "Negative delay" from inside a run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.core import SLO, WorkShape
from bulletsim.engine import SimEngine
from bulletsim.kvcache import KVCache
from bulletsim.latency.profile import PROFILE_DIR, ProfileLatency
from bulletsim.policies.base import PolicyContext
from bulletsim.policies.chunked import ChunkedParams, ChunkedPrefill
from bulletsim.state import ServingState
from bulletsim.workload.workload import make_requests

SRC = PROFILE_DIR / "h200__llama-3.1-8b.json"
RUN = ["run", "--gpu", "h200", "--model", "llama-3.1-8b", "--trace", "random", "--input-len",
       "64", "--output-len", "8", "-n", "8", "--rate", "5"]  # fmt: skip


def bad_profile(tmp_path: Path, case: str) -> Path:
    doc = json.loads(SRC.read_text())
    if case == "graph saving beyond a decode layer":
        # allowed on its own (< 10 ms), but a one-token decode layer's kernels are shorter
        doc["exec"]["decode_graph_saving_per_layer_s"] = 0.009
    elif case == "negative layer overhead":
        doc["srm"]["layer_overhead_s"] = -1e-3
    elif case == "negative gemm efficiency":
        doc["srm"]["alpha"]["gemm"] = -1.45
    elif case == "nan step overhead":
        doc["srm"]["step_overhead_s"] = math.nan  # json writes NaN, and reads it back
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    return path


CASES = {
    "graph saving beyond a decode layer": "decode of batch 1, context 1",
    "negative layer overhead": "layer_overhead_s=-0.001",
    "negative gemm efficiency": "alpha.gemm=-1.45",
    "nan step overhead": "step_overhead_s=nan",
}


@pytest.mark.parametrize("case", list(CASES))
def test_run_with_such_a_profile_is_one_line_exit_2_naming_file_and_work(tmp_path, case):
    path = bad_profile(tmp_path, case)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [*RUN, "--profile", str(path), "--out", str(out)])
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert text.startswith("error: ") and text.count("error:") == 1, text
    assert "Traceback" not in res.output and "Negative delay" not in text
    assert str(path) in text and CASES[case] in text, text
    assert not (out / "summary.json").exists()


def test_a_negative_prediction_at_run_time_names_the_profile_file_and_the_shape():
    """The backstop for a shape the load-time probe did not try: predict itself refuses."""
    pl = ProfileLatency.load(SRC)
    shape = WorkShape(decode_tokens=4, decode_ctx_tokens=400, num_layers=2)
    assert pl.predict(shape, 132) > 0
    pl.graph_saving_s = 1.0  # as if the terms were wrong for this shape only
    with pytest.raises(ValueError) as e:
        pl.predict(shape, 132)
    msg = str(e.value)
    assert "\n" not in msg and str(SRC) in msg and "decode batch 4 (context 400), 2 layers" in msg
    assert "on 132 SMs" in msg and "decode_graph_saving_per_layer_s 1.000e+00" in msg


def test_the_shipped_profiles_pass_the_floor_check():
    """The check refuses only wrong terms: every installed profile still loads."""
    for path in sorted(PROFILE_DIR.glob("*.json")):
        assert ProfileLatency.load(path).source == str(path)


class NegativeLatency:
    """A latency model with a sign error (a user's own, or a future bug)."""

    name, num_layers, total_sms = "negative-test", 32, 132

    def predict(self, shape, num_sms, co_runner=None) -> float:
        return -0.5

    def describe(self) -> dict:
        return {"kind": self.name}


def test_the_engine_names_the_latency_model_for_any_negative_duration():
    specs = make_requests(np.array([0.0, 0.1]), np.array([16, 16]), np.array([2, 2]))
    st = ServingState(specs, KVCache(1000, 16), reserve_fraction=0.7)
    ctx = PolicyContext(st, NegativeLatency(), 132, SLO(tpot_s=1.0, ttft_s=10.0))
    eng = SimEngine(ChunkedPrefill(ChunkedParams(chunk_size=8)), ctx)
    with pytest.raises(ValueError) as e:
        eng.run()
    msg = str(e.value)
    assert "latency model negative-test priced a prefill iteration" in msg
    assert "at -0.5 s" in msg and "\n" not in msg
