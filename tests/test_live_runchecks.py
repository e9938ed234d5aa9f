"""`bulletsim fidelity` / `calibrate --from-live` refuse corrupted or repeated live runs up
front, name what `--held-out load` pairs, mark fake runs in the table and stop cleanly on
Ctrl-C (CPU only: small fake live runs, and copies of one committed H200 run)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.live.fidelity_folds import folds, load_groups
from bulletsim.live.rundir import check_live_runs

LIVE = ["live", "--executor", "fake", "-q", "--trace", "fixed", "--input-len", "100"]
COMMITTED = (
    Path(__file__).resolve().parents[1]
    / "results"
    / "live-h200"
    / "runs-s4"
    / "splitwise-chunked-2048-r19-n500"
)


def _live(out: Path, *extra: str) -> Path:
    r = CliRunner().invoke(app, [*LIVE, "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Path:
    """A small fake-executor run whose live.json records its tables' sha256."""
    return _live(tmp_path_factory.mktemp("fake") / "f", "-n", "12", "--rate", "10",
                 "--output-len", "4")  # fmt: skip


def _corrupt(src: Path, dst: Path, table: str, edit) -> Path:
    """A copy of run `src` with `edit` applied to one of its tables, live.json's digests
    rewritten to match (so only the new content check can catch it)."""
    shutil.copytree(src, dst)
    df = pd.read_parquet(dst / table)
    edit(df)
    df.to_parquet(dst / table)
    live = json.loads((dst / "live.json").read_text())
    live["files"][table] = hashlib.sha256((dst / table).read_bytes()).hexdigest()
    (dst / "live.json").write_text(json.dumps(live))
    return dst


def _set(col: str, value, row: int | None = None):
    def edit(df: pd.DataFrame) -> None:
        if row is None:
            df[col] = value
        else:
            df.loc[row, col] = value

    return edit


@pytest.mark.parametrize(
    ("table", "edit", "msg"),
    [
        ("iterations.parquet", _set("phase", "foo"), "phase foo"),
        ("iterations.parquet", _set("num_sms", 1000), "num_sms 1000"),
        ("iterations.parquet", _set("num_sms", 0, row=0), "num_sms 0"),
        ("requests.parquet", _set("id", 0, row=1), "request id 0 given more than once"),
        ("requests.parquet", _set("prompt_tokens", 0, row=2), "has prompt_tokens 0"),
        ("requests.parquet", _set("output_tokens", -1, row=2), "has output_tokens -1"),
        ("requests.parquet", _set("arrival_s", np.nan, row=3), "has arrival_s nan"),
        ("requests.parquet", _set("arrival_s", np.inf, row=3), "has arrival_s inf"),
    ],
)
def test_corrupted_run_contents_are_refused_up_front(fake, tmp_path, table, edit, msg):
    bad = _corrupt(fake, tmp_path / "bad", table, edit)
    r = CliRunner().invoke(app, ["fidelity", str(fake), str(bad)])
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines() == [r.output.strip()]  # before any run's report
    assert msg in r.output and str(bad / table) in r.output and "valid" in r.output


def test_sm_count_is_judged_against_the_runs_gpu(fake, tmp_path):
    bad = _corrupt(fake, tmp_path / "bad", "iterations.parquet", _set("num_sms", 133))
    with pytest.raises(ValueError, match="valid: 1 to 132"):
        check_live_runs([bad])


def test_a_copy_of_a_run_without_recorded_digests_is_refused(tmp_path):
    assert "files" not in json.loads((COMMITTED / "live.json").read_text())
    copy = shutil.copytree(COMMITTED, tmp_path / "copy")
    with pytest.raises(ValueError, match="the same requests and iterations") as e:
        check_live_runs([COMMITTED, copy])
    assert str(COMMITTED) in str(e.value) and str(copy) in str(e.value)
    r = CliRunner().invoke(app, ["fidelity", str(COMMITTED), str(copy)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output


@pytest.fixture(scope="module")
def two_loads(tmp_path_factory) -> dict[str, Path]:
    """Fake runs of two workloads (fixed, random), two rates each, and one more rate."""
    d = tmp_path_factory.mktemp("loads")
    runs = {}
    for trace, rates in (("fixed", ("4", "8")), ("random", ("3", "6", "9"))):
        for rate in rates:
            args = ["-n", "10", "--rate", rate, "--output-len", "3", "--trace", trace]
            runs[f"{trace}{rate}"] = _live(d / f"{trace}-{rate}", *args)
    return runs


def test_held_out_load_names_each_groups_members(two_loads):
    runs = [two_loads[k] for k in ("fixed4", "fixed8", "random3", "random6")]
    assert load_groups(runs) == "load 1: fixed 4, random 3 req/s; load 2: fixed 8, random 6 req/s"
    r = CliRunner().invoke(app, ["fidelity", *map(str, runs), "--held-out", "load"])
    assert r.exit_code == 0, r.output
    want = "load groups: load 1: fixed 4, random 3 req/s; load 2: fixed 8, random 6 req/s"
    assert r.output.splitlines()[0] == want


def test_held_out_load_refuses_workloads_at_different_numbers_of_rates(two_loads):
    runs = [str(two_loads[k]) for k in ("fixed4", "fixed8", "random3", "random6",
                                        "random9")]  # fmt: skip
    r = CliRunner().invoke(app, ["fidelity", *runs, "--held-out", "load"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "fixed at 2 (4, 8 req/s); random at 3 (3, 6, 9 req/s)" in r.output


def test_a_fake_run_meets_nothing_in_the_table(fake, tmp_path):
    table = tmp_path / "t.md"
    r = CliRunner().invoke(app, ["fidelity", str(fake), "--table", str(table)])
    assert r.exit_code == 0, r.output
    meets = table.read_text().splitlines()[2].split("|")[12].strip()
    assert meets == "n/a (fake executor)"


def test_held_out_with_one_group_says_so_in_a_whole_sentence(two_loads):
    with pytest.raises(ValueError, match="needs runs of at least two workloads$"):
        folds([two_loads["fixed4"], two_loads["fixed8"]], "workload")
    with pytest.raises(ValueError, match=r"at least two loads \(arrival rates\)$"):
        folds([two_loads["fixed4"], two_loads["random3"]], "load")


def test_held_out_fit_on_one_run_is_singular(two_loads, tmp_path):
    table = tmp_path / "t.md"
    runs = [str(two_loads["fixed4"]), str(two_loads["random3"])]
    r = CliRunner().invoke(app, ["fidelity", *runs, "--held-out", "workload", "--table",
                                 str(table)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "workload: the 1 run not in workload fixed |" in table.read_text()


def _interrupt(*_a, **_k):
    raise KeyboardInterrupt


def test_ctrl_c_in_fidelity_is_one_line_and_exit_130(fake, tmp_path, monkeypatch):
    import bulletsim.live.fidelity as fid

    monkeypatch.setattr(fid, "resimulate_live", _interrupt)
    table = tmp_path / "t.md"
    r = CliRunner().invoke(app, ["fidelity", str(fake), "--table", str(table)])
    assert r.exit_code == 130, r.output
    assert r.output.strip() == "interrupted: nothing was written"
    assert not table.exists()


def test_ctrl_c_in_calibrate_from_live_is_one_line_and_exit_130(fake, tmp_path, monkeypatch):
    import bulletsim.latency.profile as prof
    import bulletsim.live.refit as refit

    out = tmp_path / "refit.json"
    args = ["calibrate", "--from-live", str(fake), "--out", str(out)]
    monkeypatch.setattr(refit, "refit_profile", _interrupt)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 130 and r.output.strip() == "interrupted: nothing was written"
    monkeypatch.undo()

    def half_written(doc, path):  # Ctrl-C while the profile is being written
        Path(path).write_text("{")
        raise KeyboardInterrupt

    monkeypatch.setattr(prof, "write_profile", half_written)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 130 and r.output.strip().endswith("interrupted: nothing was written")
    assert list(tmp_path.iterdir()) == []  # neither the profile nor its temporary file


BULLET = COMMITTED.parent / "splitwise-bullet-green-ctx-r19-n500"  # windows, co-runners


def _copy_with(dst: Path, table: str, edit) -> Path:
    """A copy of the committed bullet run (live.json records no digests) with `edit` applied
    to `table`: only a check of the values can catch it."""
    shutil.copytree(BULLET, dst)
    df = pd.read_parquet(dst / table)
    edit(df)
    df.to_parquet(dst / table)
    return dst


def _at(col: str, value, where=None):
    """Set `col` to `value` in the first row where `where(df)` (default: row 0)."""

    def edit(df: pd.DataFrame) -> None:
        if isinstance(value, float) and not pd.api.types.is_float_dtype(df[col]):
            df[col] = df[col].astype(np.float64)
        i = 0 if where is None else int(np.flatnonzero(where(df).to_numpy())[0])
        df.loc[df.index[i], col] = value

    return edit


def _as_text(col: str):
    def edit(df: pd.DataFrame) -> None:
        df[col] = df[col].astype(str)

    return edit


def _decode(df):
    return df["phase"].astype(str) == "decode"


def _window(df):
    return df["layer_start"] >= 0


def _swap_times(df):
    start, end = float(df.loc[0, "start_s"]), float(df.loc[0, "end_s"])
    df.loc[0, "start_s"], df.loc[0, "end_s"] = end, start


def _before(col: str, ref: str, by_s: float = 1.0):
    def edit(df):
        df.loc[3, col] = df.loc[3, ref] - by_s

    return edit


def _start_past_end(df):
    i = int(np.flatnonzero((df["layer_end"] == 32).to_numpy())[0])
    df.loc[i, "layer_start"] = 33


def _ctx_below(df):
    i = int(np.flatnonzero(_decode(df).to_numpy())[0])
    df.loc[i, "decode_ctx_tokens"] = df.loc[i, "decode_tokens"] - 1


ITER, REQ = "iterations.parquet", "requests.parquet"


@pytest.mark.parametrize(
    ("table", "edit", "msg"),
    [
        (ITER, _at("measured_s", np.nan), "measured_s nan"),
        (ITER, _at("measured_s", np.inf), "measured_s inf"),
        (ITER, _at("measured_s", -0.001), "measured_s -0.001"),
        (ITER, _at("measured_s", 0.0), "measured_s 0"),
        (ITER, _swap_times, "> end_s"),
        (ITER, _start_past_end, "layers 33 to 32"),
        (ITER, _at("layer_end", 40, _window), "to 40"),  # the model has 32 layers
        (ITER, _at("layer_start", -1, _window), "layers -1 to"),  # half a full step
        (ITER, _at("prefill_tokens", -5), "prefill_tokens -5"),
        (ITER, _at("decode_tokens", -1, _decode), "decode_tokens -1"),
        (ITER, _at("decode_tokens", 0, _decode), "decode_tokens 0 in a decode phase"),
        (ITER, _ctx_below, "< decode_tokens"),
        (ITER, _at("decode_tokens", 2.5, _decode), "decode_tokens 2.5"),
        (ITER, _at("co_sms", 133), "co_sms 133"),
        (ITER, _at("co_sms", -1), "co_sms -1"),
        (ITER, _at("host_s", -0.001), "host_s -0.001"),
        (ITER, _at("host_s", np.inf), "host_s inf"),
        (ITER, _at("host_s", np.nan), "host_s nan"),
        (ITER, _at("sm_clock_mhz", -1.0), "sm_clock_mhz -1"),
        (REQ, _before("first_token_s", "arrival_s"), "has first_token_s"),
        (REQ, _at("first_token_s", np.nan), "first_token_s nan"),
        (REQ, _at("finish_s", np.nan), "finish_s nan"),
        (REQ, _before("finish_s", "first_token_s", 0.001), "before first_token_s"),
        (REQ, _at("generated_tokens", 7), "generated_tokens 7 != output_tokens"),
        (REQ, _at("prompt_tokens", 100.5), "prompt_tokens 100.5"),
        (REQ, _at("admitted_s", np.inf), "admitted_s inf"),
        # a third tester's: values the first checks let through
        (ITER, _at("num_sms", 100.5), "num_sms 100.5"),
        (ITER, _at("logits_tokens", -1), "logits_tokens -1"),
        (ITER, _at("prefill_kv_tokens", -3), "prefill_kv_tokens -3"),
        (ITER, _at("measured_s", 1e9), "against end_s - start_s"),
        (ITER, _as_text("predicted_s"), "column predicted_s is"),
        (ITER, _as_text("sm_clock_mhz"), "column sm_clock_mhz is"),
        (REQ, _at("arrival_s", 1e300), "before arrival_s 1e+300"),
    ],
)
def test_values_no_live_run_writes_are_refused_up_front(tmp_path, table, edit, msg):
    bad = _copy_with(tmp_path / "bad", table, edit)
    r = CliRunner().invoke(app, ["fidelity", str(BULLET), str(bad)])
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines() == [r.output.strip()]  # before any run's report
    assert msg in r.output and str(bad / table) in r.output and "valid" in r.output


def test_fake_runs_hold_nan_clocks_and_pass(fake):
    assert pd.read_parquet(fake / ITER)["sm_clock_mhz"].isna().all()
    assert check_live_runs([fake]) == [fake]


def _config_with(dst: Path, edit) -> Path:
    shutil.copytree(BULLET, dst)
    meta = json.loads((dst / "config.json").read_text())
    edit(meta["config"])
    (dst / "config.json").write_text(json.dumps(meta))
    return dst


@pytest.mark.parametrize(
    ("edit", "msg"),
    [
        (lambda c: c.update(seed="zero"), "seed must be int"),
        (lambda c: c["policy_params"]["bullet"].update(foo=1), "unknown config key 'bullet.foo'"),
        (lambda c: c["kv"].update(memory_fraction=-1), "kv.memory_fraction"),
        (lambda c: c["slo"].update(tpot_ms=0), "slo.tpot_ms must be > 0"),
        (lambda c: c["slo"].update(ttft_ms=-5.0), "slo.ttft_ms"),
        (lambda c: c.pop("workload"), "is not a run's config"),
    ],
)
def test_a_bad_config_names_its_file_before_any_simulation(tmp_path, edit, msg):
    bad = _config_with(tmp_path / "bad", edit)
    r = CliRunner().invoke(app, ["fidelity", str(BULLET), str(bad)])
    assert r.exit_code == 2, r.output
    assert r.output.strip() == r.output.strip().splitlines()[0]
    assert r.output.startswith(f"error: {bad / 'config.json'}")
    assert msg in r.output


def test_a_copy_saved_again_by_pandas_is_refused(tmp_path):
    copy = shutil.copytree(BULLET, tmp_path / "copy")
    for name in (ITER, REQ):
        pd.read_parquet(copy / name).to_parquet(copy / name, compression="gzip")
        assert (copy / name).read_bytes() != (BULLET / name).read_bytes()
    with pytest.raises(ValueError, match="equal data in requests.parquet and iterations"):
        check_live_runs([BULLET, copy])


def test_an_error_while_resimulating_names_the_run(fake, two_loads, monkeypatch):
    import bulletsim.live.fidelity as fid

    def boom(d, *_a, **_k):
        raise ValueError("the profile has no term x")

    monkeypatch.setattr(fid, "resimulate_live", boom)
    r = CliRunner().invoke(app, ["fidelity", str(fake), str(two_loads["fixed4"])])
    assert r.exit_code == 2, r.output
    assert r.output.strip() == f"error: live run {fake}: the profile has no term x"


def test_a_config_nested_too_deeply_is_one_line(tmp_path):
    bad = tmp_path / "deep"
    shutil.copytree(BULLET, bad)
    (bad / "config.json").write_text("[" * 100000 + "]" * 100000)
    r = CliRunner().invoke(app, ["fidelity", str(bad)])
    assert r.exit_code == 2, r.output
    assert "nested too deeply" in r.output and str(bad / "config.json") in r.output


def test_a_run_changed_after_its_check_is_checked_again(tmp_path):
    """check_live_run keeps the runs that passed (one command asks about a run many times),
    keyed by its files' stamps: a file edited since fails the next check."""
    from bulletsim.live.rundir import check_live_run

    run = tmp_path / "run"
    shutil.copytree(BULLET, run)
    assert check_live_run(run) == run
    df = pd.read_parquet(run / ITER)
    df.loc[0, "measured_s"] = -1.0
    df.to_parquet(run / ITER)
    with pytest.raises(ValueError, match="measured_s -1"):
        check_live_run(run)
