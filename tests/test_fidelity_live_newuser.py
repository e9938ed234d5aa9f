"""`bulletsim fidelity` / `calibrate --from-live` on small fake live runs: new-user findings
(metrics without samples, tensor-parallel profiles, copies of a run, the table file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app

LIVE = ["live", "--executor", "fake", "-q", "--trace", "fixed", "--input-len", "100"]


def _live(out: Path, *extra: str) -> Path:
    r = CliRunner().invoke(app, [*LIVE, "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def one_token(tmp_path_factory) -> Path:
    """A run whose requests all have one output token: no TPOT or ITL samples."""
    d = tmp_path_factory.mktemp("one") / "o1"
    return _live(d, "-n", "5", "--rate", "5", "--output-len", "1")


def test_metrics_without_samples_print_n_a(one_token, tmp_path):
    table = tmp_path / "t.md"
    r = CliRunner().invoke(app, ["fidelity", str(one_token), "--table", str(table)])
    assert r.exit_code == 0, r.output
    assert "n/a" in r.output and "Traceback" not in r.output
    row = table.read_text().splitlines()[2]
    cells = [c.strip() for c in row.split("|")]
    assert cells[6:8] == ["n/a", "n/a"]  # live TPOT mean, TPOT err
    assert "nan" not in row


def test_calibrate_from_live_finds_the_tensor_parallel_profile(tmp_path):
    run = _live(tmp_path / "r", "--model", "llama-3.1-70b", "--tp", "4", "-n", "10",
                "--rate", "5", "--output-len", "4")  # fmt: skip
    out = tmp_path / "m.json"
    r = CliRunner().invoke(app, ["calibrate", "--from-live", str(run), "--out", str(out)])
    assert r.exit_code == 0, r.output
    import json

    assert json.loads(out.read_text())["meta"]["tp"] == 4


def test_table_with_notes_appended_is_not_overwritten(one_token, tmp_path):
    table = tmp_path / "t.md"
    ok = CliRunner().invoke(app, ["fidelity", str(one_token), "--table", str(table)])
    assert ok.exit_code == 0, ok.output
    again = CliRunner().invoke(app, ["fidelity", str(one_token), "--table", str(table)])
    assert again.exit_code == 0, again.output  # its own table may be replaced
    mine = table.read_text() + "\nmy notes: run again on Friday\n"
    table.write_text(mine)
    r = CliRunner().invoke(app, ["fidelity", str(one_token), "--table", str(table)])
    assert r.exit_code == 2 and "not a fidelity table bulletsim wrote" in r.output
    assert table.read_text() == mine


@pytest.mark.parametrize("cmd", [["fidelity"], ["calibrate", "--from-live"]])
def test_a_copy_of_a_run_is_refused(one_token, tmp_path, cmd):
    import shutil

    copy = tmp_path / "o1copy"
    shutil.copytree(one_token, copy)
    args = [*cmd, str(one_token), str(copy)]
    if cmd[0] == "calibrate":
        args += ["--out", str(tmp_path / "m.json")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert str(one_token) in r.output and str(copy) in r.output and "copy" in r.output
    assert not (tmp_path / "m.json").exists()


def test_a_changed_profile_file_is_named_and_its_iterations_repriced(tmp_path):
    import json

    prof = tmp_path / "p.json"
    src = Path(__file__).resolve().parents[1] / "bulletsim/data/profiles/h200__llama-3.1-8b.json"
    prof.write_text(src.read_text())
    run = _live(tmp_path / "p1", "-n", "12", "--rate", "5", "--output-len", "6",
                "--profile", str(prof))  # fmt: skip
    table = tmp_path / "t.md"
    args = ["fidelity", str(run), "--table", str(table)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "not the one the run recorded" not in r.output, r.output
    assert table.read_text().splitlines()[2].split("|")[11].strip() == "0.0%"
    doc = json.loads(prof.read_text())
    doc["srm"]["step_overhead_s"] = 0.005  # 10x: every iteration priced longer
    prof.write_text(json.dumps(doc))
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "not the one the run recorded" in r.output and str(prof) in r.output
    iter_err = float(table.read_text().splitlines()[2].split("|")[11].strip().rstrip("%"))
    assert iter_err > 1.0  # re-priced with the profile used, not the recorded predictions
    prof.unlink()
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "no longer exists" in r.output, r.output


def test_the_table_and_held_out_load_use_the_rate_offered(one_token, tmp_path):
    inf = _live(tmp_path / "inf", "-n", "6", "--rate", "inf", "--output-len", "3")
    low = _live(tmp_path / "low", "-n", "6", "--rate", "2", "--output-len", "3")
    closed = _live(tmp_path / "cl", "-n", "6", "--max-concurrency", "2", "--output-len", "3")
    table = tmp_path / "t.md"
    r = CliRunner().invoke(app, ["fidelity", str(inf), str(closed), str(low), "--table",
                                 str(table)])  # fmt: skip
    assert r.exit_code == 0, r.output
    rates = [ln.split("|")[3].strip() for ln in table.read_text().splitlines()[2:]]
    assert rates == ["inf", "closed-loop 2", "2"]
    r = CliRunner().invoke(app, ["fidelity", str(inf), str(low), str(one_token), "--held-out",
                                 "load"])  # fmt: skip
    assert r.exit_code == 0, r.output
    # ranked 2 < 5 < inf: the inf run is the highest load, held out from the other two
    lines = r.output.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith(f"live run {inf}"))
    assert lines[i + 1] == "profile refitted on: load: the 2 runs not in load 3"
    r = CliRunner().invoke(app, ["fidelity", str(closed), str(low), "--held-out", "load"])
    assert r.exit_code == 2 and "closed-loop 2" in r.output and "no arrival rate" in r.output


def test_offered_reads_the_rate_a_poisson_process_chose():
    from bulletsim.live.offered import offered

    def meta(rate, note, mc=None):
        wl = {"rate": rate, "max_concurrency": mc}
        return {"config": {"workload": wl}, "workload": {"notes": [note]}}

    assert offered(meta(None, "poisson arrivals at the trace's mean rate, 3.250 req/s")) == (
        "3.25", 3.25)  # fmt: skip
    assert offered(meta(None, "poisson arrivals at splitwise's default 19.0 req/s"))[1] == 19.0
    assert offered(meta(None, "trace arrivals: the file's timestamps")) == ("trace", None)
    assert offered(meta(7.0, "poisson arrivals at 7.0 req/s", mc=4)) == (
        "closed-loop 4 (7 req/s)", None)  # fmt: skip


@pytest.mark.parametrize("mechanism", ["libsmctrl", "green"])
def test_fake_runs_that_cannot_resimulate_exactly_say_so(tmp_path, mechanism):
    run = _live(tmp_path / "b", "-n", "20", "--rate", "10", "--output-len", "40",
                "--input-len", "2000", "--policy", "bullet", "--mechanism", mechanism)  # fmt: skip
    table = tmp_path / "t.md"
    r = CliRunner().invoke(app, ["fidelity", str(run), "--table", str(table)])
    assert r.exit_code == 0, r.output
    tpot_err = table.read_text().splitlines()[2].split("|")[7].strip()
    if mechanism == "green":  # exact: no note
        assert "running steps after a re-split" not in r.output and tpot_err == "+0.0%"
    else:
        assert "running steps after a re-split (libsmctrl" in r.output and tpot_err != "+0.0%"


def test_rate_no_write_and_own_outputs_in_a_run_folder(one_token, tmp_path):
    r = CliRunner().invoke(app, [*LIVE, "-n", "3", "--rate", "1e12"])
    assert r.exit_code == 2 and "> 0 and at most 1e+09, or inf" in r.output, r.output
    for cmd in ([*LIVE, "-n", "3", "--rate", "5", "--output-len", "3"], ["run", "-n", "3"]):
        r = CliRunner().invoke(app, [*cmd, "--no-write", "--out", str(tmp_path / "x")])
        assert r.exit_code == 2 and "--no-write" in r.output, r.output
    run = _live(tmp_path / "a1", "-n", "5", "--rate", "5", "--output-len", "3")
    calib = ["calibrate", "--from-live", str(run), "--out", str(run / "refit.json")]
    assert CliRunner().invoke(app, calib).exit_code == 0
    fid = ["fidelity", str(run), "--table", str(run / "fid.md")]
    assert CliRunner().invoke(app, fid).exit_code == 0
    _live(run, "-n", "5", "--rate", "5", "--output-len", "3")  # its own files: replaced
    (run / "notes.md").write_text("| workload | policy | rate (req/s) | mine\n")
    r = CliRunner().invoke(app, [*LIVE, "--out", str(run), "-n", "5", "--rate", "5",
                                 "--output-len", "3"])  # fmt: skip
    assert r.exit_code == 2 and "notes.md" in r.output
