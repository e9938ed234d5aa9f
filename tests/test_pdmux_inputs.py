"""PD-Multiplexing's parameters as a new user meets them (issue 17): `bulletsim policies`,
help texts, a sweep's --policy spec with a list value. Bad inputs are in
tests/test_cli_bad_inputs.py's table."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.policies.describe import field_docs
from bulletsim.policies.pdmux import PDMuxParams
from bulletsim.policies.registry import policy_names
from bulletsim.sweep import PolicyVariant, SweepSpec

runner = CliRunner()
ENV = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}
ROWS = "112:20:0,104:28:16,96:36:32,88:44:48,80:52:64,72:60:80"


def test_policies_shows_sources_and_what_zero_means():
    res = runner.invoke(app, ["policies", "pdmux"], env=ENV)
    assert res.exit_code == 0, res.output
    text = res.output
    assert text.startswith("pdmux: ") and "pdmux-slo" not in text  # only the one asked for
    assert "sources in brackets" in text and "[PDMuxConfig, 65536]" in text
    i = text.index("pdmux.max_running_requests = 0")
    assert "0 = SGLang's rule" in text[i : text.index("pdmux.min_sms")]
    i = text.index("pdmux.step_sms = 0")
    assert "0 = the GPU's" in text[i : text.index("pdmux.handoff_ms")]
    every = runner.invoke(app, ["policies"], env=ENV).output
    assert all(f"\n{n}: " in f"\n{every}" for n in policy_names())


def test_policies_unknown_name_is_one_line():
    res = runner.invoke(app, ["policies", "pdmix"], env=ENV)
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "error: unknown policy 'pdmix'; valid: "
        + ", ".join(policy_names())
        + ", or chunked-N (chunk size N tokens)"
    ]


def test_field_docs_reads_inherited_and_grouped_entries():
    docs = field_docs(PDMuxParams)
    assert docs["min_sms"] == docs["step_sms"] and "0 = the GPU's" in docs["min_sms"]
    assert docs["sm_group_num"].endswith("[PDMuxConfig, 8].")


@pytest.mark.parametrize("command", ["run", "sweep", "live"])
def test_help_lists_every_registered_policy(command):
    res = runner.invoke(app, [command, "--help"], env={**ENV, "COLUMNS": "250"})
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m|[│╭╮╰╯─]", " ", res.output).split())
    for name in policy_names():
        assert re.search(rf"\b{re.escape(name)}\b", text), (command, name)


@pytest.mark.parametrize("rows", [ROWS, ROWS.replace(",", ";"), ROWS.replace(",", "/")])
def test_sweep_policy_spec_takes_manual_divisions(rows):
    v = PolicyVariant.parse(f"pdmux:manual_divisions={rows},handoff_ms=0.5")
    assert dict(v.params) == {"manual_divisions": rows, "handoff_ms": 0.5}
    spec = SweepSpec(policies=(v.label,), base={"gpu": "h200"}, seeds=(0,), rates=(4.0,))
    spec.validate()


def test_sweep_policy_spec_errors_name_the_option():
    with pytest.raises(ValueError, match=r"--policy 'pdmux:112:20:0'"):
        PolicyVariant.parse("pdmux:112:20:0")


def test_interval_warning_shows_a_width_above_the_limit():
    from bulletsim.sweep_capacity import _pct_above

    # the roofline sweep's warning read "+-10% is wider than +-10%"
    assert _pct_above(0.10004, 0.10) == "10.004"
    assert _pct_above(0.1003, 0.10) == "10.03"
    assert _pct_above(0.1234, 0.10) == "12.3"


def _interrupt_after(n: int, total: int):
    def fake(cfg, progress=None, **kw):
        if progress is not None and total:
            progress(n, total)
        raise KeyboardInterrupt

    return fake


@pytest.mark.parametrize(
    ("n", "total", "said"),
    [
        (200, 200, "all 200 requests had finished; stopped while collecting the results"),
        (50, 200, "simulation stopped (50/200 requests finished)"),
        (0, 0, "stopped before the simulation started (building the workload and model)"),
    ],
)
def test_interrupted_run_says_where_it_stopped(monkeypatch, tmp_path, n, total, said):
    import bulletsim.simulate

    monkeypatch.setattr(bulletsim.simulate, "simulate", _interrupt_after(n, total))
    res = runner.invoke(app, ["run", "-n", "20", "--trace", "alpaca", "--out",
                              str(tmp_path / "r")], env=ENV)  # fmt: skip
    assert res.exit_code == 130
    assert f"interrupted: {said}; nothing was written" in res.output
    assert not (tmp_path / "r").exists()


def test_live_configs_written_before_issue_17_still_load():
    from bulletsim.config import load_config
    from bulletsim.live.fidelity import live_config

    cfg = load_config(None, {"policy": "pdmux-slo", "gpu": "h200"})
    meta = {"config": cfg.to_dict()}
    old = {"sm_group_num": 8, "manual_divisions": "", "decode_bs_divisor": 36}
    meta["config"]["policy_params"]["pdmux-slo"].update(old)  # what pdmux-slo runs recorded
    assert live_config(meta).params() == cfg.params()
    meta["config"]["policy_params"]["pdmux-slo"]["sm_group_num"] = 4  # not a no-op: refused
    with pytest.raises(ValueError, match="pdmux-slo.sm_group_num"):
        live_config(meta)
