"""Executors: retries, a lost worker, failed points kept as rows, missing/unreachable Ray."""

from __future__ import annotations

import os
import socket
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim import sweep as sweep_mod
from bulletsim.executors import InlineExecutor, LocalPool, TaskFailed, Tasks, make_executor
from bulletsim.sweep import SweepSpec, run_sweep


def flaky(marker: str, fail_times: int, value: int) -> int:
    """Raise (or kill the worker with value -1) until called `fail_times` times."""
    n = int(open(marker).read()) if os.path.exists(marker) else 0
    with open(marker, "w") as f:
        f.write(str(n + 1))
    if n < fail_times:
        if value < 0:
            os._exit(1)  # a lost worker: the process dies mid-task
        raise RuntimeError(f"flaky failure {n + 1}\nsecond line")
    return abs(value) * 10


def test_tasks_retry_then_report(tmp_path):
    with InlineExecutor() as ex:
        tasks = Tasks(ex, attempts=3)
        out = tasks.map(
            flaky,
            {("b", 2): (str(tmp_path / "b"), 2, 2), ("a", 1): (str(tmp_path / "a"), 5, 1)},
        )
    assert list(out) == [("b", 2), ("a", 1)]  # in the order asked for
    assert out[("b", 2)] == 20  # failed twice, third attempt ran
    assert out[("a", 1)] == TaskFailed(3, "RuntimeError: flaky failure 3")
    assert (tmp_path / "a").read_text() == "3"  # tried exactly three times


def test_local_pool_survives_a_lost_worker(tmp_path):
    with LocalPool(2) as pool:
        out = Tasks(pool).map(
            flaky, {i: (str(tmp_path / f"m{i}"), 1 if i == 0 else 0, -i - 1) for i in range(3)}
        )
    assert out == {0: 10, 1: 20, 2: 30}
    assert (tmp_path / "m0").read_text() == "2"  # the killed task ran again


SMALL = dict(
    policies=("bullet", "chunked-1024"),
    traces=("splitwise-code",),
    rates=(1.0, 3.0),
    num_requests=40,
    rel_tol=0.2,
    seeds=(3,),
    base={"latency": "roofline"},
)


def test_failed_jobs_are_kept_as_rows_and_their_capacity_is_nan(monkeypatch):
    real = sweep_mod.run_point

    def broken_point(spec, v, trace, seed, rate):
        if v.label == "bullet" and rate == 3.0:
            raise MemoryError("worker ran out of memory")
        return real(spec, v, trace, seed, rate)

    def broken_zero(spec, v, trace, seed):
        raise RuntimeError("no zero load today")

    monkeypatch.setattr(sweep_mod, "run_point", broken_point)
    ticks = []
    points, cap = run_sweep(SweepSpec(**SMALL), progress=lambda *a: ticks.append(a))
    # progress after every job, failed ones included: each point, and each pair's zero load
    assert [d for _, d, _ in ticks] == list(range(1, len(points) + 2 + 1))
    assert ticks[-1][1] == ticks[-1][2] and "bullet splitwise-code grid failed" in str(ticks)
    bad = points[points.error != ""]
    assert list(zip(bad.label, bad.rate_req_s, bad.kind, strict=True)) == [("bullet", 3.0, "grid")]
    assert bad.error.iloc[0] == "failed after 3 attempts: MemoryError: worker ran out of memory"
    assert bad.slo_attainment.isna().all()
    assert cap.set_index("label").capacity_req_s.isna().to_dict() == {
        "bullet": True,
        "chunked-1024": False,
    }
    assert "bullet" not in set(points[points.kind == "search"].label)  # its search stopped
    monkeypatch.setattr(sweep_mod, "run_zero_load", broken_zero)
    points, cap = run_sweep(SweepSpec(**{**SMALL, "policies": ("chunked-1024",)}))
    bad = points[points.error != ""]
    assert list(zip(bad.kind, bad.rate_req_s, strict=True)) == [("zero-load", 0.0)]
    assert cap.capacity_req_s.isna().all()


def test_cli_reports_failed_points_with_exit_1(monkeypatch, tmp_path):
    from bulletsim.cli import app

    def broken(spec, v, trace, seed, rate):
        raise RuntimeError("boom")

    monkeypatch.setattr(sweep_mod, "run_point", broken)
    out = tmp_path / "sw"
    args = ["sweep", "--policy", "chunked-1024", "--trace", "splitwise-code", "--rates", "1",
            "-n", "20", "--latency", "roofline", "--seeds", "0", "--workers", "1",
            "--out", str(out), "-q"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1
    assert "1 job(s) failed (chunked-1024 splitwise-code seed 0 1 req/s)" in res.output
    assert "no capacity: a job failed" in (out / "warnings.txt").read_text()
    assert pd.read_csv(out / "points.csv").error.iloc[0].endswith("RuntimeError: boom")


def test_executor_errors_are_one_line_exit_2(monkeypatch, tmp_path):
    from bulletsim.cli import app

    base = ["sweep", "--policy", "chunked-1024", "-n", "20", "--out", str(tmp_path / "x")]
    res = CliRunner().invoke(app, [*base, "--executor", "dask"])
    assert res.exit_code == 2 and "valid: local, ray" in res.output
    res = CliRunner().invoke(app, [*base, "--ray-address", "auto"])
    assert res.exit_code == 2 and "--ray-address needs --executor ray" in res.output
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    res = CliRunner().invoke(app, [*base, "--executor", "ray"])
    assert res.exit_code == 2 and 'pip install "bulletsim[ray]"' in res.output
    assert not (tmp_path / "x").exists()


def test_unreachable_ray_address_is_a_one_line_error():
    pytest.importorskip("ray")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(ValueError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        make_executor("ray", address=f"127.0.0.1:{port}")
    with pytest.raises(ValueError, match="HOST:PORT"):
        make_executor("ray", address="no-port")
