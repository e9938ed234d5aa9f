"""The same sweep on a local Ray instance (2 CPUs) writes the same files as the local pool."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from bulletsim.executors import Tasks, make_executor

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_2cpus():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    # the test module's helpers travel by value: Ray workers cannot import tests/
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def test_ray_sweep_files_equal_the_local_pool(ray_2cpus, tmp_path):
    from bulletsim.cli import app

    args = ["sweep", "--policy", "bullet", "--policy", "chunked-1024", "--trace",
            "splitwise-code", "--rates", "1,3", "-n", "40", "--latency", "roofline",
            "--seeds", "3,4", "--rel-tol", "0.2", "--no-plots", "--no-timeline", "-q"]  # fmt: skip
    local = CliRunner().invoke(app, [*args, "--workers", "2", "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    on_ray = CliRunner().invoke(app, [*args, "--executor", "ray", "--out", str(tmp_path / "ray")])
    assert on_ray.exit_code == 0, on_ray.output
    assert ray.is_initialized()  # the test's session was used, and left running
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert {"capacity.csv", "capacity.md", "points.csv", "sweep.json"} <= set(names)
    assert names == sorted(p.name for p in (tmp_path / "ray").iterdir())
    for name in names:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert "search" in (tmp_path / "ray" / "points.csv").read_text()  # capacity searches ran


def crash_once(marker: str, value: int) -> int:
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # the Ray worker dies mid-task
    return value * 2


def bad_input(value: int) -> int:
    raise ValueError(f"bad value {value}")


def test_ray_retries_a_lost_worker_and_reports_the_tasks_own_error(ray_2cpus, tmp_path):
    with make_executor("ray") as ex:
        out = Tasks(ex).map(crash_once, {k: (str(tmp_path / f"m{k}"), k) for k in range(3)})
        assert out == {0: 0, 1: 2, 2: 4}
        failed = Tasks(ex, attempts=2).map(bad_input, {"x": (7,)})["x"]
    assert (failed.attempts, failed.error) == (2, "ValueError: bad value 7")  # not Ray's wrapper


def test_ray_design_files_equal_the_local_ones(ray_2cpus, tmp_path):
    from test_design import STUDY  # pytest puts tests/ on sys.path

    from bulletsim.cli import app

    f = tmp_path / "study.toml"
    f.write_text(STUDY.replace('slo = ["paper", "tight"]', 'slo = ["tight"]'))  # 2 cells
    outs = []
    for extra in (["--workers", "1"], ["--executor", "ray"]):
        out = tmp_path / extra[-1]
        res = CliRunner().invoke(app, ["design", str(f), *extra, "--out", str(out), "-q"])
        assert res.exit_code == 0, res.output
        outs.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert len(outs[0]) > 10 and outs[0] == outs[1]  # 2 cells' sweeps and the summaries
