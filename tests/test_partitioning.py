"""Issue 16 (tester's faults 2, 4, 5): one path from a mechanism's name to its granularity and
re-partition cost, whichever way the name is given; conflicts refused; costs labelled."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.config import load_config, merge_overrides, parse_sets
from bulletsim.hardware import get_gpu
from bulletsim.partitioning import remask_cost, resolve_partitioning
from bulletsim.policies.registry import partitioning_of
from bulletsim.run_options import mechanism_overrides

runner = CliRunner()
ENV = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}
RUN = ("run", "--trace", "alpaca", "-n", "12", "-q", "--policy", "bullet")


def _resolved(gpu: str, mechanism: str | None, sets: list[str], toml: str, tmp_path):
    """The Partitioning a run would use, built the way `run` builds its config."""
    path = None
    if toml:
        path = tmp_path / "c.toml"
        path.write_text(toml)
    over = mechanism_overrides(mechanism, parse_sets(sets))
    cfg = load_config(path, merge_overrides({"policy": "bullet", "gpu": gpu}, over))
    spec = get_gpu(cfg.gpu)
    return partitioning_of(cfg.policy, cfg.params(), spec, spec.num_sms)


ROUTES = [  # (--mechanism, --set, TOML): the same mechanism given each way
    ("{m}", [], ""),
    (None, ["bullet.mechanism={m}"], ""),
    (None, [], '[bullet]\nmechanism = "{m}"\n'),
]


@pytest.mark.parametrize("gpu", ["h200", "a100"])
@pytest.mark.parametrize("name", ["green", "GREEN-CTX", "libsmctrl", "mps", "none"])
def test_every_route_gives_one_partitioning(gpu, name, tmp_path):
    got = {
        _resolved(
            gpu, m and m.format(m=name), [x.format(m=name) for x in s], t.format(m=name), tmp_path
        )  # fmt: skip
        for m, s, t in ROUTES
    }
    assert len(got) == 1, got
    (part,) = got
    want = resolve_partitioning(name, get_gpu(gpu), get_gpu(gpu).num_sms)
    assert part == want


def test_costs_say_where_they_come_from():
    h200, a100, h100 = get_gpu("h200"), get_gpu("a100"), get_gpu("h100")
    assert remask_cost("libsmctrl", h200)[:2] == (1.54, "measured")
    assert remask_cost("libsmctrl", a100)[:2] == (4.1, "paper")
    us, kind, source = remask_cost("libsmctrl", h100)
    assert (us, kind) == (1.54, "derived") and "H200" in source and "h100" in source
    assert remask_cost("mps", a100)[:2] == (0.47, "derived")
    assert remask_cost("green", a100)[:2] == (0.0, "by-construction")
    assert remask_cost("none", h200)[:2] == (0.0, "no-partitions")
    given = resolve_partitioning("libsmctrl", h200, 132, remask_us=7.5)
    assert (given.remask_us, given.remask_kind) == (7.5, "given")
    assert resolve_partitioning("green", h200, 132).unit_sms == 8
    assert resolve_partitioning("libsmctrl", h200, 132).unit_sms == 2


def test_default_bullet_prices_remasking_for_its_gpu():
    """The default mechanism (libsmctrl) costs what it costs on the run's GPU, not the paper's
    A100 figure everywhere (the old default) nor the H200 figure on an A100 (the old
    `--mechanism libsmctrl`)."""
    for gpu, us in (("h200", 1.54), ("a100", 4.1)):
        cfg = load_config(None, {"policy": "bullet", "gpu": gpu})
        spec = get_gpu(gpu)
        assert partitioning_of("bullet", cfg.params(), spec, spec.num_sms).remask_us == us


def test_conflicting_mechanisms_are_refused_and_aliases_agree():
    res = runner.invoke(
        app, [*RUN, "--mechanism", "green", "--set", "bullet.mechanism=mps"], env=ENV
    )
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    out = " ".join(res.output.split())
    assert (
        "bullet.mechanism is given differently: --set bullet.mechanism=mps; --mechanism "
        "green; give one" in out
    )
    res = runner.invoke(
        app, [*RUN, "--no-write", "--mechanism", "green", "--set", "bullet.mechanism=Green-Ctx"],
        env=ENV,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*RUN, "--no-write", "--set", "bullet.mechanism=tpc"], env=ENV)
    assert res.exit_code == 2
    assert "unknown SM partition mechanism 'tpc'; valid: green (= green-ctx)" in res.output


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ("static-split", "static-split partitions SMs with libsmctrl, fixed by its design"),
        ("pdmux", "pdmux partitions SMs with green-ctx, fixed by its design"),
        ("naive", "naive runs both lanes on every SM at once"),
    ],
)
def test_mechanism_is_bullets_parameter_only(policy, says):
    argv = ["run", "--trace", "alpaca", "-n", "5", "-q", "--no-write", "--policy", policy]
    res = runner.invoke(app, [*argv, "--mechanism", "libsmctrl"], env=ENV)
    assert res.exit_code == 2 and "--mechanism applies only to bullet" in res.output
    assert says in res.output and "has no SM partitions" not in res.output


def test_summary_records_the_partitioning_with_its_source(tmp_path):
    out = tmp_path / "r"
    res = runner.invoke(
        app, [*RUN, "--gpu", "a100", "--set", "bullet.mechanism=mps", "--out", str(out)], env=ENV
    )
    assert res.exit_code == 0, res.output
    assert "re-partition 0.47 us (derived: the H200 measurement, not measured on a100)" in (
        res.output
    )
    part = json.loads((out / "summary.json").read_text())["partitioning"]
    assert part["mechanism"] == "mps" and part["remask_kind"] == "derived"
    assert part["remask_us"] == 0.47 and part["fixed"] is False
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["policy_params"]["bullet"]["remask_us"] is None  # not written back


def test_fixed_mechanisms_are_recorded(tmp_path):
    cfg = load_config(None, {"policy": "static-split", "gpu": "h200"})
    spec = get_gpu("h200")
    part = partitioning_of("static-split", cfg.params(), spec, spec.num_sms)
    assert (part.mechanism, part.unit_sms, part.fixed) == ("libsmctrl", 2, True)
    cfg = load_config(None, {"policy": "pdmux", "gpu": "h200", "pdmux": {"step_sms": 16}})
    part = partitioning_of("pdmux", cfg.params(), spec, spec.num_sms)
    assert (part.mechanism, part.unit_sms) == ("green-ctx", 16)
    assert partitioning_of("chunked", load_config(None, {}).params(), spec, 132) is None


def test_calibrate_takes_the_same_names():
    from calibrate.cli import register

    cal = __import__("typer").Typer()
    register(cal)
    res = runner.invoke(cal, ["calibrate", "--gpu", "h200", "--mechanism", "tpc"])
    assert res.exit_code == 2
    assert "unknown SM partition mechanism 'tpc'; valid: green (= green-ctx)" in res.output
    res = runner.invoke(cal, ["calibrate", "--gpu", "h200", "--mechanism", "green"])
    assert "unknown SM partition mechanism" not in res.output  # on to the GPU check


@pytest.mark.parametrize(
    "extra, names",
    [
        (["--mechanism", "green"], ["[bullet] mechanism = 'libsmctrl'", "--mechanism green"]),
        (["--set", "bullet.mechanism=mps"], ["[bullet] mechanism = 'libsmctrl'", "--set bullet"]),
        (["--set", "bullet.mechanism=libsmctrl", "--set", "bullet.mechanism=green"],
         ["--set bullet.mechanism=libsmctrl", "--set bullet.mechanism=green"]),
    ],
)  # fmt: skip
def test_any_two_mechanism_sources_that_disagree_are_refused(tmp_path, extra, names):
    """Issue 16: a config file's mechanism lost silently to --mechanism / --set, and of two
    --set the last won; each source is named."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[bullet]\nmechanism = "libsmctrl"\n')
    with_cfg = ["--config", str(cfg)] if "libsmctrl'" in names[0] else []
    res = runner.invoke(app, [*RUN, "--no-write", *with_cfg, *extra], env=ENV)
    out = " ".join(res.output.split())
    assert res.exit_code == 2 and out.startswith("error: bullet.mechanism is given differently")
    assert all(n in out for n in names), out
    res = runner.invoke(app, [*RUN, "--no-write", "--config", str(cfg), "--mechanism",
                              "libsmctrl"], env=ENV)  # fmt: skip
    assert res.exit_code == 0, res.output  # the same mechanism twice: agreed
    sweep = [
        "sweep",
        "-n",
        "20",
        "--rates",
        "4",
        "--no-capacity",
        "--workers",
        "1",
        "-q",
        "--set",
        "bullet.mechanism=mps",
        "--mechanism",
        "green",
        "--out",
        str(tmp_path / "s"),
    ]
    res = runner.invoke(app, sweep, env=ENV)
    assert res.exit_code == 2 and "given differently" in res.output
    assert not (tmp_path / "s").exists()
