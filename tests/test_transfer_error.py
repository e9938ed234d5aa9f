"""The derived-profile error estimate (calibrate/transfer_error.py) and its reporting."""

from __future__ import annotations

import copy

import pytest

from bulletsim.hardware import get_gpu
from bulletsim.latency.factory import transfer_note
from bulletsim.latency.profile import ProfileLatency, find_profile, read_profile
from bulletsim.latency.roofline import op_time_split
from bulletsim.models import get_model
from calibrate.derive import derive
from calibrate.transfer_error import _cells, self_transfer_errors


@pytest.fixture(scope="module")
def measured() -> dict:
    return read_profile(find_profile("h200", "llama-3.1-8b"))


def _srm_grid(doc: dict) -> dict:
    """The same profile with every measured cell replaced by the fitted SRM's time."""
    d = copy.deepcopy(doc)
    pl = ProfileLatency(d)
    sms = d["grid"]["sms"]
    for _, op, row in _cells(pl):
        for i, n in enumerate(sms):
            if row[i] is not None:
                row[i] = sum(op_time_split(op, n, pl.gpu, pl.params))
    return d


def test_a_profile_that_is_its_srm_transfers_without_error(measured):
    est = self_transfer_errors(_srm_grid(measured), get_gpu("a100"))
    assert est["kernels"]["n"] > 100
    assert est["kernels"]["max_pct"] < 1e-6
    assert est["time_weighted_pct"] < 1e-6


def test_a_wave_step_the_srm_does_not_know_shows_as_error(measured):
    d = _srm_grid(measured)
    sms = d["grid"]["sms"]
    for row in d["grid"]["linear"]["ops"]["gate_up"]:
        for i, n in enumerate(sms):
            if n == 40 and row[i] is not None:
                row[i] *= 1.5  # 40 SMs is the A100-ratio partner of 128/132 for GEMMs
    est = self_transfer_errors(d, get_gpu("a100"))
    # as the source of a pair the step is carried +50%; as the target it is missed (-33%)
    assert est["by_op"]["gate_up"]["max_pct"] == pytest.approx(50.0, rel=1e-3)
    assert est["by_op"]["qkv"]["max_pct"] < 1e-6
    assert est["kernels"]["max_pct"] > 30


def test_derived_profile_states_what_transfers_and_its_error(measured, tmp_path, monkeypatch):
    doc = derive(measured, get_gpu("a100"))
    est = doc["meta"]["error_estimate"]
    assert est["kernels"]["median_pct"] > 0 and est["kernels"]["p90_pct"] >= 0
    assert any("mechanism" in c for c in est["cannot_transfer"])
    assert any("clocks" in c for c in est["cannot_transfer"])
    assert "median" in est["summary_line"]
    assert doc["meta"]["mechanism"] == "green-ctx"
    # The run-time note reads the installed profile's metadata.
    import json

    import bulletsim.latency.profile_format as pf

    (tmp_path / "a100__llama-3.1-8b.json").write_text(json.dumps(doc))
    monkeypatch.setattr(pf, "PROFILE_DIR", tmp_path)
    note = transfer_note("auto", get_gpu("a100"), get_model("llama-3.1-8b"))
    assert note is not None and "from the measured h200 profile" in note
    assert est["summary_line"] in note
    assert transfer_note("roofline", get_gpu("a100"), get_model("llama-3.1-8b")) is None


def test_estimates_only_from_measured_profiles(measured):
    d = copy.deepcopy(measured)
    d["meta"]["kind"] = "derived"
    d["meta"]["derived_from"] = {"gpu": "x"}
    with pytest.raises(ValueError, match="measured"):
        self_transfer_errors(d, get_gpu("a100"))
