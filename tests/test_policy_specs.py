"""`--policy` specs and the other sources of a policy's parameters (new-user findings):

- a malformed spec (`pdmux:`, `key=`, `=v`, a key twice, an empty option) is refused in run
  and sweep alike (was: sweep took `pdmux:` as `pdmux`, and a repeated key's last value);
- a sweep refuses one policy given twice, however spelt (was: run twice);
- a spec's option and `--set` (or a dedicated option) giving one key different values are
  refused (was: `--set pdmux.min_sms=16 --policy pdmux:min_sms=24` silently used 24);
- a config file's section (or a design's [base] table) for a policy the run does not run is
  refused, as `--set` is (was: silently ignored), and fidelity's `--set` too.
Each: one line starting with "error:", exit 2, no results written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.policy_spec import check_spec_agrees, parse_policy_spec, spec_label
from bulletsim.sweep import PolicyVariant

runner = CliRunner()
ENV = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}
RUN = ("run", "--trace", "alpaca", "-n", "10", "-q", "--gpu", "h200", "--out", "never")
SWEEP = ("sweep", "-n", "10", "--rates", "4", "--no-capacity", "--workers", "1", "-q")
SWEEP += ("--gpu", "h200", "--seeds", "0", "--no-timeline", "--no-plots", "--out", "never")
MEASURED = str(Path(__file__).parent / "fixtures" / "measured" / "vllm_bench_serve.json")
MALFORMED = [
    ("pdmux:", "no options after ':'"),
    ("pdmux: ", "no options after ':'"),
    ("pdmux:min_sms=", "'min_sms=' has a key without '=value'"),
    ("pdmux:min_sms", "'min_sms' has a key without '=value'"),
    ("pdmux:=8", "'=8' has no key"),
    ("pdmux:min_sms=8,min_sms=8", "min_sms is given twice; give each key once"),
    ("pdmux:min_sms=8,min_sms=16", "min_sms is given twice; give each key once"),
    ("pdmux:min_sms=8,,step_sms=8", "an empty option"),
    ("pdmux:min_sms=8,", "an empty option"),
    ("chunked-1024:chunk_size=2048", "chunked-1024 means chunk_size=1024, the option says 2048"),
]
TWICE = "is given twice: by --policy"
CASES = [
    *[((*cmd, "--policy", s), msg) for s, msg in MALFORMED for cmd in (RUN, SWEEP)],
    # one policy twice in a sweep: the same name, spelling, option order, defaults, aliases
    ((*SWEEP, "--policy", "pdmux", "--policy", "pdmux"), "--policy pdmux and --policy pdmux run"),
    ((*SWEEP, "--policy", "pdmux", "--policy", "PDMux"), "give each policy once"),
    (
        (
            *SWEEP,
            "--policy",
            "pdmux:min_sms=16,step_sms=8",
            "--policy",
            "pdmux:step_sms=8,min_sms=16",
        ),
        "run the same policy with the same parameters (pdmux)",
    ),  # fmt: skip
    ((*SWEEP, "--policy", "pdmux:sm_group_num=8", "--policy", "pdmux"), "give each policy once"),
    ((*SWEEP, "--policy", "chunked-1024", "--policy", "chunked:chunk_size=1024"), "once"),
    (
        (*SWEEP, "--policy", "pdmux:min_sms=16", "--policy", "pdmux", "--set", "pdmux.min_sms=16"),
        "give each policy once",
    ),  # fmt: skip
    # a spec's option against --set and dedicated options
    (
        (*SWEEP, "--set", "pdmux.min_sms=16", "--policy", "pdmux:min_sms=24"),
        "pdmux.min_sms is given twice: by --policy pdmux:min_sms=24 (24) and by --set "
        "pdmux.min_sms=16; give one",
    ),
    ((*RUN, "--set", "pdmux.min_sms=16", "--policy", "pdmux:min_sms=24"), TWICE),
    ((*SWEEP, "--policy", "chunked-1024", "--set", "chunked.chunk_size=2048"), TWICE),
    (
        (*RUN, "--policy", "chunked:chunk_size=2048", "--chunk-size", "1024"),
        "chunked.chunk_size is given twice: by --policy chunked:chunk_size=2048 (2048) and by "
        "its option (1024); give one",
    ),
    ((*RUN, "--policy", "bullet:mechanism=green", "--mechanism", "libsmctrl"), TWICE),
    ((*SWEEP, "--policy", "bullet:mechanism=mps", "--mechanism", "green"), TWICE),
    (
        (*RUN, "--config", "mech.toml", "--policy", "bullet:mechanism=green"),
        "bullet.mechanism is given differently: config file mech.toml [bullet] mechanism = "
        "'libsmctrl'; --policy bullet:mechanism=green",
    ),
    # a config file's section for a policy not in the run
    (
        (*RUN, "--policy", "pdmux", "--config", "other.toml"),
        "config file other.toml: [bullet] is for bullet, not a policy of this run (pdmux), so "
        "its parameters would do nothing; run it with --policy bullet, or remove the section",
    ),
    ((*RUN, "--config", "shared.toml", "--policy", "chunked"), "[Bullet] is for bullet"),
    # fidelity's --set for a policy it does not simulate (was: ignored)
    (
        ("fidelity", "--measured", MEASURED, "--gpu", "h200", "--set", "pdmux.min_sms=16"),
        "--set pdmux.*: pdmux is not a policy of this run (chunked)",
    ),
    # an empty value through --set too
    ((*RUN, "--set", "bullet.mechanism="), "no value after '='"),
]


@pytest.mark.parametrize(("args", "needle"), CASES)
def test_refused_with_one_line(tmp_path, monkeypatch, refused, args, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other.toml").write_text("[bullet]\nwindow_layers = 4\n")
    (tmp_path / "shared.toml").write_text('policy = "bullet"\n[Bullet]\nwindow_layers = 4\n')
    (tmp_path / "mech.toml").write_text('[bullet]\nmechanism = "libsmctrl"\n')
    refused(args, needle, ENV)
    assert not (tmp_path / "never").exists()


DESIGN = '[grid]\npolicy = ["{policy}"]\ntrace = ["alpaca"]\n[sweep]\nrates = [4.0]\n'
DESIGN += "num_requests = 10\nseeds = [0]\n[base.pdmux]\nmin_sms = 16\n"


@pytest.mark.parametrize(
    ("policy", "needle"),
    [
        ("chunked-2048", "[base.pdmux] is for pdmux, not a policy of the grid (chunked)"),
        ("pdmux:min_sms=24", "by --policy pdmux:min_sms=24 (24) and by d.toml [base] pdmux"),
    ],
)
def test_design_base_tables_are_checked_as_sets(tmp_path, monkeypatch, refused, policy, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.toml").write_text(DESIGN.format(policy=policy))
    refused(["design", "d.toml", "--out", "never"], needle, ENV)
    assert not (tmp_path / "never").exists()


def test_run_takes_the_spec_sweep_takes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.toml").write_text('policy = "pdmux"\n[pdmux]\nstep_sms = 16\n')
    argv = [*RUN[:-2], "--no-write", "--policy", "pdmux:sm_group_num=4,min_sms=16"]
    res = runner.invoke(app, [*argv, "--config", "mine.toml", "--set", "pdmux.min_sms=16"])
    assert res.exit_code == 0, res.output
    # the same run by --set: the same numbers
    by_set = ["--policy", "pdmux", "--set", "pdmux.sm_group_num=4", "--set", "pdmux.min_sms=16"]
    res2 = runner.invoke(app, [*RUN[:-2], "--no-write", "--config", "mine.toml", *by_set])
    assert res2.exit_code == 0 and res.output == res2.output


def test_spec_parsing_normalises():
    assert parse_policy_spec("PDMux") == ("PDMux", "pdmux", {})
    rows = "112:20:0,104:28:16"
    name, policy, params = parse_policy_spec(f"pdmux:sm_group_num=4,manual_divisions={rows}")
    assert (policy, params) == ("pdmux", {"sm_group_num": 4, "manual_divisions": rows})
    assert parse_policy_spec("chunked-1024:variant=sarathi")[2] == {
        "chunk_size": 1024, "variant": "sarathi"
    }  # fmt: skip
    assert spec_label("Bullet:reorder=true") == "bullet:reorder=true"
    a, b = (
        PolicyVariant.parse("pdmux:min_sms=16,step_sms=8"),
        PolicyVariant.parse("pdmux:step_sms=8,min_sms=16"),
    )
    assert a.params == b.params and a.label != b.label


def test_spec_and_set_that_agree_pass():
    check_spec_agrees("pdmux:min_sms=16", "pdmux", {"min_sms": 16}, {"pdmux": {"min_sms": 16}}, {})
    check_spec_agrees("bullet:mechanism=green", "bullet", {"mechanism": "green"}, {},
                      {"bullet": {"mechanism": "green-ctx"}})  # fmt: skip
    with pytest.raises(ValueError, match="bullet.mechanism is given twice"):
        check_spec_agrees("bullet:mechanism=green", "bullet", {"mechanism": "green"}, {},
                          {"bullet": {"mechanism": "libsmctrl"}})  # fmt: skip
