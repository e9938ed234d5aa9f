"""A calibrated profile prices only the shape it was calibrated for (issue 13, item 3): a
--model-config that keeps a registered model's name but changes a kernel shape (top-k, widths,
heads, vocab) is priced by the roofline, and the run says so; --latency profile refuses it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.hardware import get_gpu
from bulletsim.hf_config import model_from_hf_config
from bulletsim.latency.factory import build_latency, transfer_note
from bulletsim.latency.profile import ProfileLatency
from bulletsim.latency.roofline import RooflineLatency

FIX = Path(__file__).parent / "fixtures" / "model_configs" / "qwen3-235b-a22b.json"
H20 = get_gpu("h20")


def qwen(tp: int = 8, **changes):
    return dataclasses.replace(model_from_hf_config(FIX, tp=tp), **changes)


def test_the_registered_shape_uses_its_profile_even_with_other_layer_counts():
    assert isinstance(build_latency("auto", H20, qwen()), ProfileLatency)
    assert isinstance(build_latency("auto", H20, qwen(num_layers=40)), ProfileLatency)


@pytest.mark.parametrize(
    "change",
    [{"experts_per_token": 2}, {"moe_intermediate_size": 768}, {"vocab_size": 151000},
     {"hidden_size": 2048}, {"num_experts": 64}],
)  # fmt: skip
def test_another_shape_of_the_same_name_is_priced_by_the_roofline(change):
    m = qwen(**change)
    lat = build_latency("auto", H20, m)
    assert isinstance(lat, RooflineLatency)
    note = transfer_note("auto", H20, m)
    field = next(iter(change))
    assert "h20__qwen3-235b-a22b__tp8.json not used" in note and field in note
    with pytest.raises(ValueError, match=f"not used.*{field}.*--latency roofline"):
        build_latency("profile", H20, m)


def test_cli_profile_refuses_and_auto_says_roofline(tmp_path):
    cfg = json.loads(FIX.read_text())
    cfg["num_experts_per_tok"] = 2
    q = tmp_path / "Q.json"
    q.write_text(json.dumps(cfg))
    base = ["run", "--model-config", str(q), "--gpu", "h20", "--tp", "8", "--trace", "alpaca",
            "-n", "5", "--rate", "1", "--no-write"]  # fmt: skip
    bad = CliRunner().invoke(app, [*base, "--latency", "profile"])
    lines = bad.output.strip().splitlines()
    assert bad.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), bad.output
    assert "experts_per_token 2 vs 8" in lines[0]
    ok = CliRunner().invoke(app, base)
    assert ok.exit_code == 0, ok.output
    assert "latency model: roofline" in ok.output and "not used" in ok.output


def test_a_profile_file_of_another_shape_is_refused():
    from bulletsim.latency.profile import find_profile

    path = find_profile("h20", "qwen3-235b-a22b", tp=8)
    with pytest.raises(
        ValueError, match="calibrated for qwen3-235b-a22b.*experts_per_token 2 vs 8"
    ):
        build_latency("auto", H20, qwen(experts_per_token=2), profile=path)
    assert isinstance(build_latency("auto", H20, qwen(), profile=path), ProfileLatency)
